package registrar

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"stillwater/diameter/hss"
	"stillwater/sip/header"
)

// ContentType is the reg-event body type (RFC 3680).
const ContentType = "application/reginfo+xml"

// defaultSubExpires is RFC 3680's default subscription duration.
const defaultSubExpires = 3761 * time.Second

// pending is a NOTIFY decided in a committed write, sent after it.
type pending struct {
	sub   subRec // with the CSeq the NOTIFY uses
	cseq  uint32
	state string // Subscription-State value
	body  []byte
	final bool
}

// stage prepares a NOTIFY with the full registration state for each
// subscription of rec (only those listed in only, if not nil), consuming
// their CSeq and version, and removes the subscriptions that end.
func (r *Registrar) stage(rec *aorRecord, now int64, ch *changes, only []string) []pending {
	var out []pending
	keep := rec.Subs[:0:0]
	for _, s := range rec.Subs {
		reason, ending := ch.ended[s.ID]
		if !ending && s.Expires <= now {
			// Expired, its timer not yet popped: it gets its final NOTIFY now.
			reason, ending = "timeout", true
			ch.ended[s.ID] = reason
		}
		if !ending && only != nil && !slices.Contains(only, s.ID) {
			keep = append(keep, s)
			continue
		}
		p := pending{sub: s, cseq: s.CSeq, final: ending}
		if ending {
			p.state = "terminated;reason=" + reason
		} else {
			left := max((s.Expires-now+999)/1000, 0)
			p.state = "active;expires=" + strconv.FormatInt(left, 10)
		}
		p.body = reginfo(rec, s, now, ch)
		out = append(out, p)
		if !ending {
			s.CSeq++
			s.Version++
			keep = append(keep, s)
		}
	}
	rec.Subs = keep
	return out
}

// reginfo renders the full-state document for a subscription (RFC 3680,
// RFC 5628 for public GRUUs): a registration element per identity of the
// set, each with the active contacts and those this change terminated.
func reginfo(rec *aorRecord, s subRec, now int64, ch *changes) []byte {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" xmlns:gr="urn:ietf:params:xml:ns:gruuinfo" version="` +
		strconv.Itoa(s.Version) + `" state="full">` + "\n")
	impus := rec.IMPUs
	if len(impus) == 0 {
		impus = []string{s.IMPU}
	}
	state := "terminated"
	if len(rec.Bindings) > 0 {
		state = "active"
	} else if len(ch.gone) == 0 {
		state = "init"
	}
	for _, impu := range impus {
		b.WriteString(`  <registration aor="` + esc(impu) + `" id="` + shortID(impu) + `" state="` + state + `">` + "\n")
		for _, bd := range rec.Bindings {
			event := ch.events[bd.ID]
			if event == "" {
				event = "registered"
			}
			writeContact(&b, impu, bd, "active", event, now)
		}
		for _, g := range ch.gone {
			writeContact(&b, impu, g.rec, "terminated", g.event, now)
		}
		b.WriteString("  </registration>\n")
	}
	b.WriteString("</reginfo>\n")
	return []byte(b.String())
}

func writeContact(b *strings.Builder, impu string, bd bindingRec, state, event string, now int64) {
	b.WriteString(`    <contact id="` + shortID(impu+"\x00"+bd.ID) + `" state="` + state + `" event="` + event + `"`)
	b.WriteString(` duration-registered="` + strconv.FormatInt(max(now-bd.Since, 0)/1000, 10) + `"`)
	if state == "active" {
		b.WriteString(` expires="` + strconv.FormatInt(max((bd.Expires-now+999)/1000, 0), 10) + `"`)
	}
	if q, ok := bd.param("q"); ok {
		b.WriteString(` q="` + esc(q) + `"`)
	}
	b.WriteString(` callid="` + esc(bd.CallID) + `" cseq="` + strconv.FormatUint(uint64(bd.CSeq), 10) + `">` + "\n")
	b.WriteString("      <uri>" + esc(bd.URI) + "</uri>\n")
	if bd.Display != "" {
		b.WriteString("      <display-name>" + esc(bd.Display) + "</display-name>\n")
	}
	for _, p := range bd.Params {
		if equalFold(p.K, "q") {
			continue
		}
		b.WriteString(`      <unknown-param name="` + esc(p.K) + `"`)
		if p.V == "" {
			b.WriteString("/>\n")
			continue
		}
		b.WriteString(">" + esc(p.V) + "</unknown-param>\n")
	}
	if g := pubGRUU(impu, bd.Instance); g != "" && state == "active" {
		b.WriteString(`      <gr:pub-gruu uri="` + esc(g) + `"/>` + "\n")
	}
	b.WriteString("    </contact>\n")
}

// xmlEscaper escapes text and attribute values (always double-quoted here).
var xmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;")

func esc(s string) string { return xmlEscaper.Replace(s) }

// shortID is a stable element id.
func shortID(s string) string {
	h := fnv.New32a()
	h.Write([]byte(s))
	return strconv.FormatUint(uint64(h.Sum32()), 16)
}

