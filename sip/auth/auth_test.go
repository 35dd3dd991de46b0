package auth_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"stillwater/sip/auth"
)

// register runs the first leg of a REGISTER: no credentials, a challenge.
func register(t *testing.T, a *auth.Authenticator, impu string, headers ...string) (auth.Result, string) {
	t.Helper()
	res := a.Authenticate(context.Background(), request(t, "REGISTER", regURI, impu, headers...), impu, false)
	return res, "REGISTER"
}

// answeredChallenge challenges a REGISTER of alice's and returns the
// challenge and the Authorization header line answering it.
func answeredChallenge(t *testing.T, a *auth.Authenticator) (*digest.Challenge, string) {
	t.Helper()
	res, _ := register(t, a, aliceIMPU)
	ch := challengeOf(t, res)
	ans := answer{user: alice, password: alicePass, method: "REGISTER", uri: regURI, nc: 1}
	return ch, "Authorization: " + ans.header(ch)
}

func code(r auth.Result) int {
	if r.Response == nil {
		return 0
	}
	return r.Response.StatusCode
}

func TestDigestResponses(t *testing.T) {
	f := newFixture(t)
	a := f.authenticator(auth.Options{}, 1)
	for _, tc := range []struct {
		name     string
		answer   answer
		ruri     string
		wantCode int // 0: authenticated
	}{
		{name: "correct password", answer: answer{user: alice, password: alicePass, uri: regURI, nc: 1}},
		{name: "wrong password", answer: answer{user: alice, password: "guess", uri: regURI, nc: 1}, wantCode: 403},
		{name: "realm other than the challenge's", answer: answer{user: alice, password: alicePass, uri: regURI, nc: 1,
			realm: ptr("other.example.com")}, wantCode: 403},
		{name: "opaque altered", answer: answer{user: alice, password: alicePass, uri: regURI, nc: 1,
			opaque: ptr("0000")}, wantCode: 403},
		{name: "opaque missing", answer: answer{user: alice, password: alicePass, uri: regURI, nc: 1,
			opaque: ptr("")}, wantCode: 403},
		{name: "uri naming the next hop rather than the Request-URI", answer: answer{user: alice, password: alicePass,
			uri: "sip:127.0.0.1:5060", nc: 1}},
		{name: "uri that is not a URI", answer: answer{user: alice, password: alicePass, uri: "<sip:a b>", nc: 1},
			wantCode: 400},
		{name: "Request-URI with parameters still matches", answer: answer{user: alice, password: alicePass, uri: regURI, nc: 1},
			ruri: regURI + ";transport=tcp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, _ := register(t, a, aliceIMPU)
			if code(res) != 401 || res.IMPI != alice || res.Scheme != auth.SchemeDigest {
				t.Fatalf("first leg: %d %q %v (%v), want 401 for %s with MD5", code(res), res.IMPI, res.Scheme, res.Err, alice)
			}
			ch := challengeOf(t, res)
			if ch.Realm != homeDomain || ch.Algorithm != "MD5" || !ch.SupportsQOP("auth") || ch.Stale || ch.Opaque == "" {
				t.Fatalf("challenge %+v", ch)
			}
			tc.answer.method = "REGISTER"
			ruri := regURI
			if tc.ruri != "" {
				ruri = tc.ruri
			}
			got := a.Authenticate(f.ctx, request(t, "REGISTER", ruri, aliceIMPU, "Authorization: "+tc.answer.header(ch)), aliceIMPU, false)
			if tc.wantCode == 0 {
				if !got.OK || got.IMPI != alice || got.Scheme != auth.SchemeDigest {
					t.Fatalf("got OK=%v %d %q (%v), want authenticated", got.OK, code(got), got.IMPI, got.Err)
				}
				return
			}
			if got.OK || code(got) != tc.wantCode || got.Err == nil {
				t.Fatalf("got OK=%v %d (%v), want %d", got.OK, code(got), got.Err, tc.wantCode)
			}
		})
	}
}

