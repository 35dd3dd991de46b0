package proxy

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"stillwater/sip/siptest/endpoint"
)

// ack2xx acknowledges a 2xx through the core (its Request-URI is the
// UAS's Contact).
func ack2xx(t *testing.T, caller *endpoint.Endpoint, r *rig, inv string, res *sip.Response) {
	t.Helper()
	m := endpoint.ParseReq(t, inv)
	contact := res.Contact()
	if contact == nil {
		t.Fatal("2xx without Contact")
	}
	ack := sip.NewRequest(sip.ACK, contact.Address)
	v := m.Via().Clone()
	v.Params.Add("branch", "z9hG4bKack"+m.CallID().Value())
	ack.AppendHeader(v)
	ack.AppendHeader(sip.HeaderClone(m.From()))
	ack.AppendHeader(sip.HeaderClone(res.To()))
	ack.AppendHeader(sip.HeaderClone(m.CallID()))
	ack.AppendHeader(&sip.CSeqHeader{SeqNo: m.CSeq().SeqNo, MethodName: sip.ACK})
	mf := sip.MaxForwardsHeader(70)
	ack.AppendHeader(&mf)
	cl := sip.ContentLengthHeader(0)
	ack.AppendHeader(&cl)
	caller.Send(r.udpAddr(), ack)
}

// TestForkCancelsLoser forks an INVITE to two UASes: the one that answers
// wins, the one still ringing is cancelled and answers 487, and the caller
// sees the ringing and exactly one 200.
func TestForkCancelsLoser(t *testing.T) {
	uas1, uas2 := endpoint.New(t, endpoint.RemoteIP, "uas"), endpoint.New(t, endpoint.RemoteIP, "uas")
	r := newRig(t, Config{}, "fwd", map[string]Service{"fwd": forwardTo(t, uas1.URI("one"), uas2.URI("two"))})
	caller := endpoint.New(t, endpoint.RemoteIP, "uas")
	inv := invite(caller, "fork1", "sip:bob@example.com")
	caller.Send(r.udpAddr(), inv)

	in1, in2 := uas1.Request(sip.INVITE), uas2.Request(sip.INVITE)
	for _, in := range []endpoint.Rx{in1, in2} {
		if n := len(in.Req().GetHeaders("Via")); n != 2 {
			t.Errorf("branch has %d Vias, want 2", n)
		}
	}
	if b1, b2 := in1.Req().Via().Params, in2.Req().Via().Params; b1.String() == b2.String() {
		t.Errorf("branches share Via %s", b1)
	}
	uas2.Answer(in2, 180, "Ringing")
	caller.Response("fork1", sip.INVITE, 180)
	uas1.Answer(in1, 180, "Ringing")
	ok := uas1.Answer(in1, 200, "OK")

	cancel := uas2.Request(sip.CANCEL)
	if cancel.Req().Via().Value() != in2.Req().Via().Value() {
		t.Errorf("CANCEL Via %q, want the INVITE's %q", cancel.Req().Via().Value(), in2.Req().Via().Value())
	}
	uas2.Answer(cancel, 200, "OK")
	uas2.Answer(in2, 487, "Request Terminated")
	uas2.Request(sip.ACK) // the core acknowledges the 487 hop by hop

	got := caller.Response("fork1", sip.INVITE, 200).Res()
	if tag, _ := got.To().Params.Get("tag"); tag != mustTag(ok) {
		t.Errorf("200 from To tag %q, want the winner's %q", tag, mustTag(ok))
	}
	ack2xx(t, caller, r, inv, got)
	if a := uas1.Request(sip.ACK).Req(); a.Recipient.User != "uas" {
		t.Errorf("ACK to %s, want the winner's Contact", a.Recipient.String())
	}
	// Once the loser's 487 has been absorbed, the caller has had no other
	// final response.
	caller.Send(r.udpAddr(), simple(caller, "OPTIONS", "fork1poll", fmt.Sprintf("sip:127.0.0.1:%d", r.udp)))
	caller.Response("fork1poll", sip.OPTIONS, 200)
	for _, m := range caller.Drain() {
		if s := m.Res(); s != nil && s.CSeq().MethodName == sip.INVITE && s.StatusCode >= 200 {
			t.Errorf("caller got another final response %d", s.StatusCode)
		}
	}
}

