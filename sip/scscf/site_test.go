package scscf_test

import (
	"context"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"stillwater/diameter/hss"
	"stillwater/kv/kvtest"
	"stillwater/sip/auth"
	"stillwater/sip/icscf"
	"stillwater/sip/pcscf"
	"stillwater/sip/proxy"
	"stillwater/sip/registrar"
	"stillwater/sip/scscf"
)

// The site's subscribers; alice, alice2 and alice3 share an implicit
// registration set and alice3 is barred.
const (
	alice   = "sip:6505550001@example.com"
	alice2  = "sip:6505550002@example.com"
	alice3  = "sip:6505550003@example.com"
	bob     = "sip:6505550011@example.com"
	nobody  = "sip:6505559999@example.com"
	scscfID = "sip:scscf.test;transport=tcp"
	icscfID = "sip:icscf.test;transport=tcp"
	// edgeHost names the P-CSCF's core side; TrustedPort rides along.
	edgeHost = "pcscf.test"
	edgePort = 5058
)

// hangGuard bounds every wait for a message: reaching it is a failure.
const hangGuard = 10 * time.Second

// remoteIP is where test endpoints live: loopback, but not the node's.
const remoteIP = "127.0.0.2"

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

// siteOptions vary the node from appliance/sip.go's wiring.
type siteOptions struct {
	// auth makes the S-CSCF challenge REGISTERs.
	auth bool
	// firstSCSCFs are S-CSCFs the I-CSCF tries before the local one.
	firstSCSCFs []sip.Uri
	// Session timer limits of the S-CSCF.
	defaultSE, maxSE time.Duration
}

// site is one node wired as appliance/sip.go wires it: the proxy core with
// P-CSCF, I-CSCF and S-CSCF over a real kv site, the HSS store, sip/auth
// and the registrar. UEs reach the P-CSCF on 127.0.0.1 over UDP or TCP;
// the I-CSCF and S-CSCF are reached by name, in memory.
type site struct {
	ctx  context.Context
	core *proxy.Core
	udp  int
	tcp  int
	hss  *hss.Store
	reg  *registrar.Registrar
}