func TestWrongPasswordConsumesChallenge(t *testing.T) {
	f := newFixture(t)
	a := f.authenticator(auth.Options{}, 1)
	res, _ := register(t, a, aliceIMPU)
	ch := challengeOf(t, res)
	wrong := answer{user: alice, password: "guess", method: "REGISTER", uri: regURI, nc: 1}
	if got := a.Authenticate(f.ctx, request(t, "REGISTER", regURI, aliceIMPU, "Authorization: "+wrong.header(ch)), aliceIMPU, false); code(got) != 403 {
		t.Fatalf("wrong password: %d (%v), want 403", code(got), got.Err)
	}
	// No second guess at the same nonce: the right answer now meets a
	// fresh challenge.
	right := answer{user: alice, password: alicePass, method: "REGISTER", uri: regURI, nc: 1}
	got := a.Authenticate(f.ctx, request(t, "REGISTER", regURI, aliceIMPU, "Authorization: "+right.header(ch)), aliceIMPU, false)
	if ch2 := challengeOf(t, got); !ch2.Stale || ch2.Nonce == ch.Nonce {
		t.Fatalf("after a failure: %+v, want a new stale challenge", ch2)
	}
}

func TestUnknownIdentities(t *testing.T) {
	f := newFixture(t)
	a := f.authenticator(auth.Options{}, 1)
	for _, tc := range []struct {
		name    string
		impu    string
		headers []string
	}{
		{"unknown public identity", "sip:nobody@example.com", nil},
		{"unknown private identity named", aliceIMPU, []string{
			`Authorization: Digest username="nobody@example.com", realm="example.com", nonce="", uri="sip:example.com", response=""`}},
		{"private identity not allowed for the public one", aliceIMPU, []string{
			`Authorization: Digest username="ue@ims.example.com", realm="example.com", nonce="", uri="sip:example.com", response=""`}},
		{"response for a nonce never issued, unknown user", aliceIMPU, []string{
			`Authorization: Digest username="nobody@example.com", realm="example.com", nonce="abcd", uri="sip:example.com", response="0123456789abcdef0123456789abcdef", qop=auth, nc=00000001, cnonce="x", opaque="y"`}},
		{"no identity at all", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			impu := tc.impu
			if impu == "" {
				impu = aliceIMPU // the request needs a To
			}
			res := a.Authenticate(f.ctx, request(t, "REGISTER", regURI, impu, tc.headers...), tc.impu, false)
			if res.OK || code(res) != 403 {
				t.Fatalf("got OK=%v %d (%v), want 403", res.OK, code(res), res.Err)
			}
		})
	}
}

func TestMalformedCredentials(t *testing.T) {
	f := newFixture(t)
	a := f.authenticator(auth.Options{}, 1)
	for _, tc := range []struct{ name, header string }{
		{"bare Digest", `Digest`},
		{"unterminated quote", `Digest username="alice@example.com, realm="example.com"`},
		{"parameter without value", `Digest username, realm="example.com"`},
		{"missing comma", `Digest username="a" realm="b"`},
		{"repeated parameter", `Digest username="a", username="b", response=""`},
		{"nc not 8 hex digits", `Digest username="alice@example.com", realm="example.com", nonce="n", uri="sip:example.com", response="0123456789abcdef0123456789abcdef", qop=auth, nc=1, cnonce="c"`},
		{"response not hex", `Digest username="alice@example.com", realm="example.com", nonce="n", uri="sip:example.com", response="zz", qop=auth, nc=00000001, cnonce="c"`},
		{"qop auth without cnonce", `Digest username="alice@example.com", realm="example.com", nonce="n", uri="sip:example.com", response="0123456789abcdef0123456789abcdef", qop=auth, nc=00000001`},
		{"qop not offered", `Digest username="alice@example.com", realm="example.com", nonce="n", uri="sip:example.com", response="0123456789abcdef0123456789abcdef", qop=auth-int, nc=00000001, cnonce="c"`},
		{"response without nonce", `Digest username="alice@example.com", realm="example.com", uri="sip:example.com", response="0123456789abcdef0123456789abcdef"`},
		{"auts not base64", `Digest username="ue@ims.example.com", realm="example.com", nonce="AAAA", uri="sip:example.com", response="", auts="!!"`},
		{"auts with a digest nonce", `Digest username="ue@ims.example.com", realm="example.com", nonce="0123", uri="sip:example.com", response="", auts="AAAAAAAAAAAAAAAAAAA="`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := a.Authenticate(f.ctx, request(t, "REGISTER", regURI, aliceIMPU, "Authorization: "+tc.header), aliceIMPU, false)
			if res.OK || code(res) != 400 || res.Err == nil {
				t.Fatalf("got OK=%v %d (%v), want 400", res.OK, code(res), res.Err)
			}
		})
	}
	// Credentials of another scheme are not ours: a plain challenge.
	res := a.Authenticate(f.ctx, request(t, "REGISTER", regURI, aliceIMPU, "Authorization: Basic YWxpY2U6cHc="), aliceIMPU, false)
	if code(res) != 401 {
		t.Fatalf("Basic credentials: %d (%v), want 401", code(res), res.Err)
	}
}