// TestForkRelaysEvery2xx: when both branches answer 200 before the CANCEL
// lands, the caller gets both (RFC 3261 §16.7 step 5), although the first
// 2xx ended the server transaction (sipgo still sends on an ended one).
func TestForkRelaysEvery2xx(t *testing.T) {
	uas1, uas2 := endpoint.New(t, endpoint.RemoteIP, "uas"), endpoint.New(t, endpoint.RemoteIP, "uas")
	r := newRig(t, Config{}, "fwd", map[string]Service{"fwd": forwardTo(t, uas1.URI("one"), uas2.URI("two"))})
	caller := endpoint.New(t, endpoint.RemoteIP, "uas")
	caller.Send(r.udpAddr(), invite(caller, "fork2xx", "sip:bob@example.com"))
	in1, in2 := uas1.Request(sip.INVITE), uas2.Request(sip.INVITE)
	ok1 := uas1.Answer(in1, 200, "OK")
	first := caller.Response("fork2xx", sip.INVITE, 200).Res()
	ok2 := uas2.Answer(in2, 200, "OK")
	second := caller.Wait("the second 200", func(m endpoint.Rx) bool {
		res := m.Res()
		return res != nil && res.StatusCode == 200 && res.CallID().Value() == "fork2xx" && mustTag(res) == mustTag(ok2)
	}).Res()
	if mustTag(first) != mustTag(ok1) {
		t.Errorf("first 200 To tag %q, want %q", mustTag(first), mustTag(ok1))
	}
	if n := len(second.GetHeaders("Via")); n != 1 {
		t.Errorf("second 200 has %d Vias, want the caller's only", n)
	}
}

func mustTag(res *sip.Response) string {
	v, _ := res.To().Params.Get("tag")
	return v
}

func TestBetter(t *testing.T) {
	cases := []struct {
		codes []int
		want  int
	}{
		{[]int{486, 404, 503}, 486},
		{[]int{503, 404}, 404},
		{[]int{408, 480, 404}, 404},
		{[]int{500, 404}, 404},
		{[]int{503, 408, 500}, 408},
		{[]int{404, 401}, 401},
		{[]int{486, 407}, 407},
		{[]int{486, 603, 302}, 603},
		{[]int{302, 404}, 302},
		{[]int{600, 603}, 600},
		{[]int{487, 408}, 487},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.codes), func(t *testing.T) {
			var best *sip.Response
			for _, c := range tc.codes {
				res := sip.NewResponse(c, "x")
				if better(res, best) {
					best = res
				}
			}
			if best.StatusCode != tc.want {
				t.Errorf("best of %v = %d, want %d", tc.codes, best.StatusCode, tc.want)
			}
		})
	}
}

// TestBestResponse forks to UASes that all fail and checks which answer
// the caller gets (RFC 3261 §16.7 step 6).
func TestBestResponse(t *testing.T) {
	cases := []struct {
		name  string
		codes []int
		want  int
	}{
		{name: "busy beats not found and unavailable", codes: []int{486, 404, 503}, want: 486},
		{name: "not found beats unavailable", codes: []int{503, 404}, want: 404},
		{name: "6xx wins", codes: []int{404, 603, 486}, want: 603},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var uases []*endpoint.Endpoint
			var uris []string
			for range tc.codes {
				u := endpoint.New(t, endpoint.RemoteIP, "uas")
				uases = append(uases, u)
				uris = append(uris, u.URI("x"))
			}
			r := newRig(t, Config{}, "fwd", map[string]Service{"fwd": forwardTo(t, uris...)})
			caller := endpoint.New(t, endpoint.RemoteIP, "uas")
			callID := fmt.Sprintf("best%d", i)
			inv := invite(caller, callID, "sip:bob@example.com")
			caller.Send(r.udpAddr(), inv)
			for j, u := range uases {
				in := u.Request(sip.INVITE)
				u.Answer(in, tc.codes[j], "Failed")
			}
			got := caller.Response(callID, sip.INVITE, 0).Res()
			if got.StatusCode != tc.want {
				t.Fatalf("caller got %d, want %d", got.StatusCode, tc.want)
			}
			if n := len(got.GetHeaders("Via")); n != 1 {
				t.Errorf("relayed response has %d Vias, want 1", n)
			}
			caller.AckFailure(inv, got, r.udpAddr())
		})
	}
}

