package sipcheck

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"stillwater/sip/header"
)

// Policy is what the checking element supports. The zero Policy is a proxy
// that supports no Proxy-Require extension.
type Policy struct {
	// Supported lists the option tags this element implements; any other
	// tag in Proxy-Require (and, for a UAS, Require) gets a 420.
	Supported []string
	// UAS makes the checks of an element that consumes the request
	// (registrar, application server) rather than forwards it: Require,
	// and Content-Type and Content-Encoding when Accept or Encodings is set.
	UAS bool
	// Accept lists the media types a UAS understands; a body of another
	// type gets a 415. Empty means any.
	Accept []string
	// Encodings lists the content codings a UAS understands besides
	// identity; a body with another coding gets a 415.
	Encodings []string
}

// singleton headers may appear at most once (RFC 3261 §7.3.1, §20).
var singletons = []string{"To", "From", "Call-ID", "CSeq", "Max-Forwards", "Content-Length", "Content-Type"}

// CheckRequest validates req as a proxy with the zero Policy does.
func CheckRequest(req *sip.Request) *Error { return Policy{}.CheckRequest(req) }

// CheckRequest returns nil if req may be processed, or the error response
// to send (RFC 3261 §8.2.1–8.2.3, §16.3 steps 1 and 4; RFC 4475 §3.1.2).
// Max-Forwards is optional here as in §16.3 step 3; whether 0 means 483 is
// the forwarding step's decision.
func (p Policy) CheckRequest(req *sip.Request) *Error {
	if req == nil {
		return badRequest("no request")
	}
	if req.SipVersion != "SIP/2.0" {
		return &Error{Code: 505, Reason: "Version Not Supported"}
	}
	if e := checkRequestURI(&req.Recipient); e != nil {
		return e
	}
	if e := checkMandatory(req); e != nil {
		return e
	}
	if cseq := req.CSeq(); string(cseq.MethodName) != string(req.Method) {
		return badRequest("CSeq method %q does not match request method %q", cseq.MethodName, req.Method)
	}
	if mf := req.MaxForwards(); mf != nil && *mf > 255 {
		return badRequest("Max-Forwards %d exceeds 255", uint32(*mf))
	}
	if e := checkBody(req); e != nil {
		return e
	}
	if e := checkDate(req); e != nil {
		return e
	}
	if tags := p.unsupported(req, "Proxy-Require"); len(tags) > 0 {
		return &Error{Code: 420, Reason: "Bad Extension", Unsupported: tags}
	}
	if p.UAS && !req.IsAck() && !req.IsCancel() {
		if tags := p.unsupported(req, "Require"); len(tags) > 0 {
			return &Error{Code: 420, Reason: "Bad Extension", Unsupported: tags}
		}
		if e := p.checkMedia(req); e != nil {
			return e
		}
	}
	return nil
}

func checkRequestURI(u *sip.Uri) *Error {
	switch u.Scheme {
	case "sip", "sips":
		if u.Host == "" {
			return badRequest("Request-URI has no host")
		}
		if len(u.Headers) > 0 {
			// RFC 3261 §19.1.5; RFC 4475 escruri.
			return badRequest("Request-URI must not contain headers")
		}
	case "tel":
		if u.Raw() == "" {
			return badRequest("empty tel Request-URI")
		}
	default:
		return &Error{Code: 416, Reason: "Unsupported URI Scheme"}
	}
	return nil
}

// checkMandatory checks the headers every request and response carries.
// message is what *sip.Request and *sip.Response share here.
type message interface {
	sip.Message
	header.Lister
}

func checkMandatory(m message) *Error {
	switch {
	case m.Via() == nil:
		return badRequest("missing Via header")
	case m.To() == nil:
		return badRequest("missing To header")
	case m.From() == nil:
		return badRequest("missing From header")
	case m.CallID() == nil:
		return badRequest("missing Call-ID header")
	case m.CSeq() == nil:
		return badRequest("missing CSeq header")
	}
	for _, name := range singletons {
		if n := len(header.Get(m, name)); n > 1 {
			return badRequest("%d %s headers", n, name)
		}
	}
	if v := m.Via(); v.Host == "" || strings.ContainsAny(v.Host, " \t") {
		return badRequest("invalid sent-by in Via header")
	}
	if v := m.Via(); v.ProtocolName != "SIP" || v.ProtocolVersion != "2.0" || v.Transport == "" {
		return badRequest("invalid sent-protocol in Via header")
	}
	if m.CSeq().MethodName == "" {
		return badRequest("invalid CSeq header")
	}
	return nil
}

