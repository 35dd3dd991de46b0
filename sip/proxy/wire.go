package proxy

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"stillwater/sip/header"
)

// mtuSwitch is the request size above which UDP gives way to TCP (RFC 3261
// §18.1.1, path MTU unknown).
const mtuSwitch = 1300

// branchCookie starts every Via branch the core generates; the loop hash
// follows it so that a request coming back unchanged is recognised.
const branchCookie = "z9hG4bKsw"

// runWire sends the branch over the network, trying the resolved hops in
// order until one accepts the request.
func (b *branch) runWire(flow string) {
	c := b.f.t.core
	req := b.req
	hops, err := c.nextHops(b.f.t.ctx, req, flow)
	if err != nil || len(hops) == 0 {
		if err == nil {
			err = errNoHop
		}
		c.log.Debug("no next hop", "uri", req.Recipient.String(), "err", err)
		b.respond(synth(req, err))
		return
	}
	if !c.cfg.DisableTCPSwitch && len(req.String()) > mtuSwitch {
		hops = tcpFirst(hops)
	}
	var lastErr error
	for _, h := range hops {
		var watch *acceptWatch
		tx, err := c.sendTx(b.f.t.ctx, req, h, b.f.t.Service, b.f.t.Src.Trusted || b.f.t.Src.Local, func() {
			if req.IsInvite() {
				watch = c.watchAccept(req)
			}
		})
		if err != nil {
			c.sent(watch, nil)
			c.log.Debug("next hop refused the request", "method", req.Method, "hop", h.Addr, "transport", h.Transport, "err", err)
			lastErr = err
			continue
		}
		c.sent(watch, tx)
		c.log.Debug("sent", "method", req.Method, "ruri", req.Recipient.String(), "hop", h.Addr, "transport", h.Transport, "from", b.f.t.Service)
		b.track(tx, h, watch)
		return
	}
	b.respond(synth(req, lastErr))
}

// track relays a client transaction's responses into the fork.
func (b *branch) track(tx sip.ClientTransaction, h wireHop, watch *acceptWatch) {
	c := b.f.t.core
	req := b.req
	b.mu.Lock()
	b.cancelFn = func() { c.sendCancel(req, h) }
	want, prov := b.wantCancel, b.provision
	b.mu.Unlock()
	if want && prov {
		c.sendCancel(req, h)
	}
	var timerC <-chan struct{}
	if req.IsInvite() {
		ctx, cancel := context.WithTimeout(context.Background(), timerCFor(b))
		defer cancel()
		timerC = ctx.Done()
		defer c.unwatchAccept(watch)
	}
	accepted := func(res *sip.Response) {
		// Retransmissions of the 2xx, and further 2xx from a forking
		// downstream proxy, need no transaction: the core relays them
		// statelessly by Via (RFC 3261 §16.7 step 10) as stray responses.
		res.RemoveHeader("Via")
		b.respond(res)
	}
	var acceptedC <-chan *sip.Response
	if watch != nil {
		acceptedC = watch.accepted
	}
	for {
		select {
		case res := <-acceptedC:
			accepted(res)
			return
		case res, ok := <-tx.Responses():
			if !ok {
				return
			}
			if res.IsSuccess() && req.IsInvite() {
				// Arrived before the watch was in place.
				tx.Terminate()
				accepted(res)
				return
			}
			res.RemoveHeader("Via")
			b.respond(res)
			if res.StatusCode >= 200 {
				return
			}
		case <-tx.Done():
			if watch != nil && watch.taken.Load() {
				// Ended by takeAccepted: its 2xx is on the way.
				select {
				case res := <-acceptedC:
					accepted(res)
				case <-c.stop:
				}
				return
			}
			err := tx.Err()
			if err == nil {
				err = errTimeout
			}
			b.respond(synth(req, err))
			return
		case <-timerC:
			b.cancel()
			timerC = nil
		}
	}
}