// TestOnFinalRetry: when every branch fails, OnFinal may forward again.
func TestOnFinalRetry(t *testing.T) {
	first, second := endpoint.New(t, endpoint.RemoteIP, "uas"), endpoint.New(t, endpoint.RemoteIP, "uas")
	var mu sync.Mutex
	var saw []int
	svc := ServiceFunc(func(tx *Txn) {
		u1, u2 := mustURI(t, first.URI("a")), mustURI(t, second.URI("b"))
		tx.Forward(Fork{
			Targets: []Target{{URI: &u1}},
			OnFinal: func(best *sip.Response) []Target {
				mu.Lock()
				defer mu.Unlock()
				saw = append(saw, best.StatusCode)
				if len(saw) > 1 {
					return nil
				}
				return []Target{{URI: &u2}}
			},
		})
	})
	r := newRig(t, Config{}, "fwd", map[string]Service{"fwd": svc})
	caller := endpoint.New(t, endpoint.RemoteIP, "uas")
	caller.Send(r.udpAddr(), simple(caller, "MESSAGE", "retry1", "sip:bob@example.com"))
	first.Answer(first.Request(sip.MESSAGE), 503, "Service Unavailable")
	in := second.Request(sip.MESSAGE)
	if in.Req().Recipient.User != "b" {
		t.Errorf("retry went to %s", in.Req().Recipient.String())
	}
	second.Answer(in, 202, "Accepted")
	got := caller.Response("retry1", sip.MESSAGE, 0).Res()
	if got.StatusCode != 202 {
		t.Fatalf("caller got %d, want 202", got.StatusCode)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(saw) != 1 || saw[0] != 503 {
		t.Errorf("OnFinal saw %v, want [503]", saw)
	}
}

// TestForkTimeout: a branch still ringing at Fork.Timeout is cancelled and
// counts as 408.
func TestForkTimeout(t *testing.T) {
	uas := endpoint.New(t, endpoint.RemoteIP, "uas")
	svc := ServiceFunc(func(tx *Txn) {
		u := mustURI(t, uas.URI("slow"))
		tx.Forward(Fork{Targets: []Target{{URI: &u}}, Timeout: 20 * time.Millisecond})
	})
	r := newRig(t, Config{}, "fwd", map[string]Service{"fwd": svc})
	caller := endpoint.New(t, endpoint.RemoteIP, "uas")
	inv := invite(caller, "timeout1", "sip:bob@example.com")
	caller.Send(r.udpAddr(), inv)
	in := uas.Request(sip.INVITE)
	uas.Answer(in, 180, "Ringing")
	cancel := uas.Request(sip.CANCEL)
	uas.Answer(cancel, 200, "OK")
	uas.Answer(in, 487, "Request Terminated")
	got := caller.Response("timeout1", sip.INVITE, 0).Res()
	if got.StatusCode != 408 {
		t.Fatalf("caller got %d, want 408", got.StatusCode)
	}
	caller.AckFailure(inv, got, r.udpAddr())
}

// TestUpstreamCancel: the caller's CANCEL cancels the branches and the
// caller gets 487.
func TestUpstreamCancel(t *testing.T) {
	uas1, uas2 := endpoint.New(t, endpoint.RemoteIP, "uas"), endpoint.New(t, endpoint.RemoteIP, "uas")
	r := newRig(t, Config{}, "fwd", map[string]Service{"fwd": forwardTo(t, uas1.URI("one"), uas2.URI("two"))})
	caller := endpoint.New(t, endpoint.RemoteIP, "uas")
	inv := invite(caller, "ucancel1", "sip:bob@example.com")
	caller.Send(r.udpAddr(), inv)
	in1, in2 := uas1.Request(sip.INVITE), uas2.Request(sip.INVITE)
	uas1.Answer(in1, 180, "Ringing")
	uas2.Answer(in2, 183, "Session Progress")
	caller.Response("ucancel1", sip.INVITE, 180)
	caller.Send(r.udpAddr(), cancelFor(t, inv))
	caller.Response("ucancel1", sip.CANCEL, 200)
	for _, u := range []struct {
		ep *endpoint.Endpoint
		in endpoint.Rx
	}{{uas1, in1}, {uas2, in2}} {
		c := u.ep.Request(sip.CANCEL)
		u.ep.Answer(c, 200, "OK")
		u.ep.Answer(u.in, 487, "Request Terminated")
	}
	got := caller.Response("ucancel1", sip.INVITE, 0).Res()
	if got.StatusCode != 487 {
		t.Fatalf("caller got %d, want 487", got.StatusCode)
	}
	caller.AckFailure(inv, got, r.udpAddr())
}

// TestInMemoryHop: a Route naming another local service reaches it in
// memory, with the Route popped and no Via added, and its answer comes
// back.
func TestInMemoryHop(t *testing.T) {
	uas := endpoint.New(t, endpoint.RemoteIP, "uas")
	seen := make(chan *Txn, 1)
	first := ServiceFunc(func(tx *Txn) {
		if tx.Carried() != nil {
			t.Errorf("a request from the wire carries %v", tx.Carried())
		}
		tx.Forward(Fork{Targets: []Target{{Routes: []sip.Uri{mustURI(t, "sip:second.test;lr")}, Carry: "from first"}}})
	})
	second := ServiceFunc(func(tx *Txn) {
		seen <- tx
		u := mustURI(t, uas.URI("bob"))
		tx.Forward(Fork{Targets: []Target{{URI: &u}}})
	})
	r := newRig(t, Config{Names: map[string]string{"second.test": "second"}}, "first",
		map[string]Service{"first": first, "second": second})
	caller := endpoint.New(t, endpoint.RemoteIP, "uas")
	inv := invite(caller, "mem1", "sip:bob@example.com")
	caller.Send(r.udpAddr(), inv)
	var tx *Txn
	select {
	case tx = <-seen:
	case <-time.After(endpoint.HangGuard):
		t.Fatal("second service never reached")
	}
	if tx.Route == nil || tx.Route.Host != "second.test" {
		t.Errorf("Txn.Route = %v, want sip:second.test;lr", tx.Route)
	}
	if !tx.Src.Local || tx.Src.From != "first" || !tx.Src.Trusted {
		t.Errorf("Src = %+v, want a local hop from first", tx.Src)
	}
	if c := tx.Carried(); c != "from first" {
		t.Errorf("Carried() = %v, want what first handed on", c)
	}
	in := uas.Request(sip.INVITE)
	req := in.Req()
	if req.Route() != nil {
		t.Errorf("Route left: %s", req.Route().Value())
	}
	if n := len(req.GetHeaders("Via")); n != 2 {
		t.Errorf("UAS sees %d Vias, want 2 (caller and one for the node)", n)
	}
	if mf := req.MaxForwards().Val(); mf != 68 {
		t.Errorf("Max-Forwards = %d, want 68 (one per service)", mf)
	}
	uas.Answer(in, 180, "Ringing")
	caller.Response("mem1", sip.INVITE, 180)
	ok := uas.Answer(in, 200, "OK")
	got := caller.Response("mem1", sip.INVITE, 200).Res()
	if mustTag(got) != mustTag(ok) {
		t.Errorf("200 To tag %q, want %q", mustTag(got), mustTag(ok))
	}
	if n := len(got.GetHeaders("Via")); n != 1 {
		t.Errorf("caller's 200 has %d Vias, want 1", n)
	}
	ack2xx(t, caller, r, inv, got)
	uas.Request(sip.ACK)
}

// TestRecordRouteAndInDialog: Fork.RecordRoute entries go on top in
// order, and a BYE along the recorded route pops the node's entries and
// reaches the flow the last popped token names.
func TestRecordRouteAndInDialog(t *testing.T) {
	callee := endpoint.New(t, endpoint.RemoteIP, "uas")
	var r *rig
	svc := ServiceFunc(func(tx *Txn) {
		u := mustURI(t, callee.URI("bob"))
		tok := tx.FlowToken()
		tx.Forward(Fork{
			Targets: []Target{{URI: &u}},
			RecordRoute: []sip.Uri{
				mustURI(t, fmt.Sprintf("sip:127.0.0.1:%d;transport=tcp;lr", r.tcp)),
				mustURI(t, fmt.Sprintf("sip:%s@127.0.0.1:%d;lr", tok, r.udp)),
			},
		})
	})
	r = newRig(t, Config{}, "edge", map[string]Service{"edge": svc})
	caller := endpoint.New(t, endpoint.RemoteIP, "uas")
	inv := invite(caller, "rr1", "sip:bob@example.com")
	caller.Send(r.udpAddr(), inv)
	in := callee.Request(sip.INVITE)
	rr := endpoint.HeaderValues(in.Req(), "Record-Route")
	tok := r.core.flowToken("UDP", r.udp, caller.Addr())
	want := []string{
		fmt.Sprintf("<sip:127.0.0.1:%d;transport=tcp;lr>", r.tcp),
		fmt.Sprintf("<sip:%s@127.0.0.1:%d;lr>", tok, r.udp),
	}
	if strings.Join(rr, ",") != strings.Join(want, ",") {
		t.Errorf("Record-Route = %q, want %q", rr, want)
	}
	ok := callee.Answer(in, 200, "OK")
	got := caller.Response("rr1", sip.INVITE, 200).Res()
	ack2xx(t, caller, r, inv, got)
	callee.Request(sip.ACK)

	// The callee hangs up along the route set it learnt (the Record-Route
	// in order). The caller's Contact is unreachable: only the flow token
	// leads back.
	bye := endpoint.ReqText([]string{
		"BYE sip:alice@192.0.2.99:5060 SIP/2.0",
		"Via: SIP/2.0/UDP " + callee.Addr() + ";branch=z9hG4bKbye1;rport",
		"Max-Forwards: 70",
		"Route: " + want[0],
		"Route: " + want[1],
		"From: " + ok.To().Value(),
		"To: " + got.From().Value(),
		"Call-ID: rr1",
		"CSeq: 1 BYE",
	}, "")
	callee.Send(r.udpAddr(), bye)
	in = caller.Request(sip.BYE)
	if in.Req().Route() != nil {
		t.Errorf("BYE still has Route %s", in.Req().Route().Value())
	}
	if in.Req().Recipient.Host != "192.0.2.99" {
		t.Errorf("BYE Request-URI %s changed", in.Req().Recipient.String())
	}
	caller.Answer(in, 200, "OK")
	if res := callee.Response("rr1", sip.BYE, 0).Res(); res.StatusCode != 200 {
		t.Errorf("BYE answered %d, want 200", res.StatusCode)
	}
}

// TestTCPSwitch: a request over 1300 bytes bound for a UDP hop goes over
// TCP when the hop listens on TCP, else falls back to UDP, and stays on
// UDP with DisableTCPSwitch.
func TestTCPSwitch(t *testing.T) {
	cases := []struct {
		name    string
		listen  bool
		disable bool
		size    int
		wantTCP bool
	}{
		{name: "large to tcp", listen: true, size: 1500, wantTCP: true},
		{name: "large without tcp falls back", size: 1500},
		{name: "large with switch disabled", listen: true, disable: true, size: 1500},
		{name: "small stays on udp", listen: true, size: 10},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			uas := endpoint.New(t, endpoint.RemoteIP, "uas")
			if tc.listen {
				uas.ListenTCP()
			}
			r := newRig(t, Config{DisableTCPSwitch: tc.disable}, "fwd", map[string]Service{"fwd": forwardTo(t, uas.URI("bob"))})
			caller := endpoint.New(t, endpoint.RemoteIP, "uas")
			callID := fmt.Sprintf("mtu%d", i)
			caller.Send(r.udpAddr(), simple(caller, "MESSAGE", callID, "sip:bob@example.com",
				"X-Padding: "+strings.Repeat("p", tc.size)))
			in := uas.Request(sip.MESSAGE)
			if in.TCP != tc.wantTCP {
				t.Errorf("arrived over TCP=%v, want %v", in.TCP, tc.wantTCP)
			}
			wantVia := "UDP"
			if tc.wantTCP {
				wantVia = "TCP"
			}
			if v := in.Req().Via(); v.Transport != wantVia {
				t.Errorf("Via transport %s, want %s", v.Transport, wantVia)
			}
			uas.Answer(in, 200, "OK")
			if res := caller.Response(callID, sip.MESSAGE, 0).Res(); res.StatusCode != 200 {
				t.Errorf("caller got %d", res.StatusCode)
			}
		})
	}
}