// TestNonceCount replays and reuses a nonce with and without
// nonce_count_supported.
func TestNonceCount(t *testing.T) {
	f := newFixture(t)
	type step struct {
		nc        uint32
		wantOK    bool
		wantStale bool
	}
	for i, tc := range []struct {
		name      string
		supported bool
		steps     []step
	}{
		{"single use: replay is challenged", false, []step{{1, true, false}, {1, false, true}}},
		{"single use: no reuse with a higher nc", false, []step{{1, true, false}, {2, false, true}}},
		{"single use: nc above 1 at first is refused", false, []step{{2, false, true}}},
		{"counted: increasing nc reuses the nonce", true, []step{{1, true, false}, {2, true, false}, {7, true, false}}},
		{"counted: replayed nc is challenged", true, []step{{1, true, false}, {2, true, false}, {2, false, true}}},
		{"counted: lower nc is challenged", true, []step{{3, true, false}, {1, false, true}}},
	} {
		seed := byte(10 + i)
		t.Run(tc.name, func(t *testing.T) {
			a := f.authenticator(auth.Options{NonceCountSupported: tc.supported}, seed)
			res, _ := register(t, a, aliceIMPU)
			ch := challengeOf(t, res)
			for i, s := range tc.steps {
				ans := answer{user: alice, password: alicePass, method: "REGISTER", uri: regURI, nc: s.nc}
				got := a.Authenticate(f.ctx, request(t, "REGISTER", regURI, aliceIMPU, "Authorization: "+ans.header(ch)), aliceIMPU, false)
				if got.OK != s.wantOK {
					t.Fatalf("step %d (nc=%d): OK=%v %d (%v), want OK=%v", i, s.nc, got.OK, code(got), got.Err, s.wantOK)
				}
				if !s.wantOK {
					if c := challengeOf(t, got); c.Stale != s.wantStale || c.Nonce == ch.Nonce {
						t.Fatalf("step %d: challenge %+v, want a new one with stale=%v", i, c, s.wantStale)
					}
				}
			}
		})
	}
}

func TestExpiredChallengeIsStale(t *testing.T) {
	f := newFixture(t)
	a := f.authenticator(auth.Options{ChallengeTTL: 40 * time.Second}, 1)
	for _, tc := range []struct {
		name      string
		wait      time.Duration
		wantStale bool
	}{
		{"answered in time", 39 * time.Second, false},
		{"answered too late", 40 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, _ := register(t, a, aliceIMPU)
			ch := challengeOf(t, res)
			f.clock.Advance(tc.wait)
			ans := answer{user: alice, password: alicePass, method: "REGISTER", uri: regURI, nc: 1}
			got := a.Authenticate(f.ctx, request(t, "REGISTER", regURI, aliceIMPU, "Authorization: "+ans.header(ch)), aliceIMPU, false)
			if !tc.wantStale {
				if !got.OK {
					t.Fatalf("got %d (%v), want authenticated", code(got), got.Err)
				}
				return
			}
			ch2 := challengeOf(t, got)
			if !ch2.Stale {
				t.Fatalf("late answer: %+v, want stale=true", ch2)
			}
			// The fresh challenge works.
			got = a.Authenticate(f.ctx, request(t, "REGISTER", regURI, aliceIMPU, "Authorization: "+ans.header(ch2)), aliceIMPU, false)
			if !got.OK {
				t.Fatalf("answer to the stale challenge: %d (%v)", code(got), got.Err)
			}
		})
	}
}

