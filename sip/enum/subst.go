package enum

import (
	"fmt"
	"regexp"
	"strings"
)

// subst is a compiled DDDS substitution expression (RFC 3402 §3.2), the
// regexp field of a NAPTR record or an enum.json block:
// delim-char ERE delim-char replacement delim-char [ "i" ].
type subst struct {
	src  string
	re   *regexp.Regexp
	repl []replPart
}

// replPart is a literal run of the replacement or a back-reference.
type replPart struct {
	lit   string
	group int // > 0: back-reference \group
}

// parseSubst compiles a substitution expression. The delimiter is the first
// character (conventionally '!' or '/'); it may appear escaped as \<delim>
// inside the pattern or replacement.
func parseSubst(expr string) (*subst, error) {
	if expr == "" {
		return nil, fmt.Errorf("regexp is empty")
	}
	delim := expr[0]
	// RFC 3402: the delimiter is any non-digit, non-flag character; a
	// backslash would be indistinguishable from an escape.
	if delim >= '0' && delim <= '9' || delim == 'i' || delim == '\\' || delim >= 0x80 {
		return nil, fmt.Errorf("regexp %q: %q cannot be the delimiter", expr, delim)
	}
	var fields [3]strings.Builder
	f := 0
	for i := 1; i < len(expr); i++ {
		c := expr[i]
		if f == 2 {
			fields[2].WriteByte(c)
			continue
		}
		if c == '\\' && i+1 < len(expr) {
			next := expr[i+1]
			i++
			if next == delim {
				if f == 0 {
					fields[0].WriteString(regexp.QuoteMeta(string(delim)))
				} else {
					fields[1].WriteString(`\` + string(delim))
				}
				continue
			}
			fields[f].WriteByte('\\')
			fields[f].WriteByte(next)
			continue
		}
		if c == delim {
			f++
			if f == 2 && i+1 == len(expr) {
				break
			}
			continue
		}
		fields[f].WriteByte(c)
	}
	if f < 2 {
		return nil, fmt.Errorf("regexp %q: want %cpattern%creplacement%c", expr, delim, delim, delim)
	}
	flags := fields[2].String()
	pattern := fields[0].String()
	switch flags {
	case "":
	case "i":
		pattern = "(?i)" + pattern
	default:
		return nil, fmt.Errorf("regexp %q: unsupported flags %q (only \"i\")", expr, flags)
	}
	if pattern == "" {
		return nil, fmt.Errorf("regexp %q: empty pattern", expr)
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("regexp %q: %w", expr, err)
	}
	repl, err := parseRepl(fields[1].String(), delim, re.NumSubexp())
	if err != nil {
		return nil, fmt.Errorf("regexp %q: %w", expr, err)
	}
	return &subst{src: expr, re: re, repl: repl}, nil
}

// parseRepl splits a replacement into literals and back-references \1..\9;
// \\ is a backslash and \<delim> the delimiter.
func parseRepl(s string, delim byte, groups int) ([]replPart, error) {
	var parts []replPart
	var lit strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 {
			return nil, fmt.Errorf("replacement %q: only ASCII is supported", s)
		}
		if c != '\\' {
			lit.WriteByte(c)
			continue
		}
		if i+1 == len(s) {
			return nil, fmt.Errorf("replacement %q ends in a lone backslash", s)
		}
		i++
		n := s[i]
		switch {
		case n >= '1' && n <= '9':
			g := int(n - '0')
			if g > groups {
				return nil, fmt.Errorf("replacement refers to \\%d but the pattern has %d group(s)", g, groups)
			}
			if lit.Len() > 0 {
				parts = append(parts, replPart{lit: lit.String()})
				lit.Reset()
			}
			parts = append(parts, replPart{group: g})
		case n == '0':
			return nil, fmt.Errorf("replacement uses \\0; back-references are \\1 to \\9")
		case n == '\\' || n == delim:
			lit.WriteByte(n)
		default:
			// An escaped ordinary character stands for itself.
			lit.WriteByte(n)
		}
	}
	if lit.Len() > 0 {
		parts = append(parts, replPart{lit: lit.String()})
	}
	return parts, nil
}

// apply substitutes the first match of the pattern in in, keeping the text
// around it, as sed's s/// does. ok is false when the pattern does not match.
func (s *subst) apply(in string) (string, bool) {
	m := s.re.FindStringSubmatchIndex(in)
	if m == nil {
		return "", false
	}
	var b strings.Builder
	b.WriteString(in[:m[0]])
	for _, p := range s.repl {
		if p.group == 0 {
			b.WriteString(p.lit)
			continue
		}
		if lo, hi := m[2*p.group], m[2*p.group+1]; lo >= 0 {
			b.WriteString(in[lo:hi])
		}
	}
	b.WriteString(in[m[1]:])
	return b.String(), true
}