// TestFlowTokens: a token names the flow it was made for, and altered or
// foreign tokens are refused.
func TestFlowTokens(t *testing.T) {
	r := newRig(t, Config{FlowKey: []byte("site key one")}, "", nil)
	other := newRig(t, Config{FlowKey: []byte("site key two")}, "", nil)
	tok := r.core.flowToken("UDP", r.udp, "192.0.2.7:5062")
	tok6 := r.core.flowToken("TCP", r.tcp, "[2001:db8::7]:6000")
	tamper := func(s string) string {
		b := []byte(s)
		if b[3] == 'A' {
			b[3] = 'B'
		} else {
			b[3] = 'A'
		}
		return string(b)
	}
	cases := []struct {
		name          string
		core          *Core
		tok           string
		ok            bool
		hop           Hop
		listenerMatch bool
	}{
		{name: "round trip v4", core: r.core, tok: tok, ok: true, hop: Hop{"UDP", "192.0.2.7:5062"}, listenerMatch: true},
		{name: "round trip v6", core: r.core, tok: tok6, ok: true, hop: Hop{"TCP", "[2001:db8::7]:6000"}, listenerMatch: true},
		{name: "other site's key", core: other.core, tok: tok},
		{name: "tampered", core: r.core, tok: tamper(tok)},
		{name: "truncated", core: r.core, tok: tok[:len(tok)-2]},
		{name: "not base64", core: r.core, tok: "!!!"},
		{name: "empty", core: r.core, tok: ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, ok := tc.core.decodeFlow(tc.tok)
			if ok != tc.ok {
				t.Fatalf("decodeFlow ok=%v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			if h.Hop != tc.hop {
				t.Errorf("hop %+v, want %+v", h.Hop, tc.hop)
			}
			if (h.ln != nil) != tc.listenerMatch {
				t.Errorf("listener %v", h.ln)
			}
		})
	}
	if tr, port := FlowListener(tok); tr != "UDP" || port != r.udp {
		t.Errorf("FlowListener = %s %d, want UDP %d", tr, port, r.udp)
	}
	if tok == r.core.flowToken("UDP", r.udp, "192.0.2.7:5063") {
		t.Error("different flows share a token")
	}

	// A forged token in a Route does not redirect an in-dialog request:
	// the entry is popped but no flow is used, so the Request-URI decides.
	uas := endpoint.New(t, endpoint.RemoteIP, "uas")
	caller := endpoint.New(t, endpoint.RemoteIP, "uas")
	bye := endpoint.ReqText([]string{
		"BYE " + uas.URI("bob") + " SIP/2.0",
		"Via: SIP/2.0/UDP " + caller.Addr() + ";branch=z9hG4bKforged;rport",
		"Max-Forwards: 70",
		fmt.Sprintf("Route: <sip:%s@127.0.0.1:%d;lr>", other.core.flowToken("UDP", r.udp, caller.Addr()), r.udp),
		"From: <sip:alice@example.com>;tag=a1",
		"To: <sip:bob@example.com>;tag=b1",
		"Call-ID: forged1",
		"CSeq: 2 BYE",
	}, "")
	caller.Send(r.udpAddr(), bye)
	in := uas.Request(sip.BYE)
	uas.Answer(in, 200, "OK")
	caller.Response("forged1", sip.BYE, 200)
	for _, m := range caller.Drain() {
		if q := m.Req(); q != nil {
			t.Errorf("caller was sent %s over the forged flow", q.Method)
		}
	}
}

