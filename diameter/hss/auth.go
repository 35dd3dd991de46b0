package hss

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/wmnsk/milenage"

	"stillwater/kv"
)

// Scheme is the authentication scheme a vector is asked for.
type Scheme int

// Schemes, as Homestead's /impi/<impi>/av, /av/digest and /av/aka.
const (
	// SchemeAny lets the HSS choose: AKA when the IMPI has AKA credentials,
	// SIP digest otherwise.
	SchemeAny Scheme = iota
	SchemeDigest
	// SchemeAKA is IMS AKA version 1 (Digest-AKAv1-MD5).
	SchemeAKA
)

// AVRequest asks for an authentication vector.
type AVRequest struct {
	IMPI string
	// IMPU, if set, must be a public identity IMPI may authenticate.
	IMPU   string
	Scheme Scheme
	// Resync is RAND‖AUTS (16+14 bytes) from a UE that rejected an AKA
	// challenge's sequence number: the HSS checks AUTS, adopts the UE's
	// sequence number and issues a vector after it.
	Resync []byte
}

// AuthVector is a digest or an AKA vector; exactly one is set.
type AuthVector struct {
	Digest *DigestAV
	AKA    *AKAAV
}

// DigestAV is a SIP digest vector.
type DigestAV struct {
	HA1   string // hex
	Realm string
	QoP   string
}

// AKAAV is an IMS AKA vector (TS 33.102 quintet without the serving
// network's use of it).
type AKAAV struct {
	RAND []byte // 16 bytes
	AUTN []byte // (SQN ⊕ AK) ‖ AMF ‖ MAC-A, 16 bytes
	XRES []byte // 8 bytes
	CK   []byte // 16 bytes
	IK   []byte // 16 bytes
}

// Challenge is the nonce of the WWW-Authenticate header: base64(RAND‖AUTN).
func (a *AKAAV) Challenge() string {
	return base64.StdEncoding.EncodeToString(append(append([]byte{}, a.RAND...), a.AUTN...))
}

// Response is the expected response, hex-encoded as Homestead returns it.
func (a *AKAAV) Response() string { return hex.EncodeToString(a.XRES) }

// AuthVector returns an authentication vector for a private identity.
// Issuing an AKA vector advances the identity's sequence number with one
// replicated compare-and-set, so two vectors never share an SQN.
func (s *Store) AuthVector(ctx context.Context, req AVRequest) (AuthVector, error) {
	if err := CheckPrivateID(req.IMPI); err != nil {
		return AuthVector{}, err
	}
	var (
		rec impiRecord
		r   resolved
	)
	err := parallel(ctx, 2, 2, func(ctx context.Context, i int) error {
		var err error
		if i == 0 {
			rec, err = get(ctx, s.impis, req.IMPI, "private identity", kv.Cached())
		} else if req.IMPU != "" {
			r, err = s.resolve(ctx, req.IMPU)
		}
		return err
	})
	if err != nil {
		return AuthVector{}, err
	}
	if req.IMPU != "" && !contains(r.irs.Privates, req.IMPI) {
		return AuthVector{}, notFound("private identity %q may not authenticate %q", req.IMPI, req.IMPU)
	}
	scheme := req.Scheme
	if scheme == SchemeAny {
		scheme = SchemeDigest
		if rec.AKA != nil {
			scheme = SchemeAKA
		}
	}
	switch scheme {
	case SchemeDigest:
		if rec.HA1 == "" {
			return AuthVector{}, notFound("private identity %q has no digest credentials", req.IMPI)
		}
		return AuthVector{Digest: &DigestAV{HA1: rec.HA1, Realm: rec.Realm, QoP: "auth"}}, nil
	case SchemeAKA:
		if rec.AKA == nil {
			return AuthVector{}, notFound("private identity %q has no AKA credentials", req.IMPI)
		}
		av, err := s.akaVector(ctx, req.IMPI, req.Resync)
		if err != nil {
			return AuthVector{}, err
		}
		return AuthVector{AKA: av}, nil
	}
	return AuthVector{}, invalid("unknown authentication scheme %d", scheme)
}

