package proxy

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"stillwater/sip/header"
)

// Target is one branch of a forwarded request.
type Target struct {
	// URI replaces the Request-URI; nil keeps it.
	URI *sip.Uri
	// Routes are prepended to the Route set, first entry first.
	Routes []sip.Uri
	// Flow sends the request over the flow a token names when no Route is
	// left (the UE behind a P-CSCF).
	Flow string
	// Edit, if set, adjusts this branch's copy of the request.
	Edit func(*sip.Request)
	// Carry is handed in memory to the next hop when that is a service of
	// this core (Txn.Carried), so that it need not read again what this hop
	// just read; it is dropped when the request leaves over the wire. The
	// receiver must treat it as read-only.
	Carry any
}

// Fork says how to forward a transaction.
type Fork struct {
	// Targets are tried in parallel.
	Targets []Target
	// RecordRoute values are added on top of the Record-Route set, first
	// entry topmost.
	RecordRoute []sip.Uri
	// OnResponse, if set, may adjust every response before it is relayed
	// upstream.
	OnResponse func(*sip.Response)
	// OnFinal, if set, sees the best final response when every branch has
	// answered without a 2xx; returning targets forwards again instead of
	// relaying it (retries, diversion).
	OnFinal func(best *sip.Response) []Target
	// Timeout, if set, cancels the branches still ringing after it and
	// then behaves as if they had answered 408.
	Timeout time.Duration
	// ResponseTimeout, if set, gives up on a branch whose next hop has sent
	// no response at all (not even 100 Trying) after it, as if it had
	// answered 408: an unresponsive application server.
	ResponseTimeout time.Duration
}

// timerC bounds how long an INVITE branch may ring (RFC 3261 §16.8).
const timerC = 3 * time.Minute

type fork struct {
	t    *Txn
	spec Fork

	mu       sync.Mutex
	branches []*branch
	pending  int
	best     *sip.Response
	answered bool // a 2xx was relayed
	// timers are the rounds' Timeout and ResponseTimeout timers, stopped
	// once the fork is answered: their closures hold every branch.
	timers []*time.Timer
}

func (f *fork) addTimer(t *time.Timer) {
	f.mu.Lock()
	f.timers = append(f.timers, t)
	f.mu.Unlock()
}

func (f *fork) stopTimers() {
	f.mu.Lock()
	ts := f.timers
	f.timers = nil
	f.mu.Unlock()
	for _, t := range ts {
		t.Stop()
	}
}

type branch struct {
	f     *fork
	req   *sip.Request
	carry any

	mu         sync.Mutex
	final      bool
	provision  bool
	heard      bool // any response, 100 included, or an in-memory hop
	wantCancel bool
	cancelFn   func() // sends the CANCEL once allowed
}

// Forward proxies the transaction to the fork's targets.
func (t *Txn) Forward(spec Fork) {
	if len(spec.Targets) == 0 {
		t.Reply(480, "Temporarily Unavailable")
		return
	}
	if mf := t.Req.MaxForwards(); mf != nil {
		if mf.Val() == 0 {
			t.Reply(483, "Too Many Hops")
			return
		}
		mf.Dec()
	} else {
		m := sip.MaxForwardsHeader(70)
		t.Req.AppendHeader(&m)
	}
	f := &fork{t: t, spec: spec}
	t.mu.Lock()
	if t.cancelled {
		t.mu.Unlock()
		t.Reply(487, "Request Terminated")
		return
	}
	t.fork = f
	t.mu.Unlock()
	f.start(spec.Targets)
}

func (f *fork) start(targets []Target) {
	base := f.t.Req
	for i := len(f.spec.RecordRoute) - 1; i >= 0; i-- {
		base.PrependHeader(&sip.RecordRouteHeader{Address: *f.spec.RecordRoute[i].Clone()})
	}
	f.spec.RecordRoute = nil
	var bs []*branch
	for _, tg := range targets {
		// Each branch gets its own copy: services downstream edit it, and a
		// later round (OnFinal) starts again from the original.
		req := cloneRequest(base)
		if tg.URI != nil {
			req.Recipient = *tg.URI.Clone()
		}
		for j := len(tg.Routes) - 1; j >= 0; j-- {
			req.PrependHeader(&sip.RouteHeader{Address: *tg.Routes[j].Clone()})
		}
		if tg.Edit != nil {
			tg.Edit(req)
		}
		bs = append(bs, &branch{f: f, req: req, carry: tg.Carry})
	}
	f.mu.Lock()
	f.branches = append(f.branches, bs...)
	f.pending += len(bs)
	f.mu.Unlock()
	if f.spec.Timeout > 0 && f.t.Req.IsInvite() {
		f.addTimer(time.AfterFunc(f.spec.Timeout, func() { f.expire(bs) }))
	}
	if f.spec.ResponseTimeout > 0 {
		f.addTimer(time.AfterFunc(f.spec.ResponseTimeout, func() {
			var silent []*branch
			for _, b := range bs {
				b.mu.Lock()
				if !b.heard {
					silent = append(silent, b)
				}
				b.mu.Unlock()
			}
			f.expire(silent)
		}))
	}
	for i, b := range bs {
		flow := targets[i].Flow
		f.t.core.hops.Go(func() { b.run(flow) })
	}
}