func timerCFor(b *branch) time.Duration {
	if b.f.spec.Timeout > 0 && b.f.spec.Timeout < timerC {
		return b.f.spec.Timeout + timerC
	}
	return timerC
}

// tcpFirst puts a TCP attempt to the same address before each UDP hop, for
// requests too large for UDP (RFC 3261 §18.1.1). The UDP hop stays as the
// fallback: a UE behind NAT may accept nothing but its UDP flow.
func tcpFirst(hops []wireHop) []wireHop {
	var out []wireHop
	for _, h := range hops {
		if strings.EqualFold(h.Transport, "UDP") {
			out = append(out, wireHop{Hop: Hop{Transport: "TCP", Addr: h.Addr}})
		}
		out = append(out, h)
	}
	return out
}

// wireHop is a resolved destination with the listener to send from.
type wireHop struct {
	Hop
	ln *boundListener
}

// nextHops resolves where a request goes: its top Route, else its
// Request-URI or the flow a token names.
func (c *Core) nextHops(ctx context.Context, req *sip.Request, flow string) ([]wireHop, error) {
	if req.Route() == nil && flow != "" {
		if h, ok := c.decodeFlow(flow); ok {
			return []wireHop{h}, nil
		}
	}
	u := &req.Recipient
	if r := req.Route(); r != nil {
		u = &r.Address
	}
	if strings.EqualFold(u.Scheme, "tel") {
		return nil, fmt.Errorf("cannot route to a tel URI %s", u.String())
	}
	transport := ""
	if u.UriParams != nil {
		if v, ok := u.UriParams.Get("transport"); ok {
			transport = strings.ToUpper(v)
		}
	}
	var hops []Hop
	if c.cfg.Resolver != nil {
		hs, err := c.cfg.Resolver.Resolve(ctx, u.Host, u.Port, transport, u.IsEncrypted())
		if err != nil {
			return nil, err
		}
		hops = hs
	} else {
		hs, err := systemResolve(ctx, u.Host, u.Port, transport, u.IsEncrypted())
		if err != nil {
			return nil, err
		}
		hops = hs
	}
	var out []wireHop
	for _, h := range hops {
		out = append(out, wireHop{Hop: h})
	}
	return out, nil
}

