package auth_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
	"github.com/wmnsk/milenage"

	"stillwater/diameter/hss"
	"stillwater/kv/kvtest"
	"stillwater/sip/auth"
)

var update = flag.Bool("update", false, "rewrite golden files")

// lockedRand is a deterministic source safe for concurrent use.
type lockedRand struct {
	mu sync.Mutex
	r  *rand.ChaCha8
}

func (l *lockedRand) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(p)
}

func newRand(seed byte) io.Reader { return &lockedRand{r: rand.NewChaCha8([32]byte{seed})} }

// fakeClock is a settable kv.Clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(time.Duration) <-chan time.Time { return make(chan time.Time) }

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// Test subscribers.
const (
	alice      = "alice@example.com"
	aliceIMPU  = "sip:alice@example.com"
	alicePass  = "alice-secret"
	ue         = "ue@ims.example.com"
	ueIMPU     = "sip:ue@ims.example.com"
	ueAMF      = 0x8000
	regURI     = "sip:example.com"
	imsRegURI  = "sip:ims.example.com"
	homeDomain = "example.com"
)

var (
	ueK   = mustHex("465b5ce8b199b49faa5f0a2ee238a6bc")
	ueOPc = mustHex("cd63cb71954a9f4e48a5994e37a02baf")
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

type fixture struct {
	t     *testing.T
	site  *kvtest.Site
	store *hss.Store
	clock *fakeClock
	ctx   context.Context
}

// newFixture starts a site and provisions alice (digest) and ue (AKA, with
// its HSS sequence number at sqn).
func newFixture(t *testing.T) *fixture {
	t.Helper()
	site := kvtest.New(t, 2)
	f := &fixture{
		t: t, site: site, ctx: context.Background(),
		clock: &fakeClock{now: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)},
	}
	f.store = f.newStore(1)
	must(t, f.store.CreateLine(f.ctx, hss.Line{PrivateID: alice, PublicIDs: []string{aliceIMPU}, Password: alicePass}))
	must(t, f.store.CreateLine(f.ctx, hss.Line{PrivateID: ue, PublicIDs: []string{ueIMPU}, Realm: "ims.example.com", Password: "unused"}))
	must(t, f.store.PutPrivate(f.ctx, ue, hss.Credentials{Realm: "ims.example.com", PlaintextPassword: "unused",
		AKA: &hss.AKACredentials{K: ueK, OPc: ueOPc, AMF: ueAMF}}))
	return f
}

func (f *fixture) newStore(seed byte) *hss.Store {
	return hss.New(f.site.KV, hss.Options{HomeDomain: homeDomain, Rand: newRand(seed), Logger: discard})
}

