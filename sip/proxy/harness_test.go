package proxy

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

var update = flag.Bool("update", false, "rewrite golden files")

// hangGuard bounds every wait for a message: a test that reaches it has
// failed (the message never came), it does not measure anything.
const hangGuard = 10 * time.Second

// remoteIP is where test endpoints live: a loopback address the core does
// not count as its own, so that URIs naming them are not local.
const remoteIP = "127.0.0.2"

// lockedRand is a deterministic source safe for concurrent use.
type lockedRand struct {
	mu sync.Mutex
	r  *mrand.ChaCha8
}

func newRand(seed byte) *lockedRand { return &lockedRand{r: mrand.NewChaCha8([32]byte{seed})} }

func (l *lockedRand) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(p)
}

// rx is one message an endpoint received.
type rx struct {
	msg  sip.Message
	from string
	raw  string
	tcp  bool
}

func (r rx) req() *sip.Request  { q, _ := r.msg.(*sip.Request); return q }
func (r rx) res() *sip.Response { s, _ := r.msg.(*sip.Response); return s }

// endpoint is a raw SIP endpoint (UAC, UAS or a peer proxy) on UDP and,
// optionally, TCP on the same port.
type endpoint struct {
	t *testing.T
	*epState
}

type epState struct {
	conn *net.UDPConn
	in   chan rx

	mu      sync.Mutex
	backlog []rx
	tcp     map[string]net.Conn // by remote address, for answering over TCP
}

// on is the endpoint reporting failures to t (a subtest).
func (e *endpoint) on(t *testing.T) *endpoint { return &endpoint{t: t, epState: e.epState} }

func newEndpoint(t *testing.T, ip string) *endpoint {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	e := &endpoint{t: t, epState: &epState{conn: conn, in: make(chan rx, 256), tcp: map[string]net.Conn{}}}
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
			e.in <- rx{msg: m, from: from.String(), raw: raw}
		}
	}()
	return e
}

// listenTCP makes the endpoint accept SIP over TCP on its UDP port too.
func (e *endpoint) listenTCP() {
	e.t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: e.conn.LocalAddr().(*net.UDPAddr).IP, Port: e.port()})
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

func (e *endpoint) readStream(c net.Conn) {
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
		e.in <- rx{msg: m, from: c.RemoteAddr().String(), raw: raw, tcp: true}
	}
}

func (e *endpoint) port() int    { return e.conn.LocalAddr().(*net.UDPAddr).Port }
func (e *endpoint) addr() string { return e.conn.LocalAddr().String() }

// uri is a SIP URI naming this endpoint.
func (e *endpoint) uri(user string) string {
	ip := e.conn.LocalAddr().(*net.UDPAddr).IP.String()
	if user == "" {
		return fmt.Sprintf("sip:%s:%d", ip, e.port())
	}
	return fmt.Sprintf("sip:%s@%s:%d", user, ip, e.port())
}

// send writes a message (or raw text) to addr, over the TCP connection it
// came from when there is one.
func (e *endpoint) send(to string, m any) {
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

// wait returns the first message, from the backlog or the wire, that
// matches pred; messages that do not match are kept for later waits.
func (e *endpoint) wait(what string, pred func(rx) bool) rx {
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
	deadline := time.NewTimer(hangGuard)
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
			e.t.Fatalf("%s: never received %s", e.addr(), what)
			return rx{}
		}
	}
}

