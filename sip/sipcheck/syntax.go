package sipcheck

import (
	"strings"
)

// checkSyntax checks the raw To, From and Contact values (unfolded header
// lines) for what sipgo accepts but RFC 3261 §20.10 and §25.1 forbid.
func checkSyntax(headers []string) *Error {
	for _, l := range headers {
		name, value, ok := splitHeader(l)
		if !ok {
			continue
		}
		canon, ok := nameAddr[name]
		if !ok {
			continue
		}
		if canon == "Contact" && value == "*" {
			continue
		}
		parts, err := splitList(value)
		if err != "" {
			return badRequest("%s header: %s", canon, err)
		}
		if canon != "Contact" && len(parts) != 1 {
			return badRequest("%s header: more than one address (unquoted comma?)", canon)
		}
		for _, p := range parts {
			if err := checkAddress(p); err != "" {
				return badRequest("%s header: %s", canon, err)
			}
		}
	}
	return nil
}

// splitList splits a header value at commas outside quoted strings and
// angle brackets, reporting unbalanced quotes or brackets.
func splitList(v string) ([]string, string) {
	var parts []string
	inQuote, inAngle, escaped := false, false, false
	start := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case inQuote:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inQuote = false
			}
		case inAngle:
			switch c {
			case '>':
				inAngle = false
			case '<', '"':
				return nil, "unexpected " + string(c) + " inside <>"
			}
		case c == '"':
			inQuote = true
		case c == '<':
			inAngle = true
		case c == '>':
			return nil, "unbalanced >"
		case c == ',':
			parts = append(parts, strings.Trim(v[start:i], " \t"))
			start = i + 1
		}
	}
	switch {
	case inQuote:
		return nil, "unterminated quoted string"
	case inAngle:
		return nil, "unterminated <"
	}
	return append(parts, strings.Trim(v[start:], " \t")), ""
}

// checkAddress checks one (name-addr / addr-spec) *(SEMI param) element,
// already known to have balanced quotes and brackets.
func checkAddress(a string) string {
	if a == "" {
		return "empty address"
	}
	lt := indexOutsideQuotes(a, '<')
	semi := indexOutsideQuotes(a, ';')
	if lt >= 0 && (semi < 0 || lt < semi) {
		display := strings.Trim(a[:lt], " \t")
		if strings.HasPrefix(display, "\"") {
			if !strings.HasSuffix(display, "\"") || len(display) < 2 {
				return "text between quoted display name and <"
			}
		} else if !isTokenList(display) {
			return "display name with non-token characters must be quoted"
		}
		gt := strings.IndexByte(a[lt:], '>') + lt
		uri := a[lt+1 : gt]
		if strings.ContainsAny(uri, " \t") {
			return "whitespace inside <>"
		}
		if !uriScheme.MatchString(uri) {
			return "URI without scheme"
		}
		if rest := strings.TrimLeft(a[gt+1:], " \t"); rest != "" && rest[0] != ';' {
			return "text after >"
		}
		return ""
	}
	if indexOutsideQuotes(a, '"') >= 0 && (semi < 0 || indexOutsideQuotes(a, '"') < semi) {
		return "quoted display name without <>"
	}
	uri := a
	if semi >= 0 {
		uri = a[:semi]
	}
	uri = strings.TrimRight(uri, " \t")
	switch {
	case strings.ContainsAny(uri, " \t"):
		return "display name or whitespace without <>"
	case strings.ContainsAny(uri, "?,"):
		return "URI with ? or , must be enclosed in <>"
	case !uriScheme.MatchString(uri):
		return "URI without scheme"
	}
	return ""
}

// indexOutsideQuotes is the index of c outside quoted strings, or -1.
func indexOutsideQuotes(s string, c byte) int {
	inQuote, escaped := false, false
	for i := 0; i < len(s); i++ {
		switch {
		case inQuote:
			switch {
			case escaped:
				escaped = false
			case s[i] == '\\':
				escaped = true
			case s[i] == '"':
				inQuote = false
			}
		case s[i] == '"':
			if c == '"' {
				return i
			}
			inQuote = true
		case s[i] == c:
			return i
		}
	}
	return -1
}

// isTokenList reports whether s is *(token LWS): an unquoted display name.
func isTokenList(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) && s[i] != ' ' && s[i] != '\t' {
			return false
		}
	}
	return true
}

// isTokenChar reports whether c is an RFC 3261 token character.
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("-.!%*_+`'~", c) >= 0
}
