package hss

import (
	"regexp"
	"strings"
	"unicode"
)

// maxIdentityLen bounds identities so that every key fits kv's key limit.
const maxIdentityLen = 1024

// CheckPrivateID reports whether impi is usable as a private identity.
func CheckPrivateID(impi string) error {
	if impi == "" {
		return invalid("empty private identity")
	}
	if len(impi) > maxIdentityLen {
		return invalid("private identity longer than %d bytes", maxIdentityLen)
	}
	if i := strings.IndexFunc(impi, badIdentityRune); i >= 0 {
		return invalid("private identity %q contains %q", impi, impi[i:i+1])
	}
	return nil
}

// CheckPublicID reports whether impu is usable as a public identity: a sip:,
// sips: or tel: URI, optionally a wildcard with one !regex! part in its user
// part (TS 23.003 wildcarded public identities).
func CheckPublicID(impu string) error {
	if impu == "" {
		return invalid("empty public identity")
	}
	if len(impu) > maxIdentityLen {
		return invalid("public identity longer than %d bytes", maxIdentityLen)
	}
	if i := strings.IndexFunc(impu, badIdentityRune); i >= 0 {
		return invalid("public identity %q contains %q", impu, impu[i:i+1])
	}
	scheme, rest, ok := strings.Cut(impu, ":")
	switch strings.ToLower(scheme) {
	case "sip", "sips", "tel":
	default:
		return invalid("public identity %q is not a sip:, sips: or tel: URI", impu)
	}
	if !ok || rest == "" {
		return invalid("public identity %q has nothing after the scheme", impu)
	}
	if n := strings.Count(impu, "!"); n != 0 {
		if n != 2 {
			return invalid("wildcard public identity %q must have exactly one !regex! part", impu)
		}
		if _, err := wildcardRegexp(impu); err != nil {
			return err
		}
		if strings.Contains(hostOf(impu), "!") {
			return invalid("wildcard public identity %q has its wildcard in the domain", impu)
		}
	}
	return nil
}

func badIdentityRune(r rune) bool {
	return unicode.IsSpace(r) || unicode.IsControl(r)
}

// IsWildcard reports whether impu is a wildcarded public identity.
func IsWildcard(impu string) bool { return strings.Count(impu, "!") == 2 }

// wildcardRegexp compiles a wildcard identity into an anchored regexp: the
// part between the two '!' is a regular expression, the rest is literal.
func wildcardRegexp(impu string) (*regexp.Regexp, error) {
	first := strings.IndexByte(impu, '!')
	last := strings.LastIndexByte(impu, '!')
	if first < 0 || last == first {
		return nil, invalid("%q is not a wildcard identity", impu)
	}
	expr := "^" + regexp.QuoteMeta(impu[:first]) + "(?:" + impu[first+1:last] + ")" + regexp.QuoteMeta(impu[last+1:]) + "$"
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, invalid("wildcard public identity %q: bad regular expression: %v", impu, err)
	}
	return re, nil
}

// hostOf returns the lower-cased domain of a SIP URI, or "tel" for a tel URI:
// the key under which wildcard identities are listed.
func hostOf(impu string) string {
	scheme, rest, _ := strings.Cut(impu, ":")
	if strings.EqualFold(scheme, "tel") {
		return "tel"
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		rest = rest[i+1:]
	}
	if i := strings.IndexAny(rest, ";?>"); i >= 0 {
		rest = rest[:i]
	}
	if strings.HasPrefix(rest, "[") { // IPv6 reference
		if i := strings.IndexByte(rest, ']'); i >= 0 {
			return strings.ToLower(rest[:i+1])
		}
	}
	if i := strings.IndexByte(rest, ':'); i >= 0 {
		rest = rest[:i]
	}
	return strings.ToLower(rest)
}

// DefaultPrivateID is the private identity Clearwater derives from a public
// one: the URI without its sip: scheme (and without parameters).
func DefaultPrivateID(impu string) string {
	id := impu
	if len(id) > 4 && strings.EqualFold(id[:4], "sip:") {
		id = id[4:]
	}
	if i := strings.IndexAny(id, ";?"); i >= 0 {
		id = id[:i]
	}
	return id
}

// DefaultRealm is the realm Clearwater's bulk provisioning derives from a
// public identity: its domain (home for tel URIs).
func DefaultRealm(impu, home string) string {
	if h := hostOf(impu); h != "" && h != "tel" {
		return h
	}
	return home
}
