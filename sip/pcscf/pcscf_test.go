package pcscf_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"stillwater/sip/proxy"
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
	s := newSite(t, siteOptions{})
	ue := newEndpoint(t)
	res := s.mustRegister(ue, alice, ";+sip.instance=\"<urn:uuid:00000000-0000-0000-0000-000000000001>\";reg-id=1",
		"Supported: path, outbound", "P-Asserted-Identity: <sip:6505550011@example.com>")
	paths := headerValues(res, "Path")
	if len(paths) != 1 {
		t.Fatalf("200 OK Path = %q, want the P-CSCF's one", paths)
	}
	want := fmt.Sprintf("@%s:%d;transport=tcp;lr;ob>", edgeHost, edgePort)
	if !strings.HasSuffix(paths[0], want) {
		t.Errorf("Path %q, want sip:TOKEN%s", paths[0], want)
	}
	tok := flowUser(t, paths[0])
	if tr, port := proxy.FlowListener(tok); tr != "UDP" || port != s.udp {
		t.Errorf("flow token names %s port %d, want UDP %d", tr, port, s.udp)
	}
	bs, err := s.reg.Lookup(s.ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 1 || len(bs[0].Path) != 1 || flowUser(t, bs[0].Path[0]) != tok {
		t.Fatalf("stored bindings %+v, want one behind the P-CSCF's Path", bs)
	}
	// The untrusted P-Asserted-Identity did not make bob's registration.
	if _, err := s.reg.Lookup(s.ctx, bob); err == nil {
		t.Error("bob registered through alice's forged P-Asserted-Identity")
	}
	sr := headerValues(res, "Service-Route")
	if len(sr) != 1 || !strings.Contains(sr[0], "scscf.test") || !strings.Contains(sr[0], "orig") {
		t.Errorf("Service-Route %q", sr)
	}
}

// TestOriginating checks what the P-CSCF does to a registered UE's
// INVITE as an off-net callee receives it.
func TestOriginating(t *testing.T) {
	s := newSite(t, siteOptions{})
	ue := newEndpoint(t)
	s.mustRegister(ue, alice, "")
	callee := newEndpoint(t)
	cases := []struct {
		name   string
		extra  []string
		wantID string
	}{
		{name: "asserts the registered identity", wantID: alice},
		{name: "strips an untrusted P-Asserted-Identity", extra: []string{"P-Asserted-Identity: <sip:6505550011@example.com>"}, wantID: alice},
		{name: "honours a preferred associated identity", extra: []string{"P-Preferred-Identity: <sip:6505550002@example.com>"}, wantID: alice2},
		{name: "ignores a preferred foreign identity", extra: []string{"P-Preferred-Identity: <sip:6505550011@example.com>"}, wantID: alice},
		// Whatever Route the UE puts beyond the edge is replaced by its
		// Service-Route: the request still crosses the S-CSCF.
		{name: "enforces the Service-Route", extra: []string{"Route: <sip:evil.example.net;lr>"}, wantID: alice},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ue, callee := ue.on(t), callee.on(t)
			callID, inv := s.invite(ue, alice, callee.uri("carol"), tc.extra...)
			in := callee.request(sip.INVITE)
			req := in.req()
			if pai := headerValues(req, "P-Asserted-Identity"); len(pai) != 1 || pai[0] != "<"+tc.wantID+">" {
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
				t.Errorf("Route left: %q", headerValues(req, "Route"))
			}
			if pcv := req.GetHeader("P-Charging-Vector"); pcv == nil || !strings.Contains(pcv.Value(), "icid-value=") {
				t.Errorf("P-Charging-Vector %v", pcv)
			}
			// Record-Route: the S-CSCF's, then the edge's core and UE sides.
			rr := headerValues(req, "Record-Route")
			if len(rr) != 3 {
				t.Fatalf("Record-Route %q, want 3 entries", rr)
			}
			if !strings.Contains(rr[0], "scscf.test") {
				t.Errorf("Record-Route[0] %q, want the S-CSCF", rr[0])
			}
			if want := fmt.Sprintf("<sip:%s:%d;transport=tcp;lr>", edgeHost, edgePort); rr[1] != want {
				t.Errorf("Record-Route[1] %q, want %q", rr[1], want)
			}
			if !strings.HasSuffix(rr[2], fmt.Sprintf("@127.0.0.1:%d;lr>", s.udp)) {
				t.Errorf("Record-Route[2] %q, want the UE side with the flow token", rr[2])
			}
			callee.answer(in, 486, "Busy Here")
			if res := ue.final(callID, sip.INVITE); res.StatusCode != 486 {
				t.Errorf("caller got %d, want 486", res.StatusCode)
			} else {
				s.ackFailure(ue, inv, res)
			}
		})
	}
}

