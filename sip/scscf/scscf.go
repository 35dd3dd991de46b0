// Package scscf is the S-CSCF: it authenticates and registers users (with
// sip/auth and sip/registrar), serves reg-event subscriptions, and routes a
// served user's requests: originating requests on towards the callee's
// home (or off-net), terminating requests to every registered binding of
// the callee, forked in parallel by q-value with RFC 3841 caller
// preferences and GRUU targeting.
package scscf

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"stillwater/diameter/hss"
	"stillwater/sip/auth"
	"stillwater/sip/header"
	"stillwater/sip/ifc"
	"stillwater/sip/proxy"
	"stillwater/sip/registrar"
)

// Registrar is what the S-CSCF needs of the registration store.
type Registrar interface {
	// RegisterWith registers with the registration data the S-CSCF has
	// just read (nil: the registrar reads it).
	// nonce, if not nil, is consumed in the registering write; a used one
	// is auth.ErrNonceUsed.
	RegisterWith(ctx context.Context, req *sip.Request, impi string, nonce *auth.Nonce, rd *hss.RegData) (*sip.Response, error)
	Deregister(ctx context.Context, impu string) error
	Subscribe(ctx context.Context, req *sip.Request) *sip.Response
	Lookup(ctx context.Context, impu string) ([]registrar.Binding, error)
	LookupGRUU(ctx context.Context, gruu string) (*registrar.Binding, error)
}

// Authenticator checks a request's credentials.
type Authenticator interface {
	Authenticate(ctx context.Context, req *sip.Request, impu string, proxy bool) auth.Result
	// Register authenticates a REGISTER, leaving a single-use nonce for the
	// registrar to consume.
	Register(ctx context.Context, req *sip.Request, impu string) auth.Result
	// Stale challenges again a request whose nonce was used.
	Stale(ctx context.Context, req *sip.Request, impu string, proxy bool) auth.Result
}

// HSS is what the S-CSCF asks of the subscriber store.
type HSS interface {
	RegData(ctx context.Context, impu string) (*hss.RegData, error)
}

// Options configures the S-CSCF.
type Options struct {
	HSS       HSS
	Auth      Authenticator
	Registrar Registrar
	// HomeDomains are the domains whose users this network serves.
	HomeDomains []string
	// URI is this S-CSCF's own URI, used in Record-Route.
	URI sip.Uri
	// ICSCF, if set, is where originating requests for home users go to
	// find the callee's S-CSCF; nil means terminating processing here.
	ICSCF *sip.Uri
	// RecordRoute makes the S-CSCF Record-Route at the start of
	// originating and the end of terminating processing (sprout_rr_level).
	RecordRoute bool
	// ChallengeNonRegister challenges originating requests that the
	// P-CSCF did not assert an identity for (non_register_authentication).
	ChallengeNonRegister bool
	// LocalEdge is this node's trusted P-CSCF URI. When the edge node a
	// UE registered through cannot be reached, its flow is tried through
	// this one: flow tokens are valid on every node of the site.
	LocalEdge *sip.Uri
	// IFC is the iFC configuration (shared and fallback iFCs and the
	// options that go with them); SetIFCConfig changes it live.
	IFC *ifc.Config
	// ODIKey authenticates the original-dialog-identifier tokens that
	// bring requests back from application servers; every node of a site
	// uses the same key.
	ODIKey []byte
	// SessionContinuedTimeout and SessionTerminatedTimeout are how long an
	// AS may stay silent before its iFC's default handling applies
	// (session_continued_timeout_ms, session_terminated_timeout_ms).
	SessionContinuedTimeout, SessionTerminatedTimeout time.Duration
	// BGCF, if set, is where requests for other domains go (the local
	// BGCF); nil routes them by DNS.
	BGCF *sip.Uri
	// ENUM, if set, translates telephone numbers (tel: URIs and
	// user=phone SIP URIs) before routing.
	ENUM ENUM
	// DefaultSessionExpires and MaxSessionExpires are
	// default_session_expires and max_session_expires (0: 600 s).
	DefaultSessionExpires, MaxSessionExpires time.Duration
	// Sender sends third-party REGISTERs.
	Sender Sender
	// ForceThirdPartyBody includes the REGISTER and its response in every
	// third-party REGISTER (force_third_party_reg_body).
	ForceThirdPartyBody bool
	// AuthDisabled accepts REGISTERs without a challenge (authentication=Y
	// in Clearwater's sense); for test rigs only.
	AuthDisabled bool
	Logger       *slog.Logger
}

