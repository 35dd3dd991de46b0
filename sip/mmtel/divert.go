package mmtel

import (
	"bufio"
	"bytes"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"stillwater/sip/header"
	"stillwater/sip/proxy"
)

// Communication diversion (TS 24.604). The callee is tried first, unless a
// rule diverts at once (unconditional, or not registered for a callee the
// S-CSCF reports unregistered). Its final response, or the no-reply timer,
// picks the rule that applies; the call is then retargeted: the Request-URI
// becomes the forward-to target and the request goes back to the S-CSCF
// by the same Route, which runs the served user's originating-CDIV
// services and routes it on. History-Info (RFC 7044, causes of RFC 4458)
// and Diversion (RFC 5806) record each diversion.
//
// The no-reply timer is the INVITE transaction's own, in memory: the
// transaction lives on this node until it ends, so there is nothing to
// replicate. It bounds only the callee's leg, which the AS routes through
// itself (a Route to this service marked with legParam) so that the
// forwarded leg that may follow rings for as long as it needs.

// diversion is one call's diversion state.
type diversion struct {
	m     *MMTEL
	t     *proxy.Txn
	su    servedUser
	div   *Diversion
	media []string
	// edit applies the callee's privacy to each branch.
	edit     func(*sip.Request)
	origFrom *sip.FromHeader // restored on responses when edit changes From

	mu       sync.Mutex
	ringing  bool
	diverted bool
}

// terminating applies the served callee's services: incoming barring,
// privacy, then diversion.
func (m *MMTEL) terminating(t *proxy.Txn, su servedUser) {
	req := t.Req
	s := m.settings(t.Context(), su.impu)
	if s == nil {
		s = &Settings{}
	}
	p := parsePrivacy(req)
	if m.barred(s.IncomingBarring, req, p) {
		m.log.Info("incoming communication barred", "served", su.impu)
		t.Reply(603, "Decline", warning("incoming communication barred"))
		return
	}
	edit, anonFrom, ok := privacyEdit(req, s.NoOIP)
	if !ok {
		// RFC 3323 §5 has a privacy service fail with 500, but the S-CSCF
		// takes a 5xx from an AS for the AS failing and, under the usual
		// SESSION_CONTINUED default handling, would deliver the call
		// without it: the privacy asked to be critical would be lost.
		t.Reply(488, "Session Privacy Not Supported", warning("critical session privacy cannot be provided"))
		return
	}
	d := &diversion{m: m, t: t, su: su, div: s.Diversion, edit: edit}
	if anonFrom && req.From() != nil {
		d.origFrom = cloneFrom(req.From())
	}
	if req.Method != sip.INVITE || s.Diversion == nil {
		t.Forward(proxy.Fork{Targets: []proxy.Target{{Edit: edit}}, OnResponse: d.restoreFrom})
		return
	}
	d.media = sdpMedia(req)
	d.start()
}

// start tries the callee, or diverts at once when a rule says so.
func (d *diversion) start() {
	t := d.t
	now := callState{media: d.media, notRegistered: d.su.unreg, notReachable: d.su.unreg}
	if r := d.rule(now); r != nil {
		tg, ok := d.retarget(r, r.Target, reasonFor(r, false))
		if ok {
			t.Forward(proxy.Fork{Targets: []proxy.Target{tg}, OnResponse: d.restoreFrom})
			return
		}
		if t.Done() {
			return
		}
	}
	first := proxy.Target{Edit: d.edit}
	spec := proxy.Fork{OnResponse: d.onResponse, OnFinal: d.onFinal}
	if wait, ok := d.noReplyTimer(); ok {
		if t.Route != nil {
			self := *t.Route.Clone()
			if self.UriParams == nil {
				self.UriParams = sip.NewParams()
			}
			self.UriParams.Add(legParam, strconv.FormatInt(wait.Milliseconds(), 10))
			first.Routes = []sip.Uri{self}
		} else {
			// Reached without a Route to come back to: the timer then
			// bounds the forwarded leg too.
			spec.Timeout = wait
		}
	}
	spec.Targets = []proxy.Target{first}
	t.Forward(spec)
}

// timedLeg forwards the callee's leg that the no-reply timer bounds: after
// it the callee is cancelled and the leg answers 408.
func (m *MMTEL) timedLeg(t *proxy.Txn, ms string) {
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil || n <= 0 {
		pass(t)
		return
	}
	t.Forward(proxy.Fork{Targets: []proxy.Target{{}}, Timeout: time.Duration(n) * time.Millisecond})
}

// noReplyTimer is the timer of the first rule that could divert on no
// answer, given the media offered; ok is false when none could.
func (d *diversion) noReplyTimer() (time.Duration, bool) {
	s := callState{media: d.media, noAnswer: true, notRegistered: d.su.unreg, notReachable: d.su.unreg}
	for i := range d.div.Rules {
		r := &d.div.Rules[i]
		if !r.Conditions.NoAnswer || !r.Conditions.holds(s) {
			continue
		}
		switch {
		case r.NoReplyTimer > 0:
			return r.NoReplyTimer, true
		case d.div.NoReplyTimer > 0:
			return d.div.NoReplyTimer, true
		}
		return d.m.o.DefaultNoReplyTimer, true
	}
	return 0, false
}

