package pcscf_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"stillwater/sip/proxy"
	"stillwater/sip/siptest"
	"stillwater/sip/siptest/endpoint"
)

// flowUser is the flow token of the Path the P-CSCF put on a REGISTER.
func flowUser(t *testing.T, path string) string {
	t.Helper()
	var u sip.Uri
	if err := sip.ParseUri(strings.Trim(path, "<> "), &u); err != nil {
		t.Fatalf("Path %q: %v", path, err)
	}
	return u.User
}

func TestRegisterAddsPath(t *testing.T) {
	s := siptest.New(t, siptest.Options{})
	ue := siptest.NewUE(t)
	res := s.MustRegister(ue, siptest.Alice, ";+sip.instance=\"<urn:uuid:00000000-0000-0000-0000-000000000001>\";reg-id=1",
		"Supported: path, outbound", "P-Asserted-Identity: <sip:6505550011@example.com>")
	paths := endpoint.HeaderValues(res, "Path")
	if len(paths) != 1 {
		t.Fatalf("200 OK Path = %q, want the P-CSCF's one", paths)
	}
	want := fmt.Sprintf("@%s:%d;transport=tcp;lr;ob>", siptest.EdgeHost, siptest.EdgePort)
	if !strings.HasSuffix(paths[0], want) {
		t.Errorf("Path %q, want sip:TOKEN%s", paths[0], want)
	}
	tok := flowUser(t, paths[0])
	if tr, port := proxy.FlowListener(tok); tr != "UDP" || port != s.UDP {
		t.Errorf("flow token names %s port %d, want UDP %d", tr, port, s.UDP)
	}
	bs, err := s.Reg.Lookup(s.Ctx, siptest.Alice)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 1 || len(bs[0].Path) != 1 || flowUser(t, bs[0].Path[0]) != tok {
		t.Fatalf("stored bindings %+v, want one behind the P-CSCF's Path", bs)
	}
	// The untrusted P-Asserted-Identity did not make bob's registration.
	if _, err := s.Reg.Lookup(s.Ctx, siptest.Bob); err == nil {
		t.Error("bob registered through alice's forged P-Asserted-Identity")
	}
	sr := endpoint.HeaderValues(res, "Service-Route")
	if len(sr) != 1 || !strings.Contains(sr[0], "scscf.test") || !strings.Contains(sr[0], "orig") {
		t.Errorf("Service-Route %q", sr)
	}
}

