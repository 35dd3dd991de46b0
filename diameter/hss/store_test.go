package hss_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/wmnsk/milenage"

	"stillwater/diameter/hss"
	"stillwater/kv/kvtest"
)

// lockedRand makes a deterministic source safe for concurrent use.
type lockedRand struct {
	mu sync.Mutex
	r  *rand.ChaCha8
}

func (l *lockedRand) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(p)
}

func newRand() io.Reader { return &lockedRand{r: rand.NewChaCha8([32]byte{1})} }

type fixture struct {
	t     *testing.T
	site  *kvtest.Site
	store *hss.Store
	ctx   context.Context
}

func newFixture(t *testing.T, opts hss.Options) *fixture {
	t.Helper()
	site := kvtest.New(t, 4)
	if opts.HomeDomain == "" {
		opts.HomeDomain = "example.com"
	}
	if opts.SCSCF == "" {
		opts.SCSCF = "sip:scscf.example.com:5054;transport=tcp"
	}
	if opts.Rand == nil {
		opts.Rand = newRand()
	}
	opts.ShardOf = func(k string) int { return site.Node.ShardOf([]byte(k)) }
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	return &fixture{t: t, site: site, store: hss.New(site.KV, opts), ctx: context.Background()}
}

const mmtelIFC = `<?xml version="1.0" encoding="UTF-8"?>
<ServiceProfile>
  <InitialFilterCriteria>
    <Priority>1</Priority>
    <TriggerPoint>
      <ConditionTypeCNF>0</ConditionTypeCNF>
      <SPT><ConditionNegated>0</ConditionNegated><Group>0</Group><Method>INVITE</Method><Extension></Extension></SPT>
    </TriggerPoint>
    <ApplicationServer><ServerName>sip:mmtel.example.com</ServerName><DefaultHandling>0</DefaultHandling></ApplicationServer>
  </InitialFilterCriteria>
</ServiceProfile>`

func publicXML(impu string) []byte {
	return []byte("<PublicIdentity><Identity>" + impu + "</Identity></PublicIdentity>")
}

// subscriber provisions impi + impu the way the provisioning tools do,
// through the same calls as the Homestead-prov API, and returns the IRS and
// service profile ids.
func (f *fixture) subscriber(impi, impu, password string) (irs, sp string) {
	f.t.Helper()
	ctx := f.ctx
	must(f.t, f.store.PutPrivate(ctx, impi, hss.Credentials{PlaintextPassword: password}))
	irs, err := f.store.CreateIRS(ctx)
	must(f.t, err)
	must(f.t, f.store.AssociateIRS(ctx, impi, irs))
	sp, err = f.store.CreateServiceProfile(ctx, irs)
	must(f.t, err)
	must(f.t, f.store.PutFilterCriteria(ctx, irs, sp, []byte(mmtelIFC)))
	must(f.t, f.store.PutPublicID(ctx, irs, sp, impu, publicXML(impu)))
	return irs, sp
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if want == nil && err != nil || want != nil && !errors.Is(err, want) {
		t.Fatalf("%s: err = %v, want %v", what, err, want)
	}
}

