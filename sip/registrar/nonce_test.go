package registrar

import (
	"errors"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"stillwater/sip/auth"
	"stillwater/timerwheel"
)

// kvClock reads the site's fake clock; the authenticator only reads it.
type kvClock struct{ c *timerwheel.FakeClock }

func (k kvClock) Now() time.Time                         { return k.c.Now() }
func (k kvClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// answerChallenge is the Authorization header answering res's challenge
// with alice's password.
func answerChallenge(t *testing.T, res *sip.Response) string {
	t.Helper()
	h := res.GetHeader("WWW-Authenticate")
	if h == nil {
		t.Fatalf("no challenge in\n%s", res)
	}
	ch, err := digest.ParseChallenge(h.Value())
	if err != nil {
		t.Fatal(err)
	}
	cred, err := digest.Digest(ch, digest.Options{Method: "REGISTER", URI: "sip:example.com", Username: aliceI, Password: "pw", Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	return "Authorization: " + cred.String()
}

// TestNonceConsumedByRegistration checks that a registration consumes its
// single-use nonce in the record it writes: a replay of the REGISTER is
// refused although the challenge is still stored, and a REGISTER that
// adds no binding consumes its nonce in the challenge store instead.
func TestNonceConsumedByRegistration(t *testing.T) {
	e := newEnv(t)
	a := auth.New(auth.Options{KV: e.site.kv, HSS: e.hss, Realm: "example.com", Clock: kvClock{e.site.clock}})
	contact := "Contact: <sip:alice@192.0.2.1>"

	// authenticated runs the challenge leg and answers it.
	authenticated := func(callID string, extra ...string) (*sip.Request, *auth.Nonce) {
		t.Helper()
		res := a.Register(e.ctx, registerReq(t, alice, callID, 1, extra...), alice)
		if res.OK || res.Response.StatusCode != 401 {
			t.Fatalf("first leg: OK=%v %v, want 401", res.OK, res.Response)
		}
		req := registerReq(t, alice, callID, 2, append(extra, answerChallenge(t, res.Response))...)
		res = a.Register(e.ctx, req, alice)
		if !res.OK || res.Nonce == nil {
			t.Fatalf("answer: OK=%v nonce=%v (%v)", res.OK, res.Nonce, res.Err)
		}
		return req, res.Nonce
	}

	req, nonce := authenticated("n1", contact)
	res, err := e.reg.RegisterWith(e.ctx, req, aliceI, nonce, nil)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("register: %v %v", res, err)
	}
	// The challenge was not deleted: only the record knows of the use.
	replay := a.Register(e.ctx, req, alice)
	if !replay.OK {
		t.Fatalf("replay at the authenticator: %v, want the nonce left to the registrar", replay.Err)
	}
	if res, err := e.reg.RegisterWith(e.ctx, req, aliceI, replay.Nonce, nil); !errors.Is(err, auth.ErrNonceUsed) {
		t.Fatalf("replayed REGISTER: %v %v, want ErrNonceUsed", res, err)
	}

	// Removing the last binding consumes through the challenge store, as
	// the record may be deleted.
	req, nonce = authenticated("n2", contact, "Expires: 0")
	if res, err := e.reg.RegisterWith(e.ctx, req, aliceI, nonce, nil); err != nil || res.StatusCode != 200 {
		t.Fatalf("de-register: %v %v", res, err)
	}
	if got := e.bindings(alice); len(got) != 0 {
		t.Fatalf("bindings after de-registration: %v", got)
	}
	if again := a.Register(e.ctx, req, alice); again.OK {
		t.Fatal("de-registration's nonce still answerable after use")
	}
	// The record outlives its bindings while the first nonce is in use.
	if res, err := e.reg.RegisterWith(e.ctx, registerReq(t, alice, "n1", 3, contact), aliceI, replay.Nonce, nil); !errors.Is(err, auth.ErrNonceUsed) {
		t.Fatalf("replay after de-registration: %v %v, want ErrNonceUsed", res, err)
	}
	e.site.clock.Advance(auth.DefaultChallengeTTL)
	if res, err := e.reg.RegisterWith(e.ctx, registerReq(t, alice, "n3", 1, contact), aliceI, nil, nil); err != nil || res.StatusCode != 200 {
		t.Fatalf("register after the nonce expired: %v %v", res, err)
	}
	rec, err := e.reg.read(e.ctx, alice)
	if err != nil || rec == nil || len(rec.Used) != 0 {
		t.Fatalf("record %+v (%v), want expired nonces pruned", rec, err)
	}
}
