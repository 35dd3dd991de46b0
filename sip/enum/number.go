package enum

import (
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// NP is number portability data carried by a number or URI (RFC 4694).
type NP struct {
	// RoutingNumber is the rn parameter: where a ported number now lives.
	RoutingNumber string
	// NPDI reports the npdi parameter: a portability dip was already done.
	NPDI bool
}

// number is a dial string split into its Application Unique String (digits
// with an optional leading '+') and its RFC 4694 parameters.
type number struct {
	aus string
	np  NP
}

// isVisualSeparator reports RFC 3966 visual separators, which carry no
// meaning and are stripped before lookups.
func isVisualSeparator(c byte) bool {
	return c == '-' || c == '.' || c == '(' || c == ')' || c == ' '
}

// stripVisual removes RFC 3966 visual separators from s.
func stripVisual(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return r < 0x80 && isVisualSeparator(byte(r)) }) < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if !isVisualSeparator(s[i]) {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// parseNumber normalises a dial string such as "+1 (650) 555-1234;npdi".
func parseNumber(s string) (number, error) {
	digits, params, _ := strings.Cut(s, ";")
	aus := stripVisual(digits)
	body := strings.TrimPrefix(aus, "+")
	if body == "" {
		return number{}, fmt.Errorf("%w: %q has no digits", ErrNotNumber, s)
	}
	for i := 0; i < len(body); i++ {
		if body[i] < '0' || body[i] > '9' {
			return number{}, fmt.Errorf("%w: %q contains %q", ErrNotNumber, s, body[i])
		}
	}
	n := number{aus: aus}
	if params != "" {
		n.np = npFromParams(params)
	}
	return n, nil
}

// npFromParams reads rn and npdi from ";"-separated parameters (the leading
// ';' already removed). Parameter names are case-insensitive (RFC 3966).
func npFromParams(params string) NP {
	var np NP
	for p := range strings.SplitSeq(params, ";") {
		name, val, _ := strings.Cut(p, "=")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "rn":
			np.RoutingNumber = strings.TrimSpace(val)
		case "npdi":
			np.NPDI = true
		}
	}
	return np
}

// domain builds the ENUM query name: the digits reversed, dot-separated,
// followed by the suffix (RFC 3761 §2.4).
func domain(aus, suffix string) string {
	digits := strings.TrimPrefix(aus, "+")
	var b strings.Builder
	b.Grow(2*len(digits) + len(suffix))
	for i := len(digits) - 1; i >= 0; i-- {
		b.WriteByte(digits[i])
		b.WriteByte('.')
	}
	b.WriteString(suffix)
	return b.String()
}

// NumberFromURI returns the dial string of a URI that represents a
// telephone number, with its rn/npdi parameters (";rn=...;npdi"), ready for
// Translate. A tel URI always does. A SIP URI does when it has user=phone
// or, unless enforceUserPhone (enforce_user_phone) is set, when its user
// part is all digits with an optional leading '+' and visual separators;
// checking that such a URI's host is a home domain is the caller's job.
func NumberFromURI(u *sip.Uri, enforceUserPhone bool) (string, bool) {
	if u == nil {
		return "", false
	}
	var user string
	switch strings.ToLower(u.Scheme) {
	case "tel":
		user = u.Raw()
	case "sip", "sips", "":
		userPhone := false
		for _, kv := range u.UriParams {
			if strings.EqualFold(kv.K, "user") && strings.EqualFold(kv.V, "phone") {
				userPhone = true
			}
		}
		if enforceUserPhone && !userPhone {
			return "", false
		}
		user = u.User
	default:
		return "", false
	}
	n, err := parseNumber(user)
	if err != nil {
		return "", false
	}
	s := n.aus
	if n.np.RoutingNumber != "" {
		s += ";rn=" + n.np.RoutingNumber
	}
	if n.np.NPDI {
		s += ";npdi"
	}
	return s, true
}

// npFromURI extracts rn/npdi from an ENUM answer: from a tel URI's
// parameters, or from the user part (user parameters) or URI parameters of
// a SIP URI.
func npFromURI(u *sip.Uri) NP {
	if strings.EqualFold(u.Scheme, "tel") {
		if _, params, ok := strings.Cut(u.Raw(), ";"); ok {
			return npFromParams(params)
		}
		return NP{}
	}
	var np NP
	if _, params, ok := strings.Cut(u.User, ";"); ok {
		np = npFromParams(params)
	}
	for _, kv := range u.UriParams {
		switch strings.ToLower(kv.K) {
		case "rn":
			if np.RoutingNumber == "" {
				np.RoutingNumber = kv.V
			}
		case "npdi":
			np.NPDI = true
		}
	}
	return np
}
