package endpoint

import (
	"bufio"
	"net"
	"testing"

	"github.com/emiago/sipgo/sip"
)

func options(e *Endpoint, callID string) string {
	return ReqText([]string{
		"OPTIONS sip:peer@127.0.0.1 SIP/2.0",
		"Via: SIP/2.0/UDP " + e.Addr() + ";branch=z9hG4bK" + callID,
		"Max-Forwards: 70",
		"From: <sip:a@example.com>;tag=a" + callID,
		"To: <sip:peer@example.com>",
		"Call-ID: " + callID,
		"CSeq: 1 OPTIONS",
	}, "")
}

// TestWaitKeepsTheRest: what a wait does not match stays for later waits,
// and answers go back to the sender with the endpoint's tag.
func TestWaitKeepsTheRest(t *testing.T) {
	a, b := New(t, "127.0.0.1", "a"), New(t, "127.0.0.1", "uas")
	first, second := a.NextCallID("c"), a.NextCallID("c")
	if first == second {
		t.Fatalf("NextCallID repeated %q", first)
	}
	a.Send(b.Addr(), options(a, first))
	a.Send(b.Addr(), options(a, second))
	got := b.Expect(sip.OPTIONS, second)
	if got.From != a.Addr() || got.TCP {
		t.Errorf("second came from %s (TCP %v), want %s over UDP", got.From, got.TCP, a.Addr())
	}
	res := b.Answer(got, 200, "OK", "X-Test: yes")
	if tag, _ := res.To().Params.Get("tag"); tag == "" {
		t.Error("answer has no To tag")
	}
	if r := a.Response(second, sip.OPTIONS, 200).Res(); r.GetHeader("X-Test") == nil {
		t.Error("answer lost its extra header")
	}
	rest := b.Drain()
	if len(rest) != 1 || rest[0].Req().CallID().Value() != first {
		t.Fatalf("backlog %v, want only the first OPTIONS", rest)
	}
}

// TestTCPFraming: messages on one TCP connection, after keep-alives, are
// split by Content-Length, and answers go back on the connection.
func TestTCPFraming(t *testing.T) {
	b := New(t, "127.0.0.1", "uas")
	b.ListenTCP()
	c, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := ReqText([]string{
		"MESSAGE sip:peer@127.0.0.1 SIP/2.0",
		"Via: SIP/2.0/TCP " + c.LocalAddr().String() + ";branch=z9hG4bKm1",
		"Max-Forwards: 70",
		"From: <sip:a@example.com>;tag=m1",
		"To: <sip:peer@example.com>",
		"Call-ID: m1",
		"CSeq: 1 MESSAGE",
		"Content-Type: text/plain",
	}, "hello")
	if _, err := c.Write([]byte("\r\n\r\n" + msg + msg)); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		in := b.Expect(sip.MESSAGE, "m1")
		if !in.TCP || string(in.Req().Body()) != "hello" {
			t.Fatalf("got TCP %v body %q, want hello over TCP", in.TCP, in.Req().Body())
		}
		b.Answer(in, 200, "OK")
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if line != "SIP/2.0 200 OK\r\n" {
		t.Errorf("answer over TCP starts %q, want a 200", line)
	}
}