func TestPutPrivate(t *testing.T) {
	f := newFixture(t, hss.Options{})
	k := "465b5ce8b199b49faa5f0a2ee238a6bc"
	for _, tc := range []struct {
		name    string
		impi    string
		cred    hss.Credentials
		wantErr error
		check   func(p hss.PrivateID) error
	}{
		{name: "plaintext keeps the password and computes HA1", impi: "alice@example.com",
			cred: hss.Credentials{PlaintextPassword: "secret", Realm: "example.com"},
			check: func(p hss.PrivateID) error {
				if p.PlaintextPassword != "secret" || p.DigestHA1 != hss.DigestHA1("alice@example.com", "example.com", "secret") {
					return fmt.Errorf("got %+v", p)
				}
				return nil
			}},
		{name: "digest replaces the plaintext password", impi: "alice@example.com",
			cred: hss.Credentials{DigestHA1: "0123456789ABCDEF0123456789abcdef"},
			check: func(p hss.PrivateID) error {
				if p.PlaintextPassword != "" || p.DigestHA1 != "0123456789abcdef0123456789abcdef" || p.Realm != "example.com" {
					return fmt.Errorf("got %+v (want lower-cased HA1, no password, home realm)", p)
				}
				return nil
			}},
		{name: "AKA only", impi: "aka@example.com",
			cred: hss.Credentials{AKA: &hss.AKACredentials{K: mustHex(k), OPc: mustHex(k), AMF: 0x8000, SQN: 64}},
			check: func(p hss.PrivateID) error {
				if p.AKA == nil || p.AKA.SQN != 64 || p.AKA.K != nil || p.DigestHA1 != "" {
					return fmt.Errorf("got %+v (want SQN 64, K hidden, no digest)", p)
				}
				return nil
			}},
		{name: "both digest and password", impi: "bob", cred: hss.Credentials{DigestHA1: "0123456789abcdef0123456789abcdef", PlaintextPassword: "x"}, wantErr: hss.ErrInvalid},
		{name: "no credentials", impi: "bob", cred: hss.Credentials{Realm: "example.com"}, wantErr: hss.ErrInvalid},
		{name: "short HA1", impi: "bob", cred: hss.Credentials{DigestHA1: "abc"}, wantErr: hss.ErrInvalid},
		{name: "short K", impi: "bob", cred: hss.Credentials{AKA: &hss.AKACredentials{K: []byte{1}, OPc: mustHex(k)}}, wantErr: hss.ErrInvalid},
		{name: "empty identity", impi: "", cred: hss.Credentials{PlaintextPassword: "x"}, wantErr: hss.ErrInvalid},
		{name: "identity with a space", impi: "a b", cred: hss.Credentials{PlaintextPassword: "x"}, wantErr: hss.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := f.store.PutPrivate(f.ctx, tc.impi, tc.cred)
			wantErr(t, "PutPrivate", err, tc.wantErr)
			if tc.check != nil {
				p, err := f.store.GetPrivate(f.ctx, tc.impi)
				must(t, err)
				if err := tc.check(p); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	// Re-provisioning the same AKA keys never moves SQN backwards.
	must(t, f.store.PutPrivate(f.ctx, "aka@example.com", hss.Credentials{AKA: &hss.AKACredentials{K: mustHex(k), OPc: mustHex(k), SQN: 3}}))
	if p, _ := f.store.GetPrivate(f.ctx, "aka@example.com"); p.AKA.SQN != 64 {
		t.Fatalf("SQN after re-provisioning = %d, want 64", p.AKA.SQN)
	}
	existed, err := f.store.DeletePrivate(f.ctx, "alice@example.com")
	if !existed || err != nil {
		t.Fatalf("DeletePrivate = %v, %v", existed, err)
	}
	existed, err = f.store.DeletePrivate(f.ctx, "alice@example.com")
	if existed || err != nil {
		t.Fatalf("DeletePrivate again = %v, %v; want false, nil", existed, err)
	}
	_, err = f.store.GetPrivate(f.ctx, "alice@example.com")
	wantErr(t, "GetPrivate after delete", err, hss.ErrNotFound)
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestIRSLifecycle(t *testing.T) {
	f := newFixture(t, hss.Options{})
	ctx := f.ctx
	irs, sp := f.subscriber("6505550001@example.com", "sip:6505550001@example.com", "pw")

	// A second identity (a tel URI) in the same profile, and one in a
	// second profile of the set.
	must(t, f.store.PutPublicID(ctx, irs, sp, "tel:+16505550001", publicXML("tel:+16505550001")))
	sp2, err := f.store.CreateServiceProfile(ctx, irs)
	must(t, err)
	must(t, f.store.PutPublicID(ctx, irs, sp2, "sip:alias@example.com", publicXML("sip:alias@example.com")))

	got, err := f.store.GetIRS(ctx, irs)
	must(t, err)
	if ids := got.PublicIDs(); !slices.Equal(ids, []string{"sip:6505550001@example.com", "tel:+16505550001", "sip:alias@example.com"}) {
		t.Fatalf("public ids = %q", ids)
	}
	if !slices.Equal(got.PrivateIDs, []string{"6505550001@example.com"}) {
		t.Fatalf("private ids = %q", got.PrivateIDs)
	}
	ids, err := f.store.ServiceProfilePublicIDs(ctx, irs, sp)
	must(t, err)
	if !slices.Equal(ids, []string{"sip:6505550001@example.com", "tel:+16505550001"}) {
		t.Fatalf("profile public ids = %q", ids)
	}

	// Errors a provisioning client can cause.
	other, err := f.store.CreateIRS(ctx)
	must(t, err)
	otherSP, err := f.store.CreateServiceProfile(ctx, other)
	must(t, err)
	for _, tc := range []struct {
		name        string
		irs, sp, id string
		doc         []byte
		want        error
	}{
		{"identity in another IRS", other, otherSP, "sip:6505550001@example.com", publicXML("sip:6505550001@example.com"), hss.ErrConflict},
		{"XML names another identity", irs, sp, "sip:x@example.com", publicXML("sip:y@example.com"), hss.ErrMismatch},
		{"malformed XML", irs, sp, "sip:x@example.com", []byte("<PublicIdentity><Identity>sip:x@example.com</Identity>"), hss.ErrInvalid},
		{"wrong root element", irs, sp, "sip:x@example.com", []byte("<Identity>sip:x@example.com</Identity>"), hss.ErrInvalid},
		{"not a SIP or tel URI", irs, sp, "mailto:x@example.com", publicXML("mailto:x@example.com"), hss.ErrInvalid},
		{"unknown service profile", irs, "nope", "sip:x@example.com", publicXML("sip:x@example.com"), hss.ErrNotFound},
		{"unknown IRS", "nope", sp, "sip:x@example.com", publicXML("sip:x@example.com"), hss.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, "PutPublicID", f.store.PutPublicID(ctx, tc.irs, tc.sp, tc.id, tc.doc), tc.want)
		})
	}

	// Moving an identity between profiles of its IRS is an update.
	must(t, f.store.PutPublicID(ctx, irs, sp2, "tel:+16505550001", publicXML("tel:+16505550001")))
	pub, err := f.store.LookupPublicID(ctx, "tel:+16505550001")
	must(t, err)
	if pub.ServiceProfile != sp2 {
		t.Fatalf("profile after move = %s, want %s", pub.ServiceProfile, sp2)
	}
	wantErr(t, "delete from the wrong profile", f.store.DeletePublicID(ctx, irs, sp, "tel:+16505550001"), hss.ErrMismatch)
	wantErr(t, "delete from the wrong IRS", f.store.DeletePublicID(ctx, other, otherSP, "tel:+16505550001"), hss.ErrNotFound)

	// Deleting a profile deletes its identities.
	existed, err := f.store.DeleteServiceProfile(ctx, irs, sp2)
	if !existed || err != nil {
		t.Fatalf("DeleteServiceProfile = %v, %v", existed, err)
	}
	_, err = f.store.LookupPublicID(ctx, "sip:alias@example.com")
	wantErr(t, "lookup after profile delete", err, hss.ErrNotFound)
	existed, err = f.store.DeleteServiceProfile(ctx, irs, sp2)
	if existed || err != nil {
		t.Fatalf("DeleteServiceProfile again = %v, %v; want false, nil", existed, err)
	}

	// Deleting the IRS frees its identities and dissociates its IMPIs.
	existed, err = f.store.DeleteIRS(ctx, irs)
	if !existed || err != nil {
		t.Fatalf("DeleteIRS = %v, %v", existed, err)
	}
	_, err = f.store.LookupPublicID(ctx, "sip:6505550001@example.com")
	wantErr(t, "lookup after IRS delete", err, hss.ErrNotFound)
	irss, err := f.store.PrivateIRSs(ctx, "6505550001@example.com")
	must(t, err)
	if len(irss) != 0 {
		t.Fatalf("IRSs of the IMPI after delete = %q", irss)
	}
	// The identity is free again.
	must(t, f.store.PutPublicID(ctx, other, otherSP, "sip:6505550001@example.com", publicXML("sip:6505550001@example.com")))
	existed, err = f.store.DeleteIRS(ctx, irs)
	if existed || err != nil {
		t.Fatalf("DeleteIRS again = %v, %v; want false, nil", existed, err)
	}
}

// TestManyToMany covers one IRS authenticated by two IMPIs (the Android
// client case in the docs) and one IMPI authenticating two IRSs.
func TestManyToMany(t *testing.T) {
	f := newFixture(t, hss.Options{})
	ctx := f.ctx
	irs, _ := f.subscriber("1234@example.com", "sip:1234@example.com", "pw")
	must(t, f.store.PutPrivate(ctx, "1234", hss.Credentials{PlaintextPassword: "pw"}))
	must(t, f.store.AssociateIRS(ctx, "1234", irs))
	irs2, _ := f.subscriber("1234@example.com", "sip:1234-work@example.com", "pw")

	for _, impi := range []string{"1234", "1234@example.com"} {
		av, err := f.store.AuthVector(ctx, hss.AVRequest{IMPI: impi, IMPU: "sip:1234@example.com"})
		if err != nil || av.Digest == nil || av.Digest.HA1 != hss.DigestHA1(impi, "example.com", "pw") {
			t.Fatalf("AuthVector(%s) = %+v, %v", impi, av, err)
		}
	}
	ids, err := f.store.PublicPrivateIDs(ctx, "sip:1234@example.com")
	must(t, err)
	if !slices.Equal(ids, []string{"1234@example.com", "1234"}) {
		t.Fatalf("private ids = %q", ids)
	}
	irss, err := f.store.PrivateIRSs(ctx, "1234@example.com")
	must(t, err)
	if !slices.Equal(irss, []string{irs, irs2}) {
		t.Fatalf("IRSs = %q, want %q", irss, []string{irs, irs2})
	}
	pubs, err := f.store.PrivatePublicIDs(ctx, "1234@example.com")
	must(t, err)
	if !slices.Equal(pubs, []string{"sip:1234@example.com", "sip:1234-work@example.com"}) {
		t.Fatalf("public ids = %q", pubs)
	}
	// "1234" may not authenticate the second set.
	_, err = f.store.AuthVector(ctx, hss.AVRequest{IMPI: "1234", IMPU: "sip:1234-work@example.com"})
	wantErr(t, "AuthVector for an unassociated IMPU", err, hss.ErrNotFound)

	existed, err := f.store.DissociateIRS(ctx, "1234", irs)
	if !existed || err != nil {
		t.Fatalf("DissociateIRS = %v, %v", existed, err)
	}
	_, err = f.store.AuthVector(ctx, hss.AVRequest{IMPI: "1234", IMPU: "sip:1234@example.com"})
	wantErr(t, "AuthVector after dissociation", err, hss.ErrNotFound)
	existed, err = f.store.DissociateIRS(ctx, "nobody", irs)
	if existed || err != nil {
		t.Fatalf("DissociateIRS of an unknown IMPI = %v, %v; want false, nil", existed, err)
	}
	wantErr(t, "associate an unknown IMPI", f.store.AssociateIRS(ctx, "nobody", irs), hss.ErrNotFound)
	wantErr(t, "associate an unknown IRS", f.store.AssociateIRS(ctx, "1234", "nope"), hss.ErrNotFound)

	// Deleting the IMPI unlists it from every set.
	existed, err = f.store.DeletePrivate(ctx, "1234@example.com")
	if !existed || err != nil {
		t.Fatalf("DeletePrivate = %v, %v", existed, err)
	}
	ids, err = f.store.PublicPrivateIDs(ctx, "sip:1234-work@example.com")
	must(t, err)
	if len(ids) != 0 {
		t.Fatalf("private ids after IMPI delete = %q", ids)
	}
}

func TestAuthVectors(t *testing.T) {
	f := newFixture(t, hss.Options{})
	ctx := f.ctx
	f.subscriber("alice@example.com", "sip:alice@example.com", "pw")
	k, opc := mustHex("465b5ce8b199b49faa5f0a2ee238a6bc"), mustHex("cd63cb71954a9f4e48a5994e37a02baf")
	irs, sp := f.subscriber("ue@ims.example.com", "sip:ue@ims.example.com", "pw")
	_ = irs
	_ = sp
	must(t, f.store.PutPrivate(ctx, "ue@ims.example.com", hss.Credentials{
		PlaintextPassword: "pw", AKA: &hss.AKACredentials{K: k, OPc: opc, AMF: 0x8000, SQN: 0},
	}))
	for _, tc := range []struct {
		name    string
		req     hss.AVRequest
		want    string // "digest" or "aka"
		wantErr error
	}{
		{"digest without IMPU", hss.AVRequest{IMPI: "alice@example.com"}, "digest", nil},
		{"digest with IMPU", hss.AVRequest{IMPI: "alice@example.com", IMPU: "sip:alice@example.com", Scheme: hss.SchemeDigest}, "digest", nil},
		{"any picks AKA when provisioned", hss.AVRequest{IMPI: "ue@ims.example.com", IMPU: "sip:ue@ims.example.com"}, "aka", nil},
		{"digest of an AKA subscriber", hss.AVRequest{IMPI: "ue@ims.example.com", Scheme: hss.SchemeDigest}, "digest", nil},
		{"AKA of a digest-only subscriber", hss.AVRequest{IMPI: "alice@example.com", Scheme: hss.SchemeAKA}, "", hss.ErrNotFound},
		{"unknown IMPI", hss.AVRequest{IMPI: "bob@example.com"}, "", hss.ErrNotFound},
		{"unknown IMPU", hss.AVRequest{IMPI: "alice@example.com", IMPU: "sip:bob@example.com"}, "", hss.ErrNotFound},
		{"IMPU of another subscriber", hss.AVRequest{IMPI: "alice@example.com", IMPU: "sip:ue@ims.example.com"}, "", hss.ErrNotFound},
		{"short resync token", hss.AVRequest{IMPI: "ue@ims.example.com", Scheme: hss.SchemeAKA, Resync: []byte{1, 2}}, "", hss.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			av, err := f.store.AuthVector(ctx, tc.req)
			wantErr(t, "AuthVector", err, tc.wantErr)
			if tc.want == "digest" && (av.Digest == nil || av.Digest.QoP != "auth" || av.Digest.Realm == "") {
				t.Fatalf("got %+v, want a digest vector", av)
			}
			if tc.want == "aka" && av.AKA == nil {
				t.Fatalf("got %+v, want an AKA vector", av)
			}
		})
	}

	// Each AKA vector carries the next SQN, and checks out as a USIM
	// computes it.
	sqnOf := func(av *hss.AKAAV) uint64 {
		m := milenage.NewWithOPc(k, opc, av.RAND, 0, 0x8000)
		_, _, _, ak, err := m.F2345()
		must(t, err)
		var sqn uint64
		for i := range 6 {
			sqn = sqn<<8 | uint64(av.AUTN[i]^ak[i])
		}
		m = milenage.NewWithOPc(k, opc, av.RAND, sqn, 0x8000)
		must(t, m.ComputeAll())
		if !bytes.Equal(m.MACA, av.AUTN[8:]) || !bytes.Equal(m.RES, av.XRES) || !bytes.Equal(m.CK, av.CK) || !bytes.Equal(m.IK, av.IK) {
			t.Fatalf("vector does not verify: %+v", av)
		}
		return sqn
	}
	var last uint64 = 1<<5 | 1 // the "any" case above issued the first
	for range 3 {
		av, err := f.store.AuthVector(ctx, hss.AVRequest{IMPI: "ue@ims.example.com", Scheme: hss.SchemeAKA})
		must(t, err)
		sqn := sqnOf(av.AKA)
		if sqn>>5 != last>>5+1 {
			t.Fatalf("SQN %#x after %#x: SEQ must go up by one", sqn, last)
		}
		last = sqn
	}

	// Resynchronisation: the USIM is at SEQ 1000.
	sqnMS := uint64(1000<<5 | 7)
	rnd := bytes.Repeat([]byte{0x42}, 16)
	auts, err := milenage.NewWithOPc(k, opc, rnd, sqnMS, 0).GenerateAUTS()
	must(t, err)
	av, err := f.store.AuthVector(ctx, hss.AVRequest{IMPI: "ue@ims.example.com", Scheme: hss.SchemeAKA, Resync: append(rnd, auts...)})
	must(t, err)
	if got := sqnOf(av.AKA); got>>5 != 1001 {
		t.Fatalf("SQN after resync = %#x, want SEQ 1001", got)
	}
	auts[13] ^= 0xff
	_, err = f.store.AuthVector(ctx, hss.AVRequest{IMPI: "ue@ims.example.com", Scheme: hss.SchemeAKA, Resync: append(rnd, auts...)})
	wantErr(t, "resync with a bad MAC-S", err, hss.ErrAuthFailed)

	// Concurrent vectors never share a sequence number.
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			av, err := f.store.AuthVector(ctx, hss.AVRequest{IMPI: "ue@ims.example.com", Scheme: hss.SchemeAKA})
			if err != nil {
				t.Error(err)
				return
			}
			sqn := sqnOf(av.AKA)
			mu.Lock()
			defer mu.Unlock()
			if seen[sqn] {
				t.Errorf("SQN %#x issued twice", sqn)
			}
			seen[sqn] = true
		}()
	}
	wg.Wait()
}

