package registrar

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"

	"stillwater/sip/header"
)

func equalFold(a, b string) bool { return strings.EqualFold(a, b) }

// splitList splits a comma-separated header value, leaving commas inside
// quotes and angle brackets alone (sipgo does not split generic headers).
func splitList(v string) []string {
	var out []string
	inQuote, inAngle, esc := false, false, false
	start := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case esc:
			esc = false
		case inQuote && c == '\\':
			esc = true
		case c == '"':
			inQuote = !inQuote
		case !inQuote && c == '<':
			inAngle = true
		case !inQuote && c == '>':
			inAngle = false
		case !inQuote && !inAngle && c == ',':
			if s := strings.TrimSpace(v[start:i]); s != "" {
				out = append(out, s)
			}
			start = i + 1
		}
	}
	if s := strings.TrimSpace(v[start:]); s != "" {
		out = append(out, s)
	}
	return out
}

// headerValues returns every comma-separated value of the named headers.
func headerValues(m header.Lister, name string) []string {
	var out []string
	for _, h := range header.Get(m, name) {
		out = append(out, splitList(h.Value())...)
	}
	return out
}

// hasToken reports whether a token list header (Supported, Require) holds tok.
func hasToken(m header.Lister, name, tok string) bool {
	for _, v := range headerValues(m, name) {
		if equalFold(strings.TrimSpace(v), tok) {
			return true
		}
	}
	return false
}

// expiresHeader returns the Expires header's delta-seconds, if present.
func expiresHeader(m header.Lister) (uint64, bool, error) {
	h := header.First(m, "Expires")
	if h == nil {
		return 0, false, nil
	}
	n, err := strconv.ParseUint(strings.TrimSpace(h.Value()), 10, 32)
	if err != nil {
		return 0, true, fmt.Errorf("malformed Expires header %q", h.Value())
	}
	return n, true, nil
}

// aorOf renders a URI as the address-of-record it names: scheme, user and
// host (with port if any), no parameters.
func aorOf(u *sip.Uri) string {
	scheme := strings.ToLower(u.Scheme)
	if scheme == "" {
		scheme = "sip"
	}
	if scheme != "sip" && scheme != "sips" {
		raw := u.Raw()
		if i := strings.IndexAny(raw, ";?"); i >= 0 {
			raw = raw[:i]
		}
		return scheme + ":" + raw
	}
	var b strings.Builder
	b.WriteString(scheme + ":")
	if u.User != "" {
		b.WriteString(u.User + "@")
	}
	b.WriteString(strings.ToLower(u.Host))
	if u.Port > 0 {
		b.WriteString(":" + strconv.Itoa(u.Port))
	}
	return b.String()
}

// unquote removes the double quotes around a parameter value.
func unquote(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		return strings.ReplaceAll(strings.ReplaceAll(v[1:len(v)-1], `\"`, `"`), `\\`, `\`)
	}
	return v
}

// instanceID normalizes a +sip.instance value: the URN with its quotes
// removed, angle brackets kept ("<urn:uuid:...>").
func instanceID(v string) string {
	v = strings.TrimSpace(unquote(v))
	if v != "" && !strings.HasPrefix(v, "<") {
		v = "<" + v + ">"
	}
	return v
}

// grValue is the gr parameter value of an instance (RFC 5627 §3.2): the URN
// without its angle brackets, escaped as a URI parameter value.
func grValue(instance string) string {
	urn := strings.TrimSuffix(strings.TrimPrefix(instance, "<"), ">")
	return escapeParam(urn)
}

// escapeParam escapes what RFC 3261's paramchar does not allow.
func escapeParam(s string) string {
	const hexd = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if paramChar(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexd[c>>4])
		b.WriteByte(hexd[c&15])
	}
	return b.String()
}

// unescape reverses %XX escapes; malformed escapes are kept as they are.
func unescape(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(n))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func paramChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	// unreserved marks and param-unreserved
	return strings.IndexByte("-_.!~*'()[]/:&+$", c) >= 0
}

// quote renders a quoted-string.
func quote(s string) string {
	return `"` + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `"`, `\"`) + `"`
}

// nameAddr renders <uri>, leaving a value already in angle brackets alone.
func nameAddr(u string) string {
	if strings.HasPrefix(u, "<") || strings.Contains(u, "<") {
		return u
	}
	return "<" + u + ">"
}

// stripAngle returns the URI inside a name-addr (or the value as it is).
func stripAngle(v string) string {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j >= 0 {
			return v[i+1 : i+j]
		}
	}
	return v
}

func renderParams(ps []param) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(";" + p.K)
		if p.V != "" {
			b.WriteString("=" + p.V)
		}
	}
	return b.String()
}
