package icscf_test

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

func TestRegisterRouting(t *testing.T) {
	s := newSite(t, siteOptions{})
	cases := []struct {
		name string
		aor  string
		code int
		warn string
	}{
		{name: "unknown public identity", aor: "sip:6505558888@example.com", code: 403, warn: "unknown public identity"},
		{name: "barred public identity", aor: alice3, code: 403, warn: "barred"},
		{name: "provisioned identity", aor: alice, code: 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ue := newEndpoint(t)
			res := s.register(ue, tc.aor, "")
			if res.StatusCode != tc.code {
				t.Fatalf("REGISTER %s: %d %s, want %d", tc.aor, res.StatusCode, res.Reason, tc.code)
			}
			if tc.warn != "" {
				if w := res.GetHeader("Warning"); w == nil || !strings.Contains(w.Value(), tc.warn) {
					t.Errorf("Warning %v, want one saying %q", w, tc.warn)
				}
			}
		})
	}
}

func TestTerminatingRouting(t *testing.T) {
	s := newSite(t, siteOptions{})
	caller := newEndpoint(t)
	s.mustRegister(caller, alice, "")
	cases := []struct {
		name   string
		callee string
		code   int
	}{
		{name: "unknown callee", callee: nobody, code: 404},
		{name: "barred callee", callee: alice3, code: 404},
		// Known but unregistered: the I-CSCF finds the S-CSCF, which has
		// no binding.
		{name: "unregistered callee", callee: bob, code: 480},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			caller := caller.on(t)
			callID, inv := s.invite(caller, alice, tc.callee)
			res := caller.final(callID, sip.INVITE)
			if res.StatusCode != tc.code {
				t.Fatalf("INVITE %s: %d %s, want %d", tc.callee, res.StatusCode, res.Reason, tc.code)
			}
			s.ackFailure(caller, inv, res)
		})
	}
}

// TestRetryNextSCSCF: an S-CSCF that refuses (503) or is not there is
// passed over for the next one.
func TestRetryNextSCSCF(t *testing.T) {
	refuser := newEndpoint(t)
	s := newSite(t, siteOptions{firstSCSCFs: []sip.Uri{mustURI(t, "sip:"+refuser.addr())}})
	ue := newEndpoint(t)
	callID := s.sendRegister(ue, alice, "")
	in := refuser.request(sip.REGISTER)
	if in.req().CallID().Value() != callID {
		t.Fatalf("first S-CSCF got %s", in.req().CallID().Value())
	}
	refuser.answer(in, 503, "Service Unavailable")
	if res := ue.final(callID, sip.REGISTER); res.StatusCode != 200 {
		t.Fatalf("REGISTER: %d %s, want 200 from the second S-CSCF", res.StatusCode, res.Reason)
	}
	if bs, err := s.reg.Lookup(s.ctx, alice); err != nil || len(bs) != 1 {
		t.Errorf("bindings %v, %v; want the one the local S-CSCF stored", bs, err)
	}
	// A refusal that is the S-CSCF's decision (403) is not retried.
	callID = s.sendRegister(ue, bob, "")
	refuser.answer(refuser.request(sip.REGISTER), 403, "Forbidden")
	if res := ue.final(callID, sip.REGISTER); res.StatusCode != 403 {
		t.Errorf("REGISTER after a 403: %d, want 403 relayed", res.StatusCode)
	}
}