// ENUM translates a telephone number to a URI.
type ENUM interface {
	Translate(ctx context.Context, number string) (string, error)
}

// SCSCF is the S-CSCF service.
type SCSCF struct {
	o        Options
	log      *slog.Logger
	home     map[string]bool
	ifcCfg   atomic.Pointer[ifc.Config]
	profiles profileCache
}

// New creates the S-CSCF.
func New(o Options) *SCSCF {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.SessionContinuedTimeout <= 0 {
		o.SessionContinuedTimeout = 2 * time.Second
	}
	if o.SessionTerminatedTimeout <= 0 {
		o.SessionTerminatedTimeout = 4 * time.Second
	}
	s := &SCSCF{o: o, log: o.Logger.With("component", "scscf"), home: map[string]bool{}}
	for _, d := range o.HomeDomains {
		s.home[strings.ToLower(d)] = true
	}
	cfg := o.IFC
	if cfg == nil {
		cfg = &ifc.Config{}
	}
	s.ifcCfg.Store(cfg)
	return s
}

// SetIFCConfig puts a new iFC configuration in force.
func (s *SCSCF) SetIFCConfig(cfg *ifc.Config) {
	s.ifcCfg.Store(cfg)
	s.profiles.reset()
}

// ServeSIP handles a request routed to the S-CSCF.
func (s *SCSCF) ServeSIP(t *proxy.Txn) {
	req := t.Req
	switch {
	case req.Method == sip.REGISTER:
		s.register(t)
	case req.Method == sip.SUBSCRIBE && isRegEvent(req) && s.isHome(&req.Recipient):
		t.Respond(s.o.Registrar.Subscribe(t.Context(), req))
	case t.Route != nil && strings.HasPrefix(t.Route.User, odiPrefix):
		s.continueChain(t)
	case t.Route != nil && hasParam(t.Route, "orig"):
		s.originating(t)
	default:
		s.terminating(t)
	}
}

func (s *SCSCF) register(t *proxy.Txn) {
	req := t.Req
	impu := header.Canonical(req.To().Address)
	impi := ""
	var nonce *auth.Nonce
	if !s.o.AuthDisabled {
		res := s.o.Auth.Register(t.Context(), req, impu)
		if !res.OK {
			if res.Err != nil {
				s.log.Debug("REGISTER not authenticated", "impu", impu, "status", res.Response.StatusCode, "err", res.Err)
			}
			t.Respond(res.Response)
			return
		}
		impi, nonce = res.IMPI, res.Nonce
	}
	// One registration-data read serves the registrar and, through the
	// state before this REGISTER, tells an initial registration from a
	// re-registration for the third-party REGISTERs.
	rd, err := s.regData(t, impu)
	if err != nil {
		rd = nil
	}
	initial := rd == nil || rd.State != hss.Registered
	res, err := s.o.Registrar.RegisterWith(t.Context(), req, impi, nonce, rd)
	if err != nil {
		s.log.Debug("REGISTER replayed a used nonce", "impu", impu, "err", err)
		t.Respond(s.o.Auth.Stale(t.Context(), req, impu, false).Response)
		return
	}
	t.Respond(res)
	if res.StatusCode == 200 {
		s.thirdParty(req, res, rd, initial)
	}
}

func isRegEvent(req *sip.Request) bool {
	h := header.First(req, "Event")
	if h == nil {
		return false
	}
	v := strings.TrimSpace(h.Value())
	if i := strings.IndexByte(v, ';'); i >= 0 {
		v = v[:i]
	}
	return strings.EqualFold(strings.TrimSpace(v), "reg")
}

func hasParam(u *sip.Uri, name string) bool {
	if u.UriParams == nil {
		return false
	}
	_, ok := u.UriParams.Get(name)
	return ok
}

func (s *SCSCF) isHome(u *sip.Uri) bool {
	if strings.EqualFold(u.Scheme, "tel") {
		return true
	}
	if u.UriParams != nil {
		if v, ok := u.UriParams.Get("user"); ok && strings.EqualFold(v, "phone") {
			return true
		}
	}
	return s.home[strings.ToLower(u.Host)]
}

