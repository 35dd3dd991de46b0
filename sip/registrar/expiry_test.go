package registrar

import (
	"maps"
	"sync"
	"testing"
	"time"

	"stillwater/diameter/hss"
)

// TestExpiryByTimer: bindings go when their replicated timer pops (driven
// by the fake clock), one at a time; the last one's expiry ends the
// subscriptions and the HSS registration, and removes the timer.
func TestExpiryByTimer(t *testing.T) {
	e := newEnv(t)
	start := e.site.clock.Now()
	for _, r := range []struct {
		callID string
		lines  []string
	}{{"x1", []string{c1}}, {"x2", []string{c2, "Expires: 100"}}} {
		if res := e.reg.Register(e.ctx, registerReq(t, alice, r.callID, 1, r.lines...), aliceI); res.StatusCode != 200 {
			t.Fatal(res.StatusCode)
		}
	}
	if res := e.reg.Subscribe(e.ctx, subscribeReq(t, alice, "sx", "ft", "", 1, "Event: reg")); res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	e.notify()

	// The timer is due 100 s after it was set by the wall clock; leave
	// room for the time the test has taken so far.
	e.site.clock.AdvanceTo(start.Add(130 * time.Second))
	n := e.notify()
	d := parseReginfo(t, n.Body())
	if ev := contactEvents(d); ev[id2] != "terminated/expired" || ev["sip:6505550001@192.0.2.1:5060;transport=tcp"] != "active/registered" {
		t.Errorf("first expiry: %v", ev)
	}
	if got := e.bindings(alice); !maps.Equal(got, map[string]int64{inst1: 170}) {
		t.Errorf("after the first expiry: %v", got)
	}
	if e.regState(alice) != hss.Registered {
		t.Errorf("HSS state %v", e.regState(alice))
	}

	e.site.clock.AdvanceTo(start.Add(330 * time.Second))
	n = e.notify()
	d = parseReginfo(t, n.Body())
	if st := headers(n, "Subscription-State"); st[0] != "terminated;reason=noresource" {
		t.Errorf("last expiry Subscription-State %v", st)
	}
	if d.Registrations[0].State != "terminated" || contactEvents(d)["sip:6505550001@192.0.2.1:5060;transport=tcp"] != "terminated/expired" {
		t.Errorf("last expiry document: %+v", d)
	}
	if got := e.bindings(alice); len(got) != 0 {
		t.Errorf("bindings left: %v", got)
	}
	if e.regState(alice) != hss.NotRegistered {
		t.Errorf("HSS state after expiry %v", e.regState(alice))
	}
	if rec, err := e.reg.read(e.ctx, alice); err != nil || rec != nil {
		t.Errorf("record left: %+v, %v", rec, err)
	}
	if n, err := e.site.timers.Pending(e.ctx); err != nil || n != 0 {
		t.Errorf("%d timers left, %v", n, err)
	}
}

// TestRefreshRacesTimer: a pop for an expiry that a refresh has moved on
// removes nothing, whichever of the two commits first.
func TestRefreshRacesTimer(t *testing.T) {
	e := newEnv(t)
	start := e.site.clock.Now()
	reg := func(cseq int) {
		t.Helper()
		if res := e.reg.Register(e.ctx, registerReq(t, alice, "rr", cseq, c1+";expires=60"), aliceI); res.StatusCode != 200 {
			t.Errorf("REGISTER %d: %d", cseq, res.StatusCode)
		}
	}
	reg(1)

	// The pop arrives after the refresh.
	e.site.clock.AdvanceTo(start.Add(30 * time.Second))
	reg(2)
	if err := e.reg.expire(e.ctx, alice); err != nil {
		t.Fatal(err)
	}
	if got := e.bindings(alice); !maps.Equal(got, map[string]int64{inst1: 60}) {
		t.Fatalf("after a stale pop: %v", got)
	}

	// The pop and the refresh race once the old expiry has passed: either
	// order leaves the binding registered.
	for i := range 5 {
		cseq := 3 + i
		e.site.clock.Advance(61 * time.Second)
		var wg sync.WaitGroup
		wg.Go(func() { reg(cseq) })
		wg.Go(func() {
			if err := e.reg.expire(e.ctx, alice); err != nil {
				t.Error(err)
			}
		})
		wg.Wait()
		if got := e.bindings(alice); !maps.Equal(got, map[string]int64{inst1: 60}) {
			t.Fatalf("round %d: %v", i, got)
		}
	}
	if e.regState(alice) != hss.Registered {
		t.Errorf("HSS state %v", e.regState(alice))
	}
}

// TestSubscriptionExpiry: a subscription's own timer ends it with
// reason=timeout, leaving the bindings alone.
func TestSubscriptionExpiry(t *testing.T) {
	e := newEnv(t)
	start := e.site.clock.Now()
	if res := e.reg.Register(e.ctx, registerReq(t, bob, "b", 1, "Contact: <sip:bob@192.0.2.8>"), bobI); res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	if res := e.reg.Subscribe(e.ctx, subscribeReq(t, bob, "sb", "ft", "", 1, "Event: reg", "Expires: 60")); res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	e.notify()
	e.site.clock.AdvanceTo(start.Add(90 * time.Second))
	n := e.notify()
	if st := headers(n, "Subscription-State"); st[0] != "terminated;reason=timeout" {
		t.Errorf("Subscription-State %v", st)
	}
	if got := e.bindings(bob); len(got) != 1 {
		t.Errorf("bindings %v", got)
	}
	rec, err := e.reg.read(e.ctx, bob)
	if err != nil || rec == nil || len(rec.Subs) != 0 {
		t.Errorf("record %+v, %v", rec, err)
	}
}

// TestExpiryAfterRestart: the registrar keeps nothing in memory, so a
// binding accepted by one instance expires under another (as when the node
// that took the REGISTER has died and another pops the timer).
func TestExpiryAfterRestart(t *testing.T) {
	e := newEnv(t)
	start := e.site.clock.Now()
	if res := e.reg.Register(e.ctx, registerReq(t, bob, "d", 1, "Contact: <sip:bob@192.0.2.9>", "Expires: 50"), bobI); res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	if res := e.reg.Subscribe(e.ctx, subscribeReq(t, bob, "sd", "ft", "", 1, "Event: reg")); res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	e.notify()
	e.reg.Close()
	e.reg = New(e.reg.opts) // registers the expiry handler again, as another node's would
	t.Cleanup(e.reg.Close)
	if got := e.bindings(bob); len(got) != 1 {
		t.Fatalf("bindings after restart: %v", got)
	}
	e.site.clock.AdvanceTo(start.Add(80 * time.Second))
	n := e.notify() // sent by the new instance, after the HSS update
	if ev := contactEvents(parseReginfo(t, n.Body())); ev["sip:bob@192.0.2.9"] != "terminated/expired" {
		t.Errorf("events %v", ev)
	}
	if got := e.bindings(bob); len(got) != 0 {
		t.Errorf("bindings left: %v", got)
	}
	if e.regState(bob) != hss.NotRegistered {
		t.Errorf("HSS state %v", e.regState(bob))
	}
}
