package config

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
)

// CompileENUMRegex compiles an ENUM rule's regular expression, written as in
// a NAPTR record (RFC 3402): <d>pattern<d>replacement<d>, where the
// delimiter <d> is the first character, conventionally "!". The pattern is
// POSIX extended syntax with leftmost-longest matching, as Clearwater used;
// back-references \1 to \9 in the replacement are converted to the ${1}
// form, so the result can be passed to the Regexp's ReplaceAllString or
// Expand. Flags after the final delimiter are not supported.
func CompileENUMRegex(expr string) (*regexp.Regexp, string, error) {
	re, repl, msg := compileENUM(expr)
	if msg != "" {
		return nil, "", fmt.Errorf("ENUM regex %q %s", expr, msg)
	}
	return re, repl, nil
}

// compileENUM returns what is wrong with expr as a phrase that reads after
// the expression's name.
func compileENUM(expr string) (*regexp.Regexp, string, string) {
	if expr == "" {
		return nil, "", "is empty"
	}
	// RFC 3402 allows any character but a digit, "i" or "\\" as the
	// delimiter; letters would be unreadable, so only punctuation is taken.
	d := expr[0]
	if d <= ' ' || d >= 0x7f || d == '\\' || isAlnum(d) {
		return nil, "", "must have the form !pattern!replacement!"
	}
	form := fmt.Sprintf("must have the form %[1]cpattern%[1]creplacement%[1]c", d)
	parts := strings.Split(expr[1:], string(d))
	switch {
	case len(parts) != 3:
		return nil, "", form
	case parts[2] != "":
		return nil, "", "has flags after the last delimiter, which are not supported"
	case parts[0] == "" || parts[1] == "":
		return nil, "", form + " with neither part empty"
	}
	re, err := regexp.CompilePOSIX(parts[0])
	if err != nil {
		var se *syntax.Error
		if errors.As(err, &se) {
			return nil, "", fmt.Sprintf("has an invalid pattern: %s: %s", se.Code, se.Expr)
		}
		return nil, "", "has an invalid pattern: " + err.Error()
	}
	var repl strings.Builder
	in := parts[1]
	for i := 0; i < len(in); i++ {
		switch c := in[i]; {
		case c == '$':
			repl.WriteString("$$")
		case c != '\\':
			repl.WriteByte(c)
		case i+1 == len(in):
			return nil, "", "ends its replacement with a lone backslash"
		default:
			i++
			n := in[i]
			if n < '1' || n > '9' {
				// An escaped character stands for itself.
				if n == '$' {
					repl.WriteByte('$')
				}
				repl.WriteByte(n)
				continue
			}
			if g := int(n - '0'); g > re.NumSubexp() {
				return nil, "", fmt.Sprintf("refers to group \\%d but its pattern has only %d", g, re.NumSubexp())
			}
			fmt.Fprintf(&repl, "${%c}", n)
		}
	}
	return re, repl.String(), ""
}