// servedUser is the originating user: the identity the P-CSCF asserted,
// else From.
func servedUser(req *sip.Request) string {
	if ids := header.URIs(req, "P-Asserted-Identity"); len(ids) > 0 {
		return header.Canonical(ids[0])
	}
	return header.Canonical(req.From().Address)
}

func (s *SCSCF) originating(t *proxy.Txn) {
	req := t.Req
	user := servedUser(req)
	if header.First(req, "P-Asserted-Identity") == nil && s.o.ChallengeNonRegister && s.o.Auth != nil {
		res := s.o.Auth.Authenticate(t.Context(), req, user, true)
		if !res.OK {
			t.Respond(res.Response)
			return
		}
	}
	rd, err := s.o.HSS.RegData(t.Context(), user)
	switch {
	case errors.Is(err, hss.ErrNotFound):
		t.Reply(403, "Forbidden", warning("unknown originating identity"))
		return
	case err != nil:
		s.log.Warn("HSS lookup failed", "impu", user, "err", err)
		t.Reply(504, "Server Time-out", warning("subscriber store unavailable"))
		return
	}
	for _, p := range rd.PublicIDs() {
		if p.Identity == user && p.Barred {
			t.Reply(403, "Forbidden", warning("barred originating identity"))
			return
		}
	}
	header.RemoveAll(req, "P-Served-User")
	s.sessionExpires(req)
	var rr []sip.Uri
	if s.o.RecordRoute {
		rr = []sip.Uri{s.rrURI()}
	}
	ifcs, hash := s.ifcsFor(rd, user)
	s.runChain(t, chain{Case: originatingCase(rd.State == hss.Registered), Served: user, Profile: hash}, ifcs, rr)
}

// onward routes an originating request whose services have run: to the
// callee's home S-CSCF through the I-CSCF when the callee is ours (after
// ENUM for telephone numbers), else off-net through the BGCF.
func (s *SCSCF) onward(t *proxy.Txn, rr []sip.Uri) {
	req := t.Req
	header.RemoveAll(req, "P-Served-User")
	if num, ok := telNumber(&req.Recipient); ok && s.o.ENUM != nil {
		uri, err := s.o.ENUM.Translate(t.Context(), num)
		switch {
		case err == nil:
			var u sip.Uri
			if perr := sip.ParseUri(uri, &u); perr == nil {
				req.Recipient = u
			}
		case errors.Is(err, ErrENUMUnavailable):
			s.log.Warn("ENUM lookup failed", "number", num, "err", err)
		}
	}
	if !s.isHome(&req.Recipient) || isTelOffNet(&req.Recipient, s) {
		if s.o.BGCF != nil {
			u := *s.o.BGCF.Clone()
			if u.UriParams == nil {
				u.UriParams = sip.NewParams()
			}
			u.UriParams.Add("lr", "")
			t.Forward(proxy.Fork{Targets: []proxy.Target{{Routes: []sip.Uri{u}}}, RecordRoute: rr})
			return
		}
		t.Forward(proxy.Fork{Targets: []proxy.Target{{}}, RecordRoute: rr})
		return
	}
	if s.o.ICSCF != nil {
		u := *s.o.ICSCF.Clone()
		if u.UriParams == nil {
			u.UriParams = sip.NewParams()
		}
		u.UriParams.Add("lr", "")
		t.Forward(proxy.Fork{Targets: []proxy.Target{{Routes: []sip.Uri{u}}}, RecordRoute: rr})
		return
	}
	s.terminatingWith(t, rr)
}

// ErrENUMUnavailable is what an ENUM implementation wraps when no server
// answered (as opposed to the number having no entry).
var ErrENUMUnavailable = errors.New("ENUM unavailable")

// telNumber is the number a tel: URI or a user=phone SIP URI names.
func telNumber(u *sip.Uri) (string, bool) {
	if strings.EqualFold(u.Scheme, "tel") {
		return u.Raw(), true // sipgo keeps a tel URI's number (and parameters) in Raw
	}
	if u.UriParams != nil {
		if v, ok := u.UriParams.Get("user"); ok && strings.EqualFold(v, "phone") {
			return u.User, true
		}
	}
	return "", false
}

