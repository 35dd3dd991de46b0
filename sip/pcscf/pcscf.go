// Package pcscf is the P-CSCF (Clearwater's Bono): the edge that UEs
// register and call through. It anchors each UE's flow with a Path token,
// learns the identities and Service-Route a registration grants, asserts the
// caller's identity on originating requests and sends them along the
// Service-Route, delivers terminating requests over the UE's own flow, and
// Record-Routes itself on both sides so that in-dialog requests keep
// crossing the edge.
package pcscf

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"stillwater/sip/header"
	"stillwater/sip/proxy"
)

// Options configures the P-CSCF.
type Options struct {
	// Upstream is the I-CSCF REGISTERs go to (upstream_hostname and
	// upstream_port).
	Upstream sip.Uri
	// Host is this node's address on the core side; TrustedPort its
	// trusted edge port (5058). Path and core-facing Record-Route name them.
	Host        string
	TrustedPort int
	// PublicHost is the address UEs reach this node at (public_hostname or
	// public_ip); "" means Host.
	PublicHost string
	// CDF is cdf_identity, put in P-Charging-Function-Addresses.
	CDF string
	// PBXes may send originating requests without registering; they are
	// routed to PBXServiceRoute.
	PBXes           []netip.Addr
	PBXServiceRoute *sip.Uri
	// TrustedPeers are IBCF trunk peers (trusted_peers): their requests are
	// accepted as terminating traffic; with peers configured, requests
	// from unknown unregistered sources get 403.
	TrustedPeers []netip.Addr
	Clock        func() time.Time
	Rand         io.Reader
	Logger       *slog.Logger
}

// PCSCF is the P-CSCF service.
type PCSCF struct {
	o   Options
	log *slog.Logger

	mu    sync.Mutex
	flows map[string]map[string]*registration // flow token → AoR → registration
	added int                                 // registrations learnt since the last sweep
}

// registration is what a 200 OK to a REGISTER told the P-CSCF about one AoR
// registered over one flow.
type registration struct {
	aor          string
	associated   []string // P-Associated-URI, default first
	serviceRoute []sip.Uri
	expires      time.Time
}

// New creates the P-CSCF.
func New(o Options) *PCSCF {
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.PublicHost == "" {
		o.PublicHost = o.Host
	}
	return &PCSCF{o: o, log: o.Logger.With("component", "pcscf"), flows: map[string]map[string]*registration{}}
}

// ServeSIP handles an initial request at the edge.
func (p *PCSCF) ServeSIP(t *proxy.Txn) {
	if t.Route != nil && t.Route.User != "" {
		// Reached through our own Path or Record-Route entry: the request
		// is on its way to the UE whose flow the token names.
		p.terminating(t, t.Route.User)
		return
	}
	if t.Src.Local || t.Src.Trusted {
		// A request for the UE side that has no flow token: pass it on.
		t.Forward(proxy.Fork{Targets: []proxy.Target{{}}})
		return
	}
	if t.Req.Method == sip.REGISTER {
		p.register(t)
		return
	}
	p.originating(t)
}

func (p *PCSCF) coreURI() sip.Uri {
	params := sip.NewParams()
	params.Add("transport", "tcp")
	params.Add("lr", "")
	return sip.Uri{Scheme: "sip", Host: p.o.Host, Port: p.o.TrustedPort, UriParams: params}
}

// ueURI is the UE-facing URI of the flow a request arrived over.
func (p *PCSCF) ueURI(t *proxy.Txn, token string) sip.Uri {
	params := sip.NewParams()
	if tr := strings.ToLower(t.Src.Transport); tr != "" && tr != "udp" {
		params.Add("transport", tr)
	}
	params.Add("lr", "")
	return sip.Uri{Scheme: "sip", User: token, Host: p.o.PublicHost, Port: t.Src.ListenerPort, UriParams: params}
}