// TestTwoNodes challenges on one node and answers on another: the
// challenge is in kv, not in either's memory.
func TestTwoNodes(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name      string
		supported bool
		seed      byte
	}{{"single use", false, 1}, {"nonce counts", true, 3}} {
		t.Run(tc.name, func(t *testing.T) {
			n1 := f.authenticator(auth.Options{NonceCountSupported: tc.supported}, tc.seed)
			n2 := f.authenticator(auth.Options{NonceCountSupported: tc.supported, HSS: f.newStore(tc.seed + 1)}, tc.seed+1)
			res, _ := register(t, n1, aliceIMPU)
			ch := challengeOf(t, res)
			ans := answer{user: alice, password: alicePass, method: "REGISTER", uri: regURI, nc: 1}
			hdr := "Authorization: " + ans.header(ch)
			if got := n2.Authenticate(f.ctx, request(t, "REGISTER", regURI, aliceIMPU, hdr), aliceIMPU, false); !got.OK {
				t.Fatalf("answer on node 2: %d (%v)", code(got), got.Err)
			}
			// Replaying on node 1 is refused whichever node saw the use.
			got := n1.Authenticate(f.ctx, request(t, "REGISTER", regURI, aliceIMPU, hdr), aliceIMPU, false)
			if got.OK || !challengeOf(t, got).Stale {
				t.Fatalf("replay on node 1: OK=%v %d, want a stale challenge", got.OK, code(got))
			}
			if tc.supported {
				ans.nc = 2
				got := n1.Authenticate(f.ctx, request(t, "REGISTER", regURI, aliceIMPU, "Authorization: "+ans.header(ch)), aliceIMPU, false)
				if !got.OK {
					t.Fatalf("nc=2 on node 1: %d (%v)", code(got), got.Err)
				}
			}
		})
	}
}

// failingReader is a random source that fails.
type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("entropy exhausted") }

// TestStoreFailures checks that a caller that gave up, a failing store or
// a failing random source is a server error, never 403.
func TestStoreFailures(t *testing.T) {
	f := newFixture(t)
	a := f.authenticator(auth.Options{}, 1)
	_, answered := answeredChallenge(t, a)

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel2()
	for _, tc := range []struct {
		name     string
		a        *auth.Authenticator
		ctx      context.Context
		headers  []string
		wantCode int
	}{
		{"challenge, context cancelled", a, cancelled, nil, 500},
		{"challenge, deadline passed", a, expired, nil, 504},
		{"response, context cancelled", a, cancelled, []string{answered}, 500},
		{"response, deadline passed", a, expired, []string{answered}, 504},
		{"challenge, random source failing", f.authenticator(auth.Options{Rand: failingReader{}}, 0), f.ctx, nil, 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.a.Authenticate(tc.ctx, request(t, "REGISTER", regURI, aliceIMPU, tc.headers...), aliceIMPU, false)
			if got.OK || code(got) != tc.wantCode || got.Err == nil {
				t.Fatalf("got OK=%v %d (%v), want %d", got.OK, code(got), got.Err, tc.wantCode)
			}
		})
	}
	// The challenge survived the failures and still works.
	if got := a.Authenticate(f.ctx, request(t, "REGISTER", regURI, aliceIMPU, answered), aliceIMPU, false); !got.OK {
		t.Fatalf("after failures: %d (%v)", code(got), got.Err)
	}
}