// Subscribe handles a reg-event SUBSCRIBE (RFC 3680, RFC 6665): initial,
// refresh or Expires: 0. It returns the response; the NOTIFY with the full
// state follows through Options.Sender.
func (r *Registrar) Subscribe(ctx context.Context, req *sip.Request) *sip.Response {
	res, err := r.subscribe(ctx, req)
	if err != nil {
		var re *requestError
		if !errors.As(err, &re) {
			r.log.Error("SUBSCRIBE failed", "err", err)
			re = reject(500, "Server Internal Error")
		}
		res = r.errorResponse(req, re)
		if re.code == 489 {
			res.AppendHeader(sip.NewHeader("Allow-Events", "reg"))
		}
		if re.code == 406 {
			res.AppendHeader(sip.NewHeader("Accept", ContentType))
		}
	}
	return res
}

var (
	errNoSubscription = reject(481, "Subscription does not exist")
	errStaleSubscribe = reject(500, "Out of order CSeq in the subscription dialog")
)

func (r *Registrar) subscribe(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	if req.Method != sip.SUBSCRIBE {
		return nil, reject(405, "Method Not Allowed")
	}
	from, to, callID, cseq := req.From(), req.To(), req.CallID(), req.CSeq()
	if from == nil || to == nil || callID == nil || cseq == nil {
		return nil, reject(400, "Missing From, To, Call-ID or CSeq header")
	}
	ev := header.First(req, "Event")
	if ev == nil {
		return nil, reject(489, "Bad Event: no Event header")
	}
	evType, evParams, _ := strings.Cut(ev.Value(), ";")
	if !equalFold(strings.TrimSpace(evType), "reg") {
		return nil, reject(489, "Bad Event: only reg is supported")
	}
	evID := ""
	for _, p := range strings.Split(evParams, ";") {
		if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && equalFold(k, "id") {
			evID = v
		}
	}
	if accepts := headerValues(req, "Accept"); len(accepts) > 0 && !slices.ContainsFunc(accepts, acceptsReginfo) {
		return nil, reject(406, "Not Acceptable: only %s", ContentType)
	}
	fromTag, _ := from.Params.Get("tag")
	if fromTag == "" {
		return nil, reject(400, "From header has no tag")
	}
	exp := defaultSubExpires
	if n, ok, err := expiresHeader(req); err != nil {
		return nil, reject(400, "%s", err)
	} else if ok {
		exp = time.Duration(n) * time.Second
	}
	exp = min(exp, r.opts.SubMaxExpires)
	toTag, _ := to.Params.Get("tag")
	inDialog := toTag != ""

	u := &to.Address
	if !inDialog && (req.Recipient.User != "" || strings.EqualFold(req.Recipient.Scheme, "tel")) {
		u = &req.Recipient
	}
	impu := aorOf(u)
	t, err := r.resolve(ctx, impu)
	if errors.Is(err, hss.ErrNotFound) {
		return nil, reject(404, "Unknown public identity %s", impu)
	}
	if err != nil {
		return nil, fmt.Errorf("registrar: HSS lookup of %s: %w", impu, err)
	}

	var target string
	if ct := req.Contact(); ct != nil {
		target = ct.Address.String()
	}
	if !inDialog && target == "" {
		return nil, reject(400, "SUBSCRIBE has no Contact")
	}
	var routes []string
	for _, h := range header.Get(req, "Record-Route") {
		if rr, ok := h.(*sip.RecordRouteHeader); ok {
			routes = append(routes, rr.Address.String())
		}
	}
	newID := r.newTag()
	now := r.nowMs()
	var pend []pending
	var sub subRec
	_, err = r.update(ctx, t.key, func(rec *aorRecord, _ bool) error {
		pend = nil
		ch := newChanges()
		dropExpired(rec, now, ch)
		i := -1
		if inDialog {
			i = slices.IndexFunc(rec.Subs, func(s subRec) bool {
				return s.ID == toTag && s.CallID == callID.Value() && s.RemoteTag == fromTag
			})
			if i < 0 || rec.Subs[i].Expires <= now {
				return errNoSubscription
			}
			if cseq.SeqNo <= rec.Subs[i].RemoteCSeq {
				return errStaleSubscribe
			}
		} else {
			rec.Subs = append(rec.Subs, subRec{
				ID: newID, IMPU: impu, CallID: callID.Value(), RemoteTag: fromTag,
				RemoteURI: from.Address.String(), LocalURI: to.Address.String(),
				Routes: routes, EventID: evID, CSeq: 1,
			})
			i = len(rec.Subs) - 1
		}
		s := &rec.Subs[i]
		s.RemoteCSeq = cseq.SeqNo
		if target != "" {
			s.Target = target // a refresh may move the remote target
		}
		s.Expires = now + exp.Milliseconds()
		sub = *s
		if len(rec.IMPUs) == 0 {
			rec.IMPUs = t.impus
		}
		if exp == 0 {
			ch.ended[s.ID] = "timeout"
		}
		pend = r.stage(rec, now, ch, []string{s.ID})
		if len(ch.gone) > 0 {
			// Expired bindings found on the way: tell the others too.
			pend = append(pend, r.stage(rec, now, ch, othersThan(rec, s.ID))...)
		}
		return nil
	})
	if err != nil {
		var ae abortError
		if errors.As(err, &ae) {
			return nil, ae.err
		}
		return nil, err
	}
	r.dispatch(t.key, pend)

	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	res.To().Params.Add("tag", sub.ID)
	res.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(exp/time.Second))))
	res.AppendHeader(sip.NewHeader("Contact", nameAddr(r.opts.Contact)))
	return res, nil
}

