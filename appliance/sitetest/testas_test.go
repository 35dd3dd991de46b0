package sitetest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"stillwater/bench/sipp"
)

// Test application servers, trunks and UEs for the ISC and off-net
// acceptance tests, all built on sipgo and listening on 127.0.0.x.

// received is what a test endpoint has received, with a way to wait on it.
type received[T any] struct {
	mu      sync.Mutex
	items   []T
	changed chan struct{} // closed and replaced at every add
}

func (l *received[T]) add(v T) {
	l.mu.Lock()
	l.items = append(l.items, v)
	if l.changed != nil {
		close(l.changed)
	}
	l.changed = make(chan struct{})
	l.mu.Unlock()
}

func (l *received[T]) all() []T {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]T(nil), l.items...)
}

// wait returns once cond holds over everything received so far, or fails
// with what when ctx ends first.
func (l *received[T]) wait(ctx context.Context, what string, cond func([]T) bool) ([]T, error) {
	for {
		l.mu.Lock()
		items := append([]T(nil), l.items...)
		if l.changed == nil {
			l.changed = make(chan struct{})
		}
		ch := l.changed
		l.mu.Unlock()
		if cond(items) {
			return items, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return items, fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		}
	}
}

// sipListen serves srv on ip over UDP and TCP on one port, until the test
// ends, and returns the port.
func sipListen(t *testing.T, srv *sipgo.Server, ip string) int {
	t.Helper()
	for range 20 {
		tl, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			t.Fatalf("listen on %s: %v", ip, err)
		}
		port := tl.Addr().(*net.TCPAddr).Port
		ul, err := net.ListenPacket("udp", net.JoinHostPort(ip, strconv.Itoa(port)))
		if err != nil {
			tl.Close()
			continue
		}
		rc := &readyConn{PacketConn: ul, reading: make(chan struct{})}
		go srv.ServeTCP(tl)
		go srv.ServeUDP(rc)
		t.Cleanup(func() { tl.Close(); ul.Close() })
		// Clients send from the listener only once sipgo has pooled it.
		select {
		case <-rc.reading:
		case <-time.After(10 * time.Second):
			t.Fatalf("UDP listener on %s:%d not served", ip, port)
		}
		return port
	}
	t.Fatalf("no port free for both UDP and TCP on %s", ip)
	return 0
}

// readyConn tells when sipgo starts reading a UDP listener, which it does
// right after putting it in its connection pool.
type readyConn struct {
	net.PacketConn
	once    sync.Once
	reading chan struct{}
}

func (c *readyConn) ReadFrom(b []byte) (int, net.Addr, error) {
	c.once.Do(func() { close(c.reading) })
	return c.PacketConn.ReadFrom(b)
}

func newSIPAgent(t *testing.T, name, ip string) (*sipgo.UserAgent, *sipgo.Server) {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent(name), sipgo.WithUserAgentHostname(ip))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ua.Close() })
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	return ua, srv
}

// asHit is a request an application server (or trunk) received: the
// service it was addressed to (the user part of its Route, or of the
// Request-URI for a third-party REGISTER) and the request.
type asHit struct {
	service string // "<mode>.<label>"
	req     *sip.Request
}

func (h asHit) label() string {
	_, l, _ := strings.Cut(h.service, ".")
	return l
}

// AS behaviours, chosen per service by the first part of its user name.
const (
	asProxy    = "proxy"    // forward along the remaining Route, adding X-AS
	asAnswer   = "answer"   // answer 200 as the UAS
	asReject   = "reject"   // answer 404
	asRedirect = "redirect" // answer 302 to the Contact the service names
	asB2BUA    = "b2bua"    // answer the call after a new call back into the S-CSCF
	asSilent   = "silent"   // never answer
	asRegister = "reg"      // accept third-party REGISTERs
	// asFailRegister refuses third-party REGISTERs with 500.
	asFailRegister = "regfail"
)

// testAS is an application server (or SIP trunk) on 127.0.0.x. One
// listener serves many services: sip:<mode>.<label>@ip:port;transport=tcp,
// whose mode sets the behaviour, so that each iFC names its own.
type testAS struct {
	log    *slog.Logger // handlers may outlive the test: no t.Log there
	ip     string
	port   int
	client *sipgo.Client
	dialog *sipgo.DialogUA

	hits received[asHit]        // initial requests, by arrival
	acks received[*sip.Request] // ACKs for 2xx the AS sent
	byes received[*sip.Request]

	mu        sync.Mutex
	redirects map[string]string                     // service -> Contact of its 302
	bridges   map[string]*sipgo.DialogClientSession // incoming Call-ID -> outgoing leg
}