// isTelOffNet reports whether a telephone-number URI is still a number
// after ENUM: it has no home subscriber to reach and goes to the BGCF.
func isTelOffNet(u *sip.Uri, s *SCSCF) bool {
	if strings.EqualFold(u.Scheme, "tel") {
		return s.o.BGCF != nil
	}
	return false
}

// regData is impu's registration data: what the I-CSCF of this node read
// for this very request, if it handed that on, else a fresh read.
func (s *SCSCF) regData(t *proxy.Txn, impu string) (*hss.RegData, error) {
	if rd, ok := t.Carried().(*hss.RegData); ok && rd != nil && rd.IMPU == impu {
		return rd, nil
	}
	return s.o.HSS.RegData(t.Context(), impu)
}

func regState(rd *hss.RegData) string {
	if rd.State == hss.Registered {
		return "reg"
	}
	return "unreg"
}

func (s *SCSCF) rrURI() sip.Uri {
	u := *s.o.URI.Clone()
	if u.UriParams == nil {
		u.UriParams = sip.NewParams()
	}
	u.UriParams.Add("lr", "")
	return u
}

func (s *SCSCF) terminating(t *proxy.Txn) {
	var rr []sip.Uri
	if s.o.RecordRoute {
		rr = []sip.Uri{s.rrURI()}
	}
	s.terminatingWith(t, rr)
}

// terminatingWith runs the callee's terminating services, then delivers.
func (s *SCSCF) terminatingWith(t *proxy.Txn, rr []sip.Uri) {
	req := t.Req
	uri := req.Recipient
	impu := header.Canonical(uri)
	if _, isGRUU := grParam(&uri); isGRUU {
		s.deliver(t, impu, rr)
		return
	}
	if num, ok := telNumber(&uri); ok && !strings.EqualFold(uri.Scheme, "tel") {
		impu = "tel:" + num
	}
	rd, err := s.regData(t, impu)
	if err != nil {
		s.hssFailure(t, impu, err)
		return
	}
	for _, p := range rd.PublicIDs() {
		if p.Identity == impu && p.Barred {
			t.Reply(404, "Not Found")
			return
		}
	}
	reg := rd.State == hss.Registered
	ifcs, hash := s.ifcsFor(rd, impu)
	s.runChain(t, chain{Case: terminatingCase(reg), Reg: reg, Served: impu, Target: header.Canonical(uri), Profile: hash}, ifcs, rr)
}

// deliver forks a request to the served user's bindings (or the one a GRUU
// names), highest q first.
func (s *SCSCF) deliver(t *proxy.Txn, impu string, rr []sip.Uri) {
	req := t.Req
	ctx := t.Context()
	header.RemoveAll(req, "P-Served-User")
	uri := req.Recipient
	if _, ok := grParam(&uri); ok {
		b, err := s.o.Registrar.LookupGRUU(ctx, uri.String())
		if err != nil || b == nil {
			t.Reply(480, "Temporarily Unavailable", warning("unknown or unregistered GRUU"))
			return
		}
		t.Forward(proxy.Fork{Targets: []proxy.Target{target(*b)}, RecordRoute: rr})
		return
	}
	bindings, err := s.o.Registrar.Lookup(ctx, impu)
	if errors.Is(err, registrar.ErrNotFound) {
		t.Reply(480, "Temporarily Unavailable")
		return
	}
	if err != nil {
		s.log.Warn("binding lookup failed", "impu", impu, "err", err)
		t.Reply(504, "Server Time-out", warning("registration store unavailable"))
		return
	}
	bindings = preferred(req, bindings)
	if len(bindings) == 0 {
		t.Reply(480, "Temporarily Unavailable")
		return
	}
	groups := byQ(bindings)
	next, rerouted := 1, false
	t.Forward(proxy.Fork{
		Targets:     groups[0],
		RecordRoute: rr,
		OnFinal: func(best *sip.Response) []proxy.Target {
			if !rerouted && (best.StatusCode == 503 || best.StatusCode == 408) {
				rerouted = true
				if g := s.viaLocalEdge(groups[next-1]); g != nil {
					return g
				}
			}
			// Lower-q groups are tried when the higher ones fail
			// (RFC 3261 §16.6), except on a global failure.
			if next >= len(groups) || best.StatusCode >= 600 {
				return nil
			}
			g := groups[next]
			next++
			rerouted = false
			return g
		},
	})
}