// TestOriginating checks what the P-CSCF does to a registered UE's
// INVITE as an off-net callee receives it.
func TestOriginating(t *testing.T) {
	s := siptest.New(t, siptest.Options{})
	ue := siptest.NewUE(t)
	s.MustRegister(ue, siptest.Alice, "")
	callee := siptest.NewUE(t)
	cases := []struct {
		name   string
		extra  []string
		wantID string
	}{
		{name: "asserts the registered identity", wantID: siptest.Alice},
		{name: "strips an untrusted P-Asserted-Identity", extra: []string{"P-Asserted-Identity: <sip:6505550011@example.com>"}, wantID: siptest.Alice},
		{name: "honours a preferred associated identity", extra: []string{"P-Preferred-Identity: <sip:6505550002@example.com>"}, wantID: siptest.Alice2},
		{name: "ignores a preferred foreign identity", extra: []string{"P-Preferred-Identity: <sip:6505550011@example.com>"}, wantID: siptest.Alice},
		// Whatever Route the UE puts beyond the edge is replaced by its
		// Service-Route: the request still crosses the S-CSCF.
		{name: "enforces the Service-Route", extra: []string{"Route: <sip:evil.example.net;lr>"}, wantID: siptest.Alice},
		{name: "strips network-only headers", extra: []string{"P-Served-User: <sip:6505550011@example.com>;sescase=term;regstate=reg",
			"P-Charging-Vector: icid-value=forged", "P-Charging-Function-Addresses: ccf=evil.example.net"}, wantID: siptest.Alice},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ue, callee := ue.On(t), callee.On(t)
			callID, inv := s.Invite(ue, siptest.Alice, callee.URI("carol"), tc.extra...)
			in := callee.Request(sip.INVITE)
			req := in.Req()
			if pai := endpoint.HeaderValues(req, "P-Asserted-Identity"); len(pai) != 1 || pai[0] != "<"+tc.wantID+">" {
				t.Errorf("P-Asserted-Identity %q, want <%s>", pai, tc.wantID)
			}
			if req.GetHeader("P-Preferred-Identity") != nil {
				t.Error("P-Preferred-Identity passed on")
			}
			if se := req.GetHeader("Session-Expires"); se == nil {
				t.Error("no Session-Expires: the request did not cross the S-CSCF")
			}
			if psu := req.GetHeader("P-Served-User"); psu != nil {
				t.Errorf("P-Served-User %v left the home network", psu)
			}
			if req.Route() != nil {
				t.Errorf("Route left: %q", endpoint.HeaderValues(req, "Route"))
			}
			if pcf := req.GetHeader("P-Charging-Function-Addresses"); pcf != nil && strings.Contains(pcf.Value(), "evil") {
				t.Errorf("P-Charging-Function-Addresses %v passed on from the UE", pcf)
			}
			if pcv := req.GetHeader("P-Charging-Vector"); pcv == nil || !strings.Contains(pcv.Value(), "icid-value=") || strings.Contains(pcv.Value(), "forged") {
				t.Errorf("P-Charging-Vector %v", pcv)
			}
			// Record-Route: the S-CSCF's, then the edge's core and UE sides.
			rr := endpoint.HeaderValues(req, "Record-Route")
			if len(rr) != 3 {
				t.Fatalf("Record-Route %q, want 3 entries", rr)
			}
			if !strings.Contains(rr[0], "scscf.test") {
				t.Errorf("Record-Route[0] %q, want the S-CSCF", rr[0])
			}
			if want := fmt.Sprintf("<sip:%s:%d;transport=tcp;lr>", siptest.EdgeHost, siptest.EdgePort); rr[1] != want {
				t.Errorf("Record-Route[1] %q, want %q", rr[1], want)
			}
			if !strings.HasSuffix(rr[2], fmt.Sprintf("@127.0.0.1:%d;lr>", s.UDP)) {
				t.Errorf("Record-Route[2] %q, want the UE side with the flow token", rr[2])
			}
			callee.Answer(in, 486, "Busy Here")
			if res := ue.Final(callID, sip.INVITE); res.StatusCode != 486 {
				t.Errorf("caller got %d, want 486", res.StatusCode)
			} else {
				s.AckFailure(ue, inv, res)
			}
		})
	}
}

func TestUnregisteredFlowForbidden(t *testing.T) {
	s := siptest.New(t, siptest.Options{})
	registered, stranger := siptest.NewUE(t), siptest.NewUE(t)
	s.MustRegister(registered, siptest.Alice, "")
	callee := siptest.NewUE(t)
	cases := []struct {
		name string
		ue   *endpoint.Endpoint
		from string
	}{
		// Another flow claiming alice's identity is not hers.
		{name: "unregistered flow", ue: stranger, from: siptest.Alice},
		// Alice's flow does not carry identities it did not register.
		{name: "foreign identity on a registered flow", ue: registered, from: siptest.Bob},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ue := tc.ue.On(t)
			callID, inv := s.Invite(ue, tc.from, callee.URI("carol"))
			res := ue.Final(callID, sip.INVITE)
			if res.StatusCode != 403 {
				t.Fatalf("got %d %s, want 403", res.StatusCode, res.Reason)
			}
			s.AckFailure(ue, inv, res)
		})
	}
	for _, m := range callee.Drain() {
		if q := m.Req(); q != nil {
			t.Errorf("callee was sent %s", q.Method)
		}
	}
}