// TestStrayResponse: a response no transaction matches is relayed by its
// next Via.
func TestStrayResponse(t *testing.T) {
	r := newRig(t, Config{}, "", nil)
	from, to := endpoint.New(t, endpoint.RemoteIP, "uas"), endpoint.New(t, endpoint.RemoteIP, "uas")
	res := strings.Join([]string{
		"SIP/2.0 200 OK",
		fmt.Sprintf("Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKswnotransaction", r.udp),
		"Via: SIP/2.0/UDP " + to.Addr() + ";branch=z9hG4bKcaller",
		"From: <sip:alice@example.com>;tag=a1",
		"To: <sip:bob@example.com>;tag=b1",
		"Call-ID: stray1",
		"CSeq: 1 INVITE",
		"Contact: <sip:bob@192.0.2.5>",
		"Content-Length: 0",
		"", "",
	}, "\r\n")
	// The upstream has sent through this node before (its INVITE did):
	// the node's transport knows its address.
	to.Send(r.udpAddr(), simple(to, "OPTIONS", "straypoll0", fmt.Sprintf("sip:127.0.0.1:%d", r.udp)))
	to.Response("straypoll0", sip.OPTIONS, 200)
	from.Send(r.udpAddr(), res)
	got := to.Response("stray1", sip.INVITE, 200).Res()
	if vias := endpoint.HeaderValues(got, "Via"); len(vias) != 1 || !strings.Contains(vias[0], "z9hG4bKcaller") {
		t.Errorf("relayed Vias %q, want only the caller's", vias)
	}
	// One whose top Via is not this node's is dropped.
	from.Send(r.udpAddr(), strings.Replace(res, fmt.Sprintf("127.0.0.1:%d", r.udp), "192.0.2.1:5060", 1))
	to.Send(r.udpAddr(), simple(to, "OPTIONS", "straypoll", fmt.Sprintf("sip:127.0.0.1:%d", r.udp)))
	to.Response("straypoll", sip.OPTIONS, 200)
	for _, m := range to.Drain() {
		if s := m.Res(); s != nil && s.CallID().Value() == "stray1" {
			t.Error("response with a foreign top Via relayed")
		}
	}
}