// akaVector issues the next AKA vector of impi, after resynchronising its
// sequence number if resync is given.
func (s *Store) akaVector(ctx context.Context, impi string, resync []byte) (*AKAAV, error) {
	if resync != nil && len(resync) != 30 {
		return nil, invalid("resync-auth must be RAND and AUTS, 30 bytes, not %d", len(resync))
	}
	rand := make([]byte, 16)
	if _, err := io.ReadFull(s.opts.Rand, rand); err != nil {
		return nil, fmt.Errorf("hss: AKA challenge: %w", err)
	}
	var av *AKAAV
	_, err := update(ctx, s.impis, impi, func(v *impiRecord, exists bool) error {
		if !exists || v.AKA == nil {
			return notFound("private identity %q has no AKA credentials", impi)
		}
		sqn := v.AKA.SQN
		if resync != nil {
			ms, err := verifyAUTS(v.AKA, resync[:16], resync[16:])
			if err != nil {
				return fmt.Errorf("private identity %q: %w", impi, err)
			}
			sqn = ms
		}
		sqn = nextSQN(sqn)
		var err error
		if av, err = milenageVector(v.AKA, rand, sqn); err != nil {
			return err
		}
		v.AKA.SQN = sqn
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("hss: AKA vector: %w", err)
	}
	return av, nil
}

// nextSQN follows TS 33.102 annex C.3.2: SEQ goes up by one for each
// vector and IND cycles through its 32 values, so that vectors used out of
// order (by different S-CSCFs, say) are still accepted by the USIM.
func nextSQN(sqn uint64) uint64 {
	seq := (sqn >> 5) + 1
	ind := (sqn + 1) & 31
	return (seq<<5 | ind) & (1<<48 - 1)
}

// milenageVector computes an AKA vector for rand and sqn.
func milenageVector(a *akaRecord, rand []byte, sqn uint64) (*AKAAV, error) {
	m := milenage.NewWithOPc(a.K, a.OPc, rand, sqn, a.AMF)
	macA, err := m.F1()
	if err != nil {
		return nil, fmt.Errorf("milenage f1: %w", err)
	}
	res, ck, ik, ak, err := m.F2345()
	if err != nil {
		return nil, fmt.Errorf("milenage f2-f5: %w", err)
	}
	autn := make([]byte, 16)
	for i := range 6 {
		autn[i] = m.SQN[i] ^ ak[i]
	}
	binary.BigEndian.PutUint16(autn[6:8], a.AMF)
	copy(autn[8:], macA)
	return &AKAAV{RAND: rand, AUTN: autn, XRES: res, CK: ck, IK: ik}, nil
}

// verifyAUTS checks a resynchronisation token (TS 33.102 6.3.5) and returns
// the USIM's sequence number SQN_MS.
func verifyAUTS(a *akaRecord, rand, auts []byte) (uint64, error) {
	m := milenage.NewWithOPc(a.K, a.OPc, rand, 0, 0)
	aks, err := m.F5Star()
	if err != nil {
		return 0, fmt.Errorf("milenage f5*: %w", err)
	}
	sqnMS := make([]byte, 6)
	for i := range 6 {
		sqnMS[i] = auts[i] ^ aks[i]
	}
	// MAC-S uses a dummy AMF of zero (TS 33.102 6.3.3).
	macS, err := m.F1Star(sqnMS, []byte{0, 0})
	if err != nil {
		return 0, fmt.Errorf("milenage f1*: %w", err)
	}
	if subtle.ConstantTimeCompare(macS, auts[6:14]) != 1 {
		return 0, fmt.Errorf("%w: AUTS does not verify (MAC-S mismatch)", ErrAuthFailed)
	}
	var b [8]byte
	copy(b[2:], sqnMS)
	return binary.BigEndian.Uint64(b[:]), nil
}
