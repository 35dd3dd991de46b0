package scscf

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"strings"
	"sync"

	"github.com/emiago/sipgo/sip"

	"stillwater/diameter/hss"
	"stillwater/sip/header"
	"stillwater/sip/ifc"
	"stillwater/sip/proxy"
)

// The application-server chain (ISC, TS 24.229 §5.4.3.2/§5.4.3.3). Each AS
// is sent the request with two Routes: the AS, then this S-CSCF with an
// original-dialog-identifier token. The token carries where the chain
// stands (session case, served user, iFC position), authenticated with the
// site key, so that the request an AS sends back continues the chain on
// whichever node receives it: no chain state is kept in memory.

// odiPrefix starts the user part of the S-CSCF URI an AS returns requests
// to.
const odiPrefix = "odi_"

// chain is where a served user's AS chain stands.
type chain struct {
	Case   ifc.SessionCase
	Reg    bool // served user registered (for the CDIV case)
	Pos    ifc.Position
	Served string
	// Profile identifies the served user's iFC document (a hash): a
	// request coming back from an AS finds the parsed iFCs by it without
	// asking the HSS again.
	Profile uint64
	// Target is the Request-URI the terminating chain started with: an AS
	// that changes it has retargeted the call (TS 24.229 §5.4.3.3 step 3).
	Target string
}

const odiMACLen = 12

// token encodes c for an ODI Route.
func (s *SCSCF) token(c chain) string {
	b := []byte{1, byte(c.Case), 0}
	if c.Reg {
		b[2] |= 1
	}
	if c.Pos.Fallback {
		b[2] |= 2
	}
	if c.Pos.Matched {
		b[2] |= 4
	}
	b = binary.BigEndian.AppendUint16(b, uint16(c.Pos.Next))
	b = binary.BigEndian.AppendUint64(b, c.Profile)
	for _, str := range []string{c.Served, c.Target} {
		b = binary.BigEndian.AppendUint16(b, uint16(len(str)))
		b = append(b, str...)
	}
	m := hmac.New(sha256.New, s.o.ODIKey)
	m.Write(b)
	b = m.Sum(b)[:len(b)+odiMACLen]
	return odiPrefix + base64.RawURLEncoding.EncodeToString(b)
}

var errBadToken = errors.New("not an original dialog identifier of this site")

// parseToken decodes and authenticates an ODI token.
func (s *SCSCF) parseToken(tok string) (chain, error) {
	raw, ok := strings.CutPrefix(tok, odiPrefix)
	if !ok {
		return chain{}, errBadToken
	}
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil || len(b) < 5+8+4+odiMACLen || b[0] != 1 {
		return chain{}, errBadToken
	}
	body, mac := b[:len(b)-odiMACLen], b[len(b)-odiMACLen:]
	m := hmac.New(sha256.New, s.o.ODIKey)
	m.Write(body)
	if !hmac.Equal(mac, m.Sum(nil)[:odiMACLen]) {
		return chain{}, errBadToken
	}
	c := chain{Case: ifc.SessionCase(body[1]), Reg: body[2]&1 != 0}
	c.Pos.Fallback, c.Pos.Matched = body[2]&2 != 0, body[2]&4 != 0
	c.Pos.Next = int(binary.BigEndian.Uint16(body[3:5]))
	c.Profile = binary.BigEndian.Uint64(body[5:13])
	rest := body[13:]
	for _, dst := range []*string{&c.Served, &c.Target} {
		if len(rest) < 2 {
			return chain{}, errBadToken
		}
		n := int(binary.BigEndian.Uint16(rest))
		if len(rest) < 2+n {
			return chain{}, errBadToken
		}
		*dst, rest = string(rest[2:2+n]), rest[2+n:]
	}
	return c, nil
}

// odiURI is the Route back to this S-CSCF for the chain's next step.
func (s *SCSCF) odiURI(c chain) sip.Uri {
	u := s.rrURI()
	u.User = s.token(c)
	return u
}

// originatingCase is the session case of an originating request.
func originatingCase(registered bool) ifc.SessionCase {
	if registered {
		return ifc.OriginatingRegistered
	}
	return ifc.OriginatingUnregistered
}