func TestRegDataTransitions(t *testing.T) {
	f := newFixture(t, hss.Options{})
	ctx := f.ctx
	f.subscriber("alice@example.com", "sip:alice@example.com", "pw")
	const me, other = "sip:scscf.example.com:5054;transport=tcp", "sip:scscf2.example.com"
	steps := []struct {
		req       hss.RegRequest
		wantErr   error
		wantState hss.RegState
		wantSCSCF string
	}{
		{hss.RegRequest{Type: hss.ReqDeregUser}, hss.ErrNotRegistered, 0, ""},
		{hss.RegRequest{Type: hss.ReqDeregAuthFailed}, nil, hss.NotRegistered, ""},
		{hss.RegRequest{Type: hss.ReqCall}, nil, hss.Unregistered, me},
		{hss.RegRequest{Type: hss.ReqCall, ServerName: other}, nil, hss.Unregistered, me},
		{hss.RegRequest{Type: hss.ReqReg, PrivateID: "alice@example.com"}, nil, hss.Registered, me},
		{hss.RegRequest{Type: hss.ReqReg}, nil, hss.Registered, me},
		{hss.RegRequest{Type: hss.ReqDeregAuthTimeout}, nil, hss.Registered, me},
		{hss.RegRequest{Type: hss.ReqReg, ServerName: other}, nil, hss.Registered, other},
		{hss.RegRequest{Type: hss.ReqDeregTimeout}, nil, hss.NotRegistered, ""},
		{hss.RegRequest{Type: hss.ReqDeregAdmin}, hss.ErrNotRegistered, 0, ""},
		{hss.RegRequest{Type: hss.ReqReg, PrivateID: "mallory@example.com"}, hss.ErrMismatch, 0, ""},
		{hss.RegRequest{Type: "bogus"}, hss.ErrInvalid, 0, ""},
		{hss.RegRequest{Type: hss.ReqCall}, nil, hss.Unregistered, me},
		{hss.RegRequest{Type: hss.ReqDeregAdmin}, nil, hss.NotRegistered, ""},
	}
	for i, st := range steps {
		rd, err := f.store.UpdateRegData(ctx, "sip:alice@example.com", st.req)
		wantErr(t, fmt.Sprintf("step %d (%s)", i, st.req.Type), err, st.wantErr)
		if err != nil {
			continue
		}
		if rd.State != st.wantState || rd.SCSCF != st.wantSCSCF {
			t.Fatalf("step %d (%s): state %s at %q, want %s at %q", i, st.req.Type, rd.State, rd.SCSCF, st.wantState, st.wantSCSCF)
		}
		got, err := f.store.RegData(ctx, "sip:alice@example.com")
		must(t, err)
		if got.State != rd.State || got.SCSCF != rd.SCSCF {
			t.Fatalf("step %d: GET sees %s at %q, PUT returned %s at %q", i, got.State, got.SCSCF, rd.State, rd.SCSCF)
		}
	}
	_, err := f.store.UpdateRegData(ctx, "sip:nobody@example.com", hss.RegRequest{Type: hss.ReqReg})
	wantErr(t, "reg of an unknown IMPU", err, hss.ErrNotFound)
}

