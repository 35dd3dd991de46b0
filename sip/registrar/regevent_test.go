package registrar

import (
	"encoding/xml"
	"errors"
	"strconv"
	"testing"
)

// reginfoDoc is enough of RFC 3680's schema to check documents.
type reginfoDoc struct {
	Version       int    `xml:"version,attr"`
	State         string `xml:"state,attr"`
	Registrations []struct {
		AoR      string `xml:"aor,attr"`
		State    string `xml:"state,attr"`
		Contacts []struct {
			State string `xml:"state,attr"`
			Event string `xml:"event,attr"`
			URI   string `xml:"uri"`
		} `xml:"contact"`
	} `xml:"registration"`
}

func parseReginfo(t *testing.T, body []byte) reginfoDoc {
	t.Helper()
	var d reginfoDoc
	if err := xml.Unmarshal(body, &d); err != nil {
		t.Fatalf("reginfo does not parse: %v\n%s", err, body)
	}
	return d
}

// contactEvents maps each contact URI of the first registration to
// "state/event".
func contactEvents(d reginfoDoc) map[string]string {
	out := map[string]string{}
	for _, c := range d.Registrations[0].Contacts {
		out[c.URI] = c.State + "/" + c.Event
	}
	return out
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// TestRegEvent follows two subscribers through registrations, refreshes,
// an unsubscription and a de-registration, with golden NOTIFYs.
func TestRegEvent(t *testing.T) {
	e := newEnv(t)
	if res := e.reg.Register(e.ctx, registerReq(t, alice, "r1", 1, c1, "Supported: gruu"), aliceI); res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}

	// Initial subscription: 200 with our tag, then a full NOTIFY.
	res := e.reg.Subscribe(e.ctx, subscribeReq(t, alice, "s1", "ft1", "", 1, "Event: reg", "Accept: application/reginfo+xml"))
	if res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE: %d %s", res.StatusCode, res.Reason)
	}
	tag1, _ := res.To().Params.Get("tag")
	if exp := headers(res, "Expires"); len(exp) != 1 || exp[0] != "600" {
		t.Errorf("granted Expires %v, want the 600 s maximum", exp)
	}
	n := e.notify()
	golden(t, "notify_initial.golden", e.wire(n))
	if from, _ := n.From().Params.Get("tag"); from != tag1 {
		t.Errorf("NOTIFY From tag %q, want %q", from, tag1)
	}

	// A second subscriber, with an Event id.
	res = e.reg.Subscribe(e.ctx, subscribeReq(t, alice2, "s2", "ft2", "", 1, "Event: reg;id=7", "Expires: 300"))
	if res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE 2: %d", res.StatusCode)
	}
	tag2, _ := res.To().Params.Get("tag")
	n = e.notify()
	if ev := headers(n, "Event"); len(ev) != 1 || ev[0] != "reg;id=7" {
		t.Errorf("Event %v", ev)
	}
	if d := parseReginfo(t, n.Body()); d.Version != 0 || len(d.Registrations) != 2 {
		t.Errorf("second subscriber's first document: version %d, %d registrations", d.Version, len(d.Registrations))
	}

	// A new contact: both are told, each with its own version and CSeq.
	if res := e.reg.Register(e.ctx, registerReq(t, alice, "r2", 1, c2), aliceI); res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	got := map[string]*reginfoDoc{}
	for range 2 {
		n := e.notify()
		d := parseReginfo(t, n.Body())
		got[n.CallID().Value()] = &d
		if n.CallID().Value() == "s1" {
			golden(t, "notify_register.golden", string(n.Body()))
			if n.CSeq().SeqNo != 2 {
				t.Errorf("second NOTIFY CSeq %d", n.CSeq().SeqNo)
			}
		}
	}
	if d := got["s1"]; d == nil || d.Version != 1 || contactEvents(*d)["sip:6505550001@192.0.2.2:5060"] != "active/registered" {
		t.Errorf("subscriber 1 after a new contact: %+v", d)
	}
	if d := got["s2"]; d == nil || d.Version != 1 {
		t.Errorf("subscriber 2 after a new contact: %+v", d)
	}

	// Refresh of subscription 1 in its dialog.
	res = e.reg.Subscribe(e.ctx, subscribeReq(t, alice, "s1", "ft1", tag1, 2, "Event: reg", "Expires: 120"))
	if res.StatusCode != 200 || headers(res, "Expires")[0] != "120" {
		t.Fatalf("refresh: %d %v", res.StatusCode, headers(res, "Expires"))
	}
	n = e.notify()
	if st := headers(n, "Subscription-State"); st[0] != "active;expires=120" || n.CSeq().SeqNo != 3 {
		t.Errorf("refresh NOTIFY: %v CSeq %d", st, n.CSeq().SeqNo)
	}
	if d := parseReginfo(t, n.Body()); d.Version != 2 {
		t.Errorf("refresh NOTIFY version %d", d.Version)
	}

	// Out-of-order and unknown dialogs.
	if res := e.reg.Subscribe(e.ctx, subscribeReq(t, alice, "s1", "ft1", tag1, 2, "Event: reg")); res.StatusCode != 500 {
		t.Errorf("stale in-dialog CSeq: %d", res.StatusCode)
	}
	if res := e.reg.Subscribe(e.ctx, subscribeReq(t, alice, "s1", "ft1", "nosuch", 9, "Event: reg")); res.StatusCode != 481 {
		t.Errorf("unknown dialog: %d", res.StatusCode)
	}

	// Unsubscribe 2: a final NOTIFY.
	res = e.reg.Subscribe(e.ctx, subscribeReq(t, alice2, "s2", "ft2", tag2, 2, "Event: reg;id=7", "Expires: 0"))
	if res.StatusCode != 200 {
		t.Fatalf("unsubscribe: %d", res.StatusCode)
	}
	n = e.notify()
	if st := headers(n, "Subscription-State"); n.CallID().Value() != "s2" || st[0] != "terminated;reason=timeout" {
		t.Errorf("unsubscribe NOTIFY %s: %v", n.CallID().Value(), st)
	}

	// Removing a contact: only subscriber 1 is left to tell.
	if res := e.reg.Register(e.ctx, registerReq(t, alice, "r2", 2, c2, "Expires: 0"), aliceI); res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	n = e.notify()
	golden(t, "notify_unregister.golden", string(n.Body()))
	if d := parseReginfo(t, n.Body()); d.Version != 3 || contactEvents(d)["sip:6505550001@192.0.2.2:5060"] != "terminated/unregistered" {
		t.Errorf("after removal: %+v", d)
	}
	e.reg.wg.Wait()
	e.noNotify()
}