func terminatingCase(registered bool) ifc.SessionCase {
	if registered {
		return ifc.TerminatingRegistered
	}
	return ifc.TerminatingUnregistered
}

func (c chain) originating() bool {
	return c.Case == ifc.OriginatingRegistered || c.Case == ifc.OriginatingUnregistered || c.Case == ifc.OriginatingCDIV
}

// runChain invokes the next AS of the chain whose iFC the request matches,
// or ends the chain: originating requests go on towards the callee,
// terminating ones to the served user's bindings.
func (s *SCSCF) runChain(t *proxy.Txn, c chain, ifcs []ifc.IFC, rr []sip.Uri) {
	cfg := s.ifcCfg.Load()
	f, pos, ok := cfg.Next(ifcs, c.Pos, t.Req, ifc.Case{Session: c.Case, Registered: c.Reg})
	c.Pos = pos
	if !ok {
		if cfg.Reject(pos) {
			t.Reply(400, "Bad Request", warning("no iFC matched the request (reject_if_no_matching_ifcs)"))
			return
		}
		s.chainDone(t, c, rr)
		return
	}
	as, err := asURI(f.AS.ServerName)
	if err != nil {
		s.log.Warn("iFC names an AS that is not a SIP URI; skipped", "served", c.Served, "as", f.AS.ServerName)
		s.runChain(t, c, ifcs, rr)
		return
	}
	back := s.odiURI(c)
	timeout := s.o.SessionContinuedTimeout
	if f.AS.DefaultHandling == ifc.SessionTerminated {
		timeout = s.o.SessionTerminatedTimeout
	}
	handling := f.AS.DefaultHandling
	served := c.Served
	req := t.Req
	if header.First(req, "P-Served-User") == nil {
		sescase := "term"
		if c.originating() {
			sescase = "orig"
		}
		regstate := "unreg"
		if c.Case == ifc.OriginatingRegistered || c.Case == ifc.TerminatingRegistered || c.Reg {
			regstate = "reg"
		}
		req.AppendHeader(sip.NewHeader("P-Served-User", "<"+served+">;sescase="+sescase+";regstate="+regstate))
	}
	t.Forward(proxy.Fork{
		Targets:         []proxy.Target{{Routes: []sip.Uri{as, back}}},
		RecordRoute:     rr,
		ResponseTimeout: timeout,
		OnFinal: func(best *sip.Response) []proxy.Target {
			// Default handling (TS 24.229 §5.4.3.2 step 4): an AS that did
			// not answer, or failed before any provisional response, is
			// skipped when the iFC says SESSION_CONTINUED. The request
			// then goes back to this S-CSCF to take the chain on.
			if handling != ifc.SessionContinued || t.SentProvisional() || !unresponsive(best) {
				return nil
			}
			s.log.Info("AS did not respond; continuing the session without it", "as", as.String(), "served", served, "status", best.StatusCode)
			return []proxy.Target{{Routes: []sip.Uri{back}, Edit: func(r *sip.Request) { header.RemoveAll(r, "P-Served-User") }}}
		},
	})
}

// unresponsive is a final response that means the AS was not reached or
// could not act: a timeout or a server failure.
func unresponsive(res *sip.Response) bool {
	return res.StatusCode == 408 || res.StatusCode >= 500 && res.StatusCode < 600
}

// asURI parses an iFC's ServerName as a loose Route.
func asURI(name string) (sip.Uri, error) {
	var u sip.Uri
	if err := sip.ParseUri(strings.Trim(strings.TrimSpace(name), "<>"), &u); err != nil {
		return sip.Uri{}, err
	}
	if !strings.EqualFold(u.Scheme, "sip") && !strings.EqualFold(u.Scheme, "sips") {
		return sip.Uri{}, errors.New("not a SIP URI")
	}
	if u.UriParams == nil {
		u.UriParams = sip.NewParams()
	}
	u.UriParams.Add("lr", "")
	return u, nil
}

