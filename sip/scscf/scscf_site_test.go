package scscf_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

func instance(n int) string {
	return fmt.Sprintf(`;+sip.instance="<urn:uuid:00000000-0000-0000-0000-%012d>"`, n)
}

// pubGRUU is the pub-gruu the registrar gave the binding of e.
func pubGRUU(t *testing.T, res *sip.Response, e *endpoint) string {
	t.Helper()
	for _, h := range res.GetHeaders("Contact") {
		c, ok := h.(*sip.ContactHeader)
		if !ok || c.Address.Port != e.port() {
			continue
		}
		if g, ok := c.Params.Get("pub-gruu"); ok {
			return strings.Trim(g, `"`)
		}
	}
	t.Fatalf("no pub-gruu for %s in %q", e.addr(), headerValues(res, "Contact"))
	return ""
}

// expectInvite waits for e to be sent the INVITE of callID.
func expectInvite(t *testing.T, e *endpoint, callID string) rx {
	t.Helper()
	return e.on(t).wait("INVITE "+callID, func(r rx) bool {
		q := r.req()
		return q != nil && q.Method == sip.INVITE && q.CallID().Value() == callID
	})
}

// noInvite checks e has been sent no INVITE (call after the call ended).
func noInvite(t *testing.T, e *endpoint, callID string) {
	t.Helper()
	for _, m := range e.drain() {
		if q := m.req(); q != nil && q.Method == sip.INVITE && q.CallID().Value() == callID {
			t.Errorf("%s was sent the INVITE", e.addr())
		}
	}
}

func TestTerminatingUnregistered(t *testing.T) {
	s := newSite(t, siteOptions{})
	caller := newEndpoint(t)
	s.mustRegister(caller, alice, "")
	callID, inv := s.invite(caller, alice, bob)
	res := caller.final(callID, sip.INVITE)
	if res.StatusCode != 480 {
		t.Fatalf("INVITE to unregistered bob: %d, want 480", res.StatusCode)
	}
	s.ackFailure(caller, inv, res)
}

func TestGRUU(t *testing.T) {
	s := newSite(t, siteOptions{})
	caller, b1, b2 := newEndpoint(t), newEndpoint(t), newEndpoint(t)
	s.mustRegister(caller, alice, "")
	s.mustRegister(b1, bob, instance(1), "Supported: gruu")
	res := s.mustRegister(b2, bob, instance(2), "Supported: gruu")
	gruu2 := pubGRUU(t, res, b2)
	cases := []struct {
		name   string
		ruri   string
		rings  *endpoint
		silent []*endpoint
		code   int
	}{
		{name: "gruu reaches only its binding", ruri: gruu2, rings: b2, silent: []*endpoint{b1}, code: 200},
		{name: "aor reaches both", ruri: bob, rings: b1, code: 200},
		{name: "unknown gruu", ruri: bob + `;gr=urn:uuid:00000000-0000-0000-0000-000000000099`, silent: []*endpoint{b1, b2}, code: 480},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			caller := caller.on(t)
			callID, inv := s.invite(caller, alice, tc.ruri)
			if tc.rings != nil {
				in := expectInvite(t, tc.rings, callID)
				if tc.ruri == bob {
					// Both bindings ring; the other one is cancelled.
					other := b2
					if tc.rings == b2 {
						other = b1
					}
					oin := expectInvite(t, other, callID)
					other.on(t).answer(oin, 180, "Ringing")
					tc.rings.on(t).answer(in, 200, "OK")
					c := other.on(t).request(sip.CANCEL)
					other.on(t).answer(c, 200, "OK")
					other.on(t).answer(oin, 487, "Request Terminated")
				} else {
					tc.rings.on(t).answer(in, 200, "OK")
				}
			}
			res := caller.final(callID, sip.INVITE)
			if res.StatusCode != tc.code {
				t.Fatalf("INVITE %s: %d, want %d", tc.ruri, res.StatusCode, tc.code)
			}
			if res.StatusCode >= 300 {
				s.ackFailure(caller, inv, res)
			}
			for _, e := range tc.silent {
				noInvite(t, e.on(t), callID)
			}
		})
	}
}

// TestQValueGroups: bindings ring by q, highest first; a lower group is
// tried when the higher one fails.
func TestQValueGroups(t *testing.T) {
	s := newSite(t, siteOptions{})
	caller, hi, lo := newEndpoint(t), newEndpoint(t), newEndpoint(t)
	s.mustRegister(caller, alice, "")
	s.mustRegister(hi, bob, ";q=1.0")
	s.mustRegister(lo, bob, ";q=0.5")
	callID, _ := s.invite(caller, alice, bob)
	in := expectInvite(t, hi, callID)
	noInvite(t, lo, callID)
	hi.answer(in, 486, "Busy Here")
	in = expectInvite(t, lo, callID)
	lo.answer(in, 200, "OK")
	if res := caller.final(callID, sip.INVITE); res.StatusCode != 200 {
		t.Fatalf("caller got %d, want 200 from the q=0.5 binding", res.StatusCode)
	}
	// The low binding was sent one branch only: the second round's.
	branch := in.req().Via().Value()
	for _, m := range lo.drain() {
		if q := m.req(); q != nil && q.Method == sip.INVITE && q.CallID().Value() == callID && q.Via().Value() != branch {
			t.Errorf("q=0.5 binding also rang in the first round (Via %s)", q.Via().Value())
		}
	}

	// A global failure (6xx) ends the search.
	callID, inv := s.invite(caller, alice, bob)
	in = expectInvite(t, hi, callID)
	hi.answer(in, 603, "Decline")
	res := caller.final(callID, sip.INVITE)
	if res.StatusCode != 603 {
		t.Fatalf("caller got %d, want 603", res.StatusCode)
	}
	s.ackFailure(caller, inv, res)
	noInvite(t, lo, callID)
}