// register sends a UE's REGISTER to the I-CSCF with a Path naming its flow.
func (p *PCSCF) register(t *proxy.Txn) {
	req := t.Req
	tok := t.FlowToken()
	if tok == "" {
		t.Reply(500, "Server Internal Error")
		return
	}
	path := p.coreURI()
	path.User = tok
	path.UriParams.Add("ob", "")
	req.PrependHeader(sip.NewHeader("Path", "<"+path.String()+">"))
	// Only this edge may say how the REGISTER was protected (TS 24.229
	// §5.2.2.1); a UE's own claim would let it skip authentication.
	var auths []string
	for _, h := range header.Get(req, "Authorization") {
		auths = append(auths, withoutParam(h.Value(), "integrity-protected"))
	}
	if auths != nil {
		header.RemoveAll(req, "Authorization")
		for _, v := range auths {
			req.AppendHeader(sip.NewHeader("Authorization", v))
		}
	}
	header.AddSupported(req, "path")
	header.RemoveAll(req, "P-Asserted-Identity")
	stripNetworkHeaders(req)
	p.chargingHeaders(req)
	aor := ""
	if to := req.To(); to != nil {
		aor = header.Canonical(to.Address)
	}
	up := p.o.Upstream
	t.Forward(proxy.Fork{
		Targets: []proxy.Target{{Routes: []sip.Uri{up}}},
		OnResponse: func(res *sip.Response) {
			if res.StatusCode == 200 {
				p.learn(tok, aor, res)
			}
		},
	})
}

