package hss

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/wmnsk/milenage"

	"stillwater/kv"
)

// Credentials are what PutPrivate stores for a private identity. Give a
// digest (DigestHA1 or PlaintextPassword, not both), AKA credentials, or
// both.
type Credentials struct {
	// Realm of the digest; "" means Options.HomeDomain.
	Realm string
	// DigestHA1 is hex MD5(impi ":" realm ":" password).
	DigestHA1 string
	// PlaintextPassword is kept as given, and the HA1 computed from it.
	PlaintextPassword string
	// AKA enables IMS AKA authentication with Milenage.
	AKA *AKACredentials
}

// AKACredentials are a subscriber's Milenage parameters.
type AKACredentials struct {
	K   []byte // 128-bit subscriber key
	OPc []byte // 128-bit operator variant key derived with K
	AMF uint16 // authentication management field of issued vectors
	// SQN is the highest sequence number used so far (SEQ<<5 | IND, TS
	// 33.102 annex C). Re-provisioning the same K and OPc never moves it
	// backwards.
	SQN uint64
}

// PrivateID is a private identity as read back. K and OPc are never
// returned.
type PrivateID struct {
	ID                string
	Realm             string
	DigestHA1         string
	PlaintextPassword string // "" unless provisioned in plaintext
	AKA               *AKACredentials
}

// DigestHA1 returns hex MD5(impi:realm:password), the digest Homestead keeps.
func DigestHA1(impi, realm, password string) string {
	h := md5.Sum([]byte(impi + ":" + realm + ":" + password))
	return hex.EncodeToString(h[:])
}

// PutPrivate creates or replaces the credentials of a private identity; its
// IRS associations are kept. A digest-only update drops a kept plaintext
// password and any AKA credentials, as a full replacement should.
func (s *Store) PutPrivate(ctx context.Context, impi string, c Credentials) error {
	rec, err := s.credentialRecord(impi, c)
	if err != nil {
		return err
	}
	_, err = update(ctx, s.impis, impi, func(v *impiRecord, exists bool) error {
		if rec.AKA != nil && v.AKA != nil && bytes.Equal(v.AKA.K, rec.AKA.K) && bytes.Equal(v.AKA.OPc, rec.AKA.OPc) {
			rec.AKA.SQN = max(rec.AKA.SQN, v.AKA.SQN)
		}
		irs := v.IRS
		*v = rec
		v.IRS = irs
		return nil
	})
	if err != nil {
		return fmt.Errorf("hss: put private identity %q: %w", impi, err)
	}
	return nil
}

// credentialRecord checks c and turns it into a record without IRS hints.
func (s *Store) credentialRecord(impi string, c Credentials) (impiRecord, error) {
	if err := CheckPrivateID(impi); err != nil {
		return impiRecord{}, err
	}
	realm := c.Realm
	if realm == "" {
		realm = s.opts.HomeDomain
	}
	rec := impiRecord{Realm: realm}
	switch {
	case c.DigestHA1 != "" && c.PlaintextPassword != "":
		return rec, invalid("give digest_ha1 or plaintext_password, not both")
	case c.PlaintextPassword != "":
		if realm == "" {
			return rec, invalid("no realm given and no home domain configured")
		}
		rec.Password = c.PlaintextPassword
		rec.HA1 = DigestHA1(impi, realm, c.PlaintextPassword)
	case c.DigestHA1 != "":
		if realm == "" {
			return rec, invalid("no realm given and no home domain configured")
		}
		ha1 := strings.ToLower(c.DigestHA1)
		if b, err := hex.DecodeString(ha1); err != nil || len(b) != md5.Size {
			return rec, invalid("digest_ha1 %q is not 32 hexadecimal digits", c.DigestHA1)
		}
		rec.HA1 = ha1
	case c.AKA == nil:
		return rec, invalid("missing digest_ha1, plaintext_password or AKA credentials")
	}
	if a := c.AKA; a != nil {
		if len(a.K) != 16 {
			return rec, invalid("AKA key K must be 16 bytes, not %d", len(a.K))
		}
		if len(a.OPc) != 16 {
			return rec, invalid("AKA OPc must be 16 bytes, not %d", len(a.OPc))
		}
		if a.SQN >= 1<<48 {
			return rec, invalid("AKA SQN %d does not fit 48 bits", a.SQN)
		}
		rec.AKA = &akaRecord{K: slices.Clone(a.K), OPc: slices.Clone(a.OPc), AMF: a.AMF, SQN: a.SQN}
	}
	return rec, nil
}

// GetPrivate returns a private identity's credentials.
func (s *Store) GetPrivate(ctx context.Context, impi string) (PrivateID, error) {
	rec, err := get(ctx, s.impis, impi, "private identity")
	if err != nil {
		return PrivateID{}, err
	}
	p := PrivateID{ID: impi, Realm: rec.Realm, DigestHA1: rec.HA1, PlaintextPassword: rec.Password}
	if rec.AKA != nil {
		p.AKA = &AKACredentials{AMF: rec.AKA.AMF, SQN: rec.AKA.SQN}
	}
	return p, nil
}