// TestStoppedSite stops the site's consensus before either leg.
func TestStoppedSite(t *testing.T) {
	for _, tc := range []struct {
		name     string
		answered bool
	}{{"challenge", false}, {"response", true}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			a := f.authenticator(auth.Options{}, 1)
			var hs []string
			if tc.answered {
				res, _ := register(t, a, aliceIMPU)
				ans := answer{user: alice, password: alicePass, method: "REGISTER", uri: regURI, nc: 1}
				hs = append(hs, "Authorization: "+ans.header(challengeOf(t, res)))
			}
			must(t, f.site.Node.Close())
			// Bounded so that the search for a leader gives up early; the
			// outcome is 5xx either way.
			ctx, cancel := context.WithTimeout(f.ctx, time.Second)
			defer cancel()
			got := a.Authenticate(ctx, request(t, "REGISTER", regURI, aliceIMPU, hs...), aliceIMPU, false)
			if got.OK || code(got)/100 != 5 || got.Err == nil {
				t.Fatalf("got OK=%v %d (%v), want 5xx", got.OK, code(got), got.Err)
			}
		})
	}
}

func TestProxyAuthentication(t *testing.T) {
	f := newFixture(t)
	a := f.authenticator(auth.Options{}, 1)
	const target = "sip:bob@example.com"
	invite := func(headers ...string) auth.Result {
		return a.Authenticate(f.ctx, request(t, "INVITE", target, aliceIMPU, headers...), aliceIMPU, true)
	}
	res := invite()
	if code(res) != 407 {
		t.Fatalf("INVITE without credentials: %d (%v), want 407", code(res), res.Err)
	}
	ch := challengeOf(t, res)
	for _, tc := range []struct {
		name   string
		header string
		wantOK bool
	}{
		{"Authorization is not Proxy-Authorization", "Authorization: " +
			answer{user: alice, password: alicePass, method: "INVITE", uri: target, nc: 1}.header(ch), false},
		{"Proxy-Authorization for the INVITE", "Proxy-Authorization: " +
			answer{user: alice, password: alicePass, method: "INVITE", uri: target, nc: 1}.header(ch), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := invite(tc.header)
			if got.OK != tc.wantOK {
				t.Fatalf("OK=%v %d (%v), want %v", got.OK, code(got), got.Err, tc.wantOK)
			}
		})
	}

	// A REGISTER's nonce cannot be spent on a proxy challenge.
	reg, _ := register(t, a, aliceIMPU)
	rch := challengeOf(t, reg)
	got := invite("Proxy-Authorization: " + answer{user: alice, password: alicePass, method: "INVITE", uri: target, nc: 1}.header(rch))
	if code(got) != 407 || !challengeOf(t, got).Stale {
		t.Fatalf("REGISTER nonce on INVITE: %d (%v), want a stale 407", code(got), got.Err)
	}
}