func newTestAS(t *testing.T, ip string) *testAS {
	t.Helper()
	ua, srv := newSIPAgent(t, "stillwater-test-as", ip)
	as := &testAS{log: slog.New(slog.NewTextHandler(os.Stderr, nil)).With("as", ip), ip: ip, redirects: map[string]string{}, bridges: map[string]*sipgo.DialogClientSession{}}
	as.port = sipListen(t, srv, ip)
	var err error
	as.client, err = sipgo.NewClient(ua, sipgo.WithClientHostname(ip))
	if err != nil {
		t.Fatal(err)
	}
	as.dialog = &sipgo.DialogUA{Client: as.client, ContactHDR: sip.ContactHeader{Address: as.contactURI()}}
	srv.OnInvite(as.onInvite)
	srv.OnRegister(as.onRegister)
	srv.OnAck(func(req *sip.Request, _ sip.ServerTransaction) { as.acks.add(req) })
	srv.OnBye(as.onBye)
	return as
}

// uri is the SIP URI of one service of the AS, as an iFC or bgcf.json
// names it.
func (as *testAS) uri(mode, label string) string {
	return fmt.Sprintf("sip:%s.%s@%s:%d;transport=tcp", mode, label, as.ip, as.port)
}

func (as *testAS) contactURI() sip.Uri {
	p := sip.NewParams()
	p.Add("transport", "tcp")
	return sip.Uri{Scheme: "sip", User: "as", Host: as.ip, Port: as.port, UriParams: p}
}

// redirectTo sets the Contact a redirect service answers with.
func (as *testAS) redirectTo(label, contact string) {
	as.mu.Lock()
	as.redirects[asRedirect+"."+label] = contact
	as.mu.Unlock()
}

// service is the service a request was sent to: the user part of its
// top Route when that Route is this AS, else of the Request-URI.
func (as *testAS) service(req *sip.Request) string {
	if r := req.Route(); r != nil && r.Address.Host == as.ip && r.Address.Port == as.port {
		return r.Address.User
	}
	return req.Recipient.User
}

// hitsOf returns the hits of the services with the given labels, in order.
func hitsOf(hits []asHit, labels ...string) []asHit {
	var out []asHit
	for _, h := range hits {
		for _, l := range labels {
			if h.label() == l {
				out = append(out, h)
			}
		}
	}
	return out
}

func (as *testAS) respond(tx sip.ServerTransaction, req *sip.Request, code int, reason string, hdrs ...sip.Header) {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if err := tx.Respond(res); err != nil {
		as.log.Warn("response not sent", "status", code, "method", req.Method, "err", err)
	}
}

func (as *testAS) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	svc := as.service(req)
	as.hits.add(asHit{service: svc, req: req.Clone()})
	mode, label, _ := strings.Cut(svc, ".")
	contact := &sip.ContactHeader{Address: as.contactURI()}
	switch mode {
	case asProxy:
		as.proxy(req, tx, label)
	case asAnswer:
		as.respond(tx, req, 200, "OK", contact)
	case asReject:
		as.respond(tx, req, 404, "Not Found")
	case asRedirect:
		as.mu.Lock()
		to := as.redirects[svc]
		as.mu.Unlock()
		as.respond(tx, req, 302, "Moved Temporarily", sip.NewHeader("Contact", "<"+to+">"))
	case asB2BUA:
		as.b2bua(req, tx)
	case asSilent:
		// Returning without a response ends the transaction before
		// sipgo's automatic 100 Trying: the S-CSCF hears nothing.
	default:
		as.respond(tx, req, 500, "Unknown Test Service")
	}
}