func othersThan(rec *aorRecord, id string) []string {
	out := []string{}
	for _, s := range rec.Subs {
		if s.ID != id {
			out = append(out, s.ID)
		}
	}
	return out
}

func acceptsReginfo(v string) bool {
	mt, _, _ := strings.Cut(v, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == ContentType || mt == "application/*" || mt == "*/*"
}

// notifyRequest builds the NOTIFY of a staged notification, in the
// subscription's dialog.
func (r *Registrar) notifyRequest(p pending) (*sip.Request, error) {
	s := p.sub
	var ruri sip.Uri
	if err := sip.ParseUri(s.Target, &ruri); err != nil {
		return nil, fmt.Errorf("remote target %q: %w", s.Target, err)
	}
	req := sip.NewRequest(sip.NOTIFY, ruri)
	for _, rt := range s.Routes {
		h := &sip.RouteHeader{}
		if err := sip.ParseUri(rt, &h.Address); err != nil {
			return nil, fmt.Errorf("route %q: %w", rt, err)
		}
		req.AppendHeader(h)
	}
	from := &sip.FromHeader{Params: sip.NewParams()}
	if err := sip.ParseUri(s.LocalURI, &from.Address); err != nil {
		return nil, fmt.Errorf("local URI %q: %w", s.LocalURI, err)
	}
	from.Params.Add("tag", s.ID)
	to := &sip.ToHeader{Params: sip.NewParams()}
	if err := sip.ParseUri(s.RemoteURI, &to.Address); err != nil {
		return nil, fmt.Errorf("remote URI %q: %w", s.RemoteURI, err)
	}
	to.Params.Add("tag", s.RemoteTag)
	callID := sip.CallIDHeader(s.CallID)
	maxFwd := sip.MaxForwardsHeader(70)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: p.cseq, MethodName: sip.NOTIFY})
	req.AppendHeader(&maxFwd)
	event := "reg"
	if s.EventID != "" {
		event += ";id=" + s.EventID
	}
	req.AppendHeader(sip.NewHeader("Event", event))
	req.AppendHeader(sip.NewHeader("Subscription-State", p.state))
	req.AppendHeader(sip.NewHeader("Contact", nameAddr(r.opts.Contact)))
	ct := sip.ContentTypeHeader(ContentType)
	req.AppendHeader(&ct)
	req.SetBody(p.body)
	return req, nil
}

// dispatch sends staged NOTIFYs in the background, in order.
func (r *Registrar) dispatch(key string, ps []pending) {
	if len(ps) == 0 {
		return
	}
	if r.opts.Sender == nil {
		r.log.Warn("no Sender: reg-event NOTIFYs dropped", "aor", key, "count", len(ps))
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for _, p := range ps {
			r.send(r.ctx, key, p)
		}
	}()
}

func (r *Registrar) send(ctx context.Context, key string, p pending) {
	req, err := r.notifyRequest(p)
	if err != nil {
		r.log.Error("cannot build NOTIFY; dropping the subscription", "aor", key, "sub", p.sub.ID, "err", err)
		r.dropSub(ctx, key, p.sub.ID)
		return
	}
	res, err := r.opts.Sender.Send(ctx, req)
	switch {
	case ctx.Err() != nil:
		return
	case err != nil:
		r.log.Warn("NOTIFY failed; dropping the subscription", "aor", key, "sub", p.sub.ID, "err", err)
	case res.StatusCode == 481 || res.StatusCode == 408:
		r.log.Info("NOTIFY rejected; dropping the subscription", "aor", key, "sub", p.sub.ID, "status", res.StatusCode)
	default:
		return
	}
	if !p.final {
		r.dropSub(ctx, key, p.sub.ID)
	}
}

// dropSub removes a subscription whose subscriber is gone (RFC 6665 §4.2.2).
func (r *Registrar) dropSub(ctx context.Context, key, id string) {
	_, err := r.update(ctx, key, func(rec *aorRecord, _ bool) error {
		i := slices.IndexFunc(rec.Subs, func(s subRec) bool { return s.ID == id })
		if i < 0 {
			return errUnchanged
		}
		rec.Subs = slices.Delete(rec.Subs, i, i+1)
		return nil
	})
	if errors.Is(err, errUnchanged) {
		return
	}
	if err != nil {
		r.log.Error("cannot drop subscription", "aor", key, "sub", id, "err", err)
	}
}

var errUnchanged = errors.New("unchanged")