func TestAKA(t *testing.T) {
	for _, tc := range []struct {
		name      string
		algorithm string // in the first REGISTER's Authorization; "" sends none
		ueSQN     uint64 // the USIM's starting sequence number
		want      auth.Scheme
		resync    bool
	}{
		{name: "AKAv1 chosen by the HSS", want: auth.SchemeAKAv1},
		{name: "AKAv1 asked for", algorithm: "AKAv1-MD5", want: auth.SchemeAKAv1},
		{name: "AKAv2 asked for", algorithm: "AKAv2-MD5", want: auth.SchemeAKAv2},
		{name: "resynchronisation", ueSQN: 1000<<5 | 3, want: auth.SchemeAKAv1, resync: true},
		{name: "AKAv2 resynchronisation", algorithm: "AKAv2-MD5", ueSQN: 2000 << 5, want: auth.SchemeAKAv2, resync: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			a := f.authenticator(auth.Options{}, 1)
			u := &usim{t: t, sqnMS: tc.ueSQN}
			send := func(h string) auth.Result {
				var hs []string
				if h != "" {
					hs = append(hs, "Authorization: "+h)
				}
				return a.Authenticate(f.ctx, request(t, "REGISTER", imsRegURI, ueIMPU, hs...), ueIMPU, false)
			}
			first := ""
			if tc.algorithm != "" {
				first = `Digest username="ue@ims.example.com", realm="ims.example.com", nonce="", uri="sip:ims.example.com", response="", algorithm=` + tc.algorithm
			}
			res := send(first)
			if code(res) != 401 || res.Scheme != tc.want || res.IMPI != ue {
				t.Fatalf("first leg: %d %v %q (%v), want 401 %v", code(res), res.Scheme, res.IMPI, res.Err, tc.want)
			}
			ch := challengeOf(t, res)
			if ch.Algorithm != tc.want.String() {
				t.Fatalf("challenge algorithm %q, want %v", ch.Algorithm, tc.want)
			}
			xres, ck, ik, auts := u.run(ch.Nonce)
			if tc.resync != (auts != nil) {
				t.Fatalf("USIM resync = %v, want %v", auts != nil, tc.resync)
			}
			if auts != nil {
				// RFC 3310 §3.4: the response is computed with an empty password.
				ans := answer{user: ue, password: "", method: "REGISTER", uri: imsRegURI, nc: 1,
					extra: `, auts="` + base64.StdEncoding.EncodeToString(auts) + `"`}
				res = send(ans.header(ch))
				if code(res) != 401 || res.Scheme != tc.want {
					t.Fatalf("after auts: %d %v (%v), want a new 401", code(res), res.Scheme, res.Err)
				}
				ch2 := challengeOf(t, res)
				if ch2.Nonce == ch.Nonce || ch2.Stale {
					t.Fatalf("after auts: %+v, want a fresh challenge", ch2)
				}
				ch = ch2
				if xres, ck, ik, auts = u.run(ch.Nonce); auts != nil {
					t.Fatal("USIM still out of sync after resynchronisation")
				}
			}
			password := string(xres)
			if tc.want == auth.SchemeAKAv2 {
				password = akav2Password(xres, ik, ck)
			}
			// A wrong RES first would consume the challenge, so check the
			// right one, then a wrong one against a new challenge.
			got := send(answer{user: ue, password: password, method: "REGISTER", uri: imsRegURI, nc: 1}.header(ch))
			if !got.OK || got.IMPI != ue || got.Scheme != tc.want {
				t.Fatalf("AKA response: OK=%v %d %v (%v)", got.OK, code(got), got.Scheme, got.Err)
			}
			if !bytes.Equal(got.CK, ck) || !bytes.Equal(got.IK, ik) {
				t.Fatalf("CK/IK = %x/%x, want %x/%x", got.CK, got.IK, ck, ik)
			}
			res = send(first)
			ch = challengeOf(t, res)
			if xres, _, _, _ = u.run(ch.Nonce); xres == nil {
				t.Fatal("USIM rejected the next challenge")
			}
			xres[0] ^= 1
			got = send(answer{user: ue, password: string(xres), method: "REGISTER", uri: imsRegURI, nc: 1}.header(ch))
			if code(got) != 403 {
				t.Fatalf("wrong RES: %d (%v), want 403", code(got), got.Err)
			}
		})
	}
}

func TestAKAResyncBadAUTS(t *testing.T) {
	f := newFixture(t)
	a := f.authenticator(auth.Options{}, 1)
	res := a.Authenticate(f.ctx, request(t, "REGISTER", imsRegURI, ueIMPU), ueIMPU, false)
	ch := challengeOf(t, res)
	u := &usim{t: t, sqnMS: 500 << 5}
	_, _, _, auts := u.run(ch.Nonce)
	auts[13] ^= 0xff // MAC-S no longer verifies
	ans := answer{user: ue, password: "", method: "REGISTER", uri: imsRegURI, nc: 1,
		extra: `, auts="` + base64.StdEncoding.EncodeToString(auts) + `"`}
	got := a.Authenticate(f.ctx, request(t, "REGISTER", imsRegURI, ueIMPU, "Authorization: "+ans.header(ch)), ueIMPU, false)
	if got.OK || code(got) != 403 {
		t.Fatalf("bad AUTS: OK=%v %d (%v), want 403", got.OK, code(got), got.Err)
	}
}