func grParam(u *sip.Uri) (string, bool) {
	if u.UriParams == nil {
		return "", false
	}
	return u.UriParams.Get("gr")
}

// target makes a fork target of a binding: its Contact behind its Path.
func target(b registrar.Binding) proxy.Target {
	var u sip.Uri
	if err := sip.ParseUri(b.URI, &u); err != nil {
		u = sip.Uri{Scheme: "sip", Host: "invalid"}
	}
	var routes []sip.Uri
	// The registrar keeps each Path entry as a bare URI, parameters and
	// all.
	for _, p := range b.Path {
		var pu sip.Uri
		if err := sip.ParseUri(strings.Trim(p, "<> "), &pu); err == nil {
			routes = append(routes, pu)
		}
	}
	return proxy.Target{URI: &u, Routes: routes}
}

// byQ groups bindings into fork rounds, highest q first.
func byQ(bs []registrar.Binding) [][]proxy.Target {
	sort.SliceStable(bs, func(i, j int) bool { return bs[i].Q > bs[j].Q })
	var out [][]proxy.Target
	for i := 0; i < len(bs); {
		j := i
		var g []proxy.Target
		for j < len(bs) && bs[j].Q == bs[i].Q {
			g = append(g, target(bs[j]))
			j++
		}
		out = append(out, g)
		i = j
	}
	return out
}

func warning(text string) sip.Header {
	return sip.NewHeader("Warning", `399 - "`+strings.ReplaceAll(text, `"`, "'")+`"`)
}

// viaLocalEdge rewrites a fork round whose targets sit behind another
// node's flow-token Path so that they go through this node's edge instead;
// nil if no target has such a Path.
func (s *SCSCF) viaLocalEdge(g []proxy.Target) []proxy.Target {
	if s.o.LocalEdge == nil {
		return nil
	}
	var out []proxy.Target
	for _, tg := range g {
		if len(tg.Routes) == 0 || tg.Routes[0].User == "" || !hasParam(&tg.Routes[0], "ob") ||
			strings.EqualFold(tg.Routes[0].Host, s.o.LocalEdge.Host) {
			continue
		}
		first := *s.o.LocalEdge.Clone()
		first.User = tg.Routes[0].User
		if first.UriParams == nil {
			first.UriParams = sip.NewParams()
		}
		first.UriParams.Add("lr", "")
		first.UriParams.Add("ob", "")
		routes := append([]sip.Uri{first}, tg.Routes[1:]...)
		out = append(out, proxy.Target{URI: tg.URI, Routes: routes})
	}
	return out
}

// sessionExpires applies RFC 4028 session timers to an initial INVITE as
// Sprout does: one is added when the caller asked for none, and a longer
// one than max_session_expires is brought down to it (never below the
// request's Min-SE).
func (s *SCSCF) sessionExpires(req *sip.Request) {
	if req.Method != sip.INVITE {
		return
	}
	def, maxSE := s.o.DefaultSessionExpires, s.o.MaxSessionExpires
	if maxSE <= 0 {
		maxSE = defaultSessionExpires
	}
	if def <= 0 || def > maxSE {
		def = min(defaultSessionExpires, maxSE)
	}
	h := header.First(req, "Session-Expires")
	if h == nil {
		h = header.First(req, "x")
	}
	if h == nil {
		req.AppendHeader(sip.NewHeader("Session-Expires", strconv.Itoa(int(def/time.Second))))
		return
	}
	val, params, _ := strings.Cut(strings.TrimSpace(h.Value()), ";")
	n, err := strconv.Atoi(strings.TrimSpace(val))
	if err != nil || time.Duration(n)*time.Second <= maxSE {
		return
	}
	minSE := 0
	if m := header.First(req, "Min-SE"); m != nil {
		v, _, _ := strings.Cut(m.Value(), ";")
		minSE, _ = strconv.Atoi(strings.TrimSpace(v))
	}
	want := max(int(maxSE/time.Second), minSE)
	v := strconv.Itoa(want)
	if params != "" {
		v += ";" + params
	}
	req.RemoveHeader(h.Name())
	req.AppendHeader(sip.NewHeader("Session-Expires", v))
}

// defaultSessionExpires is Clearwater's default for both
// default_session_expires and max_session_expires.
const defaultSessionExpires = 10 * time.Minute
