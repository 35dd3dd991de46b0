package registrar

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"stillwater/diameter/hss"
	"stillwater/sip/auth"
	"stillwater/sip/header"
)

// requestError is a SIP error response to give for a request.
type requestError struct {
	code   int
	reason string
}

func (e *requestError) Error() string { return strconv.Itoa(e.code) + " " + e.reason }

func reject(code int, format string, args ...any) *requestError {
	return &requestError{code: code, reason: fmt.Sprintf(format, args...)}
}

// contact is one Contact of a REGISTER, parsed.
type contact struct {
	rec     bindingRec
	expires time.Duration // as granted; 0 removes
	regID   int           // as sent, before outbound is decided
}

// Register handles a REGISTER the core has authenticated for private
// identity impi (RFC 3261 §10.3, RFC 5626, RFC 5627, TS 24.229 §5.4.1) and
// returns the response to send.
func (r *Registrar) Register(ctx context.Context, req *sip.Request, impi string) *sip.Response {
	res, _ := r.RegisterWith(ctx, req, impi, nil, nil)
	return res
}

// RegisterWith is Register for a caller that has just read the identity's
// registration data (rd, which must be for the REGISTER's To), saving the
// registrar the same read; nil reads it. nonce, if not nil, is the
// single-use nonce the REGISTER was authenticated with: it is consumed in
// the write that records the registration (or, for a REGISTER that adds no
// binding, through nonce.Consume). If it was used already, nothing changes
// and the error is auth.ErrNonceUsed, with no response: the caller
// challenges again.
func (r *Registrar) RegisterWith(ctx context.Context, req *sip.Request, impi string, nonce *auth.Nonce, rd *hss.RegData) (*sip.Response, error) {
	res, err := r.register(ctx, req, impi, nonce, rd)
	if errors.Is(err, auth.ErrNonceUsed) {
		return nil, err
	}
	if err != nil {
		var re *requestError
		if !errors.As(err, &re) {
			r.log.Error("REGISTER failed", "err", err)
			re = reject(500, "Server Internal Error")
		}
		return r.errorResponse(req, re), nil
	}
	return res, nil
}

func (r *Registrar) errorResponse(req *sip.Request, re *requestError) *sip.Response {
	res := sip.NewResponseFromRequest(req, re.code, re.reason, nil)
	if to := res.To(); to != nil {
		to.Params.Add("tag", r.newTag())
	}
	return res
}

var (
	errStaleCSeq = reject(400, "Out of order CSeq for an existing binding")
	errEmergency = reject(501, "Emergency registration cannot be removed by the UE")
)