// TestRegDataXML pins the ClearwaterRegData document of a set with two
// profiles, a barred identity and two private identities.
func TestRegDataXML(t *testing.T) {
	f := newFixture(t, hss.Options{})
	ctx := f.ctx
	irs, sp := f.subscriber("6505550001@example.com", "sip:6505550001@example.com", "pw")
	must(t, f.store.PutPublicID(ctx, irs, sp, "tel:+16505550001",
		[]byte(`<?xml version="1.0"?><PublicIdentity><BarringIndication>1</BarringIndication><Identity>tel:+16505550001</Identity></PublicIdentity>`)))
	sp2, err := f.store.CreateServiceProfile(ctx, irs)
	must(t, err)
	must(t, f.store.PutPublicID(ctx, irs, sp2, "sip:6505550001-video@example.com", publicXML("sip:6505550001-video@example.com")))
	must(t, f.store.PutPrivate(ctx, "6505550001", hss.Credentials{PlaintextPassword: "pw"}))
	must(t, f.store.AssociateIRS(ctx, "6505550001", irs))

	rd, err := f.store.RegData(ctx, "tel:+16505550001")
	must(t, err)
	if ids := rd.PublicIDs(); len(ids) != 3 || !ids[1].Barred {
		t.Fatalf("public ids = %+v", ids)
	}
	golden(t, "regdata_not_registered.xml", rd.XML())
	rd, err = f.store.UpdateRegData(ctx, "sip:6505550001@example.com", hss.RegRequest{Type: hss.ReqReg, PrivateID: "6505550001"})
	must(t, err)
	golden(t, "regdata_registered.xml", rd.XML())

	// The document is well-formed and says what the S-CSCF needs.
	var doc struct {
		State string `xml:"RegistrationState"`
		Sub   struct {
			PrivateID string `xml:"PrivateID"`
			Profiles  []struct {
				Identities []string `xml:"PublicIdentity>Identity"`
				IFCs       []string `xml:"InitialFilterCriteria>ApplicationServer>ServerName"`
			} `xml:"ServiceProfile"`
		} `xml:"IMSSubscription"`
	}
	must(t, xml.Unmarshal([]byte(rd.XML()), &doc))
	if doc.State != "REGISTERED" || doc.Sub.PrivateID != "6505550001" || len(doc.Sub.Profiles) != 2 ||
		len(doc.Sub.Profiles[0].Identities) != 2 || len(doc.Sub.Profiles[0].IFCs) != 1 {
		t.Fatalf("parsed document: %+v", doc)
	}
}

