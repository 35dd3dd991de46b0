package mmtel_test

import (
	"context"
	"errors"
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
	"stillwater/sip/icscf"
	"stillwater/sip/mmtel"
	"stillwater/sip/pcscf"
	"stillwater/sip/proxy"
	"stillwater/sip/registrar"
	"stillwater/sip/scscf"
)

// The site's subscribers, each a line of its own with the MMTEL AS in its
// iFCs for every session case but originating-CDIV.
const (
	alice   = "sip:6505550001@example.com"
	bob     = "sip:6505550011@example.com"
	carol   = "sip:6505550021@example.com"
	scscfID = "sip:scscf.test;transport=tcp"
	icscfID = "sip:icscf.test;transport=tcp"
	// edgeHost names the P-CSCF's core side.
	edgeHost = "pcscf.test"
	edgePort = 5058
	// chainUsers are lines 6505550100.. that forward to one another.
	chainUsers = 7
)

func chainUser(i int) string { return fmt.Sprintf("sip:65055501%02d@example.com", i) }

// hangGuard bounds every wait for a message: reaching it is a failure.
const hangGuard = 10 * time.Second

// remoteIP is where test endpoints live: loopback, but not the node's.
const remoteIP = "127.0.0.2"

// mmtelIFC invokes the AS for INVITE, MESSAGE and SUBSCRIBE when the user
// calls (registered or not) and is called (registered or not), as Ellis's
// default iFCs do for INVITE.
const mmtelIFC = `<?xml version="1.0" encoding="UTF-8"?>
<ServiceProfile>
  <InitialFilterCriteria>
    <Priority>0</Priority>
    <TriggerPoint>
      <ConditionTypeCNF>1</ConditionTypeCNF>
      <SPT><ConditionNegated>0</ConditionNegated><Group>0</Group><Method>INVITE</Method></SPT>
      <SPT><ConditionNegated>0</ConditionNegated><Group>0</Group><Method>MESSAGE</Method></SPT>
      <SPT><ConditionNegated>0</ConditionNegated><Group>0</Group><Method>SUBSCRIBE</Method></SPT>
      <SPT><ConditionNegated>0</ConditionNegated><Group>1</Group><SessionCase>0</SessionCase></SPT>
      <SPT><ConditionNegated>0</ConditionNegated><Group>1</Group><SessionCase>3</SessionCase></SPT>
    </TriggerPoint>
    <ApplicationServer><ServerName>sip:mmtel.example.com</ServerName><DefaultHandling>0</DefaultHandling></ApplicationServer>
  </InitialFilterCriteria>
  <InitialFilterCriteria>
    <Priority>1</Priority>
    <TriggerPoint>
      <ConditionTypeCNF>1</ConditionTypeCNF>
      <SPT><ConditionNegated>0</ConditionNegated><Group>0</Group><Method>INVITE</Method></SPT>
      <SPT><ConditionNegated>0</ConditionNegated><Group>0</Group><Method>MESSAGE</Method></SPT>
      <SPT><ConditionNegated>0</ConditionNegated><Group>0</Group><Method>SUBSCRIBE</Method></SPT>
      <SPT><ConditionNegated>0</ConditionNegated><Group>1</Group><SessionCase>1</SessionCase></SPT>
      <SPT><ConditionNegated>0</ConditionNegated><Group>1</Group><SessionCase>2</SessionCase></SPT>
    </TriggerPoint>
    <ApplicationServer><ServerName>sip:mmtel.example.com</ServerName><DefaultHandling>0</DefaultHandling></ApplicationServer>
  </InitialFilterCriteria>
</ServiceProfile>
`

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

// store is the settings source of the tests: settings by IMPU, and a
// switch that makes every read fail as a store that is down would.
type store struct {
	mu   sync.Mutex
	m    map[string]*mmtel.Settings
	down bool
}

var errStoreDown = errors.New("settings store unavailable")

func (s *store) Settings(_ context.Context, impu string) (*mmtel.Settings, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return nil, errStoreDown
	}
	return s.m[impu], nil
}

// set replaces every subscriber's settings.
func (s *store) set(down bool, m map[string]*mmtel.Settings) {
	s.mu.Lock()
	s.m, s.down = m, down
	s.mu.Unlock()
}

// site is one node wired as appliance/sip.go wires it: the proxy core with
// P-CSCF, I-CSCF, S-CSCF and the MMTEL AS over a real kv site with the HSS
// store and the registrar. UEs reach the P-CSCF on 127.0.0.1 over UDP;
// the other services are reached by name, in memory.
type site struct {
	core  *proxy.Core
	udp   int
	store *store
}

