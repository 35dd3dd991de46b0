package icscf_test

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"stillwater/sip/siptest"
)

func TestRegisterRouting(t *testing.T) {
	s := siptest.New(t, siptest.Options{})
	cases := []struct {
		name string
		aor  string
		code int
		warn string
	}{
		{name: "unknown public identity", aor: "sip:6505558888@example.com", code: 403, warn: "unknown public identity"},
		{name: "barred public identity", aor: siptest.Alice3, code: 403, warn: "barred"},
		{name: "provisioned identity", aor: siptest.Alice, code: 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ue := siptest.NewUE(t)
			res := s.Register(ue, tc.aor, "")
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
	s := siptest.New(t, siptest.Options{})
	caller := siptest.NewUE(t)
	s.MustRegister(caller, siptest.Alice, "")
	cases := []struct {
		name   string
		callee string
		code   int
	}{
		{name: "unknown callee", callee: siptest.Nobody, code: 404},
		{name: "barred callee", callee: siptest.Alice3, code: 404},
		// Known but unregistered: the I-CSCF finds the S-CSCF, which has
		// no binding.
		{name: "unregistered callee", callee: siptest.Bob, code: 480},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			caller := caller.On(t)
			callID, inv := s.Invite(caller, siptest.Alice, tc.callee)
			res := caller.Final(callID, sip.INVITE)
			if res.StatusCode != tc.code {
				t.Fatalf("INVITE %s: %d %s, want %d", tc.callee, res.StatusCode, res.Reason, tc.code)
			}
			s.AckFailure(caller, inv, res)
		})
	}
}

// TestRetryNextSCSCF: an S-CSCF that refuses (503) or is not there is
// passed over for the next one.
func TestRetryNextSCSCF(t *testing.T) {
	refuser := siptest.NewUE(t)
	s := siptest.New(t, siptest.Options{FirstSCSCFs: []sip.Uri{siptest.MustURI(t, "sip:"+refuser.Addr())}})
	ue := siptest.NewUE(t)
	callID := s.SendRegister(ue, siptest.Alice, "")
	in := refuser.Request(sip.REGISTER)
	if in.Req().CallID().Value() != callID {
		t.Fatalf("first S-CSCF got %s", in.Req().CallID().Value())
	}
	refuser.Answer(in, 503, "Service Unavailable")
	if res := ue.Final(callID, sip.REGISTER); res.StatusCode != 200 {
		t.Fatalf("REGISTER: %d %s, want 200 from the second S-CSCF", res.StatusCode, res.Reason)
	}
	if bs, err := s.Reg.Lookup(s.Ctx, siptest.Alice); err != nil || len(bs) != 1 {
		t.Errorf("bindings %v, %v; want the one the local S-CSCF stored", bs, err)
	}
	// A refusal that is the S-CSCF's decision (403) is not retried.
	callID = s.SendRegister(ue, siptest.Bob, "")
	refuser.Answer(refuser.Request(sip.REGISTER), 403, "Forbidden")
	if res := ue.Final(callID, sip.REGISTER); res.StatusCode != 403 {
		t.Errorf("REGISTER after a 403: %d, want 403 relayed", res.StatusCode)
	}
}