// TestCallerPreferences applies RFC 3841 Accept-Contact and
// Reject-Contact to bindings with and without the video feature tag.
func TestCallerPreferences(t *testing.T) {
	s := newSite(t, siteOptions{})
	caller, video, audio := newEndpoint(t), newEndpoint(t), newEndpoint(t)
	s.mustRegister(caller, alice, "")
	s.mustRegister(video, bob, ";video;audio")
	s.mustRegister(audio, bob, ";audio")
	cases := []struct {
		name   string
		hdr    string
		first  *endpoint // rings in the first round
		second *endpoint // rings only after the first fails; nil: never
	}{
		{name: "reject video", hdr: "Reject-Contact: *;video", first: audio},
		{name: "require video", hdr: "Accept-Contact: *;video;require;explicit", first: video},
		{name: "prefer video", hdr: "Accept-Contact: *;video", first: video, second: audio},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			caller := caller.on(t)
			callID, inv := s.invite(caller, alice, bob, tc.hdr)
			in := expectInvite(t, tc.first, callID)
			tc.first.on(t).answer(in, 486, "Busy Here")
			if tc.second != nil {
				in := expectInvite(t, tc.second, callID)
				tc.second.on(t).answer(in, 486, "Busy Here")
			}
			res := caller.final(callID, sip.INVITE)
			if res.StatusCode != 486 {
				t.Fatalf("caller got %d, want 486", res.StatusCode)
			}
			s.ackFailure(caller, inv, res)
			for _, e := range []*endpoint{video, audio} {
				if e != tc.first && e != tc.second {
					noInvite(t, e.on(t), callID)
				}
			}
		})
	}
}

func TestSessionExpires(t *testing.T) {
	s := newSite(t, siteOptions{defaultSE: 900 * time.Second, maxSE: 1800 * time.Second})
	caller, callee := newEndpoint(t), newEndpoint(t)
	s.mustRegister(caller, alice, "")
	s.mustRegister(callee, bob, "")
	cases := []struct {
		name  string
		extra []string
		want  string
	}{
		{name: "added when absent", want: "900"},
		{name: "lowered to the maximum", extra: []string{"Session-Expires: 7200;refresher=uac"}, want: "1800;refresher=uac"},
		{name: "compact form lowered", extra: []string{"x: 3600"}, want: "1800"},
		{name: "not below Min-SE", extra: []string{"Session-Expires: 7200", "Min-SE: 3600"}, want: "3600"},
		{name: "kept when allowed", extra: []string{"Session-Expires: 1000"}, want: "1000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			caller, callee := caller.on(t), callee.on(t)
			callID, inv := s.invite(caller, alice, bob, tc.extra...)
			in := expectInvite(t, callee, callID)
			if got := headerValues(in.req(), "Session-Expires"); len(got) != 1 || got[0] != tc.want {
				t.Errorf("Session-Expires %q, want %q", got, tc.want)
			}
			callee.answer(in, 486, "Busy Here")
			res := caller.final(callID, sip.INVITE)
			s.ackFailure(caller, inv, res)
		})
	}
}

func TestPServedUser(t *testing.T) {
	s := newSite(t, siteOptions{})
	caller, offnet, callee := newEndpoint(t), newEndpoint(t), newEndpoint(t)
	s.mustRegister(caller, alice, "")
	s.mustRegister(callee, bob, "")
	cases := []struct {
		name string
		ruri string
		to   *endpoint
		want []string
	}{
		// P-Served-User is for the ISC interface (RFC 5502): neither an
		// off-net peer nor the callee sees it.
		{name: "off-net callee", ruri: offnet.uri("carol"), to: offnet},
		{name: "home callee", ruri: bob, to: callee},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			caller := caller.on(t)
			callID, inv := s.invite(caller, alice, tc.ruri)
			in := expectInvite(t, tc.to, callID)
			if got := headerValues(in.req(), "P-Served-User"); strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("P-Served-User %q, want %q", got, tc.want)
			}
			tc.to.on(t).answer(in, 486, "Busy Here")
			s.ackFailure(caller, inv, caller.final(callID, sip.INVITE))
		})
	}
}

// TestRegisterChallenge: with authentication on, an unauthenticated
// REGISTER is challenged by sip/auth through the whole chain.
func TestRegisterChallenge(t *testing.T) {
	s := newSite(t, siteOptions{auth: true})
	ue := newEndpoint(t)
	res := s.register(ue, alice, "")
	if res.StatusCode != 401 {
		t.Fatalf("REGISTER without credentials: %d, want 401", res.StatusCode)
	}
	w := res.GetHeader("WWW-Authenticate")
	if w == nil || !strings.HasPrefix(w.Value(), "Digest ") || !strings.Contains(w.Value(), `realm="example.com"`) {
		t.Errorf("WWW-Authenticate %v", w)
	}
}