// TestIntegrityProtected follows TS 24.229 §5.4.1.2 as Clearwater does: the
// P-CSCF's integrity-protected says whether the S-CSCF must check.
func TestIntegrityProtected(t *testing.T) {
	f := newFixture(t)
	a := f.authenticator(auth.Options{}, 1)
	const bogus = "0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		name      string
		value     string
		response  string
		proxy     bool
		wantOK    bool
		wantCode  int
		wantProto bool
	}{
		{"yes without response: re-REGISTER on the SA", "yes", "", false, true, 0, true},
		{"yes with a response is checked", "yes", bogus, false, false, 401, false},
		{"no: challenged", "no", "", false, false, 401, false},
		{"ip-assoc-pending: challenged", "ip-assoc-pending", "", false, false, 401, false},
		{"tls-pending: challenged", "tls-pending", "", false, false, 401, false},
		{"tls-yes: accepted", "tls-yes", "", false, true, 0, true},
		{"ip-assoc-yes even with a response", "ip-assoc-yes", bogus, false, true, 0, true},
		{"auth-done: accepted", "auth-done", "", false, true, 0, true},
		{"not trusted on non-REGISTER", "tls-yes", "", true, false, 407, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "Authorization"
			if tc.proxy {
				name = "Proxy-Authorization"
			}
			h := name + `: Digest username="ue@ims.example.com", realm="ims.example.com", nonce="bm9uY2U=", uri="sip:ims.example.com", response="` +
				tc.response + `", integrity-protected="` + tc.value + `"`
			if tc.response != "" {
				h += `, qop=auth, nc=00000001, cnonce="c1", algorithm=AKAv1-MD5`
			}
			method := "REGISTER"
			if tc.proxy {
				method = "MESSAGE"
			}
			got := a.Authenticate(f.ctx, request(t, method, imsRegURI, ueIMPU, h), ueIMPU, tc.proxy)
			if got.OK != tc.wantOK || code(got) != tc.wantCode || got.Protected != tc.wantProto {
				t.Fatalf("OK=%v %d protected=%v (%v), want OK=%v %d protected=%v",
					got.OK, code(got), got.Protected, got.Err, tc.wantOK, tc.wantCode, tc.wantProto)
			}
			if got.OK && got.IMPI != ue {
				t.Fatalf("IMPI %q, want %q", got.IMPI, ue)
			}
		})
	}
}

// TestChallengeGolden pins the challenge headers, with deterministic
// randomness.
func TestChallengeGolden(t *testing.T) {
	f := newFixture(t)
	for i, tc := range []struct {
		name    string
		file    string
		method  string
		ruri    string
		impu    string
		proxy   bool
		headers []string
	}{
		{name: "digest", file: "challenge_digest.golden", method: "REGISTER", ruri: regURI, impu: aliceIMPU},
		{name: "digest stale", file: "challenge_stale.golden", method: "REGISTER", ruri: regURI, impu: aliceIMPU, headers: []string{
			`Authorization: Digest username="alice@example.com", realm="example.com", nonce="00112233", uri="sip:example.com", response="0123456789abcdef0123456789abcdef", qop=auth, nc=00000001, cnonce="c", opaque="o"`}},
		{name: "proxy", file: "challenge_proxy.golden", method: "INVITE", ruri: "sip:bob@example.com", impu: aliceIMPU, proxy: true},
		{name: "AKA", file: "challenge_aka.golden", method: "REGISTER", ruri: imsRegURI, impu: ueIMPU},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seed := byte(20 + i)
			a := f.authenticator(auth.Options{HSS: f.newStore(seed)}, seed)
			res := a.Authenticate(f.ctx, request(t, tc.method, tc.ruri, tc.impu, tc.headers...), tc.impu, tc.proxy)
			name := "WWW-Authenticate"
			if tc.proxy {
				name = "Proxy-Authenticate"
			}
			if res.Response == nil || res.Response.GetHeader(name) == nil {
				t.Fatalf("no challenge: %d (%v)", code(res), res.Err)
			}
			var b strings.Builder
			b.WriteString(res.Response.StartLine() + "\r\n")
			b.WriteString(res.Response.GetHeader(name).String() + "\r\n")
			golden(t, tc.file, []byte(b.String()))
		})
	}
}