// authenticator returns an Authenticator over the fixture's site; opts
// fields left zero get the fixture's.
func (f *fixture) authenticator(opts auth.Options, seed byte) *auth.Authenticator {
	opts.KV = f.site.KV
	if opts.HSS == nil {
		opts.HSS = f.store
	}
	if opts.Realm == "" {
		opts.Realm = homeDomain
	}
	if opts.Clock == nil {
		opts.Clock = f.clock
	}
	if opts.Rand == nil {
		opts.Rand = newRand(seed)
	}
	opts.Logger = discard
	return auth.New(opts)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// request parses a SIP request with the given extra header lines.
func request(t *testing.T, method, ruri, impu string, headers ...string) *sip.Request {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s SIP/2.0\r\n", method, ruri)
	b.WriteString("Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK-test\r\n")
	fmt.Fprintf(&b, "From: <%s>;tag=from1\r\nTo: <%s>\r\n", impu, impu)
	fmt.Fprintf(&b, "Call-ID: call-1@127.0.0.1\r\nCSeq: 1 %s\r\nMax-Forwards: 70\r\n", method)
	b.WriteString("Contact: <sip:ue@127.0.0.1:5060>\r\n")
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	m, err := sip.ParseMessage([]byte(b.String()))
	if err != nil {
		t.Fatalf("parse request: %v\n%s", err, b.String())
	}
	return m.(*sip.Request)
}

// challengeOf returns the parsed challenge of a 401 or 407.
func challengeOf(t *testing.T, res auth.Result) *digest.Challenge {
	t.Helper()
	if res.OK || res.Response == nil {
		t.Fatalf("want a challenge, got OK=%v err=%v", res.OK, res.Err)
	}
	name := "WWW-Authenticate"
	if res.Response.StatusCode == 407 {
		name = "Proxy-Authenticate"
	} else if res.Response.StatusCode != 401 {
		t.Fatalf("want a challenge, got %d (%v)", res.Response.StatusCode, res.Err)
	}
	h := res.Response.GetHeader(name)
	if h == nil {
		t.Fatalf("%d without %s", res.Response.StatusCode, name)
	}
	ch, err := digest.ParseChallenge(h.Value())
	must(t, err)
	return ch
}

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// answer is what a UE puts in its response to a challenge; computed by
// hand (RFC 2617 §3.2.2.1), independently of the server's code.
type answer struct {
	user, password, method, uri string
	nc                          uint32
	cnonce                      string
	extra                       string // further parameters, appended
	realm, opaque               *string
}

func (a answer) header(ch *digest.Challenge) string {
	realm, opaque := ch.Realm, ch.Opaque
	if a.realm != nil {
		realm = *a.realm
	}
	if a.opaque != nil {
		opaque = *a.opaque
	}
	if a.cnonce == "" {
		a.cnonce = "0a4f113b"
	}
	ha1 := md5hex(a.user + ":" + realm + ":" + a.password)
	ha2 := md5hex(a.method + ":" + a.uri)
	nc := fmt.Sprintf("%08x", a.nc)
	resp := md5hex(strings.Join([]string{ha1, ch.Nonce, nc, a.cnonce, "auth", ha2}, ":"))
	h := fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=%s, cnonce="%s", opaque="%s", qop=auth, nc=%s`,
		a.user, realm, ch.Nonce, a.uri, resp, ch.Algorithm, a.cnonce, opaque, nc)
	return h + a.extra
}

// usim plays the UE side of IMS AKA with Milenage.
type usim struct {
	t     *testing.T
	sqnMS uint64 // highest sequence number accepted
}

// run checks an AKA challenge's nonce. It returns RES, CK and IK, or the
// AUTS to resynchronise with when the sequence number is not fresh.
func (u *usim) run(nonce string) (res, ck, ik, auts []byte) {
	t := u.t
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(nonce)
	must(t, err)
	if len(raw) != 32 {
		t.Fatalf("AKA nonce of %d bytes", len(raw))
	}
	rnd, autn := raw[:16], raw[16:]
	_, _, _, ak, err := milenage.NewWithOPc(ueK, ueOPc, rnd, 0, ueAMF).F2345()
	must(t, err)
	var sqn uint64
	for i := range 6 {
		sqn = sqn<<8 | uint64(autn[i]^ak[i])
	}
	m := milenage.NewWithOPc(ueK, ueOPc, rnd, sqn, ueAMF)
	must(t, m.ComputeAll())
	if !bytes.Equal(m.MACA, autn[8:]) {
		t.Fatalf("AUTN MAC-A does not verify")
	}
	if sqn>>5 <= u.sqnMS>>5 {
		auts, err := milenage.NewWithOPc(ueK, ueOPc, rnd, u.sqnMS, 0).GenerateAUTS()
		must(t, err)
		return nil, nil, nil, auts
	}
	u.sqnMS = sqn
	return m.RES, m.CK, m.IK, nil
}

// akav2Password is RFC 4169's password, computed for the test.
func akav2Password(res, ik, ck []byte) string {
	m := hmac.New(md5.New, append(append(append([]byte{}, res...), ik...), ck...))
	m.Write([]byte("http-digest-akav2-password"))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		must(t, os.WriteFile(path, got, 0o644))
		return
	}
	want, err := os.ReadFile(path)
	must(t, err)
	if !bytes.Equal(got, want) {
		t.Errorf("%s mismatch:\n got: %s\nwant: %s", name, got, want)
	}
}

func ptr(s string) *string { return &s }
