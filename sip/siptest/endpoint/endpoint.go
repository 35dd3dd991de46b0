// Package endpoint is a raw SIP endpoint for the SIP packages' tests: a
// UDP socket (and, when asked, a TCP listener on the same port) that sends
// hand-written messages and waits for the ones it is sent, keeping those it
// was not asked for. It does not import sip/proxy, so that proxy's own
// tests can use it.
package endpoint

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// HangGuard bounds every wait for a message: a test that reaches it has
// failed (the message never came), it does not measure anything.
const HangGuard = 10 * time.Second

// RemoteIP is where test endpoints live: a loopback address a node on
// 127.0.0.1 does not count as its own, so that URIs naming them are not
// local.
const RemoteIP = "127.0.0.2"

// SDP is the audio offer test INVITEs carry.
const SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"

// Rx is one message an endpoint received.
type Rx struct {
	Msg  sip.Message
	From string // the sender's address
	Raw  string // the message as it arrived
	TCP  bool   // it came over TCP
}

// Req is the message as a request, or nil.
func (r Rx) Req() *sip.Request { q, _ := r.Msg.(*sip.Request); return q }

// Res is the message as a response, or nil.
func (r Rx) Res() *sip.Response { s, _ := r.Msg.(*sip.Response); return s }

// Endpoint is a raw SIP endpoint (a UE, a UAS, a peer proxy or a server
// outside the node) reporting failures to its test.
type Endpoint struct {
	t testing.TB
	*state
}

type state struct {
	conn *net.UDPConn
	user string
	in   chan Rx

	mu      sync.Mutex
	backlog []Rx
	tcp     map[string]net.Conn // by remote address, for answering over TCP
	seq     int
}

// New listens on ip over UDP until the test ends. user is the user part of
// the Contact the endpoint puts in its answers, and the prefix of its To
// tags.
func New(t testing.TB, ip, user string) *Endpoint {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	e := &Endpoint{t: t, state: &state{conn: conn, user: user, in: make(chan Rx, 256), tcp: map[string]net.Conn{}}}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			raw := string(buf[:n])
			m, err := sip.ParseMessage([]byte(raw))
			if err != nil {
				continue
			}
			e.in <- Rx{Msg: m, From: from.String(), Raw: raw}
		}
	}()
	return e
}

// On is the endpoint reporting failures to t (a subtest).
func (e *Endpoint) On(t testing.TB) *Endpoint { return &Endpoint{t: t, state: e.state} }

// T is the test the endpoint reports failures to.
func (e *Endpoint) T() testing.TB { return e.t }

// ListenTCP makes the endpoint accept SIP over TCP on its UDP port too.
func (e *Endpoint) ListenTCP() {
	e.t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: e.conn.LocalAddr().(*net.UDPAddr).IP, Port: e.Port()})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ln.Close()
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, c := range e.tcp {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.mu.Lock()
			e.tcp[c.RemoteAddr().String()] = c
			e.mu.Unlock()
			go e.readStream(c)
		}
	}()
}

