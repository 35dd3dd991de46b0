package auth

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// errNotDigest marks a credentials header of another scheme, which is not
// ours to check (RFC 3261 §22.4 lets several realms' credentials coexist).
var errNotDigest = errors.New("not a Digest credentials header")

// credentials is a parsed Digest Authorization or Proxy-Authorization
// header. icholy/digest's parser is not used here because it drops the
// parameters IMS adds (auts, integrity-protected) and matches parameter
// names case-sensitively, which RFC 3261 does not allow.
type credentials struct {
	username, realm, nonce, uri, response string
	algorithm, cnonce, opaque, qop        string
	nc                                    uint32 // 0 when absent
	auts                                  string // RFC 3310 resynchronisation token, base64
	integrity                             string // TS 24.229 integrity-protected
}

// parseCredentials parses a credentials header value (RFC 3261 §25.1
// credentials, RFC 3310 auts, TS 24.229 integrity-protected). It checks
// syntax only; what a response needs is checked by checkResponse.
func parseCredentials(v string) (*credentials, error) {
	v = strings.TrimLeft(v, " \t")
	i := strings.IndexAny(v, " \t")
	if i < 0 {
		if strings.EqualFold(v, "Digest") {
			return nil, errors.New("Digest credentials without parameters")
		}
		return nil, errNotDigest
	}
	if !strings.EqualFold(v[:i], "Digest") {
		return nil, errNotDigest
	}
	params, err := parseAuthParams(v[i:])
	if err != nil {
		return nil, err
	}
	c := &credentials{}
	for name, val := range params {
		switch name {
		case "username":
			c.username = val
		case "realm":
			c.realm = val
		case "nonce":
			c.nonce = val
		case "uri":
			c.uri = val
		case "response":
			c.response = val
		case "algorithm":
			c.algorithm = val
		case "cnonce":
			c.cnonce = val
		case "opaque":
			c.opaque = val
		case "qop":
			c.qop = val
		case "nc":
			// nonce-count = 8LHEX (RFC 2617 §3.2.2).
			n, err := strconv.ParseUint(val, 16, 32)
			if err != nil || len(val) != 8 {
				return nil, fmt.Errorf("nc %q is not 8 hexadecimal digits", val)
			}
			c.nc = uint32(n)
		case "auts":
			c.auts = val
		case "integrity-protected":
			c.integrity = strings.ToLower(val)
		}
	}
	return c, nil
}

// checkResponse checks that c has what a challenge response needs.
func (c *credentials) checkResponse() error {
	for _, p := range []struct{ name, val string }{
		{"username", c.username}, {"realm", c.realm}, {"nonce", c.nonce}, {"uri", c.uri},
	} {
		if p.val == "" {
			return fmt.Errorf("response without %s", p.name)
		}
	}
	if len(c.response) != 32 || !isHex(c.response) {
		return fmt.Errorf("response %q is not 32 hexadecimal digits", c.response)
	}
	switch strings.ToLower(c.qop) {
	case "":
		if c.nc != 0 || c.cnonce != "" {
			return errors.New("nc and cnonce without qop")
		}
	case "auth":
		if c.nc == 0 || c.cnonce == "" {
			return errors.New("qop=auth needs nc (above zero) and cnonce")
		}
	default:
		return fmt.Errorf("qop %q was not offered", c.qop)
	}
	return nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune("0123456789abcdefABCDEF", rune(s[i])) {
			return false
		}
	}
	return true
}

// parseAuthParams parses a comma-separated list of name=value pairs whose
// values are tokens or quoted strings (RFC 3261 §25.1 auth-param). Names are
// lowercased; a repeated name is an error.
func parseAuthParams(s string) (map[string]string, error) {
	out := map[string]string{}
	p := 0
	skip := func() {
		for p < len(s) && (s[p] == ' ' || s[p] == '\t') {
			p++
		}
	}
	for {
		skip()
		start := p
		for p < len(s) && isTokenChar(s[p]) {
			p++
		}
		if p == start {
			return nil, fmt.Errorf("expected a parameter name at offset %d", p)
		}
		name := strings.ToLower(s[start:p])
		skip()
		if p >= len(s) || s[p] != '=' {
			return nil, fmt.Errorf("parameter %q without a value", name)
		}
		p++
		skip()
		var val string
		if p < len(s) && s[p] == '"' {
			var b strings.Builder
			p++
			for {
				if p >= len(s) {
					return nil, fmt.Errorf("parameter %q: unterminated quoted string", name)
				}
				c := s[p]
				p++
				if c == '"' {
					break
				}
				if c == '\\' {
					if p >= len(s) {
						return nil, fmt.Errorf("parameter %q: unterminated quoted string", name)
					}
					c = s[p]
					p++
				}
				b.WriteByte(c)
			}
			val = b.String()
		} else {
			start := p
			for p < len(s) && isTokenChar(s[p]) {
				p++
			}
			if p == start {
				return nil, fmt.Errorf("parameter %q: expected a token or quoted string", name)
			}
			val = s[start:p]
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("parameter %q repeated", name)
		}
		out[name] = val
		skip()
		if p == len(s) {
			return out, nil
		}
		if s[p] != ',' {
			return nil, fmt.Errorf("expected ',' after parameter %q", name)
		}
		p++
	}
}

// isTokenChar reports whether c may appear in an RFC 3261 token.
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-.!%*_+`'~", c) >= 0
}