// DeletePrivate deletes a private identity, first removing it from every IRS
// that lists it. It reports whether the identity existed.
func (s *Store) DeletePrivate(ctx context.Context, impi string) (bool, error) {
	for attempt := 1; ; attempt++ {
		rec, ver, err := s.impis.Get(ctx, impi)
		if errors.Is(err, kv.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("hss: delete private identity %q: %w", impi, err)
		}
		// The IRSs are the authority: unlist the IMPI there first, so a
		// failure leaves at most a stale hint.
		for _, id := range rec.IRS {
			if err := s.unlistPrivate(ctx, id, impi); err != nil {
				return false, fmt.Errorf("hss: delete private identity %q: %w", impi, err)
			}
		}
		err = s.impis.DeleteIf(ctx, impi, ver)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, kv.ErrConflict) || attempt >= maxAttempts {
			return false, fmt.Errorf("hss: delete private identity %q: %w", impi, err)
		}
	}
}

func (s *Store) unlistPrivate(ctx context.Context, irs, impi string) error {
	_, err := update(ctx, s.irss, irs, func(v *irsRecord, exists bool) error {
		if !exists || !contains(v.Privates, impi) {
			return errUnchanged
		}
		v.Privates = without(v.Privates, impi)
		return nil
	})
	return err
}

// AssociateIRS lets a private identity authenticate an IRS (both must
// exist).
func (s *Store) AssociateIRS(ctx context.Context, impi, irs string) error {
	if _, err := get(ctx, s.irss, irs, "implicit registration set"); err != nil {
		return err
	}
	// Hint first, then the authoritative IRS record.
	_, err := update(ctx, s.impis, impi, func(v *impiRecord, exists bool) error {
		if !exists {
			return notFound("private identity %q", impi)
		}
		if contains(v.IRS, irs) {
			return errUnchanged
		}
		v.IRS = append(v.IRS, irs)
		return nil
	})
	if err != nil {
		return fmt.Errorf("hss: associate %q with IRS %s: %w", impi, irs, err)
	}
	_, err = update(ctx, s.irss, irs, func(v *irsRecord, exists bool) error {
		if !exists {
			return notFound("implicit registration set %q", irs)
		}
		if contains(v.Privates, impi) {
			return errUnchanged
		}
		v.Privates = append(v.Privates, impi)
		return nil
	})
	if err != nil {
		return fmt.Errorf("hss: associate %q with IRS %s: %w", impi, irs, err)
	}
	// A delete of the IMPI that ran between the two writes did not see the
	// IRS listing it yet: undo the listing rather than leave it dangling.
	if _, _, err := s.impis.Get(ctx, impi); errors.Is(err, kv.ErrNotFound) {
		if err := s.unlistPrivate(ctx, irs, impi); err != nil {
			return fmt.Errorf("hss: associate %q with IRS %s: undo after concurrent delete: %w", impi, irs, err)
		}
		return notFound("private identity %q", impi)
	}
	return nil
}

// DissociateIRS stops a private identity authenticating an IRS. It reports
// whether the private identity exists.
func (s *Store) DissociateIRS(ctx context.Context, impi, irs string) (bool, error) {
	if _, _, err := s.impis.Get(ctx, impi); errors.Is(err, kv.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("hss: dissociate %q from IRS %s: %w", impi, irs, err)
	}
	if err := s.unlistPrivate(ctx, irs, impi); err != nil {
		return true, fmt.Errorf("hss: dissociate %q from IRS %s: %w", impi, irs, err)
	}
	_, err := update(ctx, s.impis, impi, func(v *impiRecord, exists bool) error {
		if !exists || !contains(v.IRS, irs) {
			return errUnchanged
		}
		v.IRS = without(v.IRS, irs)
		return nil
	})
	if err != nil {
		return true, fmt.Errorf("hss: dissociate %q from IRS %s: %w", impi, irs, err)
	}
	return true, nil
}

// PrivateIRSs returns the IRSs a private identity may authenticate.
func (s *Store) PrivateIRSs(ctx context.Context, impi string) ([]string, error) {
	rec, err := get(ctx, s.impis, impi, "private identity")
	if err != nil {
		return nil, err
	}
	return s.confirmIRSs(ctx, impi, rec.IRS)
}

// confirmIRSs keeps the hinted IRSs that list impi.
func (s *Store) confirmIRSs(ctx context.Context, impi string, hints []string) ([]string, error) {
	ok := make([]bool, len(hints))
	err := parallel(ctx, len(hints), 16, func(ctx context.Context, i int) error {
		rec, _, err := s.irss.Get(ctx, hints[i])
		if errors.Is(err, kv.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("hss: read IRS %s: %w", hints[i], err)
		}
		ok[i] = contains(rec.Privates, impi)
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := []string{}
	for i, id := range hints {
		if ok[i] {
			out = append(out, id)
		}
	}
	return out, nil
}

// PrivatePublicIDs returns the public identities a private identity may
// authenticate: those of every IRS it is associated with.
func (s *Store) PrivatePublicIDs(ctx context.Context, impi string) ([]string, error) {
	irss, err := s.PrivateIRSs(ctx, impi)
	if err != nil {
		return nil, err
	}
	lists := make([][]string, len(irss))
	err = parallel(ctx, len(irss), 8, func(ctx context.Context, i int) error {
		irs, err := s.GetIRS(ctx, irss[i])
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		lists[i] = irs.PublicIDs()
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, l := range lists {
		out = append(out, l...)
	}
	return out, nil
}

// ComputeOPc derives OPc from the operator key OP and a subscriber's K, for
// provisioning that has OP rather than OPc.
func ComputeOPc(k, op []byte) ([]byte, error) {
	if len(k) != 16 || len(op) != 16 {
		return nil, invalid("K and OP must be 16 bytes each")
	}
	opc, err := milenage.ComputeOPc(k, op)
	if err != nil {
		return nil, fmt.Errorf("hss: compute OPc: %w", err)
	}
	return opc, nil
}
