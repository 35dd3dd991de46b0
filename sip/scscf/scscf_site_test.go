package scscf_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"stillwater/sip/siptest"
	"stillwater/sip/siptest/endpoint"
)

func instance(n int) string {
	return fmt.Sprintf(`;+sip.instance="<urn:uuid:00000000-0000-0000-0000-%012d>"`, n)
}

// pubGRUU is the pub-gruu the registrar gave the binding of e.
func pubGRUU(t *testing.T, res *sip.Response, e *endpoint.Endpoint) string {
	t.Helper()
	for _, h := range res.GetHeaders("Contact") {
		c, ok := h.(*sip.ContactHeader)
		if !ok || c.Address.Port != e.Port() {
			continue
		}
		if g, ok := c.Params.Get("pub-gruu"); ok {
			return strings.Trim(g, `"`)
		}
	}
	t.Fatalf("no pub-gruu for %s in %q", e.Addr(), endpoint.HeaderValues(res, "Contact"))
	return ""
}

// noInvite checks e has been sent no INVITE (call after the call ended).
func noInvite(t *testing.T, e *endpoint.Endpoint, callID string) {
	t.Helper()
	for _, m := range e.Drain() {
		if q := m.Req(); q != nil && q.Method == sip.INVITE && q.CallID().Value() == callID {
			t.Errorf("%s was sent the INVITE", e.Addr())
		}
	}
}

func TestTerminatingUnregistered(t *testing.T) {
	s := siptest.New(t, siptest.Options{})
	caller := siptest.NewUE(t)
	s.MustRegister(caller, siptest.Alice, "")
	callID, inv := s.Invite(caller, siptest.Alice, siptest.Bob)
	res := caller.Final(callID, sip.INVITE)
	if res.StatusCode != 480 {
		t.Fatalf("INVITE to unregistered bob: %d, want 480", res.StatusCode)
	}
	s.AckFailure(caller, inv, res)
}

func TestGRUU(t *testing.T) {
	s := siptest.New(t, siptest.Options{})
	caller, b1, b2 := siptest.NewUE(t), siptest.NewUE(t), siptest.NewUE(t)
	s.MustRegister(caller, siptest.Alice, "")
	s.MustRegister(b1, siptest.Bob, instance(1), "Supported: gruu")
	res := s.MustRegister(b2, siptest.Bob, instance(2), "Supported: gruu")
	gruu2 := pubGRUU(t, res, b2)
	cases := []struct {
		name   string
		ruri   string
		rings  *endpoint.Endpoint
		silent []*endpoint.Endpoint
		code   int
	}{
		{name: "gruu reaches only its binding", ruri: gruu2, rings: b2, silent: []*endpoint.Endpoint{b1}, code: 200},
		{name: "aor reaches both", ruri: siptest.Bob, rings: b1, code: 200},
		{name: "unknown gruu", ruri: siptest.Bob + `;gr=urn:uuid:00000000-0000-0000-0000-000000000099`, silent: []*endpoint.Endpoint{b1, b2}, code: 480},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			caller := caller.On(t)
			callID, inv := s.Invite(caller, siptest.Alice, tc.ruri)
			if tc.rings != nil {
				in := tc.rings.On(t).Expect(sip.INVITE, callID)
				if tc.ruri == siptest.Bob {
					// Both bindings ring; the other one is cancelled.
					other := b2
					if tc.rings == b2 {
						other = b1
					}
					oin := other.On(t).Expect(sip.INVITE, callID)
					other.On(t).Answer(oin, 180, "Ringing")
					tc.rings.On(t).Answer(in, 200, "OK")
					c := other.On(t).Request(sip.CANCEL)
					other.On(t).Answer(c, 200, "OK")
					other.On(t).Answer(oin, 487, "Request Terminated")
				} else {
					tc.rings.On(t).Answer(in, 200, "OK")
				}
			}
			res := caller.Final(callID, sip.INVITE)
			if res.StatusCode != tc.code {
				t.Fatalf("INVITE %s: %d, want %d", tc.ruri, res.StatusCode, tc.code)
			}
			if res.StatusCode >= 300 {
				s.AckFailure(caller, inv, res)
			}
			for _, e := range tc.silent {
				noInvite(t, e.On(t), callID)
			}
		})
	}
}

// TestQValueGroups: bindings ring by q, highest first; a lower group is
// tried when the higher one fails.
func TestQValueGroups(t *testing.T) {
	s := siptest.New(t, siptest.Options{})
	caller, hi, lo := siptest.NewUE(t), siptest.NewUE(t), siptest.NewUE(t)
	s.MustRegister(caller, siptest.Alice, "")
	s.MustRegister(hi, siptest.Bob, ";q=1.0")
	s.MustRegister(lo, siptest.Bob, ";q=0.5")
	callID, _ := s.Invite(caller, siptest.Alice, siptest.Bob)
	in := hi.On(t).Expect(sip.INVITE, callID)
	noInvite(t, lo, callID)
	hi.Answer(in, 486, "Busy Here")
	in = lo.On(t).Expect(sip.INVITE, callID)
	lo.Answer(in, 200, "OK")
	if res := caller.Final(callID, sip.INVITE); res.StatusCode != 200 {
		t.Fatalf("caller got %d, want 200 from the q=0.5 binding", res.StatusCode)
	}
	// The low binding was sent one branch only: the second round's.
	branch := in.Req().Via().Value()
	for _, m := range lo.Drain() {
		if q := m.Req(); q != nil && q.Method == sip.INVITE && q.CallID().Value() == callID && q.Via().Value() != branch {
			t.Errorf("q=0.5 binding also rang in the first round (Via %s)", q.Via().Value())
		}
	}

	// A global failure (6xx) ends the search.
	callID, inv := s.Invite(caller, siptest.Alice, siptest.Bob)
	in = hi.On(t).Expect(sip.INVITE, callID)
	hi.Answer(in, 603, "Decline")
	res := caller.Final(callID, sip.INVITE)
	if res.StatusCode != 603 {
		t.Fatalf("caller got %d, want 603", res.StatusCode)
	}
	s.AckFailure(caller, inv, res)
	noInvite(t, lo, callID)
}