// proxy forwards req along its remaining Route (the S-CSCF's original
// dialog identifier) with an X-AS header naming this service, and relays
// every response.
func (as *testAS) proxy(req *sip.Request, tx sip.ServerTransaction, label string) {
	fwd := req.Clone()
	if r := fwd.Route(); r != nil && r.Address.Host == as.ip && r.Address.Port == as.port {
		fwd.RemoveHeader("Route") // the topmost only
	}
	if mf := fwd.MaxForwards(); mf != nil {
		if mf.Val() == 0 {
			as.respond(tx, req, 483, "Too Many Hops")
			return
		}
		// sipgo's Clone shares the Max-Forwards header with req.
		m := sip.MaxForwardsHeader(mf.Val() - 1)
		fwd.RemoveHeader("Max-Forwards")
		fwd.AppendHeader(&m)
	}
	fwd.AppendHeader(sip.NewHeader("X-AS", label))
	fwd.SetDestination("")
	fwd.SetTransport("")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := as.client.TransactionRequest(ctx, fwd, sipgo.ClientRequestAddVia)
	if err != nil {
		as.log.Warn("request not forwarded", "service", label, "err", err)
		as.respond(tx, req, 502, "Bad Gateway")
		return
	}
	defer out.Terminate()
	for {
		select {
		case res := <-out.Responses():
			up := res.Clone()
			up.RemoveHeader("Via") // the topmost only: this AS's
			if err := tx.Respond(up); err != nil {
				as.log.Warn("response not relayed", "service", label, "status", res.StatusCode, "err", err)
			}
			if res.StatusCode >= 200 {
				return
			}
		case <-out.Done():
			as.respond(tx, req, 408, "Request Timeout")
			return
		case <-ctx.Done():
			return
		}
	}
}

// b2bua answers req once a new INVITE it sends back into the S-CSCF, to
// req's remaining Route, has been answered: the final response is bridged
// to the incoming leg, and a BYE on one leg ends the other.
func (as *testAS) b2bua(req *sip.Request, tx sip.ServerTransaction) {
	routes := req.GetHeaders("Route")
	if len(routes) < 2 {
		as.respond(tx, req, 400, "No Route Back To The S-CSCF")
		return
	}
	out := sip.NewRequest(sip.INVITE, *req.Recipient.Clone())
	from := req.From()
	out.AppendHeader(sip.NewHeader("From", "<"+from.Address.String()+">;tag="+sip.GenerateTagN(16)))
	out.AppendHeader(sip.NewHeader("To", "<"+req.To().Address.String()+">"))
	for _, h := range routes[1:] {
		out.AppendHeader(sip.NewHeader("Route", h.Value()))
	}
	if pai := req.GetHeader("P-Asserted-Identity"); pai != nil {
		out.AppendHeader(sip.NewHeader("P-Asserted-Identity", pai.Value()))
	}
	out.AppendHeader(sip.NewHeader("X-AS", "b2bua"))
	if ct := req.ContentType(); ct != nil {
		out.AppendHeader(sip.NewHeader("Content-Type", ct.Value()))
		out.SetBody(append([]byte(nil), req.Body()...))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leg, err := as.dialog.WriteInvite(ctx, out)
	if err != nil {
		as.log.Warn("B2BUA: new INVITE not sent", "err", err)
		as.respond(tx, req, 502, "Bad Gateway")
		return
	}
	err = leg.WaitAnswer(ctx, sipgo.AnswerOptions{})
	var failed *sipgo.ErrDialogResponse
	switch {
	case errors.As(err, &failed):
		as.respond(tx, req, failed.Res.StatusCode, failed.Res.Reason)
		return
	case err != nil:
		as.log.Warn("B2BUA: no answer on the outgoing leg", "err", err)
		as.respond(tx, req, 504, "Server Time-out")
		return
	}
	if err := leg.Ack(ctx); err != nil {
		as.log.Warn("B2BUA: ACK not sent on the outgoing leg", "err", err)
	}
	as.mu.Lock()
	as.bridges[req.CallID().Value()] = leg
	as.mu.Unlock()
	as.respond(tx, req, 200, "OK", &sip.ContactHeader{Address: as.contactURI()})
}

func (as *testAS) onBye(req *sip.Request, tx sip.ServerTransaction) {
	as.byes.add(req)
	as.mu.Lock()
	leg := as.bridges[req.CallID().Value()]
	delete(as.bridges, req.CallID().Value())
	as.mu.Unlock()
	if leg != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := leg.Bye(ctx); err != nil {
			as.log.Warn("B2BUA: BYE failed on the outgoing leg", "err", err)
		}
	}
	as.respond(tx, req, 200, "OK")
}