// rule is the first rule that holds in s.
func (d *diversion) rule(s callState) *DiversionRule {
	for i := range d.div.Rules {
		if r := &d.div.Rules[i]; r.Conditions.holds(s) && r.Target != "" {
			return r
		}
	}
	return nil
}

func (d *diversion) onResponse(res *sip.Response) {
	if res.StatusCode == 180 || res.StatusCode == 183 {
		d.mu.Lock()
		d.ringing = true
		d.mu.Unlock()
	}
	d.restoreFrom(res)
}

// restoreFrom gives responses back the caller's own From where the
// callee's copy was anonymised.
func (d *diversion) restoreFrom(res *sip.Response) {
	if d.origFrom == nil || res.From() == nil {
		return
	}
	f := cloneFrom(d.origFrom)
	if tag, ok := res.From().Params.Get("tag"); ok {
		f.Params.Add("tag", tag)
	}
	res.ReplaceHeader(f)
}

// onFinal picks the rule the callee's failure triggers (TS 24.604
// §4.5.2.6.2: busy on 486, not registered on 404/480, not reachable on
// 408 or 5xx before ringing, no answer on 408 after it) or deflects on a
// 302 from the callee.
func (d *diversion) onFinal(best *sip.Response) []proxy.Target {
	d.mu.Lock()
	if d.diverted {
		d.mu.Unlock()
		return nil
	}
	ringing := d.ringing
	d.mu.Unlock()
	if best.StatusCode == 302 {
		c := best.Contact()
		if c == nil {
			return nil
		}
		target := c.Address.Clone()
		target.UriParams, target.Headers = nil, nil
		r := &DiversionRule{Target: target.String(), NotifyCaller: true}
		tg, ok := d.retarget(r, r.Target, reasonFor(nil, ringing))
		if !ok {
			return nil
		}
		return []proxy.Target{tg}
	}
	s := callState{media: d.media, notRegistered: d.su.unreg, notReachable: d.su.unreg}
	switch code := best.StatusCode; {
	case code == 486:
		s.busy = true
	case code == 404 || code == 480:
		s.notRegistered, s.notReachable = true, true
	case code == 408 && ringing:
		s.noAnswer = true
	case code == 408, code >= 500 && code < 600 && !ringing:
		s.notReachable = true
	default:
		return nil
	}
	r := d.rule(s)
	if r == nil {
		return nil
	}
	tg, ok := d.retarget(r, r.Target, reasonFor(r, false))
	if !ok {
		return nil
	}
	return []proxy.Target{tg}
}

// reason is why a call is diverted: the Diversion reason (RFC 5806) and
// the cause (RFC 4458, TS 24.604 table 4.5.2.6.2.1).
type reason struct {
	text  string
	cause int
}

// reasonFor names the service a rule implements; nil is deflection by
// the callee, during alerting or at once.
func reasonFor(r *DiversionRule, ringing bool) reason {
	if r == nil {
		if ringing {
			return reason{"deflection", 487}
		}
		return reason{"deflection", 480}
	}
	c := r.Conditions
	switch {
	case c.Busy:
		return reason{"user-busy", 486}
	case c.NoAnswer:
		return reason{"no-answer", 408}
	case c.NotReachable:
		return reason{"unavailable", 503}
	case c.NotRegistered:
		return reason{"unavailable", 404}
	}
	return reason{"unconditional", 302}
}

// retarget prepares the diversion to target: the caller is told (181) and
// the target returned goes back to the S-CSCF along the request's Route.
// ok is false when the call is not diverted: the target is unusable, or
// the call has been diverted too often, in which case it has been
// rejected with 480 (TS 24.604 §4.5.2.6.1).
func (d *diversion) retarget(r *DiversionRule, target string, why reason) (proxy.Target, bool) {
	t := d.t
	var u sip.Uri
	if err := sip.ParseUri(strings.Trim(strings.TrimSpace(target), "<>"), &u); err != nil {
		d.m.log.Warn("diversion target is not a URI; not diverted", "served", d.su.impu, "target", target, "err", err)
		return proxy.Target{}, false
	}
	if n := diversionCount(t.Req); n >= d.m.o.MaxDiversions {
		d.m.log.Info("call diverted too often; rejected", "served", d.su.impu, "diversions", n)
		d.mu.Lock()
		d.diverted = true
		d.mu.Unlock()
		t.Reply(480, "Temporarily Unavailable", warning("too many diversions"))
		return proxy.Target{}, false
	}
	d.mu.Lock()
	d.diverted = true
	d.mu.Unlock()
	d.m.log.Info("call diverted", "served", d.su.impu, "target", u.String(), "reason", why.text)
	if r.NotifyCaller {
		t.Reply(181, "Call Is Being Forwarded")
	}
	served := d.su.impu
	orig := t.Req.Recipient.String()
	edit := d.edit
	return proxy.Target{URI: &u, Edit: func(req *sip.Request) {
		if edit != nil {
			edit(req)
		}
		addHistoryInfo(req, orig, u, why.cause)
		addDiversion(req, served, why.text)
	}}, true
}