// golden compares got with testdata/name; UPDATE_GOLDEN=1 rewrites it.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if os.Getenv("UPDATE_GOLDEN") != "" {
		must(t, os.MkdirAll("testdata", 0o755))
		must(t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	must(t, err)
	if got != string(want) {
		t.Fatalf("%s differs:\n--- got ---\n%s\n--- want ---\n%s", name, got, want)
	}
}

func TestWildcardIdentity(t *testing.T) {
	f := newFixture(t, hss.Options{})
	ctx := f.ctx
	irs, sp := f.subscriber("pbx@example.com", "sip:pbx@example.com", "pw")
	wild := "sip:650555!.*!@example.com"
	must(t, f.store.PutPublicID(ctx, irs, sp, wild, publicXML(wild)))
	// A distinct identity matching the pattern wins over the wildcard.
	f.subscriber("6505550999@example.com", "sip:6505550999@example.com", "pw")

	for _, tc := range []struct {
		impu, wantIdentity, wantWildcard string
		wantErr                          error
	}{
		{"sip:6505551234@example.com", wild, wild, nil},
		{"sip:6505550999@example.com", "sip:6505550999@example.com", "", nil},
		{"sip:6505551234@example.org", "", "", hss.ErrNotFound},
		{"sip:7505551234@example.com", "", "", hss.ErrNotFound},
	} {
		rd, err := f.store.RegData(ctx, tc.impu)
		wantErr(t, tc.impu, err, tc.wantErr)
		if err != nil {
			continue
		}
		if rd.Wildcard != tc.wantWildcard {
			t.Fatalf("%s: wildcard %q, want %q", tc.impu, rd.Wildcard, tc.wantWildcard)
		}
		if p, _ := f.store.LookupPublicID(ctx, tc.impu); p.Identity != tc.wantIdentity {
			t.Fatalf("%s: identity %q, want %q", tc.impu, p.Identity, tc.wantIdentity)
		}
	}
	info, err := f.store.Location(ctx, "sip:6505551234@example.com", false, "")
	must(t, err)
	if info.Wildcard != wild || info.ResultCode != hss.DiameterUnregisteredService {
		t.Fatalf("location = %+v", info)
	}
	wantErr(t, "wildcard in the domain", f.store.PutPublicID(ctx, irs, sp, "sip:a@!.*!.com", publicXML("sip:a@!.*!.com")), hss.ErrInvalid)
	must(t, f.store.DeletePublicID(ctx, irs, sp, wild))
	_, err = f.store.RegData(ctx, "sip:6505551234@example.com")
	wantErr(t, "after deleting the wildcard", err, hss.ErrNotFound)
}