func newSite(t *testing.T, o siteOptions) *site {
	t.Helper()
	kvs := kvtest.New(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	store := hss.New(kvs.KV, hss.Options{HomeDomain: "example.com", SCSCF: scscfID, Logger: log, Rand: newRand(1)})
	lines := []hss.Line{
		{PrivateID: "6505550001@example.com", PublicIDs: []string{alice, alice2, alice3}, Password: "pw"},
		{PrivateID: "6505550011@example.com", PublicIDs: []string{bob}, Password: "pw"},
	}
	for _, l := range lines {
		if err := store.CreateLine(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	pub, err := store.LookupPublicID(ctx, alice3)
	if err != nil {
		t.Fatal(err)
	}
	barred := "<PublicIdentity><BarringIndication>1</BarringIndication><Identity>" + alice3 + "</Identity></PublicIdentity>"
	if err := store.PutPublicID(ctx, pub.IRS, pub.ServiceProfile, alice3, []byte(barred)); err != nil {
		t.Fatal(err)
	}

	lo := netip.MustParseAddr("127.0.0.1")
	core, err := proxy.New(proxy.Config{
		Listeners: []proxy.Listener{
			{Network: "udp", Addr: netip.AddrPortFrom(lo, 0), Service: "pcscf"},
			{Network: "tcp", Addr: netip.AddrPortFrom(lo, 0), Service: "pcscf"},
		},
		Hosts:   []string{"127.0.0.1", "localhost"},
		Names:   map[string]string{"scscf.test": "scscf", "icscf.test": "icscf", edgeHost: "pcscf"},
		FlowKey: []byte("test site flow key"),
		Rand:    newRand(2),
		Logger:  log,
	})
	if err != nil {
		t.Fatal(err)
	}
	scscfURI, icscfURI := mustURI(t, scscfID), mustURI(t, icscfID)
	serviceRoute := *scscfURI.Clone()
	serviceRoute.UriParams.Add("lr", "")
	serviceRoute.UriParams.Add("orig", "")
	reg := registrar.New(registrar.Options{
		KV: kvs.KV, Timers: kvs.Timers, HSS: store,
		ServiceRoute: serviceRoute.String(), SCSCFName: scscfID,
		Rand: newRand(3), Logger: log, Sender: core,
	})
	t.Cleanup(reg.Close)
	authn := auth.New(auth.Options{KV: kvs.KV, HSS: store, Realm: "example.com", Rand: newRand(4), Logger: log})
	upstream := icscfURI
	core.Handle("pcscf", pcscf.New(pcscf.Options{
		Upstream: upstream, Host: edgeHost, TrustedPort: edgePort, PublicHost: "127.0.0.1",
		CDF: "cdf.example.com", Rand: newRand(5), Logger: log,
	}))
	ic := icscf.New(icscf.Options{
		HSS: store, Default: scscfURI, Rand: mrand.New(mrand.NewPCG(1, 2)),
		IsLocal: func(u sip.Uri) bool { _, ok := core.LocalService(&u); return ok },
		Logger:  log,
	})
	if len(o.firstSCSCFs) > 0 {
		// As an s-cscf.json would: the others by priority, the local one last.
		var servers []icscf.Server
		for i, u := range o.firstSCSCFs {
			servers = append(servers, icscf.Server{URI: u, Priority: i, Weight: 1})
		}
		ic.SetSCSCFs(append(servers, icscf.Server{URI: scscfURI, Priority: len(servers), Weight: 1}))
	}
	core.Handle("icscf", ic)
	edge := mustURI(t, fmt.Sprintf("sip:%s:%d;transport=tcp", edgeHost, edgePort))
	core.Handle("scscf", scscf.New(scscf.Options{
		HSS: store, Auth: authn, Registrar: reg, HomeDomains: []string{"example.com"}, URI: scscfURI,
		ICSCF: &icscfURI, RecordRoute: true, LocalEdge: &edge, AuthDisabled: !o.auth, Logger: log,
		DefaultSessionExpires: o.defaultSE, MaxSessionExpires: o.maxSE,
	}))
	cctx, stop := context.WithCancel(context.Background())
	if err := core.Start(cctx); err != nil {
		stop()
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(); core.Close() })
	p := core.Ports()
	return &site{ctx: ctx, core: core, udp: p[0], tcp: p[1], hss: store, reg: reg}
}

func (s *site) udpAddr() string { return "127.0.0.1:" + strconv.Itoa(s.udp) }

// edgeRoute is the outbound-proxy Route a UE puts on its requests.
func (s *site) edgeRoute() string { return fmt.Sprintf("Route: <sip:127.0.0.1:%d;lr>", s.udp) }

func mustURI(t *testing.T, s string) sip.Uri {
	t.Helper()
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return u
}

// rx is one message an endpoint received.
type rx struct {
	msg  sip.Message
	from string
	raw  string
}

func (r rx) req() *sip.Request  { q, _ := r.msg.(*sip.Request); return q }
func (r rx) res() *sip.Response { s, _ := r.msg.(*sip.Response); return s }

// endpoint is a raw UDP SIP endpoint: a UE, or a server outside the node.
type endpoint struct {
	t *testing.T
	*epState
}

type epState struct {
	conn *net.UDPConn
	in   chan rx

	mu      sync.Mutex
	backlog []rx
	seq     int
}

func newEndpoint(t *testing.T) *endpoint {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(remoteIP)})
	if err != nil {
		t.Fatal(err)
	}
	e := &endpoint{t: t, epState: &epState{conn: conn, in: make(chan rx, 256)}}
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

// on is the endpoint reporting failures to t (a subtest).
func (e *endpoint) on(t *testing.T) *endpoint { return &endpoint{t: t, epState: e.epState} }

func (e *endpoint) port() int    { return e.conn.LocalAddr().(*net.UDPAddr).Port }
func (e *endpoint) addr() string { return e.conn.LocalAddr().String() }
func (e *endpoint) uri(user string) string {
	return fmt.Sprintf("sip:%s@%s", user, e.addr())
}

func (e *endpoint) send(to string, m any) {
	e.t.Helper()
	var data string
	switch v := m.(type) {
	case string:
		data = v
	case sip.Message:
		data = v.String()
	}
	ua, err := net.ResolveUDPAddr("udp", to)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.conn.WriteToUDP([]byte(data), ua); err != nil {
		e.t.Fatal(err)
	}
}

// wait returns the first message matching pred; others are kept.
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

// final waits for the final response to callID's method.
func (e *endpoint) final(callID string, method sip.RequestMethod) *sip.Response {
	e.t.Helper()
	return e.wait(fmt.Sprintf("final response to %s %s", method, callID), func(r rx) bool {
		s := r.res()
		return s != nil && s.CallID().Value() == callID && s.CSeq().MethodName == method && s.StatusCode >= 200
	}).res()
}

// answer responds to a received request where it came from.
func (e *endpoint) answer(r rx, code int, reason string) *sip.Response {
	e.t.Helper()
	req := r.req()
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	if to := res.To(); code > 100 && to != nil {
		if v, ok := to.Params.Get("tag"); !ok || v == "" {
			to.Params.Add("tag", "t"+strconv.Itoa(e.port()))
		}
	}
	if req.IsInvite() && code >= 180 && code < 300 {
		res.AppendHeader(sip.NewHeader("Contact", "<"+e.uri("ue")+">"))
	}
	e.send(r.from, res)
	return res
}

func (e *endpoint) nextCallID(prefix string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seq++
	return fmt.Sprintf("%s-%d-%d", prefix, e.port(), e.seq)
}

func reqText(lines []string, body string) string {
	return strings.Join(lines, "\r\n") + fmt.Sprintf("\r\nContent-Length: %d\r\n\r\n", len(body)) + body
}

// register registers aor from e through the P-CSCF with a Contact carrying
// params, and returns the final response.
func (s *site) register(e *endpoint, aor, params string, extra ...string) *sip.Response {
	e.t.Helper()
	return e.final(s.sendRegister(e, aor, params, extra...), sip.REGISTER)
}

// sendRegister sends the REGISTER register would and returns its Call-ID.
func (s *site) sendRegister(e *endpoint, aor, params string, extra ...string) string {
	e.t.Helper()
	callID := e.nextCallID("reg")
	lines := []string{
		"REGISTER sip:example.com SIP/2.0",
		"Via: SIP/2.0/UDP " + e.addr() + ";branch=z9hG4bK" + callID + ";rport",
		"Max-Forwards: 70",
		"From: <" + aor + ">;tag=r" + callID,
		"To: <" + aor + ">",
		"Call-ID: " + callID,
		"CSeq: 1 REGISTER",
		"Contact: <" + e.uri("ue") + ">" + params,
		"Expires: 300",
	}
	e.send(s.udpAddr(), reqText(append(lines, extra...), ""))
	return callID
}

// mustRegister registers aor and fails the test unless it gets 200.
func (s *site) mustRegister(e *endpoint, aor, params string, extra ...string) *sip.Response {
	e.t.Helper()
	res := s.register(e, aor, params, extra...)
	if res.StatusCode != 200 {
		e.t.Fatalf("REGISTER %s: %d %s", aor, res.StatusCode, res.Reason)
	}
	return res
}

// invite sends an INVITE from e (whose identity is from) to ruri through
// the P-CSCF, and returns its Call-ID and text.
func (s *site) invite(e *endpoint, from, ruri string, extra ...string) (string, string) {
	e.t.Helper()
	callID := e.nextCallID("inv")
	lines := []string{
		"INVITE " + ruri + " SIP/2.0",
		"Via: SIP/2.0/UDP " + e.addr() + ";branch=z9hG4bK" + callID + ";rport",
		"Max-Forwards: 70",
		s.edgeRoute(),
		"From: <" + from + ">;tag=f" + callID,
		"To: <" + ruri + ">",
		"Call-ID: " + callID,
		"CSeq: 1 INVITE",
		"Contact: <" + e.uri("ue") + ">",
		"Content-Type: application/sdp",
	}
	text := reqText(append(lines, extra...), "v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n")
	e.send(s.udpAddr(), text)
	return callID, text
}

// ackFailure acknowledges a non-2xx final response to an INVITE e sent.
func (s *site) ackFailure(e *endpoint, inv string, res *sip.Response) {
	e.t.Helper()
	m, err := sip.ParseMessage([]byte(inv))
	if err != nil {
		e.t.Fatal(err)
	}
	req := m.(*sip.Request)
	lines := []string{
		"ACK " + req.Recipient.String() + " SIP/2.0",
		"Via: " + req.Via().Value(),
		"Max-Forwards: 70",
		s.edgeRoute(),
		"From: " + req.From().Value(),
		"To: " + res.To().Value(),
		"Call-ID: " + req.CallID().Value(),
		fmt.Sprintf("CSeq: %d ACK", req.CSeq().SeqNo),
	}
	e.send(s.udpAddr(), reqText(lines, ""))
}

func headerValues(m interface{ GetHeaders(string) []sip.Header }, name string) []string {
	var out []string
	for _, h := range m.GetHeaders(name) {
		out = append(out, h.Value())
	}
	return out
}