func cloneRequest(r *sip.Request) *sip.Request {
	c := r.Clone()
	if mf := r.MaxForwards(); mf != nil {
		// sipgo's clone shares the Max-Forwards header; each branch
		// decrements its own.
		c.RemoveHeader("Max-Forwards")
		m := sip.MaxForwardsHeader(mf.Val())
		c.AppendHeader(&m)
	}
	if body := r.Body(); body != nil {
		c.SetBody(append([]byte(nil), body...))
	}
	return c
}

// run sends the branch's request to its next hop: a local service in
// memory, or over the wire.
func (b *branch) run(flow string) {
	c := b.f.t.core
	req := b.req
	if r := req.Route(); r != nil {
		if svc, ok := c.LocalService(&r.Address); ok && !isInDialog(req) {
			u := r.Address.Clone()
			req.RemoveHeader("Route")
			b.runLocal(svc, u)
			return
		}
		if isInDialog(req) {
			if tok := c.popLocalRoutes(req); tok != "" {
				flow = tok
			}
		}
	} else if flow == "" && !isInDialog(req) {
		if svc, ok := c.LocalService(&req.Recipient); ok && req.Recipient.User == "" {
			b.runLocal(svc, nil)
			return
		}
	}
	b.runWire(flow)
}

func isInDialog(req *sip.Request) bool {
	return req.To() != nil && hasTag(req.To().Params) && req.Method != sip.CANCEL
}

// runLocal hands the branch to a local service as a new transaction whose
// responses come back to this branch.
func (b *branch) runLocal(svc string, route *sip.Uri) {
	parent := b.f.t
	ctx, cancel := context.WithCancel(context.Background())
	child := &Txn{Req: b.req, Route: route, core: parent.core, up: b, ctx: ctx, cancel: cancel,
		Src: Source{Local: true, Trusted: true, From: parent.Service}, carried: b.carry}
	b.mu.Lock()
	b.provision = true // an in-memory hop may be cancelled at once
	b.heard = true
	b.cancelFn = func() { go child.onCancel() }
	want := b.wantCancel
	b.mu.Unlock()
	if want {
		child.onCancel()
		return
	}
	parent.core.log.Debug("local hop", "method", b.req.Method, "ruri", b.req.Recipient.String(), "from", parent.Service, "to", svc)
	parent.core.serve(child, svc)
}

// respond is a response from this branch's next hop.
func (b *branch) respond(res *sip.Response) {
	b.f.onResponse(b, res)
}

// cancel asks the branch's next hop to stop; for a wire INVITE the CANCEL
// waits for a provisional response (RFC 3261 §9.1).
func (b *branch) cancel() {
	b.mu.Lock()
	if b.final || b.wantCancel {
		b.mu.Unlock()
		return
	}
	b.wantCancel = true
	fn := b.cancelFn
	ready := b.provision
	b.mu.Unlock()
	if fn != nil && ready {
		fn()
	}
}

func (f *fork) cancelAll() {
	f.mu.Lock()
	bs := append([]*branch(nil), f.branches...)
	f.mu.Unlock()
	for _, b := range bs {
		b.cancel()
	}
}

// expire ends the ringing branches of a round after Fork.Timeout.
func (f *fork) expire(bs []*branch) {
	for _, b := range bs {
		b.mu.Lock()
		done := b.final
		send := !done && !b.wantCancel && b.provision && b.cancelFn != nil
		if !done {
			b.wantCancel = true
		}
		fn := b.cancelFn
		b.mu.Unlock()
		if done {
			continue
		}
		// The 408 is the branch's answer before the CANCEL goes out, so
		// that the 487 it draws is not taken for it.
		b.respond(sip.NewResponseFromRequest(b.req, 408, "Request Timeout", nil))
		if send {
			fn()
		}
	}
}