// checkBody checks framing and typing of the body.
func checkBody(m message) *Error {
	body := m.Body()
	if cl := m.ContentLength(); cl != nil && int(*cl) > len(body) {
		return badRequest("Content-Length %d larger than body of %d octets", uint32(*cl), len(body))
	}
	cts := header.Get(m, "Content-Type")
	if len(body) > 0 && len(cts) == 0 {
		return badRequest("body without Content-Type header")
	}
	if len(cts) > 0 && !validMediaType(cts[0].Value()) {
		return badRequest("invalid Content-Type header")
	}
	return nil
}

// validMediaType checks type "/" subtype *(;param).
func validMediaType(v string) bool {
	mt, _, _ := strings.Cut(v, ";")
	typ, sub, ok := strings.Cut(strings.TrimSpace(mt), "/")
	return ok && isToken(strings.TrimSpace(typ)) && isToken(strings.TrimSpace(sub))
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

// checkDate requires an RFC 1123 date in GMT (RFC 3261 §20.17; RFC 4475
// baddate).
func checkDate(m message) *Error {
	for _, h := range header.Get(m, "Date") {
		v := h.Value()
		if _, err := time.Parse(time.RFC1123, v); err != nil || !strings.HasSuffix(v, " GMT") {
			return badRequest("invalid Date header")
		}
	}
	return nil
}

// optionTags collects the comma-separated tags of every header name.
func optionTags(m message, name string) []string {
	var tags []string
	for _, h := range header.Get(m, name) {
		for t := range strings.SplitSeq(h.Value(), ",") {
			if t = strings.TrimSpace(t); t != "" {
				tags = append(tags, t)
			}
		}
	}
	return tags
}

func (p Policy) unsupported(m message, name string) []string {
	var out []string
	for _, t := range optionTags(m, name) {
		if !slices.ContainsFunc(p.Supported, func(s string) bool { return strings.EqualFold(s, t) }) {
			out = append(out, t)
		}
	}
	return out
}

func (p Policy) checkMedia(req *sip.Request) *Error {
	if len(req.Body()) == 0 {
		return nil
	}
	if len(p.Accept) > 0 {
		mt, _, _ := strings.Cut(header.First(req, "Content-Type").Value(), ";")
		mt = strings.ToLower(strings.TrimSpace(mt))
		if !slices.ContainsFunc(p.Accept, func(a string) bool { return strings.EqualFold(a, mt) }) {
			return &Error{Code: 415, Reason: "Unsupported Media Type", Accept: p.Accept}
		}
	}
	for _, enc := range optionTags(req, "Content-Encoding") {
		ok := strings.EqualFold(enc, "identity") ||
			slices.ContainsFunc(p.Encodings, func(e string) bool { return strings.EqualFold(e, enc) })
		if !ok {
			return &Error{Code: 415, Reason: "Unsupported Media Type", AcceptEncoding: append([]string{"identity"}, p.Encodings...)}
		}
	}
	return nil
}

// CheckResponse returns nil if res may be passed to the transaction layer,
// or an error saying why it must be dropped (responses are never answered).
func CheckResponse(res *sip.Response) error {
	if res == nil {
		return errors.New("sipcheck: no response")
	}
	if res.SipVersion != "SIP/2.0" {
		return fmt.Errorf("sipcheck: response version %q", res.SipVersion)
	}
	if res.StatusCode < 100 || res.StatusCode > 699 {
		return fmt.Errorf("sipcheck: status code %d out of range", res.StatusCode)
	}
	if e := checkMandatory(res); e != nil {
		return fmt.Errorf("sipcheck: response: %s", strings.TrimSuffix(strings.TrimPrefix(e.Reason, "Bad Request ("), ")"))
	}
	if e := checkBody(res); e != nil {
		return fmt.Errorf("sipcheck: response: %s", strings.TrimSuffix(strings.TrimPrefix(e.Reason, "Bad Request ("), ")"))
	}
	return nil
}