func (as *testAS) onRegister(req *sip.Request, tx sip.ServerTransaction) {
	svc := as.service(req)
	as.hits.add(asHit{service: svc, req: req.Clone()})
	if mode, _, _ := strings.Cut(svc, "."); mode == asFailRegister {
		as.respond(tx, req, 500, "Server Internal Error")
		return
	}
	as.respond(tx, req, 200, "OK")
}

// ifcSpec is one iFC of a test user's service profile.
type ifcSpec struct {
	priority    int
	method      string // INVITE or REGISTER
	sessionCase int    // 0 originating, 1 terminating (registered); -1 any
	server      string
	terminated  bool // DefaultHandling SESSION_TERMINATED
	serviceInfo string
	includeReq  bool
	includeRes  bool
}

// mmtelIFC invokes the built-in MMTEL AS for INVITEs, as Ellis provisions it.
func mmtelIFC(priority, sessionCase int) ifcSpec {
	return ifcSpec{priority: priority, method: "INVITE", sessionCase: sessionCase, server: "sip:mmtel." + imsRealm}
}

// ifcDocument renders a ServiceProfile with the given iFCs, in the order
// given (the S-CSCF orders them by Priority).
func ifcDocument(specs ...ifcSpec) string {
	var b strings.Builder
	b.WriteString("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ServiceProfile>\n")
	for _, s := range specs {
		fmt.Fprintf(&b, "  <InitialFilterCriteria>\n    <Priority>%d</Priority>\n    <TriggerPoint>\n      <ConditionTypeCNF>0</ConditionTypeCNF>\n", s.priority)
		fmt.Fprintf(&b, "      <SPT><ConditionNegated>0</ConditionNegated><Group>0</Group><Method>%s</Method></SPT>\n", s.method)
		if s.sessionCase >= 0 {
			fmt.Fprintf(&b, "      <SPT><ConditionNegated>0</ConditionNegated><Group>0</Group><SessionCase>%d</SessionCase></SPT>\n", s.sessionCase)
		}
		handling := 0
		if s.terminated {
			handling = 1
		}
		fmt.Fprintf(&b, "    </TriggerPoint>\n    <ApplicationServer>\n      <ServerName>%s</ServerName>\n      <DefaultHandling>%d</DefaultHandling>\n",
			xmlText(s.server), handling)
		if s.serviceInfo != "" {
			fmt.Fprintf(&b, "      <ServiceInfo>%s</ServiceInfo>\n", xmlText(s.serviceInfo))
		}
		if s.includeReq || s.includeRes {
			b.WriteString("      <Extension>\n")
			if s.includeReq {
				b.WriteString("        <IncludeRegisterRequest/>\n")
			}
			if s.includeRes {
				b.WriteString("        <IncludeRegisterResponse/>\n")
			}
			b.WriteString("      </Extension>\n")
		}
		b.WriteString("    </ApplicationServer>\n  </InitialFilterCriteria>\n")
	}
	b.WriteString("</ServiceProfile>\n")
	return b.String()
}

func xmlText(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// ifcUser provisions sip:<number>@example.com with the given iFC document
// through `stillwater users create --ifc`.
func ifcUser(t *testing.T, n *node, number int, doc string) sipp.User {
	t.Helper()
	file := filepath.Join(t.TempDir(), "ifc.xml")
	if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	name := strconv.Itoa(number)
	if out, errOut, err := n.cli("users", "create", name, imsRealm, sipPassword, "--ifc", file); err != nil {
		t.Fatalf("users create %s --ifc: %v\n%s%s", name, err, out, errOut)
	}
	return sipp.User{Name: name, Password: sipPassword, Domain: imsRealm, AuthName: name + "@" + imsRealm}
}

// headerValues lists the values of every header called name, in order.
func headerValues(req *sip.Request, name string) []string {
	var out []string
	for _, h := range req.GetHeaders(name) {
		for v := range strings.SplitSeq(h.Value(), ",") {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

// waitNodeLog waits until the node's log has a line containing every one
// of parts.
func waitNodeLog(t *testing.T, n *node, timeout time.Duration, parts ...string) {
	t.Helper()
	waitFor(t, timeout, fmt.Sprintf("node %d to log %q", n.idx, parts), func() error {
		b, err := os.ReadFile(n.logPath)
		if err != nil {
			return err
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(line, p)
			}
			if ok {
				return nil
			}
		}
		return errors.New("no such line yet")
	})
}
