package hss

import (
	"context"
	"errors"
	"fmt"

	"stillwater/kv"
)

// Line is a subscriber line as Ellis provisions one: public identities in
// an IRS and service profile of their own, authenticated by one private
// identity.
type Line struct {
	PrivateID string
	PublicIDs []string
	// Realm of the digest credentials; "" means Options.HomeDomain.
	Realm string
	// Password is the SIP password; only its digest is kept. "" means the
	// private identity exists and keeps its credentials.
	Password string
	// IFC is the service profile's iFC document; "" leaves it without.
	IFC string
}

// CreateLine provisions a line. A public identity that exists already is
// ErrConflict, a missing private identity (with no password) ErrNotFound.
// The public identities are written last, so a line is visible only when
// complete; on failure what was created for it is removed.
func (s *Store) CreateLine(ctx context.Context, l Line) (err error) {
	if err := CheckPrivateID(l.PrivateID); err != nil {
		return err
	}
	if len(l.PublicIDs) == 0 {
		return invalid("a line needs at least one public identity")
	}
	for _, p := range l.PublicIDs {
		if err := CheckPublicID(p); err != nil {
			return err
		}
		if _, ok, err := s.resolveExact(ctx, p); err != nil {
			return err
		} else if ok {
			return conflict("public identity %q exists", p)
		}
	}
	if l.IFC != "" {
		if _, err := parseServiceProfile([]byte(l.IFC)); err != nil {
			return err
		}
	}
	_, _, err = s.impis.Get(ctx, l.PrivateID)
	existed := err == nil
	if err != nil && !errors.Is(err, kv.ErrNotFound) {
		return fmt.Errorf("hss: create line: %w", err)
	}
	if l.Password == "" && !existed {
		return notFound("private identity %q", l.PrivateID)
	}
	if l.Password != "" {
		realm := l.Realm
		if realm == "" {
			realm = s.opts.HomeDomain
		}
		if err := s.setDigest(ctx, l.PrivateID, realm, l.Password, true); err != nil {
			return err
		}
	}
	irs, err := s.CreateIRS(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if err == nil {
			return
		}
		cleanup := context.WithoutCancel(ctx)
		if _, derr := s.DeleteIRS(cleanup, irs); derr != nil {
			s.log.Error("could not remove the IRS of a failed line", "irs", irs, "err", derr)
		}
		if !existed {
			if _, derr := s.DeletePrivate(cleanup, l.PrivateID); derr != nil {
				s.log.Error("could not remove the private identity of a failed line", "impi", l.PrivateID, "err", derr)
			}
		}
	}()
	if err := s.AssociateIRS(ctx, l.PrivateID, irs); err != nil {
		return err
	}
	sp, err := s.CreateServiceProfile(ctx, irs)
	if err != nil {
		return err
	}
	if l.IFC != "" {
		if err := s.PutFilterCriteria(ctx, irs, sp, []byte(l.IFC)); err != nil {
			return err
		}
	}
	for _, p := range l.PublicIDs {
		if err := s.PutPublicID(ctx, irs, sp, p, []byte(publicIdentityXML(p, false))); err != nil {
			return err
		}
	}
	return nil
}

// DeleteLine deletes a public identity; when it was the last of its IRS the
// IRS goes too, and so does each private identity left without an IRS.
// Deleting an absent identity succeeds.
func (s *Store) DeleteLine(ctx context.Context, impu string) error {
	r, ok, err := s.resolveExact(ctx, impu)
	if err != nil || !ok {
		return err
	}
	if err := s.DeletePublicID(ctx, r.IRS, r.ServiceProfile, impu); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	irs, err := s.GetIRS(ctx, r.IRS)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(irs.PublicIDs()) > 0 {
		return nil
	}
	if _, err := s.DeleteIRS(ctx, r.IRS); err != nil {
		return err
	}
	for _, impi := range irs.PrivateIDs {
		left, err := s.PrivateIRSs(ctx, impi)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if len(left) == 0 {
			if _, err := s.DeletePrivate(ctx, impi); err != nil {
				return err
			}
		}
	}
	return nil
}

// SetPassword replaces a private identity's digest credentials, keeping
// only the digest; AKA credentials and associations stay.
func (s *Store) SetPassword(ctx context.Context, impi, realm, password string) error {
	if realm == "" {
		realm = s.opts.HomeDomain
	}
	return s.setDigest(ctx, impi, realm, password, false)
}

func (s *Store) setDigest(ctx context.Context, impi, realm, password string, create bool) error {
	if err := CheckPrivateID(impi); err != nil {
		return err
	}
	if password == "" || realm == "" {
		return invalid("a password and a realm are needed")
	}
	_, err := update(ctx, s.impis, impi, func(v *impiRecord, exists bool) error {
		if !exists && !create {
			return notFound("private identity %q", impi)
		}
		v.Realm, v.HA1, v.Password = realm, DigestHA1(impi, realm, password), ""
		return nil
	})
	if err != nil {
		return fmt.Errorf("hss: set password of %q: %w", impi, err)
	}
	return nil
}

// LineIFC returns the iFC document of a public identity's service profile
// ("" if it has none).
func (s *Store) LineIFC(ctx context.Context, impu string) (string, error) {
	r, ok, err := s.resolveExact(ctx, impu)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", notFound("public identity %q", impu)
	}
	doc, err := s.FilterCriteria(ctx, r.IRS, r.ServiceProfile)
	if errors.Is(err, ErrNotFound) {
		if _, _, perr := s.profileOf(ctx, r.IRS, r.ServiceProfile); perr == nil {
			return "", nil
		}
	}
	if err != nil {
		return "", err
	}
	return string(doc), nil
}

// SetLineIFC replaces the iFC document of a public identity's service
// profile.
func (s *Store) SetLineIFC(ctx context.Context, impu, doc string) error {
	r, ok, err := s.resolveExact(ctx, impu)
	if err != nil {
		return err
	}
	if !ok {
		return notFound("public identity %q", impu)
	}
	return s.PutFilterCriteria(ctx, r.IRS, r.ServiceProfile, []byte(doc))
}
