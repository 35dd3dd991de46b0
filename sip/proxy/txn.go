package proxy

import (
	"context"
	"strconv"
	"strings"
	"sync"

	"github.com/emiago/sipgo/sip"

	"stillwater/sip/header"
)

// Service is one SIP function the core routes initial requests to. ServeSIP
// must eventually Respond to or Forward the transaction; it may block (the
// core calls it on the request's own goroutine).
type Service interface {
	ServeSIP(t *Txn)
}

// ServiceFunc adapts a function to Service.
type ServiceFunc func(*Txn)

// ServeSIP calls f(t).
func (f ServiceFunc) ServeSIP(t *Txn) { f(t) }

// Source says where a request came from.
type Source struct {
	// Transport is "UDP", "TCP", "TLS" or "WS"; empty for a request from
	// another local service.
	Transport string
	// Addr is the remote ip:port.
	Addr string
	// Trusted is set for requests received on a trusted listener or handed
	// over by a local service.
	Trusted bool
	// Local is set when a local service forwarded the request in memory;
	// From names that service.
	Local bool
	From  string
	// Flow is the flow token of the connection the request arrived over
	// (wire requests only): Route or Path URIs carrying it lead back to the
	// sender over the same flow.
	Flow string
	// ListenerPort is the port the request arrived on (wire requests).
	ListenerPort int
}

// responder receives the responses of a transaction.
type responder interface {
	respond(res *sip.Response)
}

// Txn is one server transaction handed to a service.
type Txn struct {
	// Req is the request, owned by the service until it forwards it.
	Req *sip.Request
	// Service is the name of the service serving it.
	Service string
	// Route is the local Route URI that addressed the service (already
	// removed from Req), nil if the request reached it another way.
	Route *sip.Uri
	Src   Source

	core   *Core
	up     responder
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	final     bool
	got2xx    bool
	sent1xx   bool
	cancelled bool
	fork      *fork
	carried   any
}

// Carried is what the previous hop, a service of this core, handed on with
// the request (Target.Carry); nil if it came over the wire or carried
// nothing.
func (t *Txn) Carried() any { return t.carried }

// Context ends when the transaction is cancelled or completes.
func (t *Txn) Context() context.Context { return t.ctx }

// Core is the core serving the transaction.
func (t *Txn) Core() *Core { return t.core }

// Respond sends a response upstream. After a final response only further
// 2xx responses to an INVITE are passed on (forked answers).
func (t *Txn) Respond(res *sip.Response) {
	t.mu.Lock()
	if t.final && !(res.IsSuccess() && t.got2xx && t.Req.IsInvite()) {
		t.mu.Unlock()
		return
	}
	if res.StatusCode >= 200 {
		t.final = true
		if res.IsSuccess() {
			t.got2xx = true
		}
	} else if res.StatusCode > 100 {
		t.sent1xx = true
	}
	t.mu.Unlock()
	if header.First(res, "Server") == nil && res.StatusCode >= 200 && !t.Src.Local {
		res.AppendHeader(sip.NewHeader("Server", t.core.cfg.UserAgent))
	}
	t.up.respond(res)
	if res.StatusCode >= 200 && !(res.IsSuccess() && t.Req.IsInvite()) {
		t.cancel()
	}
}

// Reply responds with a response built from the request.
func (t *Txn) Reply(code int, reason string, hdrs ...sip.Header) {
	res := sip.NewResponseFromRequest(t.Req, code, reason, nil)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	t.Respond(res)
}

// SentProvisional reports whether a provisional response other than 100
// has been relayed upstream.
func (t *Txn) SentProvisional() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sent1xx
}

// Done reports whether a final response has been sent.
func (t *Txn) Done() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.final
}

// onCancel is the upstream CANCEL: pending branches are cancelled and, if
// nothing answered yet, 487 is sent.
func (t *Txn) onCancel() {
	t.mu.Lock()
	if t.cancelled {
		t.mu.Unlock()
		return
	}
	t.cancelled = true
	f := t.fork
	t.mu.Unlock()
	if f != nil {
		f.cancelAll()
	}
	if t.Req.IsInvite() {
		t.Reply(487, "Request Terminated")
	}
	t.cancel()
}

// Cancelled reports whether the caller cancelled the transaction.
func (t *Txn) Cancelled() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cancelled
}

// wireUp answers through a sipgo server transaction.
type wireUp struct {
	core *Core
	tx   sip.ServerTransaction
	req  *sip.Request
}