// historyEntry is one History-Info entry: its text and parameters.
type historyEntry struct {
	text   string
	params map[string]string
}

func historyEntries(req *sip.Request) []historyEntry {
	var out []historyEntry
	for _, h := range header.Get(req, "History-Info") {
		for _, v := range header.SplitList(h.Value()) {
			e := historyEntry{text: v, params: map[string]string{}}
			rest := v
			if i := strings.LastIndexByte(v, '>'); i >= 0 {
				rest = v[i+1:]
			}
			for p := range strings.SplitSeq(rest, ";") {
				k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
				if k != "" {
					e.params[strings.ToLower(k)] = val
				}
			}
			out = append(out, e)
		}
	}
	return out
}

// diversionCount is how often a request has been diverted: the retargeted
// History-Info entries (those with mp, or all but the first when none
// says), or the Diversion counters, whichever is more.
func diversionCount(req *sip.Request) int {
	hs := historyEntries(req)
	hi := 0
	for _, e := range hs {
		if _, ok := e.params["mp"]; ok {
			hi++
		}
	}
	if hi == 0 && len(hs) > 1 {
		hi = len(hs) - 1
	}
	dv := 0
	for _, h := range header.Get(req, "Diversion") {
		for _, v := range header.SplitList(h.Value()) {
			n := 1
			if i := strings.LastIndexByte(v, '>'); i >= 0 {
				for p := range strings.SplitSeq(v[i+1:], ";") {
					if k, val, _ := strings.Cut(strings.TrimSpace(p), "="); strings.EqualFold(k, "counter") {
						if c, err := strconv.Atoi(strings.TrimSpace(val)); err == nil && c > 0 && c < 100 {
							n = c
						}
					}
				}
			}
			dv += n
		}
	}
	return max(hi, dv)
}

// addHistoryInfo records the retargeting from orig to target (RFC 7044
// §10.1): the entry for the diverted user gets the Reason it was left for,
// and the target's entry its index, mp and the cause URI parameter of
// RFC 4458.
func addHistoryInfo(req *sip.Request, orig string, target sip.Uri, cause int) {
	es := historyEntries(req)
	reasonHdr := "?Reason=SIP%3Bcause%3D" + strconv.Itoa(cause)
	var texts []string
	parent := "1"
	if len(es) == 0 {
		texts = append(texts, "<"+orig+reasonHdr+">;index=1")
	} else {
		for _, e := range es {
			texts = append(texts, e.text)
		}
		last := es[len(es)-1]
		if idx := last.params["index"]; idx != "" {
			parent = idx
		}
		// The Reason goes in the last entry's URI unless it has headers.
		if open, end := strings.IndexByte(last.text, '<'), strings.LastIndexByte(last.text, '>'); open >= 0 && end > open && !strings.Contains(last.text[open:end], "?") {
			texts[len(texts)-1] = last.text[:end] + reasonHdr + last.text[end:]
		}
	}
	// Written out rather than added to UriParams: a tel URI prints only
	// its number.
	t := target.Clone()
	t.Headers = nil
	texts = append(texts, "<"+t.String()+";cause="+strconv.Itoa(cause)+">;index="+parent+".1;mp="+parent)
	removeAll(req, "History-Info")
	for _, v := range texts {
		req.AppendHeader(sip.NewHeader("History-Info", v))
	}
}

// addDiversion puts the diverting user's entry on top of the Diversion
// list (RFC 5806 §4: the most recent first, each with its own counter).
func addDiversion(req *sip.Request, served, why string) {
	prev := header.Get(req, "Diversion")
	var vals []string
	for _, h := range prev {
		vals = append(vals, h.Value())
	}
	removeAll(req, "Diversion")
	req.AppendHeader(sip.NewHeader("Diversion", "<"+served+">;reason="+why+";counter=1"))
	for _, v := range vals {
		req.AppendHeader(sip.NewHeader("Diversion", v))
	}
}

// sdpMedia lists the media types an SDP offer's m= lines name.
func sdpMedia(req *sip.Request) []string {
	body := req.Body()
	if len(body) == 0 {
		return nil
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "m=")
		if !ok {
			continue
		}
		typ, _, _ := strings.Cut(line, " ")
		typ = strings.ToLower(typ)
		if typ != "" && !slices.Contains(out, typ) {
			out = append(out, typ)
		}
	}
	return out
}

func cloneFrom(f *sip.FromHeader) *sip.FromHeader {
	c := &sip.FromHeader{DisplayName: f.DisplayName, Address: *f.Address.Clone(), Params: sip.NewParams()}
	if f.Params != nil {
		c.Params = f.Params.Clone()
	}
	return c
}