func (r *Registrar) register(ctx context.Context, req *sip.Request, impi string, nonce *auth.Nonce, rd *hss.RegData) (*sip.Response, error) {
	if req.Method != sip.REGISTER {
		return nil, reject(405, "Method Not Allowed")
	}
	to, callID, cseq := req.To(), req.CallID(), req.CSeq()
	if to == nil || callID == nil || cseq == nil {
		return nil, reject(400, "Missing To, Call-ID or CSeq header")
	}
	impu := aorOf(&to.Address)
	hdrExp, hasHdrExp, err := expiresHeader(req)
	if err != nil {
		return nil, reject(400, "%s", err)
	}
	star, contacts, err := r.parseContacts(req, hdrExp, hasHdrExp)
	if err != nil {
		return nil, err
	}
	if star && (len(contacts) > 0 || !hasHdrExp || hdrExp != 0) {
		return nil, reject(400, "Contact: * needs Expires: 0 and no other Contact")
	}
	var t *target
	if rd != nil {
		t = targetOf(impu, rd)
	} else {
		t, err = r.resolve(ctx, impu)
	}
	if errors.Is(err, hss.ErrNotFound) {
		return nil, reject(403, "Unknown public identity %s", impu)
	}
	if err != nil {
		return nil, fmt.Errorf("registrar: HSS lookup of %s: %w", impu, err)
	}
	if t.barred {
		return nil, reject(403, "Barred public identity %s", impu)
	}
	path := headerValues(req, "Path")
	pathURIs := make([]string, len(path))
	for i, p := range path {
		pathURIs[i] = stripAngle(p)
	}
	outbound := hasToken(req, "Supported", "outbound") && (len(path) == 0 || firstHopOutbound(path[0]))
	for i := range contacts {
		c := &contacts[i]
		c.rec.CallID, c.rec.CSeq = callID.Value(), cseq.SeqNo
		c.rec.Path, c.rec.PrivateID = pathURIs, impi
		switch {
		case c.rec.Instance != "" && outbound && c.regID > 0:
			c.rec.RegID = c.regID
			c.rec.ID = c.rec.Instance + ";reg-id=" + strconv.Itoa(c.regID)
		case c.rec.Instance != "":
			c.rec.ID = c.rec.Instance
		default:
			c.rec.ID = c.rec.URI
		}
	}

	// TS 24.229: the S-CSCF tells the HSS before it accepts a registration.
	adding := slices.ContainsFunc(contacts, func(c contact) bool { return c.expires > 0 })
	if nonce != nil && !adding {
		// A fetch writes nothing and a removal may leave no record to hold
		// the nonce: consume it in the challenge store, before acting.
		if err := nonce.Consume(ctx); err != nil {
			if errors.Is(err, auth.ErrNonceUsed) {
				return nil, err
			}
			return nil, fmt.Errorf("registrar: consume nonce: %w", err)
		}
		nonce = nil
	}
	registered, calledReg := false, false
	if adding && (t.state != hss.Registered || (r.opts.SCSCFName != "" && t.scscf != r.opts.SCSCFName) ||
		(impi != "" && !contains(t.regIMPIs, impi))) {
		_, err := r.hss.UpdateRegData(ctx, impu, hss.RegRequest{Type: hss.ReqReg, ServerName: r.opts.SCSCFName, PrivateID: impi})
		switch {
		case errors.Is(err, hss.ErrMismatch):
			return nil, reject(403, "Private identity %s may not register %s", impi, impu)
		case err != nil:
			return nil, fmt.Errorf("registrar: HSS registration of %s: %w", impu, err)
		}
		registered, calledReg = t.state != hss.Registered, true
	}

	now := r.nowMs()
	var pend []pending
	had := false
	fetch := !star && len(contacts) == 0
	var rec *aorRecord
	if fetch {
		rec, err = r.read(ctx, t.key)
	} else {
		rec, err = r.update(ctx, t.key, func(rec *aorRecord, _ bool) error {
			pend = nil
			if nonce != nil {
				if err := rec.consume(nonce); err != nil {
					return err
				}
			}
			ch := newChanges()
			had = dropExpired(rec, now, ch)
			var err error
			if star {
				err = applyStar(rec, callID.Value(), cseq.SeqNo, ch)
			} else {
				err = applyContacts(rec, contacts, now, ch)
			}
			if err != nil {
				return err
			}
			rec.IMPUs = t.impus
			if had && len(rec.Bindings) == 0 {
				ch.endSubs(rec, "noresource")
			}
			pend = r.stage(rec, now, ch, nil)
			return nil
		})
	}
	if err != nil {
		if registered {
			r.hssDereg(ctx, t.key, impu, hss.ReqDeregUser)
		}
		var ae abortError
		if errors.As(err, &ae) {
			return nil, ae.err
		}
		return nil, err
	}
	if !fetch {
		switch {
		case had && (rec == nil || len(rec.Bindings) == 0):
			r.hssDereg(ctx, t.key, impu, hss.ReqDeregUser)
		case !had && rec != nil && len(rec.Bindings) > 0 && !calledReg:
			// Registering from nothing: an expiry racing this request may
			// have deregistered the set at the HSS after it was read.
			r.hssReg(ctx, impu, impi)
		}
		r.dispatch(t.key, pend)
	}
	return r.registerResponse(req, t, rec, path, outbound && slices.ContainsFunc(contacts, func(c contact) bool { return c.rec.RegID > 0 })), nil
}

// hssDereg tells the HSS a set is no longer registered here, then checks
// the record again: a REGISTER that committed meanwhile may have relied on
// the registration, which is then restored. Every writer that changes the
// HSS state checks the record after it, so the last one leaves the HSS
// agreeing with the bindings.
func (r *Registrar) hssDereg(ctx context.Context, key, impu string, typ hss.ReqType) {
	_, err := r.hss.UpdateRegData(ctx, impu, hss.RegRequest{Type: typ, ServerName: r.opts.SCSCFName})
	if err != nil && !errors.Is(err, hss.ErrNotRegistered) {
		r.log.Error("cannot deregister at the HSS", "impu", impu, "reqtype", typ, "err", err)
		return
	}
	rec, err := r.read(ctx, key)
	if err != nil {
		r.log.Error("cannot check bindings after de-registration", "aor", key, "err", err)
		return
	}
	if rec != nil {
		now := r.nowMs()
		for _, b := range rec.Bindings {
			if b.Expires > now {
				r.hssReg(ctx, impu, b.PrivateID)
				return
			}
		}
	}
}

