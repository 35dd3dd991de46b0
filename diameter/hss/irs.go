package hss

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"stillwater/kv"
)

// IRS is an implicit registration set as read back.
type IRS struct {
	ID              string
	ServiceProfiles []ServiceProfile
	// PrivateIDs may authenticate the set.
	PrivateIDs []string
}

// ServiceProfile is one service profile of an IRS.
type ServiceProfile struct {
	ID        string
	HasIFC    bool
	PublicIDs []PublicIdentity
}

// PublicIdentity is a provisioned public identity.
type PublicIdentity struct {
	Identity       string
	IRS            string
	ServiceProfile string
	Barred         bool
	// XML is the PublicIdentity element as provisioned.
	XML string
}

// Wildcard reports whether the identity is a wildcarded IMPU.
func (p PublicIdentity) Wildcard() bool { return IsWildcard(p.Identity) }

// PublicIDs returns the identities of all the set's public identities.
func (i IRS) PublicIDs() []string {
	out := []string{}
	for _, sp := range i.ServiceProfiles {
		for _, p := range sp.PublicIDs {
			out = append(out, p.Identity)
		}
	}
	return out
}

func publicFrom(impu string, r impuRecord) PublicIdentity {
	return PublicIdentity{Identity: impu, IRS: r.IRS, ServiceProfile: r.SP, Barred: r.Barred, XML: r.XML}
}

// CreateIRS creates an empty implicit registration set and returns its id.
func (s *Store) CreateIRS(ctx context.Context) (string, error) {
	id, err := s.newID()
	if err != nil {
		return "", err
	}
	if _, err := s.irss.CAS(ctx, id, irsRecord{}, 0, 0); err != nil {
		return "", fmt.Errorf("hss: create IRS: %w", err)
	}
	return id, nil
}

// GetIRS returns an IRS with its service profiles, public and private
// identities.
func (s *Store) GetIRS(ctx context.Context, id string) (IRS, error) {
	rec, err := get(ctx, s.irss, id, "implicit registration set")
	if err != nil {
		return IRS{}, err
	}
	pubs, err := s.confirmPublics(ctx, id, rec.Publics)
	if err != nil {
		return IRS{}, err
	}
	out := IRS{ID: id, PrivateIDs: append([]string{}, rec.Privates...)}
	for _, p := range rec.Profiles {
		sp := ServiceProfile{ID: p.ID, HasIFC: p.IFC != ""}
		for _, pub := range pubs {
			if pub.ServiceProfile == p.ID {
				sp.PublicIDs = append(sp.PublicIDs, pub)
			}
		}
		out.ServiceProfiles = append(out.ServiceProfiles, sp)
	}
	return out, nil
}

