// Package header holds the SIP header handling the SIP functions share:
// identities compared as IMS compares them, name-addr lists split on the
// right commas, and small edits sipgo does not offer.
package header

import (
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Canonical is an identity as compared across headers: scheme, user and
// host, without parameters.
func Canonical(u sip.Uri) string {
	if strings.EqualFold(u.Scheme, "tel") {
		// sipgo keeps a tel URI's number, with its parameters, in Raw.
		num := u.User
		if num == "" {
			num, _, _ = strings.Cut(u.Raw(), ";")
		}
		return "tel:" + num
	}
	s := strings.ToLower(u.Scheme)
	if s == "" {
		s = "sip"
	}
	if u.User == "" {
		return s + ":" + strings.ToLower(u.Host)
	}
	return s + ":" + u.User + "@" + strings.ToLower(u.Host)
}

// ParseNameAddr parses one name-addr or addr-spec.
func ParseNameAddr(v string) (sip.Uri, bool) {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, '<'); i >= 0 {
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			return sip.Uri{}, false
		}
		v = v[i+1 : i+j]
	} else if k := strings.IndexByte(v, ';'); k >= 0 && !strings.HasPrefix(strings.ToLower(v), "tel:") {
		v = v[:k]
	}
	var u sip.Uri
	if err := sip.ParseUri(v, &u); err != nil {
		return sip.Uri{}, false
	}
	return u, true
}

// SplitList splits a header value on the commas between entries, not those
// inside quotes or angle brackets.
func SplitList(v string) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '"':
			quoted = !quoted
		case '<':
			if !quoted {
				depth++
			}
		case '>':
			if !quoted && depth > 0 {
				depth--
			}
		case ',':
			if !quoted && depth == 0 {
				out = append(out, strings.TrimSpace(v[start:i]))
				start = i + 1
			}
		}
	}
	if s := strings.TrimSpace(v[start:]); s != "" {
		out = append(out, s)
	}
	return out
}

// Lister is what sip.Request and sip.Response share for listing headers.
type Lister interface {
	Headers() []sip.Header
}

// Get returns the headers called name (case-insensitively), in order. It
// is sipgo's GetHeaders without the copy of every header name it lowercases
// on the way, which was a large share of a message's allocations.
func Get(m Lister, name string) []sip.Header {
	var out []sip.Header
	for _, h := range m.Headers() {
		if strings.EqualFold(h.Name(), name) {
			out = append(out, h)
		}
	}
	return out
}

// First returns the first header called name (case-insensitively), or nil:
// GetHeader without sipgo's copies of lowercased names.
func First(m Lister, name string) sip.Header {
	for _, h := range m.Headers() {
		if strings.EqualFold(h.Name(), name) {
			return h
		}
	}
	return nil
}

// RemoveAll removes every header called name.
func RemoveAll(req *sip.Request, name string) {
	for req.RemoveHeader(name) {
	}
}

// AddSupported adds an option tag to Supported unless it is there.
func AddSupported(req *sip.Request, tag string) {
	for _, h := range Get(req, "Supported") {
		for _, v := range strings.Split(h.Value(), ",") {
			if strings.EqualFold(strings.TrimSpace(v), tag) {
				return
			}
		}
	}
	req.AppendHeader(sip.NewHeader("Supported", tag))
}

// URIs parses every name-addr in the named headers.
func URIs(m Lister, name string) []sip.Uri {
	var out []sip.Uri
	for _, h := range Get(m, name) {
		for _, v := range SplitList(h.Value()) {
			if u, ok := ParseNameAddr(v); ok {
				out = append(out, u)
			}
		}
	}
	return out
}
