package homer

import (
	"strconv"
	"strings"
	"unicode"
)

// checkTarget says what is wrong with a diversion target, "" if nothing: it
// must be a sip, sips or tel URI that a call can be sent to.
func checkTarget(v string) string {
	for _, r := range v {
		if r <= ' ' || r == 0x7f || strings.ContainsRune(`<>"{}|\^`+"`", r) {
			return "contains characters not allowed in a URI"
		}
	}
	scheme, rest, ok := strings.Cut(v, ":")
	if !ok {
		return "is not a URI (want sip:, sips: or tel:)"
	}
	switch strings.ToLower(scheme) {
	case "sip", "sips":
		return checkSIP(rest)
	case "tel":
		return checkTel(rest)
	}
	return "is not a sip, sips or tel URI"
}

func checkSIP(rest string) string {
	hostport := rest
	if i := strings.IndexAny(hostport, ";?"); i >= 0 {
		hostport = hostport[:i]
	}
	if i := strings.LastIndexByte(hostport, '@'); i >= 0 {
		if i == 0 {
			return "has an empty user part"
		}
		hostport = hostport[i+1:]
	}
	host := hostport
	if strings.HasPrefix(host, "[") {
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return "has an unterminated IPv6 reference"
		}
		for _, r := range host[1:end] {
			if !(r == ':' || r == '.' || unicode.Is(unicode.ASCII_Hex_Digit, r)) {
				return "has a malformed IPv6 reference"
			}
		}
		host, hostport = host[:end+1], host[end+1:]
	} else if i := strings.IndexByte(host, ':'); i >= 0 {
		host, hostport = host[:i], host[i:]
	} else {
		hostport = ""
	}
	if host == "" {
		return "has no host"
	}
	if !strings.HasPrefix(host, "[") {
		for _, r := range host {
			if !(r == '.' || r == '-' || r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r))) {
				return "has a malformed host"
			}
		}
	}
	if hostport != "" {
		port := strings.TrimPrefix(hostport, ":")
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || port[0] == '+' {
			return "has a malformed port"
		}
	}
	return ""
}

func checkTel(rest string) string {
	number, params, _ := strings.Cut(rest, ";")
	global := strings.HasPrefix(number, "+")
	digits := 0
	for i, r := range number {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '-' || r == '.' || r == '(' || r == ')':
		case r == '+' && i == 0:
		case !global && (r == '*' || r == '#' || (r >= 'A' && r <= 'F') || (r >= 'a' && r <= 'f')):
			digits++
		default:
			return "has a malformed telephone number"
		}
	}
	if digits == 0 {
		return "has no telephone number"
	}
	if !global && !strings.Contains(";"+strings.ToLower(params), ";phone-context=") {
		return "is a local number without phone-context"
	}
	return ""
}

// isNCName reports whether s is an XML name without colons, as xs:ID wants.
func isNCName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_' || unicode.IsLetter(r):
		case i > 0 && (r == '-' || r == '.' || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Mc, r)):
		default:
			return false
		}
	}
	return true
}