func TestSubscribeErrors(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name  string
		impu  string
		toTag string
		extra []string
		code  int
	}{
		{"no Event", alice, "", nil, 489},
		{"other package", alice, "", []string{"Event: presence"}, 489},
		{"unacceptable body", alice, "", []string{"Event: reg", "Accept: application/pidf+xml"}, 406},
		{"unknown identity", "sip:nobody@example.com", "", []string{"Event: reg"}, 404},
		{"unknown dialog", alice, "x", []string{"Event: reg"}, 481},
		{"malformed Expires", alice, "", []string{"Event: reg", "Expires: never"}, 400},
	}
	for _, c := range cases {
		res := e.reg.Subscribe(e.ctx, subscribeReq(t, c.impu, "se", "ft", c.toTag, 1, c.extra...))
		if res.StatusCode != c.code {
			t.Errorf("%s: %d %s, want %d", c.name, res.StatusCode, res.Reason, c.code)
		}
		if c.code == 489 && len(headers(res, "Allow-Events")) != 1 {
			t.Errorf("%s: 489 without Allow-Events", c.name)
		}
	}
	e.noNotify()
}

// TestNotifyRejectedDropsSubscription: a 481 to a NOTIFY ends the
// subscription (RFC 6665 §4.2.2), so later changes do not reach it.
func TestNotifyRejectedDropsSubscription(t *testing.T) {
	e := newEnv(t)
	e.sent.reject["gone"] = 481
	for i, contact := range []string{"Contact: <sip:gone@192.0.2.20>", "Contact: <sip:ue@192.0.2.21>"} {
		req := subscribeReq(t, alice, "sd"+strconv.Itoa(i), "ft", "", 1, "Event: reg", contact)
		if res := e.reg.Subscribe(e.ctx, req); res.StatusCode != 200 {
			t.Fatal(res.StatusCode)
		}
		e.notify()
	}
	e.reg.wg.Wait() // the 481 has been handled
	if res := e.reg.Register(e.ctx, registerReq(t, alice, "r1", 1, c2), aliceI); res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	n := e.notify()
	if n.Recipient.User != "ue" {
		t.Errorf("NOTIFY went to %s", n.Recipient.String())
	}
	e.reg.wg.Wait()
	e.noNotify()
}