var coreBranch = regexp.MustCompile(`branch=` + branchCookie + `[0-9a-f]{10}`)

// TestForwardedInviteGolden: the INVITE as the UAS receives it.
func TestForwardedInviteGolden(t *testing.T) {
	uas := endpoint.New(t, endpoint.RemoteIP, "uas")
	r := newRig(t, Config{Rand: newRand(42)}, "fwd", map[string]Service{"fwd": forwardTo(t, uas.URI("bob"))})
	caller := endpoint.New(t, endpoint.RemoteIP, "uas")
	inv := invite(caller, "golden1", "sip:bob@example.com", "Supported: timer", "Session-Expires: 1800")
	caller.Send(r.udpAddr(), inv)
	in := uas.Request(sip.INVITE)
	// The loop hash covers the Request-URI, whose port is the UAS's
	// random one; the rest of the branch comes from Config.Rand.
	raw := coreBranch.ReplaceAllString(in.Raw, "branch="+branchCookie+"LOOPHASH")
	golden(t, "forwarded-invite.golden", mask(raw, map[string]string{
		caller.Addr(): "CALLER", fmt.Sprint(caller.Port()): "CALLERPORT",
		fmt.Sprint(uas.Port()): "UASPORT", fmt.Sprint(r.udp): "COREPORT",
	}))
	uas.Answer(in, 486, "Busy Here")
	got := caller.Response("golden1", sip.INVITE, 486).Res()
	caller.AckFailure(inv, got, r.udpAddr())
}