func (e *Endpoint) readStream(c net.Conn) {
	br := bufio.NewReader(c)
	for {
		var head strings.Builder
		clen := 0
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			head.WriteString(line)
			l := strings.TrimSpace(line)
			if l == "" {
				if head.Len() <= 2 {
					head.Reset() // keep-alive CRLF
					continue
				}
				break
			}
			if k, v, ok := strings.Cut(l, ":"); ok && (strings.EqualFold(strings.TrimSpace(k), "Content-Length") || strings.TrimSpace(k) == "l") {
				clen, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
		body := make([]byte, clen)
		if _, err := io.ReadFull(br, body); err != nil {
			return
		}
		raw := head.String() + string(body)
		m, err := sip.ParseMessage([]byte(raw))
		if err != nil {
			continue
		}
		e.in <- Rx{Msg: m, From: c.RemoteAddr().String(), Raw: raw, TCP: true}
	}
}

// Port is the endpoint's UDP (and TCP) port.
func (e *Endpoint) Port() int { return e.conn.LocalAddr().(*net.UDPAddr).Port }

// Addr is the endpoint's ip:port.
func (e *Endpoint) Addr() string { return e.conn.LocalAddr().String() }

// URI is a SIP URI naming this endpoint, with user when it is not empty.
func (e *Endpoint) URI(user string) string {
	if user == "" {
		return "sip:" + e.Addr()
	}
	return fmt.Sprintf("sip:%s@%s", user, e.Addr())
}

// Send writes a message (or raw text) to addr, over the TCP connection it
// came from when there is one.
func (e *Endpoint) Send(to string, m any) {
	e.t.Helper()
	var data string
	switch v := m.(type) {
	case string:
		data = v
	case sip.Message:
		data = v.String()
	default:
		e.t.Fatalf("cannot send %T", m)
	}
	e.mu.Lock()
	c := e.tcp[to]
	e.mu.Unlock()
	if c != nil {
		if _, err := c.Write([]byte(data)); err != nil {
			e.t.Fatal(err)
		}
		return
	}
	ua, err := net.ResolveUDPAddr("udp", to)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.conn.WriteToUDP([]byte(data), ua); err != nil {
		e.t.Fatal(err)
	}
}

// Wait returns the first message, from the backlog or the wire, that
// matches pred; messages that do not match are kept for later waits.
func (e *Endpoint) Wait(what string, pred func(Rx) bool) Rx {
	e.t.Helper()
	e.mu.Lock()
	for i, r := range e.backlog {
		if pred(r) {
			e.backlog = append(e.backlog[:i:i], e.backlog[i+1:]...)
			e.mu.Unlock()
			return r
		}
	}
	e.mu.Unlock()
	deadline := time.NewTimer(HangGuard)
	defer deadline.Stop()
	for {
		select {
		case r := <-e.in:
			if pred(r) {
				return r
			}
			e.mu.Lock()
			e.backlog = append(e.backlog, r)
			e.mu.Unlock()
		case <-deadline.C:
			e.t.Fatalf("%s: never received %s", e.Addr(), what)
			return Rx{}
		}
	}
}

// Drain returns what has arrived and not been waited for.
func (e *Endpoint) Drain() []Rx {
	for {
		select {
		case r := <-e.in:
			e.mu.Lock()
			e.backlog = append(e.backlog, r)
			e.mu.Unlock()
			continue
		default:
		}
		break
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.backlog
	e.backlog = nil
	return out
}

// Request waits for a request of method.
func (e *Endpoint) Request(method sip.RequestMethod) Rx {
	e.t.Helper()
	return e.Wait(string(method), func(r Rx) bool { q := r.Req(); return q != nil && q.Method == method })
}

// Expect waits for the request of method in callID.
func (e *Endpoint) Expect(method sip.RequestMethod, callID string) Rx {
	e.t.Helper()
	return e.Wait(string(method)+" "+callID, func(r Rx) bool {
		q := r.Req()
		return q != nil && q.Method == method && q.CallID().Value() == callID
	})
}

// Response waits for a response to callID with the given status (0: any
// final) and CSeq method.
func (e *Endpoint) Response(callID string, method sip.RequestMethod, code int) Rx {
	e.t.Helper()
	return e.Wait(fmt.Sprintf("%d to %s %s", code, method, callID), func(r Rx) bool {
		s := r.Res()
		if s == nil || s.CallID().Value() != callID || s.CSeq().MethodName != method {
			return false
		}
		if code == 0 {
			return s.StatusCode >= 200
		}
		return s.StatusCode == code
	})
}

// Final waits for the final response to callID's method.
func (e *Endpoint) Final(callID string, method sip.RequestMethod) *sip.Response {
	e.t.Helper()
	return e.Response(callID, method, 0).Res()
}

// Answer sends a response to a received request back where it came from,
// with extra header lines.
func (e *Endpoint) Answer(r Rx, code int, reason string, hdrs ...string) *sip.Response {
	e.t.Helper()
	req := r.Req()
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	if to := res.To(); code > 100 && to != nil {
		if v, ok := to.Params.Get("tag"); !ok || v == "" {
			to.Params.Add("tag", e.user+strconv.Itoa(e.Port()))
		}
	}
	if req.IsInvite() && code >= 180 && code < 300 {
		res.AppendHeader(sip.NewHeader("Contact", "<"+e.URI(e.user)+">"))
	}
	for _, h := range hdrs {
		k, v, _ := strings.Cut(h, ":")
		res.AppendHeader(sip.NewHeader(k, strings.TrimSpace(v)))
	}
	e.Send(r.From, res)
	return res
}

// AckFailure acknowledges, straight to the address to, a non-2xx final
// response to an INVITE the endpoint sent (RFC 3261 §17.1.1.3).
func (e *Endpoint) AckFailure(inv string, res *sip.Response, to string) {
	e.t.Helper()
	m := ParseReq(e.t, inv)
	ack := sip.NewRequest(sip.ACK, m.Recipient)
	ack.AppendHeader(m.Via().Clone())
	ack.AppendHeader(sip.HeaderClone(m.From()))
	ack.AppendHeader(sip.HeaderClone(res.To()))
	ack.AppendHeader(sip.HeaderClone(m.CallID()))
	ack.AppendHeader(&sip.CSeqHeader{SeqNo: m.CSeq().SeqNo, MethodName: sip.ACK})
	mf := sip.MaxForwardsHeader(70)
	ack.AppendHeader(&mf)
	cl := sip.ContentLengthHeader(0)
	ack.AppendHeader(&cl)
	e.Send(to, ack)
}

// NextCallID is a Call-ID unique to the endpoint, starting with prefix.
func (e *Endpoint) NextCallID(prefix string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seq++
	return fmt.Sprintf("%s-%d-%d", prefix, e.Port(), e.seq)
}

// ReqText builds a request from its start line and headers (CRLF joined),
// with Content-Length set for body.
func ReqText(lines []string, body string) string {
	return strings.Join(lines, "\r\n") + fmt.Sprintf("\r\nContent-Length: %d\r\n\r\n", len(body)) + body
}

// ParseReq parses a request the test wrote, failing the test if it does
// not parse.
func ParseReq(t testing.TB, text string) *sip.Request {
	t.Helper()
	m, err := sip.ParseMessage([]byte(text))
	if err != nil {
		t.Fatalf("test message does not parse: %v\n%s", err, text)
	}
	req, ok := m.(*sip.Request)
	if !ok {
		t.Fatalf("test message is not a request:\n%s", text)
	}
	return req
}

// HeaderValues lists the values of every header called name, in order.
func HeaderValues(m interface{ GetHeaders(string) []sip.Header }, name string) []string {
	var out []string
	for _, h := range m.GetHeaders(name) {
		out = append(out, h.Value())
	}
	return out
}