// continueChain takes up a chain when an AS sends its request back.
func (s *SCSCF) continueChain(t *proxy.Txn) {
	c, err := s.parseToken(t.Route.User)
	if err != nil {
		t.Reply(403, "Forbidden", warning("unknown original dialog identifier"))
		return
	}
	header.RemoveAll(t.Req, "P-Served-User")
	retargeted := !c.originating() && c.Target != "" && header.Canonical(t.Req.Recipient) != c.Target
	if ifcs, ok := s.profiles.byHash(c.Profile); ok && !retargeted {
		s.runChain(t, c, ifcs, nil)
		return
	}
	rd, err := s.o.HSS.RegData(t.Context(), c.Served)
	if err != nil {
		s.hssFailure(t, c.Served, err)
		return
	}
	if retargeted {
		// An AS retargeted the call (diversion): the served user's
		// originating-CDIV services run, then the request goes to its new
		// target (TS 24.229 §5.4.3.3 step 3, §5.4.3.2).
		c = chain{Case: ifc.OriginatingCDIV, Reg: rd.State == hss.Registered, Served: c.Served}
	}
	ifcs, hash := s.ifcsFor(rd, c.Served)
	c.Profile = hash
	s.runChain(t, c, ifcs, nil)
}

// chainDone routes a request whose chain has ended.
func (s *SCSCF) chainDone(t *proxy.Txn, c chain, rr []sip.Uri) {
	if c.originating() {
		s.onward(t, rr)
		return
	}
	s.deliver(t, c.Served, rr)
}

func (s *SCSCF) hssFailure(t *proxy.Txn, impu string, err error) {
	if errors.Is(err, hss.ErrNotFound) {
		t.Reply(404, "Not Found")
		return
	}
	s.log.Warn("HSS lookup failed", "impu", impu, "err", err)
	t.Reply(504, "Server Time-out", warning("subscriber store unavailable"))
}

// ifcsFor returns the served user's iFCs, parsed once per distinct
// service profile document, and the document's hash.
func (s *SCSCF) ifcsFor(rd *hss.RegData, impu string) ([]ifc.IFC, uint64) {
	doc := ""
	for _, p := range rd.ServiceProfiles {
		for _, id := range p.PublicIDs {
			if id.Identity == impu || (rd.Wildcard != "" && id.Identity == rd.Wildcard) {
				doc = p.IFC
			}
		}
	}
	if doc == "" && len(rd.ServiceProfiles) > 0 {
		doc = rd.ServiceProfiles[0].IFC
	}
	if doc == "" {
		return nil, 0
	}
	return s.profiles.get(doc, s.ifcCfg.Load(), s.log)
}

// profileCache keeps parsed iFCs by document hash, bounded.
type profileCache struct {
	mu sync.Mutex
	m  map[uint64][]ifc.IFC
}

const profileCacheSize = 4096

func (pc *profileCache) reset() {
	pc.mu.Lock()
	pc.m = nil
	pc.mu.Unlock()
}

func docHash(doc string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(doc))
	return h.Sum64() | 1 // never 0, which means "no profile"
}

// byHash returns the iFCs of a document already parsed.
func (pc *profileCache) byHash(h uint64) ([]ifc.IFC, bool) {
	if h == 0 {
		return nil, false
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	v, ok := pc.m[h]
	return v, ok
}

func (pc *profileCache) get(doc string, cfg *ifc.Config, log interface {
	Warn(msg string, args ...any)
}) ([]ifc.IFC, uint64) {
	h := docHash(doc)
	if v, ok := pc.byHash(h); ok {
		return v, h
	}
	p, errs := ifc.Parse([]byte(doc))
	for _, e := range errs {
		log.Warn("malformed iFC skipped", "err", e)
	}
	ifcs, errs := cfg.IFCs(p)
	for _, e := range errs {
		log.Warn("iFC configuration", "err", e)
	}
	pc.mu.Lock()
	if pc.m == nil || len(pc.m) >= profileCacheSize {
		pc.m = map[uint64][]ifc.IFC{}
	}
	pc.m[h] = ifcs
	pc.mu.Unlock()
	return ifcs, h
}