// drain returns what has arrived and not been waited for.
func (e *endpoint) drain() []rx {
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

func (e *endpoint) request(method sip.RequestMethod) rx {
	e.t.Helper()
	return e.wait(string(method), func(r rx) bool { q := r.req(); return q != nil && q.Method == method })
}

// response waits for a response to callID with the given status (0: any
// final) and CSeq method.
func (e *endpoint) response(callID string, method sip.RequestMethod, code int) rx {
	e.t.Helper()
	return e.wait(fmt.Sprintf("%d to %s %s", code, method, callID), func(r rx) bool {
		s := r.res()
		if s == nil || s.CallID().Value() != callID || s.CSeq().MethodName != method {
			return false
		}
		if code == 0 {
			return s.StatusCode >= 200
		}
		return s.StatusCode == code
	})
}

// answer sends a response to a received request back where it came from.
func (e *endpoint) answer(r rx, code int, reason string, hdrs ...string) *sip.Response {
	e.t.Helper()
	req := r.req()
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	if code > 100 {
		if to := res.To(); to != nil && !hasTag(to.Params) {
			to.Params.Add("tag", "uas"+strconv.Itoa(e.port()))
		}
	}
	if req.IsInvite() && code >= 180 && code < 300 {
		res.AppendHeader(sip.NewHeader("Contact", "<"+e.uri("uas")+">"))
	}
	for _, h := range hdrs {
		k, v, _ := strings.Cut(h, ":")
		res.AppendHeader(sip.NewHeader(k, strings.TrimSpace(v)))
	}
	e.send(r.from, res)
	return res
}

// ackFailure acknowledges a non-2xx final response to an INVITE it sent (RFC 3261
// §17.1.1.3).
func (e *endpoint) ackFailure(inv string, res *sip.Response, to string) {
	e.t.Helper()
	m := parseReq(e.t, inv)
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
	e.send(to, ack)
}

// cancelFor builds the CANCEL of an INVITE the endpoint sent.
func cancelFor(t *testing.T, inv string) string {
	m := parseReq(t, inv)
	lines := []string{
		"CANCEL " + m.Recipient.String() + " SIP/2.0",
		"Via: " + m.Via().Value(),
		"From: " + m.From().Value(),
		"To: " + m.To().Value(),
		"Call-ID: " + m.CallID().Value(),
		fmt.Sprintf("CSeq: %d CANCEL", m.CSeq().SeqNo),
		"Max-Forwards: 70",
	}
	return strings.Join(lines, "\r\n") + "\r\nContent-Length: 0\r\n\r\n"
}

func parseReq(t *testing.T, text string) *sip.Request {
	t.Helper()
	m, err := sip.ParseMessage([]byte(text))
	if err != nil {
		t.Fatalf("test message does not parse: %v\n%s", err, text)
	}
	return m.(*sip.Request)
}

// reqText builds a request from its start line and headers (CRLF joined),
// with Content-Length set for body.
func reqText(lines []string, body string) string {
	return strings.Join(lines, "\r\n") + fmt.Sprintf("\r\nContent-Length: %d\r\n\r\n", len(body)) + body
}

// invite is an INVITE from e to ruri sent through the core, with extra
// header lines.
func (e *endpoint) invite(callID, ruri string, extra ...string) string {
	lines := []string{
		"INVITE " + ruri + " SIP/2.0",
		"Via: SIP/2.0/UDP " + e.addr() + ";branch=z9hG4bK" + callID + ";rport",
		"Max-Forwards: 70",
		"From: <sip:alice@example.com>;tag=a" + callID,
		"To: <" + ruri + ">",
		"Call-ID: " + callID,
		"CSeq: 1 INVITE",
		"Contact: <" + e.uri("alice") + ">",
	}
	lines = append(lines, extra...)
	lines = append(lines, "Content-Type: application/sdp")
	return reqText(lines, "v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n")
}

// simple is a non-INVITE request from e.
func (e *endpoint) simple(method, callID, ruri string, extra ...string) string {
	lines := []string{
		method + " " + ruri + " SIP/2.0",
		"Via: SIP/2.0/UDP " + e.addr() + ";branch=z9hG4bK" + callID + ";rport",
		"Max-Forwards: 70",
		"From: <sip:alice@example.com>;tag=a" + callID,
		"To: <" + ruri + ">",
		"Call-ID: " + callID,
		"CSeq: 1 " + method,
	}
	return reqText(append(lines, extra...), "")
}

// rig is a running Core on 127.0.0.1 with a UDP and a TCP listener.
type rig struct {
	core *Core
	udp  int
	tcp  int
}

func (r *rig) udpAddr() string { return "127.0.0.1:" + strconv.Itoa(r.udp) }

// newRig starts a Core with the given services; cfg's Listeners are
// replaced by a UDP and a TCP listener serving svc.
func newRig(t *testing.T, cfg Config, svc string, services map[string]Service) *rig {
	t.Helper()
	lo := netip.MustParseAddr("127.0.0.1")
	cfg.Listeners = []Listener{
		{Network: "udp", Addr: netip.AddrPortFrom(lo, 0), Service: svc},
		{Network: "tcp", Addr: netip.AddrPortFrom(lo, 0), Service: svc},
	}
	if cfg.FlowKey == nil {
		cfg.FlowKey = []byte("test flow key")
	}
	if cfg.Rand == nil {
		cfg.Rand = newRand(7)
	}
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range services {
		c.Handle(name, s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := c.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); c.Close() })
	p := c.Ports()
	return &rig{core: c, udp: p[0], tcp: p[1]}
}

// forwardTo is a service forwarding every request to the given URIs.
func forwardTo(t *testing.T, uris ...string) ServiceFunc {
	var targets []Target
	for _, s := range uris {
		var u sip.Uri
		if err := sip.ParseUri(s, &u); err != nil {
			t.Fatal(err)
		}
		targets = append(targets, Target{URI: &u})
	}
	return func(tx *Txn) { tx.Forward(Fork{Targets: targets}) }
}

func mustURI(t *testing.T, s string) sip.Uri {
	t.Helper()
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		t.Fatal(err)
	}
	return u
}

// golden compares got with testdata/name, rewriting it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func headerValues(m interface{ GetHeaders(string) []sip.Header }, name string) []string {
	var out []string
	for _, h := range m.GetHeaders(name) {
		out = append(out, h.Value())
	}
	return out
}
