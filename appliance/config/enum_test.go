package config

import (
	"strings"
	"testing"
)

func TestCompileENUMRegex(t *testing.T) {
	tests := []struct {
		expr, number, want, err string
	}{
		{expr: `!(^.*$)!sip:\1@10.147.226.2!`, number: "2125550270", want: "sip:2125550270@10.147.226.2"},
		{expr: `!(^.*$)!sip:+1\1@ngv.example.com!`, number: "2125550271", want: "sip:+12125550271@ngv.example.com"},
		{expr: `!^\+1(.*$)!sip:\1@ngv.example.com!`, number: "+16505550100", want: "sip:6505550100@ngv.example.com"},
		{expr: `/^(.*)$/sip:\1;npdi@example.com/`, number: "123", want: "sip:123;npdi@example.com"},
		{expr: `!^(1)(2)(3)$!\3\2\1$x\\!`, number: "123", want: `321$x\`},
		{expr: `!(1)!a\0!`, number: "1", want: "a0"},
		{expr: "", err: `ENUM regex "" is empty`},
		{expr: "abc", err: `ENUM regex "abc" must have the form !pattern!replacement!`},
		{expr: "!a!b", err: `ENUM regex "!a!b" must have the form !pattern!replacement!`},
		{expr: `!a!\`, err: `ENUM regex "!a!\\" must have the form !pattern!replacement!`},
		{expr: `!a!\!`, err: `ENUM regex "!a!\\!" ends its replacement with a lone backslash`},
		{expr: `!(a!b\2!`, err: `ENUM regex "!(a!b\\2!" has an invalid pattern: missing closing ): (a`},
	}
	for _, tt := range tests {
		re, repl, err := CompileENUMRegex(tt.expr)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("CompileENUMRegex(%q): %v, want %s", tt.expr, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("CompileENUMRegex(%q): %v", tt.expr, err)
			continue
		}
		if got := re.ReplaceAllString(tt.number, repl); got != tt.want {
			t.Errorf("%q on %s = %q, want %q", tt.expr, tt.number, got, tt.want)
		}
	}
}

// TestENUMLeftmostLongest: Clearwater compiled ENUM patterns as POSIX
// extended expressions, where the longest alternative wins.
func TestENUMLeftmostLongest(t *testing.T) {
	re, repl, err := CompileENUMRegex(`!(1|12)!<\1>!`)
	if err != nil {
		t.Fatal(err)
	}
	if got := re.ReplaceAllString("123", repl); !strings.HasPrefix(got, "<12>") {
		t.Errorf("got %q, want the longest match", got)
	}
}