func TestUnregisteredFlowForbidden(t *testing.T) {
	s := newSite(t, siteOptions{})
	registered, stranger := newEndpoint(t), newEndpoint(t)
	s.mustRegister(registered, alice, "")
	callee := newEndpoint(t)
	cases := []struct {
		name string
		ue   *endpoint
		from string
	}{
		// Another flow claiming alice's identity is not hers.
		{name: "unregistered flow", ue: stranger, from: alice},
		// Alice's flow does not carry identities it did not register.
		{name: "foreign identity on a registered flow", ue: registered, from: bob},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ue := tc.ue.on(t)
			callID, inv := s.invite(ue, tc.from, callee.uri("carol"))
			res := ue.final(callID, sip.INVITE)
			if res.StatusCode != 403 {
				t.Fatalf("got %d %s, want 403", res.StatusCode, res.Reason)
			}
			s.ackFailure(ue, inv, res)
		})
	}
	for _, m := range callee.drain() {
		if q := m.req(); q != nil {
			t.Errorf("callee was sent %s", q.Method)
		}
	}
}

// TestDialogThroughEdge: a call between two UEs crosses the edge on both
// sides, and the callee's BYE follows the recorded route back to the
// caller's flow.
func TestDialogThroughEdge(t *testing.T) {
	s := newSite(t, siteOptions{})
	a, b := newEndpoint(t), newEndpoint(t)
	s.mustRegister(a, alice, "")
	regB := s.mustRegister(b, bob, "")
	tokB := flowUser(t, headerValues(regB, "Path")[0])

	callID, _ := s.invite(a, alice, bob)
	in := b.request(sip.INVITE)
	req := in.req()
	rr := headerValues(req, "Record-Route")
	if len(rr) < 4 {
		t.Fatalf("Record-Route %q", rr)
	}
	// Terminating edge on top: UE side (with the callee's flow) first.
	if want := fmt.Sprintf("<sip:%s@127.0.0.1:%d;lr>", tokB, s.udp); rr[0] != want {
		t.Errorf("Record-Route[0] %q, want %q", rr[0], want)
	}
	if want := fmt.Sprintf("<sip:%s:%d;transport=tcp;lr>", edgeHost, edgePort); rr[1] != want {
		t.Errorf("Record-Route[1] %q, want %q", rr[1], want)
	}
	if last := rr[len(rr)-1]; !strings.HasSuffix(last, fmt.Sprintf("@127.0.0.1:%d;lr>", s.udp)) || last == rr[0] {
		t.Errorf("last Record-Route %q, want the caller's flow", last)
	}
	if req.GetHeader("P-Charging-Function-Addresses") != nil || req.GetHeader("P-Charging-Vector") != nil {
		t.Error("charging headers leaked to the UE")
	}
	if req.Recipient.String() != b.uri("ue") {
		t.Errorf("Request-URI %s, want the callee's Contact %s", req.Recipient.String(), b.uri("ue"))
	}
	b.answer(in, 180, "Ringing")
	ok := b.answer(in, 200, "OK")
	res := a.final(callID, sip.INVITE)
	if res.StatusCode != 200 {
		t.Fatalf("caller got %d", res.StatusCode)
	}
	if got := headerValues(res, "Record-Route"); strings.Join(got, ",") != strings.Join(rr, ",") {
		t.Errorf("200 Record-Route %q, want %q", got, rr)
	}

	// The callee's route set is the Record-Route in order (RFC 3261
	// §12.1.1); every entry names this node, the last with alice's flow.
	lines := []string{
		"BYE " + a.uri("ue") + " SIP/2.0",
		"Via: SIP/2.0/UDP " + b.addr() + ";branch=z9hG4bKbye" + callID + ";rport",
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
	b.send(s.udpAddr(), reqText(lines, ""))
	bye := a.request(sip.BYE)
	if bye.req().Route() != nil {
		t.Errorf("BYE reached the caller with Route %q", headerValues(bye.req(), "Route"))
	}
	a.answer(bye, 200, "OK")
	if r := b.final(callID, sip.BYE); r.StatusCode != 200 {
		t.Errorf("BYE answered %d", r.StatusCode)
	}
}
