package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func render(s Settings) string {
	var b strings.Builder
	for _, set := range s {
		fmt.Fprintf(&b, "%s:%d %s=%q\n", filepath.Base(set.File), set.Line, set.Name, set.Value)
	}
	return b.String()
}

// TestParseGolden parses each testdata/settings/<file>/*.conf as if it were
// /etc/clearwater/<file>.
func TestParseGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/settings/*/*.conf")
	if err != nil || len(inputs) == 0 {
		t.Fatal("no inputs", err)
	}
	for _, in := range inputs {
		t.Run(in, func(t *testing.T) {
			f, err := os.Open(in)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			s, err := Parse("/etc/clearwater/"+filepath.Base(filepath.Dir(in)), f)
			checkResult(t, in, render(s), err)
		})
	}
}

func TestParseLines(t *testing.T) {
	tests := []struct {
		line, value, err string
	}{
		{line: "", value: ""},
		{line: "   # comment", value: ""},
		{line: "home_domain=example.com", value: "example.com"},
		{line: "export home_domain=example.com", value: "example.com"},
		{line: "home_domain='example.com'  # c", value: "example.com"},
		{line: `signup_key="a b"'c d'e`, value: "a bc de"},
		{line: `signup_key=a\ b`, value: "a b"},
		{line: `signup_key="\a"`, value: `\a`},
		{line: "signup_key=a#b", value: "a#b"},
		{line: "signup_key=", value: ""},
		{line: "home_domain=example.com\r", value: "example.com"},
		{line: "exported=1", err: `f:1: option "exported": unknown option`},
		{line: "export", err: "f:1: malformed line: expected name=value"},
		{line: "signup_key a", err: "f:1: malformed line: expected name=value"},
		{line: "signup_key =a", err: `f:1: option "signup_key": malformed line: no spaces are allowed before "="`},
		{line: "signup_key=a|b", err: `f:1: option "signup_key": unquoted "|" in value (quote the value)`},
		{line: "signup_key=a&", err: `f:1: option "signup_key": unquoted "&" in value (quote the value)`},
		{line: `signup_key="$(id)"`, err: `f:1: option "signup_key": shell expansion ($) is not supported`},
	}
	for _, tt := range tests {
		s, err := Parse("f", strings.NewReader(tt.line))
		switch {
		case tt.err != "":
			if err == nil || err.Error() != tt.err {
				t.Errorf("Parse(%q): error %v, want %s", tt.line, err, tt.err)
			}
		case err != nil:
			t.Errorf("Parse(%q): %v", tt.line, err)
		case tt.value == "" && len(s) > 0 && s[0].Value != "":
			t.Errorf("Parse(%q) = %v, want no value", tt.line, s)
		case tt.value != "" && (len(s) != 1 || s[0].Value != tt.value):
			t.Errorf("Parse(%q) = %v, want value %q", tt.line, s, tt.value)
		}
	}
}

func TestParseSecretNotEchoed(t *testing.T) {
	_, err := Parse("local_config", strings.NewReader("site_key=not-hex-but-secret\n"))
	if err == nil || strings.Contains(err.Error(), "not-hex-but-secret") {
		t.Fatalf("error %v must not show the secret", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Option != "site_key" || e.Line != 1 || e.File != "local_config" {
		t.Fatalf("error %#v", e)
	}
}

func TestSettingsGetLastWins(t *testing.T) {
	s, err := Parse("user_settings", strings.NewReader("log_level=3\nlog_level=4\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get("log_level"); got.Value != "4" || got.Line != 2 {
		t.Fatalf("Get = %+v", got)
	}
	if _, ok := s.Get("log_directory"); ok {
		t.Fatal("Get found an option that is not set")
	}
}

func TestParseShared(t *testing.T) {
	err := ParseShared([]byte("home_domain=example.com\nlocal_ip=10.0.0.1\n"))
	want := `shared_config:2: option "local_ip": may only be set in local_config`
	if err == nil || err.Error() != want {
		t.Fatalf("ParseShared: %v, want %s", err, want)
	}
	if err := ParseShared([]byte("home_domain=example.com\n")); err != nil {
		t.Fatal(err)
	}
}

func TestParseMessagesForTypes(t *testing.T) {
	tests := []struct{ line, err string }{
		{"site_key=00112233445566778899aabbccddeeff0", `f:1: option "site_key": value has an odd number of hex digits`},
		{"sprout_target_latency_us=10ms", `f:1: option "sprout_target_latency_us": "10ms" is not a whole number of microseconds`},
		{"reg_max_expires=5m", `f:1: option "reg_max_expires": "5m" is not a whole number of seconds`},
		{"trusted_peers=10.0.0.1,peer", `f:1: option "trusted_peers": "peer" is not an IP address`},
		{"alias_list=a.example.com,-b", `f:1: option "alias_list": "-b" is not a hostname or IP address`},
		{"remote_site_names=a,b c", `f:1: option "remote_site_names": unquoted space in value (quote the value)`},
		{"remote_site_names='a,b c'", `f:1: option "remote_site_names": "b c" is not a name (letters, digits, '.', '_' and '-')`},
		{"sprout_registration_store=a=x..y", `f:1: option "sprout_registration_store": "x..y" is not a host or host:port`},
		{"sprout_registration_store=-a=x", `f:1: option "sprout_registration_store": site name "-a" is not a name`},
		{"node_idx=99999999999999999999", `f:1: option "node_idx": "99999999999999999999" is out of range`},
		{"ralf_max_token_rate=x", `f:1: option "ralf_max_token_rate": "x" is not a number`},
	}
	for _, tt := range tests {
		_, err := Parse("f", strings.NewReader(tt.line))
		if err == nil || err.Error() != tt.err {
			t.Errorf("Parse(%q): %v\n want %s", tt.line, err, tt.err)
		}
	}
}