// TestDialogThroughEdge: a call between two UEs crosses the edge on both
// sides, and the callee's BYE follows the recorded route back to the
// caller's flow.
func TestDialogThroughEdge(t *testing.T) {
	s := siptest.New(t, siptest.Options{})
	a, b := siptest.NewUE(t), siptest.NewUE(t)
	s.MustRegister(a, siptest.Alice, "")
	regB := s.MustRegister(b, siptest.Bob, "")
	tokB := flowUser(t, endpoint.HeaderValues(regB, "Path")[0])

	callID, _ := s.Invite(a, siptest.Alice, siptest.Bob)
	in := b.Request(sip.INVITE)
	req := in.Req()
	rr := endpoint.HeaderValues(req, "Record-Route")
	if len(rr) < 4 {
		t.Fatalf("Record-Route %q", rr)
	}
	// Terminating edge on top: UE side (with the callee's flow) first.
	if want := fmt.Sprintf("<sip:%s@127.0.0.1:%d;lr>", tokB, s.UDP); rr[0] != want {
		t.Errorf("Record-Route[0] %q, want %q", rr[0], want)
	}
	if want := fmt.Sprintf("<sip:%s:%d;transport=tcp;lr>", siptest.EdgeHost, siptest.EdgePort); rr[1] != want {
		t.Errorf("Record-Route[1] %q, want %q", rr[1], want)
	}
	if last := rr[len(rr)-1]; !strings.HasSuffix(last, fmt.Sprintf("@127.0.0.1:%d;lr>", s.UDP)) || last == rr[0] {
		t.Errorf("last Record-Route %q, want the caller's flow", last)
	}
	if req.GetHeader("P-Charging-Function-Addresses") != nil || req.GetHeader("P-Charging-Vector") != nil {
		t.Error("charging headers leaked to the UE")
	}
	if req.Recipient.String() != b.URI("ue") {
		t.Errorf("Request-URI %s, want the callee's Contact %s", req.Recipient.String(), b.URI("ue"))
	}
	b.Answer(in, 180, "Ringing")
	ok := b.Answer(in, 200, "OK")
	res := a.Final(callID, sip.INVITE)
	if res.StatusCode != 200 {
		t.Fatalf("caller got %d", res.StatusCode)
	}
	if got := endpoint.HeaderValues(res, "Record-Route"); strings.Join(got, ",") != strings.Join(rr, ",") {
		t.Errorf("200 Record-Route %q, want %q", got, rr)
	}

	// The callee's route set is the Record-Route in order (RFC 3261
	// §12.1.1); every entry names this node, the last with alice's flow.
	lines := []string{
		"BYE " + a.URI("ue") + " SIP/2.0",
		"Via: SIP/2.0/UDP " + b.Addr() + ";branch=z9hG4bKbye" + callID + ";rport",
		"Max-Forwards: 70",
	}
	for _, r := range rr {
		lines = append(lines, "Route: "+r)
	}
	lines = append(lines,
		"From: "+ok.To().Value(),
		"To: "+res.From().Value(),
		"Call-ID: "+callID,
		"CSeq: 1 BYE",
	)
	b.Send(s.UDPAddr(), endpoint.ReqText(lines, ""))
	bye := a.Request(sip.BYE)
	if bye.Req().Route() != nil {
		t.Errorf("BYE reached the caller with Route %q", endpoint.HeaderValues(bye.Req(), "Route"))
	}
	a.Answer(bye, 200, "OK")
	if r := b.Final(callID, sip.BYE); r.StatusCode != 200 {
		t.Errorf("BYE answered %d", r.StatusCode)
	}
}

// TestForgedIntegrityProtected: a UE cannot skip authentication by claiming
// in its Authorization header that the P-CSCF protected the REGISTER
// (TS 24.229 integrity-protected): the edge removes the claim.
func TestForgedIntegrityProtected(t *testing.T) {
	s := siptest.New(t, siptest.Options{Auth: true})
	for _, claim := range []string{"auth-done", "tls-yes", "ip-assoc-yes", "yes"} {
		t.Run(claim, func(t *testing.T) {
			ue := siptest.NewUE(t)
			res := s.Register(ue, siptest.Alice, "",
				`Authorization: Digest username="6505550001@example.com", realm="example.com", nonce="", uri="sip:example.com", response="", integrity-protected="`+claim+`"`)
			if res.StatusCode != 401 {
				t.Fatalf("REGISTER claiming integrity-protected=%s: %d %s, want a 401 challenge", claim, res.StatusCode, res.Reason)
			}
		})
	}
}