// TestCallerPreferences applies RFC 3841 Accept-Contact and
// Reject-Contact to bindings with and without the video feature tag.
func TestCallerPreferences(t *testing.T) {
	s := siptest.New(t, siptest.Options{})
	caller, video, audio := siptest.NewUE(t), siptest.NewUE(t), siptest.NewUE(t)
	s.MustRegister(caller, siptest.Alice, "")
	s.MustRegister(video, siptest.Bob, ";video;audio")
	s.MustRegister(audio, siptest.Bob, ";audio")
	cases := []struct {
		name   string
		hdr    string
		first  *endpoint.Endpoint // rings in the first round
		second *endpoint.Endpoint // rings only after the first fails; nil: never
	}{
		{name: "reject video", hdr: "Reject-Contact: *;video", first: audio},
		{name: "require video", hdr: "Accept-Contact: *;video;require;explicit", first: video},
		{name: "prefer video", hdr: "Accept-Contact: *;video", first: video, second: audio},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			caller := caller.On(t)
			callID, inv := s.Invite(caller, siptest.Alice, siptest.Bob, tc.hdr)
			in := tc.first.On(t).Expect(sip.INVITE, callID)
			tc.first.On(t).Answer(in, 486, "Busy Here")
			if tc.second != nil {
				in := tc.second.On(t).Expect(sip.INVITE, callID)
				tc.second.On(t).Answer(in, 486, "Busy Here")
			}
			res := caller.Final(callID, sip.INVITE)
			if res.StatusCode != 486 {
				t.Fatalf("caller got %d, want 486", res.StatusCode)
			}
			s.AckFailure(caller, inv, res)
			for _, e := range []*endpoint.Endpoint{video, audio} {
				if e != tc.first && e != tc.second {
					noInvite(t, e.On(t), callID)
				}
			}
		})
	}
}

func TestSessionExpires(t *testing.T) {
	s := siptest.New(t, siptest.Options{DefaultSE: 900 * time.Second, MaxSE: 1800 * time.Second})
	caller, callee := siptest.NewUE(t), siptest.NewUE(t)
	s.MustRegister(caller, siptest.Alice, "")
	s.MustRegister(callee, siptest.Bob, "")
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
			caller, callee := caller.On(t), callee.On(t)
			callID, inv := s.Invite(caller, siptest.Alice, siptest.Bob, tc.extra...)
			in := callee.On(t).Expect(sip.INVITE, callID)
			if got := endpoint.HeaderValues(in.Req(), "Session-Expires"); len(got) != 1 || got[0] != tc.want {
				t.Errorf("Session-Expires %q, want %q", got, tc.want)
			}
			callee.Answer(in, 486, "Busy Here")
			res := caller.Final(callID, sip.INVITE)
			s.AckFailure(caller, inv, res)
		})
	}
}

func TestPServedUser(t *testing.T) {
	s := siptest.New(t, siptest.Options{})
	caller, offnet, callee := siptest.NewUE(t), siptest.NewUE(t), siptest.NewUE(t)
	s.MustRegister(caller, siptest.Alice, "")
	s.MustRegister(callee, siptest.Bob, "")
	cases := []struct {
		name string
		ruri string
		to   *endpoint.Endpoint
		want []string
	}{
		// P-Served-User is for the ISC interface (RFC 5502): neither an
		// off-net peer nor the callee sees it.
		{name: "off-net callee", ruri: offnet.URI("carol"), to: offnet},
		{name: "home callee", ruri: siptest.Bob, to: callee},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			caller := caller.On(t)
			callID, inv := s.Invite(caller, siptest.Alice, tc.ruri)
			in := tc.to.On(t).Expect(sip.INVITE, callID)
			if got := endpoint.HeaderValues(in.Req(), "P-Served-User"); strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("P-Served-User %q, want %q", got, tc.want)
			}
			tc.to.On(t).Answer(in, 486, "Busy Here")
			s.AckFailure(caller, inv, caller.Final(callID, sip.INVITE))
		})
	}
}

// TestRegisterChallenge: with authentication on, an unauthenticated
// REGISTER is challenged by sip/auth through the whole chain.
func TestRegisterChallenge(t *testing.T) {
	s := siptest.New(t, siptest.Options{Auth: true})
	ue := siptest.NewUE(t)
	res := s.Register(ue, siptest.Alice, "")
	if res.StatusCode != 401 {
		t.Fatalf("REGISTER without credentials: %d, want 401", res.StatusCode)
	}
	w := res.GetHeader("WWW-Authenticate")
	if w == nil || !strings.HasPrefix(w.Value(), "Digest ") || !strings.Contains(w.Value(), `realm="example.com"`) {
		t.Errorf("WWW-Authenticate %v", w)
	}
}