// onResponse aggregates branch responses (RFC 3261 §16.7).
func (f *fork) onResponse(b *branch, res *sip.Response) {
	t := f.t
	b.mu.Lock()
	b.heard = true
	b.mu.Unlock()
	if res.StatusCode < 200 {
		if res.StatusCode == 100 {
			return
		}
		b.mu.Lock()
		if b.final {
			// A branch given up on (Fork.Timeout) before it rang is
			// cancelled as soon as CANCEL is allowed.
			late := !b.provision && b.wantCancel && b.cancelFn != nil
			b.provision = true
			fn := b.cancelFn
			b.mu.Unlock()
			if late {
				fn()
			}
			return
		}
		first := !b.provision
		b.provision = true
		fn, want := b.cancelFn, b.wantCancel
		b.mu.Unlock()
		if first && want && fn != nil {
			fn()
		}
		if f.spec.OnResponse != nil {
			f.spec.OnResponse(res)
		}
		t.Respond(res)
		return
	}
	b.mu.Lock()
	if b.final {
		b.mu.Unlock()
		if res.IsSuccess() && t.Req.IsInvite() {
			// A retransmitted or further 2xx still reaches the caller.
			if f.spec.OnResponse != nil {
				f.spec.OnResponse(res)
			}
			t.Respond(res)
		}
		return
	}
	b.final = true
	b.mu.Unlock()

	if res.IsSuccess() {
		f.mu.Lock()
		f.answered = true
		f.pending--
		f.mu.Unlock()
		f.stopTimers()
		if f.spec.OnResponse != nil {
			f.spec.OnResponse(res)
		}
		t.Respond(res)
		if t.Req.IsInvite() {
			f.cancelAll()
		}
		return
	}
	f.mu.Lock()
	f.pending--
	if better(res, f.best) {
		f.best = res
	}
	done := f.pending == 0 && !f.answered
	best := f.best
	f.mu.Unlock()
	if res.StatusCode >= 600 && t.Req.IsInvite() {
		f.cancelAll()
	}
	if !done {
		return
	}
	f.stopTimers() // every branch of every round has answered
	if f.spec.OnFinal != nil && !t.Cancelled() {
		if next := f.spec.OnFinal(best); len(next) > 0 {
			f.mu.Lock()
			f.best = nil
			f.mu.Unlock()
			f.start(next)
			return
		}
	}
	if f.spec.OnResponse != nil {
		f.spec.OnResponse(best)
	}
	t.Respond(relayable(best, t.Req))
}

// relayable makes a branch's final response fit the server transaction:
// the response of a spiral or a retry is re-based on the upstream request's
// Via set.
func relayable(res *sip.Response, up *sip.Request) *sip.Response {
	vias := header.Get(up, "Via")
	if len(vias) == 0 {
		return res
	}
	mine := header.Get(res, "Via")
	if len(mine) == len(vias) && mine[0].Value() == vias[0].Value() {
		return res
	}
	for res.RemoveHeader("Via") {
	}
	for i := len(vias) - 1; i >= 0; i-- {
		res.PrependHeader(vias[i].(*sip.ViaHeader).Clone())
	}
	return res
}

// better ranks final responses per RFC 3261 §16.7 step 6: 6xx first, then
// the lowest class, preferring informative codes within 4xx.
func better(res, cur *sip.Response) bool {
	if cur == nil {
		return true
	}
	rc, cc := res.StatusCode/100, cur.StatusCode/100
	if rc == 6 || cc == 6 {
		return rc == 6 && cc != 6
	}
	if rc != cc {
		return rc < cc
	}
	return rank(res.StatusCode) < rank(cur.StatusCode)
}

// rank orders codes within a class: auth challenges and specific answers
// beat timeouts and generic failures.
func rank(code int) int {
	switch code {
	case 401, 407:
		return 0
	case 486, 600, 603:
		return 1
	case 408, 480, 487, 500, 503, 504:
		return 3
	}
	return 2
}

// errTimeout is a client transaction ending without a final response.
var errTimeout = errors.New("timeout")

// synth builds a response the core generates for a branch that failed.
func synth(req *sip.Request, err error) *sip.Response {
	if errors.Is(err, sip.ErrTransactionTimeout) || errors.Is(err, errTimeout) {
		return sip.NewResponseFromRequest(req, 408, "Request Timeout", nil)
	}
	res := sip.NewResponseFromRequest(req, 503, "Service Unavailable", nil)
	msg := err.Error()
	if len(msg) > 100 {
		msg = msg[:100]
	}
	res.AppendHeader(sip.NewHeader("Warning", `399 - "`+strings.ReplaceAll(msg, `"`, "'")+`"`))
	return res
}