// TestConcurrentUse answers one challenge twice at once on two nodes:
// exactly one answer wins.
func TestConcurrentUse(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name      string
		supported bool
		seed      byte
	}{{"single use", false, 30}, {"nonce counts", true, 32}} {
		t.Run(tc.name, func(t *testing.T) {
			nodes := []*auth.Authenticator{
				f.authenticator(auth.Options{NonceCountSupported: tc.supported}, tc.seed),
				f.authenticator(auth.Options{NonceCountSupported: tc.supported, HSS: f.newStore(tc.seed + 1)}, tc.seed+1),
			}
			res, _ := register(t, nodes[0], aliceIMPU)
			ans := answer{user: alice, password: alicePass, method: "REGISTER", uri: regURI, nc: 1}
			hdr := "Authorization: " + ans.header(challengeOf(t, res))
			reqs := []*sip.Request{
				request(t, "REGISTER", regURI, aliceIMPU, hdr),
				request(t, "REGISTER", regURI, aliceIMPU, hdr),
			}
			results := make([]auth.Result, 2)
			var wg sync.WaitGroup
			for i := range nodes {
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[i] = nodes[i].Authenticate(f.ctx, reqs[i], aliceIMPU, false)
				}()
			}
			wg.Wait()
			ok := 0
			for _, r := range results {
				if r.OK {
					ok++
				} else if code(r) != 401 {
					t.Fatalf("loser: %d (%v), want a stale 401", code(r), r.Err)
				}
			}
			if ok != 1 {
				t.Fatalf("%d answers accepted, want 1", ok)
			}
		})
	}
}

// TestDeferredUse checks Register: the nonce is left for the caller to
// consume, once, and counts only for the identity it challenged.
func TestDeferredUse(t *testing.T) {
	f := newFixture(t)
	a := f.authenticator(auth.Options{}, 40)
	ch, hdr := answeredChallenge(t, a)

	if got := a.Register(f.ctx, request(t, "REGISTER", regURI, "sip:other@example.com", hdr), "sip:other@example.com"); got.OK {
		t.Fatal("a response counted for another identity than the challenged one")
	}
	got := a.Register(f.ctx, request(t, "REGISTER", regURI, aliceIMPU, hdr), aliceIMPU)
	if !got.OK || got.Nonce == nil {
		t.Fatalf("Register: OK=%v nonce=%v %d (%v), want OK with a nonce to consume", got.OK, got.Nonce, code(got), got.Err)
	}
	if want := f.clock.Now().Add(auth.DefaultChallengeTTL).UnixMilli(); got.Nonce.Expires != want {
		t.Errorf("nonce expires %d, want %d (the challenge's expiry)", got.Nonce.Expires, want)
	}
	again := a.Register(f.ctx, request(t, "REGISTER", regURI, aliceIMPU, hdr), aliceIMPU)
	if !again.OK || again.Nonce == nil || again.Nonce.Key != got.Nonce.Key {
		t.Fatalf("second Register before consumption: OK=%v nonce=%v, want the same nonce left to the caller", again.OK, again.Nonce)
	}
	if err := got.Nonce.Consume(f.ctx); err != nil {
		t.Fatalf("Consume: %v", err)
	}
	if err := again.Nonce.Consume(f.ctx); !errors.Is(err, auth.ErrNonceUsed) {
		t.Fatalf("second Consume: %v, want ErrNonceUsed", err)
	}
	stale := a.Stale(f.ctx, request(t, "REGISTER", regURI, aliceIMPU, hdr), aliceIMPU, false)
	if c := challengeOf(t, stale); stale.OK || !c.Stale || c.Nonce == ch.Nonce {
		t.Fatalf("Stale: OK=%v %+v, want a new challenge with stale=true", stale.OK, c)
	}
}
