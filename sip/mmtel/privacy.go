package mmtel

import (
	"strings"

	"github.com/emiago/sipgo/sip"

	"stillwater/sip/header"
	"stillwater/sip/proxy"
)

// priv-values of RFC 3323 §4.2, in the order a rebuilt Privacy header
// lists them.
var privOrder = []string{"id", "header", "session", "user", "none", "critical"}

// privacy is the set of priv-values a request asks for.
type privacy map[string]bool

// parsePrivacy reads every Privacy header; values are separated by ";" in
// RFC 3323, and some endpoints use ",". Unknown values are dropped, as
// Clearwater's AS did.
func parsePrivacy(req *sip.Request) privacy {
	p := privacy{}
	for _, h := range header.Get(req, "Privacy") {
		for v := range strings.FieldsFuncSeq(h.Value(), func(r rune) bool { return r == ';' || r == ',' }) {
			v = strings.ToLower(strings.TrimSpace(v))
			for _, known := range privOrder {
				if v == known {
					p[v] = true
				}
			}
		}
	}
	return p
}

func (p privacy) String() string {
	var vs []string
	for _, v := range privOrder {
		if p[v] {
			vs = append(vs, v)
		}
	}
	return strings.Join(vs, ";")
}

// write replaces the request's Privacy headers with p.
func (p privacy) write(req *sip.Request) {
	removeAll(req, "Privacy")
	if s := p.String(); s != "" {
		req.AppendHeader(sip.NewHeader("Privacy", s))
	}
}

// restricted reports whether the caller's identity is withheld: the
// condition "anonymous" of TS 24.611 and TS 24.604.
func restricted(req *sip.Request, p privacy) bool {
	if p["none"] {
		return false
	}
	if p["id"] || p["header"] || p["user"] {
		return true
	}
	f := req.From()
	return f != nil && strings.EqualFold(f.Address.Host, "anonymous.invalid")
}

// originating applies the served caller's services: outgoing barring, then
// identity restriction.
func (m *MMTEL) originating(t *proxy.Txn, su servedUser) {
	req := t.Req
	s := m.settings(t.Context(), su.impu)
	if s == nil {
		pass(t)
		return
	}
	if m.barred(s.OutgoingBarring, req, parsePrivacy(req)) {
		m.log.Info("outgoing communication barred", "served", su.impu, "ruri", req.Recipient.String())
		t.Reply(603, "Decline", warning("outgoing communication barred"))
		return
	}
	if s.OIR != nil {
		applyOIR(req, s.OIR)
	}
	pass(t)
}

// originatingCDIV serves the diverting user when the call is forwarded on
// their behalf: their outgoing barring applies, while identity restriction
// stays the caller's.
func (m *MMTEL) originatingCDIV(t *proxy.Txn, su servedUser) {
	s := m.settings(t.Context(), su.impu)
	if s != nil && m.barred(s.OutgoingBarring, t.Req, parsePrivacy(t.Req)) {
		m.log.Info("diverted communication barred by the diverting user's outgoing barring", "served", su.impu, "ruri", t.Req.Recipient.String())
		t.Reply(603, "Decline", warning("outgoing communication barred"))
		return
	}
	pass(t)
}

// diverting reports whether an originating request is served on behalf of
// someone other than its caller: the S-CSCF's originating-CDIV services of
// a user who forwarded the call.
func (m *MMTEL) diverting(req *sip.Request, su servedUser) bool {
	served, ok := header.ParseNameAddr("<" + su.impu + ">")
	if !ok {
		return false
	}
	want := header.Canonical(served)
	ids := header.URIs(req, "P-Asserted-Identity")
	if len(ids) == 0 && req.From() != nil {
		ids = []sip.Uri{req.From().Address}
	}
	for _, id := range ids {
		if header.Canonical(id) == want {
			return false
		}
	}
	return len(ids) > 0
}

// applyOIR sets Privacy per TS 24.607 §4.5.2.4 for a subscriber with OIR
// in temporary mode. Restricted by default: unless the caller asked for
// "none", identity ("id"), header and user privacy are requested. Not
// restricted: a caller that asked for "id" or "header" gets user privacy
// too. The privacy itself is applied at the terminating side.
func applyOIR(req *sip.Request, oir *OIR) {
	p := parsePrivacy(req)
	switch {
	case p["none"]:
		return
	case oir.Restricted:
		p["id"], p["header"], p["user"] = true, true, true
	case p["id"] || p["header"]:
		p["user"] = true
	default:
		return
	}
	p.write(req)
}

// privacyEdit returns the edit that applies a terminating request's
// privacy (RFC 3323 §5, RFC 3325 §7, TS 24.607 §4.5.2.5) for a callee, and
// whether it changes From. ok is false when the request asks for critical
// session privacy, which a proxy cannot give (the caller gets 488).
func privacyEdit(req *sip.Request, noOIP bool) (edit func(*sip.Request), anonFrom bool, ok bool) {
	p := parsePrivacy(req)
	if p["session"] && p["critical"] {
		return nil, false, false
	}
	if p["none"] && !noOIP {
		return func(*sip.Request) {}, false, true
	}
	anonFrom = noOIP || (!p["none"] && (p["user"] || p["header"]))
	return func(r *sip.Request) {
		if !p["none"] {
			if p["header"] {
				// Headers that identify the caller's host or
				// organisation; Via, Record-Route and Contact stay, as
				// the dialog needs them.
				for _, h := range []string{"Call-Info", "Server", "Organization", "User-Agent"} {
					removeAll(r, h)
				}
				p["id"] = true
			}
			if p["user"] {
				for _, h := range []string{"Subject", "Call-Info", "Organization", "User-Agent", "Reply-To", "In-Reply-To"} {
					removeAll(r, h)
				}
			}
			if p["id"] {
				removeAll(r, "P-Asserted-Identity")
			}
			p.write(r)
		}
		if noOIP {
			// The callee does not subscribe to identity presentation.
			removeAll(r, "P-Asserted-Identity")
		}
		if anonFrom {
			anonymiseFrom(r)
		}
	}, anonFrom, true
}

// anonymiseFrom makes From the anonymous URI of RFC 3323 §4.1.1.3,
// keeping its tag so that the dialog still matches.
func anonymiseFrom(r *sip.Request) {
	f := r.From()
	if f == nil {
		return
	}
	nf := &sip.FromHeader{DisplayName: "Anonymous", Address: sip.Uri{Scheme: "sip", User: "anonymous", Host: "anonymous.invalid"}, Params: sip.NewParams()}
	if tag, ok := f.Params.Get("tag"); ok {
		nf.Params.Add("tag", tag)
	}
	r.ReplaceHeader(nf)
}