// learn records what a 200 OK to a REGISTER says about the AoR on a flow.
func (p *PCSCF) learn(tok, aor string, res *sip.Response) {
	var assoc []string
	for _, h := range header.Get(res, "P-Associated-URI") {
		for _, v := range header.SplitList(h.Value()) {
			if u, ok := header.ParseNameAddr(v); ok {
				assoc = append(assoc, header.Canonical(u))
			}
		}
	}
	var routes []sip.Uri
	for _, h := range header.Get(res, "Service-Route") {
		for _, v := range header.SplitList(h.Value()) {
			if u, ok := header.ParseNameAddr(v); ok {
				routes = append(routes, u)
			}
		}
	}
	expires := 0
	for _, h := range header.Get(res, "Contact") {
		if c, ok := h.(*sip.ContactHeader); ok {
			if v, ok := c.Params.Get("expires"); ok {
				if n, err := strconv.Atoi(v); err == nil && n > expires {
					expires = n
				}
			}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.added++; p.added >= sweepEvery {
		p.sweepLocked()
	}
	regs := p.flows[tok]
	if expires == 0 {
		delete(regs, aor)
		if len(regs) == 0 {
			delete(p.flows, tok)
		}
		return
	}
	if regs == nil {
		regs = map[string]*registration{}
		p.flows[tok] = regs
	}
	if len(assoc) == 0 {
		assoc = []string{aor}
	}
	regs[aor] = &registration{aor: aor, associated: assoc, serviceRoute: routes,
		expires: p.o.Clock().Add(time.Duration(expires) * time.Second)}
}

// sweepEvery is how many registrations are learnt between sweeps of the
// flow table: UEs that stop refreshing leave entries no request revisits.
const sweepEvery = 4096

// sweepLocked drops expired registrations and the flows left empty.
func (p *PCSCF) sweepLocked() {
	p.added = 0
	now := p.o.Clock()
	for tok, regs := range p.flows {
		for aor, r := range regs {
			if now.After(r.expires) {
				delete(regs, aor)
			}
		}
		if len(regs) == 0 {
			delete(p.flows, tok)
		}
	}
}

// identity finds the registration over a flow that covers the identity the
// UE prefers (P-Preferred-Identity, else From) and returns the identity to
// assert.
func (p *PCSCF) identity(tok string, req *sip.Request) (*registration, string) {
	var wants []string
	for _, h := range header.Get(req, "P-Preferred-Identity") {
		for _, v := range header.SplitList(h.Value()) {
			if u, ok := header.ParseNameAddr(v); ok {
				wants = append(wants, header.Canonical(u))
			}
		}
	}
	if f := req.From(); f != nil {
		wants = append(wants, header.Canonical(f.Address))
	}
	now := p.o.Clock()
	p.mu.Lock()
	defer p.mu.Unlock()
	regs := p.flows[tok]
	for aor, r := range regs {
		if now.After(r.expires) {
			delete(regs, aor)
		}
	}
	for _, w := range wants {
		for _, r := range regs {
			for _, a := range r.associated {
				if a == w {
					return r, a
				}
			}
		}
	}
	return nil, ""
}

// originating sends a UE's initial request along its Service-Route with
// its asserted identity.
func (p *PCSCF) originating(t *proxy.Txn) {
	req := t.Req
	tok := t.FlowToken()
	reg, id := p.identity(tok, req)
	header.RemoveAll(req, "P-Asserted-Identity")
	header.RemoveAll(req, "P-Preferred-Identity")
	var routes []sip.Uri
	switch {
	case reg != nil:
		routes = append(routes, reg.serviceRoute...)
		req.AppendHeader(sip.NewHeader("P-Asserted-Identity", "<"+id+">"))
	case p.isPBX(t.Src.Addr) && p.o.PBXServiceRoute != nil:
		routes = []sip.Uri{*p.o.PBXServiceRoute}
		if f := req.From(); f != nil {
			req.AppendHeader(sip.NewHeader("P-Asserted-Identity", "<"+header.Canonical(f.Address)+">"))
		}
	case p.isTrustedPeer(t.Src.Addr):
		// IBCF: a trunk's request enters the core as terminating traffic.
		routes = []sip.Uri{p.o.Upstream}
	default:
		t.Reply(403, "Forbidden", sip.NewHeader("Warning", `399 - "not registered through this edge"`))
		return
	}
	// Route entries the UE put in front of the Service-Route (its outbound
	// proxy, this node) have already been consumed; whatever the UE listed
	// beyond us is replaced by the Service-Route it was given.
	header.RemoveAll(req, "Route")
	stripNetworkHeaders(req)
	p.chargingHeaders(req)
	t.Forward(proxy.Fork{
		Targets:     []proxy.Target{{Routes: routes}},
		RecordRoute: []sip.Uri{p.coreURI(), p.ueURI(t, tok)},
	})
}

// terminating delivers a request from the core to the UE over its flow.
func (p *PCSCF) terminating(t *proxy.Txn, tok string) {
	req := t.Req
	header.RemoveAll(req, "P-Charging-Function-Addresses")
	header.RemoveAll(req, "P-Charging-Vector")
	ue := p.ueURIFor(tok)
	t.Forward(proxy.Fork{
		Targets:     []proxy.Target{{Flow: tok}},
		RecordRoute: []sip.Uri{ue, p.coreURI()},
	})
}

// ueURIFor builds the UE-facing Record-Route for a flow token whose
// listener is known only from the token itself.
func (p *PCSCF) ueURIFor(tok string) sip.Uri {
	tr, port := proxy.FlowListener(tok)
	params := sip.NewParams()
	if tr != "" && !strings.EqualFold(tr, "udp") {
		params.Add("transport", strings.ToLower(tr))
	}
	params.Add("lr", "")
	return sip.Uri{Scheme: "sip", User: tok, Host: p.o.PublicHost, Port: port, UriParams: params}
}

// stripNetworkHeaders removes the headers set inside the home network
// only: a UE's own would be believed by the CSCFs and application servers
// behind the edge.
func stripNetworkHeaders(req *sip.Request) {
	for _, h := range [...]string{"P-Served-User", "P-Charging-Vector", "P-Charging-Function-Addresses"} {
		header.RemoveAll(req, h)
	}
}

// chargingHeaders adds P-Charging-Vector (a fresh ICID) and
// P-Charging-Function-Addresses (RFC 7315).
func (p *PCSCF) chargingHeaders(req *sip.Request) {
	if header.First(req, "P-Charging-Vector") == nil {
		var b [16]byte
		io.ReadFull(p.o.Rand, b[:])
		req.AppendHeader(sip.NewHeader("P-Charging-Vector", "icid-value="+hex.EncodeToString(b[:])+";icid-generated-at="+p.o.Host))
	}
	if p.o.CDF != "" && header.First(req, "P-Charging-Function-Addresses") == nil {
		req.AppendHeader(sip.NewHeader("P-Charging-Function-Addresses", "ccf="+p.o.CDF))
	}
}

func (p *PCSCF) isPBX(addr string) bool { return inList(p.o.PBXes, addr) }

func (p *PCSCF) isTrustedPeer(addr string) bool { return inList(p.o.TrustedPeers, addr) }

func inList(list []netip.Addr, addr string) bool {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return false
	}
	for _, a := range list {
		if a.Unmap() == ap.Addr().Unmap() {
			return true
		}
	}
	return false
}

// withoutParam removes one parameter from a credentials value
// (`Digest a="x", b=y`), leaving the others as they were.
func withoutParam(v, name string) string {
	scheme, rest, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok {
		return v
	}
	var keep []string
	for _, p := range header.SplitList(rest) {
		k, _, _ := strings.Cut(p, "=")
		if strings.EqualFold(strings.TrimSpace(k), name) {
			continue
		}
		keep = append(keep, p)
	}
	return scheme + " " + strings.Join(keep, ", ")
}