func TestRegistrationStatusAndLocation(t *testing.T) {
	f := newFixture(t, hss.Options{})
	ctx := f.ctx
	irs, sp := f.subscriber("alice@example.com", "sip:alice@example.com", "pw")
	barredXML := func(id string) []byte {
		return []byte("<PublicIdentity><BarringIndication>1</BarringIndication><Identity>" + id + "</Identity></PublicIdentity>")
	}
	must(t, f.store.PutPublicID(ctx, irs, sp, "sip:alice-barred@example.com", barredXML("sip:alice-barred@example.com")))
	irs2, sp2 := f.subscriber("bob@example.com", "sip:bob@example.com", "pw")
	must(t, f.store.PutPublicID(ctx, irs2, sp2, "sip:bob@example.com", barredXML("sip:bob@example.com")))
	const me = "sip:scscf.example.com:5054;transport=tcp"

	for _, tc := range []struct {
		name       string
		impi, impu string
		authType   hss.AuthType
		want       hss.ServerInfo
		wantErr    error
	}{
		{"first registration", "alice@example.com", "sip:alice@example.com", "", hss.ServerInfo{ResultCode: 2001, SCSCF: me}, nil},
		{"barred with an unbarred partner", "alice@example.com", "sip:alice-barred@example.com", hss.AuthReg, hss.ServerInfo{ResultCode: 2001, SCSCF: me}, nil},
		{"barred alone", "bob@example.com", "sip:bob@example.com", hss.AuthReg, hss.ServerInfo{}, hss.ErrMismatch},
		{"identities do not match", "bob@example.com", "sip:alice@example.com", "", hss.ServerInfo{}, hss.ErrNotFound},
		{"unknown IMPU", "alice@example.com", "sip:carol@example.com", "", hss.ServerInfo{}, hss.ErrNotFound},
		{"bad auth-type", "alice@example.com", "sip:alice@example.com", "NONSENSE", hss.ServerInfo{}, hss.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := f.store.RegistrationStatus(ctx, tc.impi, tc.impu, tc.authType)
			wantErr(t, "RegistrationStatus", err, tc.wantErr)
			if err == nil && (got.ResultCode != tc.want.ResultCode || got.SCSCF != tc.want.SCSCF) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	_, err := f.store.UpdateRegData(ctx, "sip:alice@example.com", hss.RegRequest{Type: hss.ReqReg, ServerName: "sip:other.example.com"})
	must(t, err)
	got, err := f.store.RegistrationStatus(ctx, "alice@example.com", "sip:alice@example.com", hss.AuthReg)
	must(t, err)
	if got.ResultCode != hss.DiameterSubsequentRegistration || got.SCSCF != "sip:other.example.com" {
		t.Fatalf("re-registration: %+v", got)
	}
	loc, err := f.store.Location(ctx, "sip:alice-barred@example.com", true, "")
	must(t, err)
	if loc.ResultCode != 2001 || loc.SCSCF != "sip:other.example.com" {
		t.Fatalf("location of a registered set: %+v", loc)
	}
	loc, err = f.store.Location(ctx, "sip:alice@example.com", false, hss.AuthCapab)
	must(t, err)
	if loc.Capabilities == nil || loc.SCSCF != "" {
		t.Fatalf("location with CAPAB: %+v", loc)
	}
}

// TestConcurrentClaims races creates of one IMPU into different IRSs:
// exactly one wins, the others get ErrConflict, and the identity ends up
// where the winner put it.
func TestConcurrentClaims(t *testing.T) {
	f := newFixture(t, hss.Options{})
	ctx := f.ctx
	const n = 6
	irss := make([]string, n)
	sps := make([]string, n)
	for i := range n {
		var err error
		irss[i], err = f.store.CreateIRS(ctx)
		must(t, err)
		sps[i], err = f.store.CreateServiceProfile(ctx, irss[i])
		must(t, err)
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f.store.PutPublicID(ctx, irss[i], sps[i], "sip:contested@example.com", publicXML("sip:contested@example.com"))
		}()
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner < 0:
			winner = i
		case err == nil:
			t.Fatalf("both %d and %d won", winner, i)
		case !errors.Is(err, hss.ErrConflict):
			t.Fatalf("loser %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("nobody won")
	}
	p, err := f.store.LookupPublicID(ctx, "sip:contested@example.com")
	must(t, err)
	if p.IRS != irss[winner] {
		t.Fatalf("identity in %s, winner was %s", p.IRS, irss[winner])
	}
	for i := range n {
		irs, err := f.store.GetIRS(ctx, irss[i])
		must(t, err)
		if got := len(irs.PublicIDs()); got != map[bool]int{true: 1, false: 0}[i == winner] {
			t.Fatalf("IRS %d lists %d identities", i, got)
		}
	}
}

// fakeSimservs records the documents written, and fails while failing is
// set.
type fakeSimservs struct {
	mu      sync.Mutex
	impus   map[string]int
	failing bool
}

func (s *fakeSimservs) PutDefault(_ context.Context, impus []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failing {
		return errors.New("homer unavailable")
	}
	for _, i := range impus {
		s.impus[i]++
	}
	return nil
}

func TestProvisionBulk(t *testing.T) {
	simservs := &fakeSimservs{impus: map[string]int{}}
	f := newFixture(t, hss.Options{Simservs: simservs})
	ctx := f.ctx
	var subs []hss.Subscriber
	for i := range 500 {
		subs = append(subs, hss.Subscriber{PublicID: fmt.Sprintf("sip:2010%06d@example.com", i), Password: "7kkzTyGW"})
	}
	bad := []hss.Subscriber{
		{PublicID: "2010000999@example.com", Password: "x"},                       // no scheme
		{PublicID: "sip:2010000000@example.com", Password: "x"},                   // duplicate
		{PublicID: "sip:2010000998@example.com"},                                  // no credentials
		{PublicID: "sip:2010000997@example.com", Password: "x", IFC: "<Service>"}, // malformed iFC
		{PublicID: "sip:20!.*!@example.com", Password: "x"},                       // wildcard
	}
	res, err := f.store.Provision(ctx, append(subs, bad...))
	must(t, err)
	if res.Created != 500 || len(res.Skipped) != 0 || len(res.Failed) != len(bad) {
		t.Fatalf("first run: created %d, skipped %d, failed %+v", res.Created, len(res.Skipped), res.Failed)
	}
	if len(simservs.impus) != 500 {
		t.Fatalf("simservs written for %d identities, want 500", len(simservs.impus))
	}
	av, err := f.store.AuthVector(ctx, hss.AVRequest{IMPI: "2010000042@example.com", IMPU: "sip:2010000042@example.com"})
	must(t, err)
	if av.Digest.HA1 != hss.DigestHA1("2010000042@example.com", "example.com", "7kkzTyGW") {
		t.Fatalf("digest %+v", av.Digest)
	}
	if p, _ := f.store.GetPrivate(ctx, "2010000042@example.com"); p.PlaintextPassword != "" {
		t.Fatal("password kept without KeepPassword")
	}
	rd, err := f.store.RegData(ctx, "sip:2010000042@example.com")
	must(t, err)
	if len(rd.ServiceProfiles) != 1 || !bytes.Contains([]byte(rd.ServiceProfiles[0].IFC), []byte("sip:mmtel.example.com")) {
		t.Fatalf("default iFC missing: %+v", rd.ServiceProfiles)
	}

	// Re-running creates nothing and says what it skipped.
	res, err = f.store.Provision(ctx, subs)
	must(t, err)
	if res.Created != 0 || len(res.Skipped) != 500 {
		t.Fatalf("second run: created %d, skipped %d", res.Created, len(res.Skipped))
	}

	// An interrupted batch (the simservs hook fails after the IMPIs and
	// IRSs are written) exposes no subscriber; re-running completes it.
	var more []hss.Subscriber
	for i := range 50 {
		more = append(more, hss.Subscriber{PublicID: fmt.Sprintf("sip:2020%06d@example.com", i), Password: "pw"})
	}
	simservs.failing = true
	_, err = f.store.Provision(ctx, more)
	if err == nil {
		t.Fatal("Provision with a failing hook succeeded")
	}
	for _, s := range more {
		if _, err := f.store.LookupPublicID(ctx, s.PublicID); !errors.Is(err, hss.ErrNotFound) {
			t.Fatalf("%s visible after an interrupted batch (err %v)", s.PublicID, err)
		}
	}
	simservs.failing = false
	res, err = f.store.Provision(ctx, more)
	must(t, err)
	if res.Created != 50 {
		t.Fatalf("after interruption: created %d, want 50", res.Created)
	}
	rd, err = f.store.RegData(ctx, "sip:2020000007@example.com")
	must(t, err)
	if rd.PrivateID != "2020000007@example.com" || len(rd.PublicIDs()) != 1 {
		t.Fatalf("reg data after resumed import: %+v", rd)
	}

	// An existing private identity keeps its credentials and gains the
	// new sets; one IMPI may take several IMPUs in one batch.
	must(t, f.store.PutPrivate(ctx, "shared@example.com", hss.Credentials{PlaintextPassword: "old"}))
	res, err = f.store.Provision(ctx, []hss.Subscriber{
		{PublicID: "sip:shared-1@example.com", PrivateID: "shared@example.com", Password: "new"},
		{PublicID: "sip:shared-2@example.com", PrivateID: "shared@example.com", Password: "new"},
		{PublicID: "sip:fresh-1@example.com", PrivateID: "fresh@example.com", Password: "pw", KeepPassword: true, Realm: "realm.example.net"},
		{PublicID: "sip:fresh-2@example.com", PrivateID: "fresh@example.com", Password: "pw", KeepPassword: true, Realm: "realm.example.net"},
	})
	must(t, err)
	if res.Created != 4 {
		t.Fatalf("shared IMPIs: %+v", res)
	}
	for _, c := range []struct{ impi, impu, realm, pw string }{
		{"shared@example.com", "sip:shared-1@example.com", "example.com", "old"},
		{"shared@example.com", "sip:shared-2@example.com", "example.com", "old"},
		{"fresh@example.com", "sip:fresh-1@example.com", "realm.example.net", "pw"},
		{"fresh@example.com", "sip:fresh-2@example.com", "realm.example.net", "pw"},
	} {
		av, err := f.store.AuthVector(ctx, hss.AVRequest{IMPI: c.impi, IMPU: c.impu})
		must(t, err)
		if av.Digest.HA1 != hss.DigestHA1(c.impi, c.realm, c.pw) {
			t.Fatalf("%s/%s: wrong digest", c.impi, c.impu)
		}
	}
	if p, _ := f.store.GetPrivate(ctx, "fresh@example.com"); p.PlaintextPassword != "pw" {
		t.Fatal("KeepPassword did not keep the password")
	}
	irss, err := f.store.PrivateIRSs(ctx, "shared@example.com")
	must(t, err)
	if len(irss) != 2 {
		t.Fatalf("shared IMPI has %d IRSs, want 2", len(irss))
	}

	_, err = f.store.Provision(ctx, make([]hss.Subscriber, hss.MaxBulk+1))
	wantErr(t, "oversized request", err, hss.ErrInvalid)
}

func TestLines(t *testing.T) {
	f := newFixture(t, hss.Options{})
	ctx := f.ctx
	must(t, f.store.CreateLine(ctx, hss.Line{PrivateID: "6505550000@example.com", PublicIDs: []string{"sip:6505550000@example.com"}, Realm: "example.com", Password: "pw", IFC: mmtelIFC}))
	av, err := f.store.AuthVector(ctx, hss.AVRequest{IMPI: "6505550000@example.com", IMPU: "sip:6505550000@example.com"})
	must(t, err)
	if av.Digest.HA1 != hss.DigestHA1("6505550000@example.com", "example.com", "pw") {
		t.Fatal("wrong digest")
	}
	if p, _ := f.store.GetPrivate(ctx, "6505550000@example.com"); p.PlaintextPassword != "" {
		t.Fatal("line password kept in plaintext")
	}
	// A second line on the same private identity.
	must(t, f.store.CreateLine(ctx, hss.Line{PrivateID: "6505550000@example.com", PublicIDs: []string{"sip:6505550001@example.com"}}))
	for _, tc := range []struct {
		name string
		l    hss.Line
		want error
	}{
		{"existing public identity", hss.Line{PrivateID: "x@example.com", PublicIDs: []string{"sip:6505550001@example.com"}, Password: "pw"}, hss.ErrConflict},
		{"shared with an unknown IMPI", hss.Line{PrivateID: "nobody@example.com", PublicIDs: []string{"sip:6505550002@example.com"}}, hss.ErrNotFound},
		{"bad iFC", hss.Line{PrivateID: "y@example.com", PublicIDs: []string{"sip:6505550002@example.com"}, Password: "pw", IFC: "<x>"}, hss.ErrInvalid},
		{"no public identity", hss.Line{PrivateID: "y@example.com", Password: "pw"}, hss.ErrInvalid},
	} {
		wantErr(t, tc.name, f.store.CreateLine(ctx, tc.l), tc.want)
	}
	if _, err := f.store.GetPrivate(ctx, "y@example.com"); !errors.Is(err, hss.ErrNotFound) {
		t.Fatal("a refused line left its private identity behind")
	}

	doc, err := f.store.LineIFC(ctx, "sip:6505550000@example.com")
	if err != nil || doc != mmtelIFC {
		t.Fatalf("LineIFC = %q, %v", doc, err)
	}
	if doc, err := f.store.LineIFC(ctx, "sip:6505550001@example.com"); err != nil || doc != "" {
		t.Fatalf("LineIFC of a line without iFCs = %q, %v", doc, err)
	}
	must(t, f.store.SetLineIFC(ctx, "sip:6505550001@example.com", hss.DefaultIFC("sip:as.example.com")))
	if doc, _ := f.store.LineIFC(ctx, "sip:6505550001@example.com"); doc != hss.DefaultIFC("sip:as.example.com") {
		t.Fatalf("after SetLineIFC: %q", doc)
	}
	_, err = f.store.LineIFC(ctx, "sip:nobody@example.com")
	wantErr(t, "LineIFC of unknown", err, hss.ErrNotFound)

	must(t, f.store.SetPassword(ctx, "6505550000@example.com", "", "new"))
	av, err = f.store.AuthVector(ctx, hss.AVRequest{IMPI: "6505550000@example.com", IMPU: "sip:6505550001@example.com"})
	if err != nil || av.Digest.HA1 != hss.DigestHA1("6505550000@example.com", "example.com", "new") {
		t.Fatalf("after SetPassword: %+v, %v", av, err)
	}
	wantErr(t, "SetPassword of unknown", f.store.SetPassword(ctx, "nobody", "example.com", "x"), hss.ErrNotFound)

	// The private identity goes with its last line.
	must(t, f.store.DeleteLine(ctx, "sip:6505550000@example.com"))
	if _, err := f.store.GetPrivate(ctx, "6505550000@example.com"); err != nil {
		t.Fatalf("private identity deleted with a line left: %v", err)
	}
	must(t, f.store.DeleteLine(ctx, "sip:6505550001@example.com"))
	if _, err := f.store.GetPrivate(ctx, "6505550000@example.com"); !errors.Is(err, hss.ErrNotFound) {
		t.Fatalf("private identity outlived its lines: %v", err)
	}
	must(t, f.store.DeleteLine(ctx, "sip:6505550001@example.com"))
}

// TestInterruptedWritesStayHidden plants the records a change interrupted
// between two writes leaves behind, and checks that readers ignore them and
// writers repair them.
func TestInterruptedWritesStayHidden(t *testing.T) {
	f := newFixture(t, hss.Options{})
	ctx := f.ctx
	irs, sp := f.subscriber("alice@example.com", "sip:alice@example.com", "pw")
	put := func(key, value string) {
		t.Helper()
		if _, err := f.site.KV.Put(ctx, key, []byte(value)); err != nil {
			t.Fatal(err)
		}
	}
	// An IMPU index naming an IRS that was never written (a create
	// interrupted by a delete of its IRS).
	put("hss.impu/sip:ghost@example.com", `{"irs":"no-such-irs","sp":"x","xml":"<PublicIdentity><Identity>sip:ghost@example.com</Identity></PublicIdentity>"}`)
	// A hint in alice's IRS for an identity whose index was never written,
	// and one for an identity that belongs elsewhere.
	put("hss.impu/sip:elsewhere@example.com", `{"irs":"other","sp":"x","xml":"<PublicIdentity><Identity>sip:elsewhere@example.com</Identity></PublicIdentity>"}`)
	rec, err := f.site.KV.Get(ctx, "hss.irs/"+irs)
	must(t, err)
	put("hss.irs/"+irs, string(bytes.Replace(rec.Value, []byte(`"pub":[`), []byte(`"pub":["sip:half@example.com","sip:elsewhere@example.com",`), 1)))

	_, err = f.store.LookupPublicID(ctx, "sip:ghost@example.com")
	wantErr(t, "dangling index", err, hss.ErrNotFound)
	rd, err := f.store.RegData(ctx, "sip:alice@example.com")
	must(t, err)
	if ids := rd.PublicIDs(); len(ids) != 1 || ids[0].Identity != "sip:alice@example.com" {
		t.Fatalf("reg data shows stale hints: %+v", ids)
	}
	got, err := f.store.GetIRS(ctx, irs)
	must(t, err)
	if ids := got.PublicIDs(); !slices.Equal(ids, []string{"sip:alice@example.com"}) {
		t.Fatalf("IRS shows stale hints: %q", ids)
	}
	// The dangling index does not block a create; the stale hint does not
	// either.
	must(t, f.store.PutPublicID(ctx, irs, sp, "sip:ghost@example.com", publicXML("sip:ghost@example.com")))
	must(t, f.store.PutPublicID(ctx, irs, sp, "sip:half@example.com", publicXML("sip:half@example.com")))
	got, err = f.store.GetIRS(ctx, irs)
	must(t, err)
	if ids := got.PublicIDs(); len(ids) != 3 {
		t.Fatalf("after repair: %q", ids)
	}
}

// BenchmarkProvision measures the store's bulk path on a single-node site.
func BenchmarkProvision(b *testing.B) {
	site := kvtest.New(b, 4)
	store := hss.New(site.KV, hss.Options{
		HomeDomain: "example.com",
		ShardOf:    func(k string) int { return site.Node.ShardOf([]byte(k)) },
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	const batch = 1000
	n := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		subs := make([]hss.Subscriber, batch)
		for j := range subs {
			subs[j] = hss.Subscriber{PublicID: fmt.Sprintf("sip:30%08d@example.com", n), Password: "pw"}
			n++
		}
		res, err := store.Provision(context.Background(), subs)
		if err != nil || res.Created != batch {
			b.Fatalf("%+v, %v", res, err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "subscribers/s")
}