// systemResolve is the fallback resolver: IP literals and A/AAAA lookups,
// UDP unless the URI says otherwise.
func systemResolve(ctx context.Context, host string, port int, transport string, secure bool) ([]Hop, error) {
	if transport == "" {
		transport = "UDP"
		if secure {
			transport = "TLS"
		}
	}
	if port == 0 {
		port = 5060
		if transport == "TLS" {
			port = 5061
		}
	}
	host = strings.Trim(host, "[]")
	if a, err := netip.ParseAddr(host); err == nil {
		return []Hop{{Transport: transport, Addr: netip.AddrPortFrom(a, uint16(port)).String()}}, nil
	}
	addrs, err := net.DefaultResolver.LookupHost(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	var out []Hop
	for _, a := range addrs {
		out = append(out, Hop{Transport: transport, Addr: net.JoinHostPort(a, strconv.Itoa(port))})
	}
	return out, nil
}

// sendTx adds this node's Via and starts a client transaction to h.
// before, if not nil, runs once the request is complete, just before it is
// sent.
func (c *Core) sendTx(ctx context.Context, req *sip.Request, h wireHop, service string, trusted bool, before func()) (sip.ClientTransaction, error) {
	transport := h.Transport
	ln := h.ln
	if ln == nil || !strings.EqualFold(ln.Network, transport) {
		ln = c.listenerForSend(transport, service, trusted)
	}
	if ln == nil {
		return nil, fmt.Errorf("no %s listener to send from", transport)
	}
	c.addVia(req, ln, transport)
	req.SetTransport(transport)
	req.SetDestination(h.Addr)
	if strings.EqualFold(transport, "UDP") {
		req.Laddr = sip.Addr{IP: net.IP(ln.Addr.Addr().AsSlice()), Port: ln.port}
	} else {
		req.Laddr = sip.Addr{}
	}
	if before != nil {
		before()
	}
	tx, err := c.txl.Request(ctx, req)
	if err != nil {
		req.RemoveHeader("Via")
		return nil, fmt.Errorf("send to %s %s: %w", transport, h.Addr, err)
	}
	return tx, nil
}

// addVia puts this node's Via on top, with a branch that carries the
// request's loop hash.
func (c *Core) addVia(req *sip.Request, ln *boundListener, transport string) {
	params := sip.NewParams()
	params.Add("branch", branchCookie+loopHash(req)+c.branchID())
	params.Add("rport", "")
	req.PrependHeader(&sip.ViaHeader{
		ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: strings.ToUpper(transport),
		Host: ln.host(), Port: ln.port, Params: params,
	})
}

// loopHash digests what RFC 3261 §16.6 step 8 says identifies a request
// for loop detection: a spiral changes one of these, a loop does not.
func loopHash(req *sip.Request) string {
	h := sha256.New()
	io.WriteString(h, req.Recipient.String())
	if r := req.Route(); r != nil {
		io.WriteString(h, r.Address.String())
	}
	if id := req.CallID(); id != nil {
		io.WriteString(h, id.Value())
	}
	if cs := req.CSeq(); cs != nil {
		io.WriteString(h, strconv.FormatUint(uint64(cs.SeqNo), 10))
	}
	if f := req.From(); f != nil && f.Params != nil {
		v, _ := f.Params.Get("tag")
		io.WriteString(h, v)
	}
	if pa := header.First(req, "Proxy-Authorization"); pa != nil {
		io.WriteString(h, pa.Value())
	}
	return hex.EncodeToString(h.Sum(nil)[:5])
}

// looped reports whether one of this node's Vias in req already carries the
// loop hash the request has now.
func (c *Core) looped(req *sip.Request) bool {
	var mine []string
	for _, h := range header.Get(req, "Via") {
		v, ok := h.(*sip.ViaHeader)
		if !ok || !c.IsLocalHost(v.Host) {
			continue
		}
		if b, ok := v.Params.Get("branch"); ok && strings.HasPrefix(b, branchCookie) {
			mine = append(mine, b)
		}
	}
	if len(mine) == 0 {
		return false
	}
	hash := loopHash(req)
	for _, b := range mine {
		if strings.HasPrefix(b[len(branchCookie):], hash) {
			return true
		}
	}
	return false
}

// sendCancel cancels a wire INVITE branch (RFC 3261 §9.1).
func (c *Core) sendCancel(inv *sip.Request, h wireHop) {
	cancel := sip.NewRequest(sip.CANCEL, *inv.Recipient.Clone())
	if v := inv.Via(); v != nil {
		cancel.AppendHeader(v.Clone())
	}
	for _, r := range header.Get(inv, "Route") {
		cancel.AppendHeader(sip.HeaderClone(r))
	}
	mf := sip.MaxForwardsHeader(70)
	cancel.AppendHeader(&mf)
	for _, name := range []string{"From", "To", "Call-ID"} {
		if hd := header.First(inv, name); hd != nil {
			cancel.AppendHeader(sip.HeaderClone(hd))
		}
	}
	if cs := inv.CSeq(); cs != nil {
		cancel.AppendHeader(&sip.CSeqHeader{SeqNo: cs.SeqNo, MethodName: sip.CANCEL})
	}
	cl := sip.ContentLengthHeader(0)
	cancel.AppendHeader(&cl)
	cancel.SetTransport(inv.Transport())
	cancel.SetDestination(inv.Destination())
	cancel.Laddr = inv.Laddr
	tx, err := c.txl.Request(context.Background(), cancel)
	if err != nil {
		c.log.Debug("CANCEL not sent", "err", err)
		return
	}
	go func() {
		defer tx.Terminate()
		for {
			select {
			case res := <-tx.Responses():
				if res.StatusCode >= 200 {
					return
				}
			case <-tx.Done():
				return
			}
		}
	}()
}

// forwardAck routes an ACK for a 2xx statelessly along its Route set.
func (c *Core) forwardAck(req *sip.Request, ln *boundListener) {
	if c.cfg.EdgeOnlyInDialog && ln != nil && !ln.Trusted && !c.routedHere(req) {
		return // not ours to relay (see routeInDialog)
	}
	flow := c.popLocalRoutes(req)
	if req.Route() == nil && flow == "" && c.IsLocalHost(req.Recipient.Host) {
		return // an ACK for a response this node generated
	}
	if mf := req.MaxForwards(); mf != nil {
		if mf.Val() == 0 {
			return
		}
		mf.Dec()
	}
	hops, err := c.nextHops(context.Background(), req, flow)
	if err != nil || len(hops) == 0 {
		c.log.Debug("ACK not routable", "err", err)
		return
	}
	h := hops[0]
	service := ""
	if ln != nil {
		service = ln.Service
	}
	sl := h.ln
	if sl == nil || !strings.EqualFold(sl.Network, h.Transport) {
		sl = c.listenerForSend(h.Transport, service, true)
	}
	if sl == nil {
		return
	}
	c.addVia(req, sl, h.Transport)
	req.SetTransport(h.Transport)
	req.SetDestination(h.Addr)
	if strings.EqualFold(h.Transport, "UDP") {
		req.Laddr = sip.Addr{IP: net.IP(sl.Addr.Addr().AsSlice()), Port: sl.port}
	} else {
		req.Laddr = sip.Addr{}
	}
	if err := c.tpl.WriteMsg(req); err != nil {
		c.log.Debug("ACK not sent", "err", err)
	}
}

// onStrayResponse forwards a response no client transaction matches (a 2xx
// retransmission after the transaction ended) statelessly by its Via.
func (c *Core) onStrayResponse(res *sip.Response) {
	if c.claimTaken(res) {
		return
	}
	v := res.Via()
	if v == nil || !c.IsLocalHost(v.Host) {
		return
	}
	res.RemoveHeader("Via")
	next := res.Via()
	if next == nil {
		return
	}
	host, port := next.Host, next.Port
	if r, ok := next.Params.Get("received"); ok && r != "" {
		host = r
	}
	if rp, ok := next.Params.Get("rport"); ok && rp != "" {
		if p, err := strconv.Atoi(rp); err == nil {
			port = p
		}
	}
	if port == 0 {
		port = 5060
	}
	res.SetTransport(next.Transport)
	res.SetDestination(net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(port)))
	if strings.EqualFold(next.Transport, "UDP") {
		// Over UDP the response leaves from a listening socket: sipgo has
		// no socket of its own for an address that never sent to it.
		if ln := c.listenerForSend("UDP", "", false); ln != nil {
			if conn, err := c.tpl.GetConnection("udp", netip.AddrPortFrom(ln.Addr.Addr(), uint16(ln.port)).String()); err == nil {
				if err := conn.WriteMsg(res); err != nil {
					c.log.Debug("stray response not relayed", "err", err)
				}
				return
			}
		}
	}
	if err := c.tpl.WriteMsg(res); err != nil {
		c.log.Debug("stray response not relayed", "err", err)
	}
}

// newIDSource returns a generator of unique branch suffixes.
func newIDSource(r io.Reader) func() string {
	if r == nil {
		r = rand.Reader
	}
	var mu sync.Mutex
	return func() string {
		var b [10]byte
		mu.Lock()
		_, err := io.ReadFull(r, b[:])
		mu.Unlock()
		if err != nil {
			panic(fmt.Sprintf("sip: random source failed: %v", err))
		}
		return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
	}
}