func newSite(t *testing.T) *site {
	t.Helper()
	kvs := kvtest.New(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	hs := hss.New(kvs.KV, hss.Options{HomeDomain: "example.com", SCSCF: scscfID, Logger: log, Rand: newRand(1)})
	users := []string{alice, bob, carol}
	for i := range chainUsers {
		users = append(users, chainUser(i))
	}
	for _, u := range users {
		priv := strings.TrimPrefix(u, "sip:")
		if err := hs.CreateLine(ctx, hss.Line{PrivateID: priv, PublicIDs: []string{u}, Password: "pw", IFC: mmtelIFC}); err != nil {
			t.Fatal(err)
		}
	}
	lo := netip.MustParseAddr("127.0.0.1")
	core, err := proxy.New(proxy.Config{
		Listeners: []proxy.Listener{{Network: "udp", Addr: netip.AddrPortFrom(lo, 0), Service: "pcscf"}},
		Hosts:     []string{"127.0.0.1", "localhost"},
		Names:     map[string]string{"scscf.test": "scscf", "icscf.test": "icscf", edgeHost: "pcscf", "mmtel.example.com": "mmtel"},
		FlowKey:   []byte("test site flow key"),
		Rand:      newRand(2),
		Logger:    log,
	})
	if err != nil {
		t.Fatal(err)
	}
	scscfURI, icscfURI := mustURI(t, scscfID), mustURI(t, icscfID)
	serviceRoute := *scscfURI.Clone()
	serviceRoute.UriParams.Add("lr", "")
	serviceRoute.UriParams.Add("orig", "")
	reg := registrar.New(registrar.Options{
		KV: kvs.KV, Timers: kvs.Timers, HSS: hs,
		ServiceRoute: serviceRoute.String(), SCSCFName: scscfID,
		Rand: newRand(3), Logger: log, Sender: core,
	})
	t.Cleanup(reg.Close)
	core.Handle("pcscf", pcscf.New(pcscf.Options{
		Upstream: icscfURI, Host: edgeHost, TrustedPort: edgePort, PublicHost: "127.0.0.1",
		CDF: "cdf.example.com", Rand: newRand(5), Logger: log,
	}))
	core.Handle("icscf", icscf.New(icscf.Options{
		HSS: hs, Default: scscfURI, Rand: mrand.New(mrand.NewPCG(1, 2)),
		IsLocal: func(u sip.Uri) bool { _, ok := core.LocalService(&u); return ok },
		Logger:  log,
	}))
	edge := mustURI(t, fmt.Sprintf("sip:%s:%d;transport=tcp", edgeHost, edgePort))
	core.Handle("scscf", scscf.New(scscf.Options{
		HSS: hs, Registrar: reg, HomeDomains: []string{"example.com"}, URI: scscfURI,
		ICSCF: &icscfURI, RecordRoute: true, LocalEdge: &edge, AuthDisabled: true, Logger: log,
		ODIKey: []byte("test site odi key"),
	}))
	st := &store{}
	core.Handle("mmtel", mmtel.New(mmtel.Options{Store: st, Logger: log}))
	cctx, stop := context.WithCancel(context.Background())
	if err := core.Start(cctx); err != nil {
		stop()
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(); core.Close() })
	return &site{core: core, udp: core.Ports()[0], store: st}
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

// mustRegister registers aor from e through the P-CSCF.
func (s *site) mustRegister(e *endpoint, aor string) {
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
		"Contact: <" + e.uri("ue") + ">",
		"Expires: 300",
	}
	e.send(s.udpAddr(), reqText(lines, ""))
	if res := e.final(callID, sip.REGISTER); res.StatusCode != 200 {
		e.t.Fatalf("REGISTER %s: %d %s", aor, res.StatusCode, res.Reason)
	}
}

const (
	sdpAudio = "v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
	sdpVideo = sdpAudio + "m=video 4002 RTP/AVP 96\r\n"
)

// send sends a request from e (whose identity is from) to ruri through
// the P-CSCF and returns its Call-ID and text.
func (s *site) send(e *endpoint, method sip.RequestMethod, from, ruri, body string, extra ...string) (string, string) {
	e.t.Helper()
	callID := e.nextCallID(strings.ToLower(string(method)))
	lines := []string{
		string(method) + " " + ruri + " SIP/2.0",
		"Via: SIP/2.0/UDP " + e.addr() + ";branch=z9hG4bK" + callID + ";rport",
		"Max-Forwards: 70",
		s.edgeRoute(),
		"From: \"Caller\" <" + from + ">;tag=f" + callID,
		"To: <" + ruri + ">",
		"Call-ID: " + callID,
		"CSeq: 1 " + string(method),
		"Contact: <" + e.uri("ue") + ">",
	}
	if body != "" {
		lines = append(lines, "Content-Type: application/sdp")
	}
	text := reqText(append(lines, extra...), body)
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

// expect waits for e to be sent method of callID.
func expect(e *endpoint, method sip.RequestMethod, callID string) rx {
	e.t.Helper()
	return e.wait(string(method)+" "+callID, func(r rx) bool {
		q := r.req()
		return q != nil && q.Method == method && q.CallID().Value() == callID
	})
}

// never checks e has been sent no request of callID.
func never(e *endpoint, callID string) {
	e.t.Helper()
	for _, m := range e.drain() {
		if q := m.req(); q != nil && q.CallID().Value() == callID {
			e.t.Errorf("%s was sent %s", e.addr(), q.Method)
		}
	}
}

// response waits for the response of status code to callID at e.
func response(e *endpoint, callID string, code int) *sip.Response {
	e.t.Helper()
	return e.wait(fmt.Sprintf("%d to %s", code, callID), func(r rx) bool {
		s := r.res()
		return s != nil && s.CallID().Value() == callID && s.StatusCode == code
	}).res()
}

func headerValues(m interface{ GetHeaders(string) []sip.Header }, name string) []string {
	var out []string
	for _, h := range m.GetHeaders(name) {
		out = append(out, h.Value())
	}
	return out
}