// TestUntrustedCannotNameInnerService: a request arriving on an untrusted
// listener with a Route naming another local service is served by the
// listener's own service, not the one it named.
func TestUntrustedCannotNameInnerService(t *testing.T) {
	served := make(chan string, 2)
	svc := func(name string) Service {
		return ServiceFunc(func(tx *Txn) {
			served <- name
			tx.Reply(603, "Decline")
		})
	}
	r := newRig(t, Config{Names: map[string]string{"inner.test": "inner"}}, "edge",
		map[string]Service{"edge": svc("edge"), "inner": svc("inner")})
	caller := endpoint.New(t, endpoint.RemoteIP, "uas")
	inv := invite(caller, "inner1", "sip:bob@example.com", "Route: <sip:inner.test;lr;orig>")
	caller.Send(r.udpAddr(), inv)
	select {
	case got := <-served:
		if got != "edge" {
			t.Fatalf("request from the untrusted side served by %q, want the edge", got)
		}
	case <-time.After(endpoint.HangGuard):
		t.Fatal("no service reached")
	}
	caller.Response("inner1", sip.INVITE, 603)
}

// TestEdgeOnlyInDialog: with EdgeOnlyInDialog, an in-dialog request from
// the untrusted side that does not follow this node's Record-Route is
// refused rather than relayed.
func TestEdgeOnlyInDialog(t *testing.T) {
	r := newRig(t, Config{EdgeOnlyInDialog: true}, "edge", map[string]Service{"edge": ServiceFunc(func(tx *Txn) { tx.Reply(500, "Unexpected") })})
	ue := endpoint.New(t, endpoint.RemoteIP, "uas")
	victim := endpoint.New(t, endpoint.RemoteIP, "victim")
	bye := endpoint.ReqText([]string{
		"BYE " + victim.URI("v") + " SIP/2.0",
		"Via: SIP/2.0/UDP " + ue.Addr() + ";branch=z9hG4bKrelay1;rport",
		"Max-Forwards: 70",
		"From: <sip:alice@example.com>;tag=a1",
		"To: <sip:bob@example.com>;tag=b1",
		"Call-ID: relay1",
		"CSeq: 2 BYE",
	}, "")
	ue.Send(r.udpAddr(), bye)
	if res := ue.Final("relay1", sip.BYE); res.StatusCode != 403 {
		t.Fatalf("in-dialog request not routed through the edge: %d, want 403", res.StatusCode)
	}
}