// hssReg tells the HSS the set is registered here.
func (r *Registrar) hssReg(ctx context.Context, impu, impi string) {
	_, err := r.hss.UpdateRegData(ctx, impu, hss.RegRequest{Type: hss.ReqReg, ServerName: r.opts.SCSCFName, PrivateID: impi})
	if err != nil {
		r.log.Error("cannot register at the HSS", "impu", impu, "impi", impi, "err", err)
	}
}

// firstHopOutbound reports whether the first Path URI has RFC 5626's ob
// parameter; without it the edge cannot keep flows and reg-id is ignored.
func firstHopOutbound(p string) bool {
	var u sip.Uri
	if err := sip.ParseUri(stripAngle(p), &u); err != nil {
		return false
	}
	return u.UriParams.Has("ob")
}

// parseContacts reads the Contact headers: star for "Contact: *", else the
// contacts with their granted expiry.
func (r *Registrar) parseContacts(req *sip.Request, hdrExp uint64, hasHdrExp bool) (bool, []contact, error) {
	star := false
	var out []contact
	for _, h := range header.Get(req, "Contact") {
		ch, ok := h.(*sip.ContactHeader)
		if !ok {
			return false, nil, reject(400, "Malformed Contact header %q", h.Value())
		}
		if ch.Address.Wildcard {
			star = true
			continue
		}
		scheme := strings.ToLower(ch.Address.Scheme)
		if scheme != "sip" && scheme != "sips" && scheme != "tel" {
			return false, nil, reject(400, "Unsupported Contact URI scheme %q", ch.Address.Scheme)
		}
		c := contact{rec: bindingRec{URI: ch.Address.String(), Display: ch.DisplayName,
			Emergency: ch.Address.UriParams.Has("sos")}}
		exp := uint64(r.opts.MaxExpires / time.Second)
		if hasHdrExp {
			exp = hdrExp
		}
		for _, p := range ch.Params {
			switch strings.ToLower(p.K) {
			case "expires":
				n, err := strconv.ParseUint(unquote(p.V), 10, 32)
				if err != nil {
					return false, nil, reject(400, "Malformed expires parameter %q", p.V)
				}
				exp = n
				continue
			case "q":
				if q, err := strconv.ParseFloat(p.V, 64); err != nil || q < 0 || q > 1 {
					return false, nil, reject(400, "Malformed q parameter %q", p.V)
				}
			case "+sip.instance":
				c.rec.Instance = instanceID(p.V)
				if c.rec.Instance == "<>" {
					return false, nil, reject(400, "Empty +sip.instance parameter")
				}
			case "reg-id":
				n, err := strconv.ParseUint(p.V, 10, 31)
				if err != nil || n == 0 {
					return false, nil, reject(400, "Malformed reg-id parameter %q", p.V)
				}
				c.regID = int(n)
			}
			c.rec.Params = append(c.rec.Params, param{K: p.K, V: p.V})
		}
		c.expires = min(time.Duration(exp)*time.Second, r.opts.MaxExpires)
		out = append(out, c)
	}
	return star, out, nil
}

// changes records what a write did to bindings and subscriptions, for the
// NOTIFYs it causes.
type changes struct {
	events map[string]string // binding id → event of a binding still active
	gone   []goneBinding     // bindings removed, with their event
	ended  map[string]string // subscription id → reason it ends
}

type goneBinding struct {
	rec   bindingRec
	event string
}

func newChanges() *changes {
	return &changes{events: map[string]string{}, ended: map[string]string{}}
}

func (c *changes) remove(rec *aorRecord, i int, event string) {
	c.gone = append(c.gone, goneBinding{rec: rec.Bindings[i], event: event})
	delete(c.events, rec.Bindings[i].ID)
}

// endSubs ends every subscription of rec that is not ending already.
func (c *changes) endSubs(rec *aorRecord, reason string) {
	for _, s := range rec.Subs {
		if _, ok := c.ended[s.ID]; !ok {
			c.ended[s.ID] = reason
		}
	}
}

func (c *changes) any() bool { return len(c.events) > 0 || len(c.gone) > 0 || len(c.ended) > 0 }