// confirmPublics reads the index of every hinted public identity of IRS id
// (through the record cache, as resolve does) and keeps those that belong to
// it, in hint order.
func (s *Store) confirmPublics(ctx context.Context, id string, hints []string) ([]PublicIdentity, error) {
	recs := make([]*impuRecord, len(hints))
	err := parallel(ctx, len(hints), 16, func(ctx context.Context, i int) error {
		r, _, err := s.impus.Get(ctx, hints[i], kv.Cached())
		if errors.Is(err, kv.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("hss: read public identity %q: %w", hints[i], err)
		}
		if r.IRS == id {
			recs[i] = &r
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := []PublicIdentity{}
	for i, r := range recs {
		if r != nil {
			out = append(out, publicFrom(hints[i], *r))
		}
	}
	return out, nil
}

// DeleteIRS deletes an IRS with its service profiles and public identities,
// and dissociates its private identities. It reports whether it existed.
func (s *Store) DeleteIRS(ctx context.Context, id string) (bool, error) {
	for attempt := 1; ; attempt++ {
		rec, ver, err := s.irss.Get(ctx, id)
		if errors.Is(err, kv.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("hss: delete IRS %s: %w", id, err)
		}
		// Public identities vanish at their index records, before the IRS
		// that lists them.
		for _, impu := range rec.Publics {
			if err := s.dropPublic(ctx, id, impu); err != nil {
				return false, fmt.Errorf("hss: delete IRS %s: %w", id, err)
			}
		}
		err = s.irss.DeleteIf(ctx, id, ver)
		if errors.Is(err, kv.ErrConflict) && attempt < maxAttempts {
			continue // changed meanwhile: look again
		}
		if err != nil {
			return false, fmt.Errorf("hss: delete IRS %s: %w", id, err)
		}
		if err := s.regs.Delete(ctx, id); err != nil {
			return true, fmt.Errorf("hss: delete IRS %s: registration state: %w", id, err)
		}
		for _, impi := range rec.Privates {
			_, err := update(ctx, s.impis, impi, func(v *impiRecord, exists bool) error {
				if !exists || !contains(v.IRS, id) {
					return errUnchanged
				}
				v.IRS = without(v.IRS, id)
				return nil
			})
			if err != nil {
				return true, fmt.Errorf("hss: delete IRS %s: clear hint of %q: %w", id, impi, err)
			}
		}
		return true, nil
	}
}

// dropPublic deletes impu's index if it belongs to irs, then its wildcard
// hint. The IRS's own hint is left to the caller.
func (s *Store) dropPublic(ctx context.Context, irs, impu string) error {
	_, err := remove(ctx, s.impus, impu, func(v impuRecord) error {
		if v.IRS != irs {
			return errUnchanged // someone else's now
		}
		return nil
	})
	if errors.Is(err, errUnchanged) {
		return nil
	}
	if err != nil {
		return err
	}
	if IsWildcard(impu) {
		return s.unlistWildcard(ctx, impu)
	}
	return nil
}

func (s *Store) unlistWildcard(ctx context.Context, pattern string) error {
	host := hostOf(pattern)
	_, err := update(ctx, s.wilds, host, func(v *[]string, exists bool) error {
		if !exists || !contains(*v, pattern) {
			return errUnchanged
		}
		*v = without(*v, pattern)
		return nil
	})
	if err != nil {
		return fmt.Errorf("unlist wildcard %q: %w", pattern, err)
	}
	return nil
}

// CreateServiceProfile adds an empty service profile to an IRS and returns
// its id.
func (s *Store) CreateServiceProfile(ctx context.Context, irs string) (string, error) {
	id, err := s.newID()
	if err != nil {
		return "", err
	}
	_, err = update(ctx, s.irss, irs, func(v *irsRecord, exists bool) error {
		if !exists {
			return notFound("implicit registration set %q", irs)
		}
		v.Profiles = append(v.Profiles, profileRecord{ID: id})
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hss: create service profile in IRS %s: %w", irs, err)
	}
	return id, nil
}

// profileOf reads an IRS and checks that it has service profile sp.
func (s *Store) profileOf(ctx context.Context, irs, sp string) (irsRecord, profileRecord, error) {
	rec, err := get(ctx, s.irss, irs, "implicit registration set")
	if err != nil {
		return rec, profileRecord{}, err
	}
	p := rec.profile(sp)
	if p == nil {
		return rec, profileRecord{}, notFound("service profile %q in IRS %s", sp, irs)
	}
	return rec, *p, nil
}

// DeleteServiceProfile deletes a service profile and its public identities.
// It reports whether the profile existed; a missing IRS is ErrNotFound.
func (s *Store) DeleteServiceProfile(ctx context.Context, irs, sp string) (bool, error) {
	rec, err := get(ctx, s.irss, irs, "implicit registration set")
	if err != nil {
		return false, err
	}
	if rec.profile(sp) == nil {
		return false, nil
	}
	pubs, err := s.confirmPublics(ctx, irs, rec.Publics)
	if err != nil {
		return false, err
	}
	var dropped []string
	for _, p := range pubs {
		if p.ServiceProfile != sp {
			continue
		}
		if err := s.dropPublic(ctx, irs, p.Identity); err != nil {
			return false, fmt.Errorf("hss: delete service profile %s: %w", sp, err)
		}
		dropped = append(dropped, p.Identity)
	}
	_, err = update(ctx, s.irss, irs, func(v *irsRecord, exists bool) error {
		if !exists {
			return errUnchanged
		}
		v.Profiles = slices.DeleteFunc(v.Profiles, func(p profileRecord) bool { return p.ID == sp })
		v.Publics = slices.DeleteFunc(v.Publics, func(p string) bool { return contains(dropped, p) })
		return nil
	})
	if err != nil {
		return true, fmt.Errorf("hss: delete service profile %s: %w", sp, err)
	}
	return true, nil
}

// ServiceProfilePublicIDs lists the public identities of a service profile.
func (s *Store) ServiceProfilePublicIDs(ctx context.Context, irs, sp string) ([]string, error) {
	rec, _, err := s.profileOf(ctx, irs, sp)
	if err != nil {
		return nil, err
	}
	pubs, err := s.confirmPublics(ctx, irs, rec.Publics)
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, p := range pubs {
		if p.ServiceProfile == sp {
			out = append(out, p.Identity)
		}
	}
	return out, nil
}

// PutPublicID creates or updates a public identity in a service profile from
// its PublicIdentity XML. The XML's Identity must be impu (ErrMismatch); an
// identity that belongs to another IRS is ErrConflict. Within its IRS an
// identity may move between service profiles.
func (s *Store) PutPublicID(ctx context.Context, irs, sp, impu string, doc []byte) error {
	if err := CheckPublicID(impu); err != nil {
		return err
	}
	pd, err := parsePublicIdentity(doc)
	if err != nil {
		return err
	}
	if pd.identity != impu {
		return mismatch("the PublicIdentity XML is for %q, not %q", pd.identity, impu)
	}
	if _, _, err := s.profileOf(ctx, irs, sp); err != nil {
		return err
	}
	want := impuRecord{IRS: irs, SP: sp, XML: pd.element, Barred: pd.barred}
	if err := s.claimPublic(ctx, impu, want); err != nil {
		return fmt.Errorf("hss: put public identity %q: %w", impu, err)
	}
	return nil
}

// claimPublic makes the index of impu say want, following the order that
// keeps readers safe: the IRS's hint (and the domain's wildcard hint) first,
// then a compare-and-set on the index, then a check that the IRS survived.
func (s *Store) claimPublic(ctx context.Context, impu string, want impuRecord) error {
	hinted := false
	for attempt := 1; ; attempt++ {
		cur, ver, err := s.impus.Get(ctx, impu)
		switch {
		case errors.Is(err, kv.ErrNotFound):
		case err != nil:
			return err
		case cur.IRS != want.IRS:
			if held, err := s.holds(ctx, cur.IRS, impu); err != nil {
				return err
			} else if held {
				if hinted {
					// Lost a race after hinting: take the hint back.
					if err := s.unhint(ctx, want.IRS, impu); err != nil {
						return err
					}
				}
				return conflict("public identity %q belongs to IRS %s", impu, cur.IRS)
			}
			// A dangling index from an interrupted change: take it over.
		}
		_, err = update(ctx, s.irss, want.IRS, func(v *irsRecord, exists bool) error {
			if !exists {
				return notFound("implicit registration set %q", want.IRS)
			}
			if v.profile(want.SP) == nil {
				return notFound("service profile %q in IRS %s", want.SP, want.IRS)
			}
			if contains(v.Publics, impu) {
				return errUnchanged
			}
			v.Publics = append(v.Publics, impu)
			return nil
		})
		if err != nil {
			return err
		}
		hinted = true
		if IsWildcard(impu) {
			_, err := update(ctx, s.wilds, hostOf(impu), func(v *[]string, exists bool) error {
				if contains(*v, impu) {
					return errUnchanged
				}
				*v = append(*v, impu)
				return nil
			})
			if err != nil {
				return err
			}
		}
		nv, err := s.impus.CAS(ctx, impu, want, 0, ver)
		if errors.Is(err, kv.ErrConflict) && attempt < maxAttempts {
			continue
		}
		if err != nil {
			return err
		}
		// A delete of the IRS that ran meanwhile did not see this index.
		if _, _, err := s.irss.Get(ctx, want.IRS); errors.Is(err, kv.ErrNotFound) {
			if err := s.impus.DeleteIf(ctx, impu, nv); err != nil && !errors.Is(err, kv.ErrConflict) {
				return err
			}
			return notFound("implicit registration set %q", want.IRS)
		}
		return nil
	}
}

// unhint removes impu from the public identity hints of irs.
func (s *Store) unhint(ctx context.Context, irs, impu string) error {
	_, err := update(ctx, s.irss, irs, func(v *irsRecord, exists bool) error {
		if !exists || !contains(v.Publics, impu) {
			return errUnchanged
		}
		v.Publics = without(v.Publics, impu)
		return nil
	})
	return err
}

// holds reports whether IRS irs exists and lists impu.
func (s *Store) holds(ctx context.Context, irs, impu string) (bool, error) {
	rec, _, err := s.irss.Get(ctx, irs)
	if errors.Is(err, kv.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return contains(rec.Publics, impu), nil
}

// GetPublicID returns a public identity of a service profile.
func (s *Store) GetPublicID(ctx context.Context, irs, sp, impu string) (PublicIdentity, error) {
	if _, _, err := s.profileOf(ctx, irs, sp); err != nil {
		return PublicIdentity{}, err
	}
	rec, err := get(ctx, s.impus, impu, "public identity")
	if err != nil {
		return PublicIdentity{}, err
	}
	switch {
	case rec.IRS != irs:
		return PublicIdentity{}, notFound("public identity %q in IRS %s", impu, irs)
	case rec.SP != sp:
		return PublicIdentity{}, mismatch("public identity %q is not in service profile %s", impu, sp)
	}
	return publicFrom(impu, rec), nil
}

// DeletePublicID deletes a public identity of a service profile.
func (s *Store) DeletePublicID(ctx context.Context, irs, sp, impu string) error {
	existed, err := remove(ctx, s.impus, impu, func(v impuRecord) error {
		switch {
		case v.IRS != irs:
			return notFound("public identity %q in IRS %s", impu, irs)
		case v.SP != sp:
			return mismatch("public identity %q is not in service profile %s", impu, sp)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("hss: delete public identity %q: %w", impu, err)
	}
	if !existed {
		return notFound("public identity %q", impu)
	}
	err = s.unhint(ctx, irs, impu)
	if err == nil && IsWildcard(impu) {
		err = s.unlistWildcard(ctx, impu)
	}
	if err != nil {
		return fmt.Errorf("hss: delete public identity %q: %w", impu, err)
	}
	return nil
}

// FilterCriteria returns the iFC document of a service profile, as
// provisioned; ErrNotFound if it has none.
func (s *Store) FilterCriteria(ctx context.Context, irs, sp string) ([]byte, error) {
	_, p, err := s.profileOf(ctx, irs, sp)
	if err != nil {
		return nil, err
	}
	if p.IFC == "" {
		return nil, notFound("service profile %q has no iFCs", sp)
	}
	return s.ifcRaw(ctx, p.IFC)
}

// PutFilterCriteria sets the iFC document of a service profile: a TS 29.228
// ServiceProfile element with InitialFilterCriteria children.
func (s *Store) PutFilterCriteria(ctx context.Context, irs, sp string, doc []byte) error {
	if _, _, err := s.profileOf(ctx, irs, sp); err != nil {
		return err
	}
	key, err := s.putIFC(ctx, doc)
	if err != nil {
		return err
	}
	_, err = update(ctx, s.irss, irs, func(v *irsRecord, exists bool) error {
		if !exists {
			return notFound("implicit registration set %q", irs)
		}
		p := v.profile(sp)
		if p == nil {
			return notFound("service profile %q in IRS %s", sp, irs)
		}
		if p.IFC == key {
			return errUnchanged
		}
		p.IFC = key
		return nil
	})
	if err != nil {
		return fmt.Errorf("hss: put filter criteria of %s: %w", sp, err)
	}
	return nil
}

// resolved is a public identity found for a request, with its IRS.
type resolved struct {
	PublicIdentity
	// Wildcard is the wildcarded identity that matched, "" for an exact
	// match.
	Wildcard string
	irs      irsRecord
}

// resolve finds the public identity impu, exactly or through a wildcard of
// its domain, and reads its IRS. It serves the Cx paths, which every
// registration and call take, so it reads through this node's record cache
// (kv.Cached): a provisioning change made through another node shows here
// once this node's replica has applied it.
func (s *Store) resolve(ctx context.Context, impu string) (resolved, error) {
	if r, ok, err := s.resolveExact(ctx, impu, kv.Cached()); err != nil || ok {
		return r, err
	}
	if !IsWildcard(impu) {
		patterns, _, err := s.wilds.Get(ctx, hostOf(impu), kv.Cached())
		if err != nil && !errors.Is(err, kv.ErrNotFound) {
			return resolved{}, fmt.Errorf("hss: read wildcards of %q: %w", hostOf(impu), err)
		}
		for _, p := range patterns {
			re, err := s.wildcardRE(p)
			if err != nil || !re.MatchString(impu) {
				continue
			}
			r, ok, err := s.resolveExact(ctx, p, kv.Cached())
			if err != nil {
				return r, err
			}
			if ok {
				r.Wildcard = p
				return r, nil
			}
		}
	}
	return resolved{}, notFound("public identity %q", impu)
}

func (s *Store) resolveExact(ctx context.Context, impu string, opts ...kv.ReadOption) (resolved, bool, error) {
	rec, _, err := s.impus.Get(ctx, impu, opts...)
	if errors.Is(err, kv.ErrNotFound) {
		return resolved{}, false, nil
	}
	if err != nil {
		return resolved{}, false, fmt.Errorf("hss: read public identity %q: %w", impu, err)
	}
	irs, _, err := s.irss.Get(ctx, rec.IRS, opts...)
	if errors.Is(err, kv.ErrNotFound) {
		return resolved{}, false, nil // dangling index
	}
	if err != nil {
		return resolved{}, false, fmt.Errorf("hss: read IRS %s: %w", rec.IRS, err)
	}
	return resolved{PublicIdentity: publicFrom(impu, rec), irs: irs}, true, nil
}

// LookupPublicID finds a public identity, exactly or through a wildcarded
// identity; the result is the provisioned identity (the wildcard, for a
// match through one).
func (s *Store) LookupPublicID(ctx context.Context, impu string) (PublicIdentity, error) {
	r, err := s.resolve(ctx, impu)
	return r.PublicIdentity, err
}

// PublicPrivateIDs lists the private identities that may authenticate a
// public identity.
func (s *Store) PublicPrivateIDs(ctx context.Context, impu string) ([]string, error) {
	r, err := s.resolve(ctx, impu)
	if err != nil {
		return nil, err
	}
	return append([]string{}, r.irs.Privates...), nil
}

// EachPublicID calls fn for every provisioned public identity, shard by
// shard; an error from fn stops the walk.
func (s *Store) EachPublicID(ctx context.Context, fn func(impu string) error) error {
	return s.impus.Scan(ctx, "", func(key string, _ impuRecord, _ kv.Version) error { return fn(key) })
}