func (w wireUp) respond(res *sip.Response) {
	res.SetDestination(w.req.Source())
	res.SetTransport(w.req.Transport())
	if stx, ok := w.tx.(*sip.ServerTx); ok && res.StatusCode >= 200 && w.core.sendFinal(w.req, stx, res) {
		return
	}
	if err := w.tx.Respond(res); err != nil {
		w.core.log.Debug("response not sent", "status", res.StatusCode, "err", err)
	}
}

// onRequest is the transaction layer's entry for every received request.
func (c *Core) onRequest(req *sip.Request, tx *sip.ServerTx) {
	ln := c.listenerFor(req.Transport(), tx.Connection())
	if req.IsAck() {
		// An ACK reaching the TU acknowledges a 2xx: it has its own branch
		// and is routed statelessly along its Route set.
		c.forwardAck(req, ln)
		tx.Terminate()
		return
	}
	if c.answerAgain(req, tx) {
		return
	}
	src := Source{Transport: strings.ToUpper(req.Transport()), Addr: req.Source()}
	if ln != nil {
		src.Trusted = ln.Trusted
		src.ListenerPort = ln.port
		src.Flow = c.flowToken(src.Transport, ln.port, src.Addr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	// An INVITE's service edits its own copy: sipgo's transaction keeps
	// reading the request it received (its automatic 100 Trying and its
	// 487 are built from it). Of any other request it reads the method
	// alone, which no service changes. Once answered, the transaction ends
	// (sendFinal) or lives only until its ACK, so the CANCEL hook does not
	// keep the hops' state for long.
	own := req
	if req.IsInvite() {
		own = cloneRequest(req)
	}
	t := &Txn{Req: own, Src: src, core: c, up: wireUp{c, tx, req}, ctx: ctx, cancel: cancel}
	if req.IsInvite() {
		tx.OnCancel(func(*sip.Request) { go t.onCancel() })
	}
	if e := c.checker.CheckRequest(req); e != nil {
		if res, err := e.Response(req, ""); err == nil {
			t.Respond(res)
		}
		return
	}
	if mf := req.MaxForwards(); mf != nil && mf.Val() == 0 && req.Method != sip.OPTIONS {
		t.Reply(483, "Too Many Hops")
		return
	}
	if c.looped(req) {
		t.Reply(482, "Loop Detected")
		return
	}
	if c.cfg.Admitter != nil && req.To() != nil && !hasTag(req.To().Params) && req.Method != sip.CANCEL {
		ok, retry, done := c.cfg.Admitter.Admit()
		if !ok {
			t.Reply(503, "Service Unavailable", sip.NewHeader("Retry-After", strconv.Itoa(retry)))
			return
		}
		defer done()
	}
	defaultService := ""
	if ln != nil {
		defaultService = ln.Service
	}
	c.route(t, defaultService)
}

func hasTag(p sip.HeaderParams) bool {
	if p == nil {
		return false
	}
	v, ok := p.Get("tag")
	return ok && v != ""
}

// route decides what happens to a request received over the wire or
// handed over in memory: an in-dialog request follows its Route set; an
// initial one goes to the service its Route (or R-URI, or listener) names.
func (c *Core) route(t *Txn, defaultService string) {
	req := t.Req
	if hasTag(req.To().Params) && req.Method != sip.CANCEL {
		c.routeInDialog(t)
		return
	}
	if req.Method == sip.OPTIONS && c.IsLocalHost(req.Recipient.Host) && c.onlyLocalRoute(req) {
		// A health-check poll to the node itself is answered statelessly.
		c.answerOptions(t)
		return
	}
	if r := req.Route(); r != nil {
		if svc, ok := c.LocalService(&r.Address); ok {
			u := r.Address.Clone()
			req.RemoveHeader("Route")
			t.Route = u
			if !t.Src.Trusted && !t.Src.Local && defaultService != "" && svc != defaultService {
				// A request from the untrusted side cannot name an inner
				// function (the S-CSCF with ;orig, say) to skip the edge
				// and its identity checks: the edge serves it.
				t.Route = nil
				svc = defaultService
			}
			c.serve(t, svc)
			return
		}
	}
	if defaultService != "" {
		c.serve(t, defaultService)
		return
	}
	if req.Route() != nil {
		t.Forward(Fork{Targets: []Target{{}}})
		return
	}
	if svc, ok := c.LocalService(&req.Recipient); ok && req.Recipient.User == "" {
		c.serve(t, svc)
		return
	}
	t.Forward(Fork{Targets: []Target{{}}})
}

func (c *Core) serve(t *Txn, svc string) {
	s, ok := c.service(svc)
	if !ok {
		t.Reply(404, "Not Found", sip.NewHeader("Warning", `399 - "no service `+svc+` on this node"`))
		return
	}
	t.Service = svc
	s.ServeSIP(t)
}

// onlyLocalRoute reports whether a request has no Route, or a single Route
// naming this node: what makes an OPTIONS a poll of the node.
func (c *Core) onlyLocalRoute(req *sip.Request) bool {
	rs := header.Get(req, "Route")
	switch len(rs) {
	case 0:
		return true
	case 1:
		r := req.Route()
		return r != nil && c.IsLocalHost(r.Address.Host)
	}
	return false
}

// answerOptions answers an OPTIONS poll to the node itself statelessly.
func (c *Core) answerOptions(t *Txn) {
	t.Reply(200, "OK",
		sip.NewHeader("Allow", "INVITE, ACK, CANCEL, BYE, REGISTER, OPTIONS, INFO, MESSAGE, NOTIFY, PRACK, UPDATE, REFER, SUBSCRIBE, PUBLISH"),
		sip.NewHeader("Accept", "application/sdp"),
		sip.NewHeader("Supported", "path, outbound, gruu, 100rel, timer"),
	)
}

// routeInDialog pops this node's Route entries and forwards the request to
// what follows them, or over the flow the last popped entry names.
func (c *Core) routeInDialog(t *Txn) {
	if c.cfg.EdgeOnlyInDialog && !t.Src.Trusted && !t.Src.Local && !c.routedHere(t.Req) {
		// A UE's in-dialog requests carry this node's Record-Route; one
		// without it would make the edge an open relay.
		t.Reply(403, "Forbidden", sip.NewHeader("Warning", `399 - "in-dialog request not routed through this edge"`))
		return
	}
	flow := c.popLocalRoutes(t.Req)
	if t.Req.Route() == nil && c.IsLocalHost(t.Req.Recipient.Host) {
		if svc, ok := c.LocalService(&t.Req.Recipient); ok {
			if _, exists := c.service(svc); exists && t.Req.Recipient.User == "" {
				t.Reply(481, "Call/Transaction Does Not Exist")
				return
			}
		}
	}
	t.Forward(Fork{Targets: []Target{{Flow: flow}}})
}

// routedHere reports whether a request's first Route names this node.
func (c *Core) routedHere(req *sip.Request) bool {
	r := req.Route()
	if r == nil {
		return false
	}
	_, ok := c.LocalService(&r.Address)
	return ok
}

// popLocalRoutes removes the leading Route entries that address this node
// and returns the flow token of the last one popped, if it carries one: a
// token followed by other entries names the flow the request came in on.
func (c *Core) popLocalRoutes(req *sip.Request) string {
	flow := ""
	for {
		r := req.Route()
		if r == nil {
			return flow
		}
		if _, ok := c.LocalService(&r.Address); !ok {
			return flow
		}
		flow = ""
		if tok := r.Address.User; tok != "" && c.validFlow(tok) {
			flow = tok
		}
		req.RemoveHeader("Route")
	}
}

// Send sends a request the node originates (a NOTIFY, a third-party
// REGISTER ...) along its Route set or Request-URI and returns the final
// response; a local next hop is reached in memory.
func (c *Core) Send(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	if req.MaxForwards() == nil {
		mf := sip.MaxForwardsHeader(70)
		req.AppendHeader(&mf)
	}
	if req.ContentLength() == nil {
		cl := sip.ContentLengthHeader(len(req.Body()))
		req.AppendHeader(&cl)
	}
	ch := make(chan *sip.Response, 8)
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	t := &Txn{Req: req, Src: Source{Local: true, Trusted: true}, core: c, up: chanUp(ch), ctx: tctx, cancel: func() {}}
	go c.route(t, "")
	for {
		select {
		case res := <-ch:
			if res.StatusCode >= 200 {
				return res, nil
			}
		case <-ctx.Done():
			t.onCancel()
			return nil, ctx.Err()
		}
	}
}

type chanUp chan *sip.Response

func (ch chanUp) respond(res *sip.Response) {
	select {
	case ch <- res:
	default:
	}
}