// dropExpired removes bindings past their expiry (their timer may not have
// popped yet) and reports whether live bindings existed before the write.
func dropExpired(rec *aorRecord, now int64, ch *changes) bool {
	had := false
	for i := len(rec.Bindings) - 1; i >= 0; i-- {
		if rec.Bindings[i].Expires <= now {
			ch.remove(rec, i, "expired")
			rec.Bindings = slices.Delete(rec.Bindings, i, i+1)
		} else {
			had = true
		}
	}
	return had
}

// applyStar removes every binding but emergency ones (RFC 3261 §10.3 step 6).
func applyStar(rec *aorRecord, callID string, cseq uint32, ch *changes) error {
	for _, b := range rec.Bindings {
		if b.CallID == callID && cseq <= b.CSeq {
			return errStaleCSeq
		}
	}
	for i := len(rec.Bindings) - 1; i >= 0; i-- {
		if !rec.Bindings[i].Emergency {
			ch.remove(rec, i, "unregistered")
			rec.Bindings = slices.Delete(rec.Bindings, i, i+1)
		}
	}
	return nil
}

// applyContacts adds, refreshes and removes bindings (RFC 3261 §10.3 step 7);
// the request fails as a whole if any binding fails.
func applyContacts(rec *aorRecord, contacts []contact, now int64, ch *changes) error {
	for _, c := range contacts {
		i := slices.IndexFunc(rec.Bindings, func(b bindingRec) bool { return b.ID == c.rec.ID })
		if i >= 0 {
			old := rec.Bindings[i]
			if old.CallID == c.rec.CallID && c.rec.CSeq <= old.CSeq {
				return errStaleCSeq
			}
		}
		if c.expires == 0 {
			if i < 0 {
				continue
			}
			if rec.Bindings[i].Emergency {
				return errEmergency
			}
			ch.remove(rec, i, "unregistered")
			rec.Bindings = slices.Delete(rec.Bindings, i, i+1)
			continue
		}
		b := c.rec
		b.Expires = now + c.expires.Milliseconds()
		b.Since = now
		event := "registered"
		if i >= 0 {
			old := rec.Bindings[i]
			if old.CallID == b.CallID {
				b.Since = old.Since
				event = "refreshed"
				if b.Expires < old.Expires {
					event = "shortened"
				}
			}
			rec.Bindings[i] = b
		} else {
			rec.Bindings = append(rec.Bindings, b)
		}
		ch.events[b.ID] = event
	}
	slices.SortFunc(rec.Bindings, func(a, b bindingRec) int { return strings.Compare(a.ID, b.ID) })
	return nil
}

// registerResponse is the 200 OK: every binding with its expiry, pub-gruu
// for a UE supporting GRUU, Service-Route, P-Associated-URI, Path.
func (r *Registrar) registerResponse(req *sip.Request, t *target, rec *aorRecord, path []string, outbound bool) *sip.Response {
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	if to := res.To(); to != nil {
		to.Params.Add("tag", r.newTag())
	}
	now := r.clock.Now()
	gruu := hasToken(req, "Supported", "gruu")
	live := 0
	if rec != nil {
		for _, b := range rec.Bindings {
			left := (b.Expires - now.UnixMilli() + 999) / 1000
			if left <= 0 {
				continue
			}
			live++
			ch := &sip.ContactHeader{DisplayName: b.Display}
			if err := sip.ParseUri(b.URI, &ch.Address); err != nil {
				r.log.Warn("stored contact does not parse", "uri", b.URI, "err", err)
				continue
			}
			for _, p := range b.Params {
				ch.Params.Add(p.K, p.V)
			}
			ch.Params.Add("expires", strconv.FormatInt(left, 10))
			if g := pubGRUU(t.impu, b.Instance); gruu && g != "" {
				ch.Params.Add("pub-gruu", quote(g))
			}
			res.AppendHeader(ch)
		}
	}
	for _, p := range path {
		res.AppendHeader(sip.NewHeader("Path", p))
	}
	if live > 0 {
		if r.opts.ServiceRoute != "" {
			res.AppendHeader(sip.NewHeader("Service-Route", nameAddr(r.opts.ServiceRoute)))
		}
		for _, u := range t.impus {
			res.AppendHeader(sip.NewHeader("P-Associated-URI", "<"+u+">"))
		}
	}
	if outbound {
		res.AppendHeader(sip.NewHeader("Require", "outbound"))
	}
	if len(path) > 0 {
		res.AppendHeader(sip.NewHeader("Supported", "path"))
	}
	res.AppendHeader(sip.NewHeader("Date", now.UTC().Format(http.TimeFormat)))
	return res
}
