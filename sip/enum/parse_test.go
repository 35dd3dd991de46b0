package enum

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"stillwater/sip/resolve"
)

func TestSubst(t *testing.T) {
	for _, tc := range []struct {
		expr, in, want string
		match          bool
		wantErr        string
	}{
		{expr: `!(^.*$)!sip:\1@example.com!`, in: "+1650", want: "sip:+1650@example.com", match: true},
		{expr: `!^\+1(.*$)!sip:\1@ngv.example.com!`, in: "+16505551234", want: "sip:6505551234@ngv.example.com", match: true},
		{expr: `!^\+1(.*$)!sip:\1@ngv.example.com!`, in: "+44", match: false},
		{expr: `/^\+(\d)(\d+)$/sip:\2-\1@x/`, in: "+1234", want: "sip:234-1@x", match: true},
		{expr: `!^\+(1)?(44)?(.*)$!sip:\2\3@x!`, in: "+16", want: "sip:6@x", match: true}, // unmatched group is empty
		{expr: `!1!one!`, in: "+2134", want: "+2one34", match: true},                      // sed-like: rest kept
		{expr: `!^(.*)$!sip:\1\!x@y!`, in: "5", want: "sip:5!x@y", match: true},
		{expr: `!^a\!(.*)$!\1!`, in: "a!b", want: "b", match: true},
		{expr: `|^(.*)$|sip:\1\|x\\y@z|`, in: "5", want: `sip:5|x\y@z`, match: true},
		{expr: `!^ABC(.*)$!\1!i`, in: "abc7", want: "7", match: true},
		{expr: ``, wantErr: "empty"},
		{expr: `!^.*$!sip:x@y`, wantErr: "want !pattern!replacement!"},
		{expr: `1^.*1x1`, wantErr: "cannot be the delimiter"},
		{expr: `i^.*ixi`, wantErr: "cannot be the delimiter"},
		{expr: `\^.*\x\`, wantErr: "cannot be the delimiter"},
		{expr: `!^.*$!x!g`, wantErr: "unsupported flags"},
		{expr: `!!x!`, wantErr: "empty pattern"},
		{expr: `!^(.*$!x!`, wantErr: "missing closing )"},
		{expr: `!^(.*)$!\2!`, wantErr: "pattern has 1 group"},
		{expr: `!^(.*)$!\0!`, wantErr: `\0`},
		{expr: `!^(.*)$!x\`, wantErr: "want !pattern!replacement!"},
		{expr: "!^(.*)$!sip:\u00e9@x!", wantErr: "only ASCII"},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			s, err := parseSubst(tc.expr)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseSubst(%q) error %v; want %q", tc.expr, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseSubst(%q): %v", tc.expr, err)
			}
			got, ok := s.apply(tc.in)
			if ok != tc.match || got != tc.want {
				t.Fatalf("apply(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.match)
			}
		})
	}
}

func TestParseEnumJSON(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "enum.json"))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := ParseEnumJSON(data)
	if err != nil {
		t.Fatalf("ParseEnumJSON(testdata/enum.json): %v", err)
	}
	if len(blocks) != 9 || blocks[0].Name != "Demo system number 2125550270" || blocks[6].Prefix != "+1650555" ||
		blocks[6].Regex != `!^\+1(.*$)!sip:\1@ngv.example.com!` {
		t.Fatalf("ParseEnumJSON = %+v", blocks)
	}
	for _, tc := range []struct{ name, json, wantErr string }{
		{"not json", `{`, "enum.json: unexpected EOF"},
		{"trailing", `{"number_blocks":[]} x`, "trailing data"},
		{"no blocks", `{"blocks":[]}`, `missing "number_blocks"`},
		{"blocks not array", `{"number_blocks":{}}`, "cannot unmarshal"},
		{"missing prefix", `{"number_blocks":[{"name":"a","regex":"!x!y!"}]}`, `number_blocks[0] ("a"): missing "prefix"`},
		{"missing regex", `{"number_blocks":[{"prefix":"1"}]}`, `number_blocks[0]: missing "regex"`},
		{"bad prefix", `{"number_blocks":[{"name":"b","prefix":"12a","regex":"!x!y!"}]}`, `("b"): "prefix" "12a" is not digits`},
		{"bad regex", `{"number_blocks":[{"prefix":"1","regex":"!x!y!"},{"name":"c","prefix":"2","regex":"!(x!y!"}]}`, `number_blocks[1] ("c"): "regex"`},
		{"duplicate prefix", `{"number_blocks":[{"name":"d","prefix":"1-2","regex":"!x!y!"},{"name":"e","prefix":"12","regex":"!x!y!"}]}`, `number_blocks[1] ("e"): "prefix" "12" repeats enum.json: number_blocks[0] ("d")`},
		{"prefix not string", `{"number_blocks":[{"prefix":1,"regex":"!x!y!"}]}`, "cannot unmarshal number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseEnumJSON([]byte(tc.json))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("ParseEnumJSON(%s) error %v; want %q", tc.json, err, tc.wantErr)
			}
		})
	}
}

func TestNumberFromURI(t *testing.T) {
	for _, tc := range []struct {
		uri       string
		userPhone bool
		want      string
		ok        bool
	}{
		{"tel:+1-650-555-1234", false, "+16505551234", true},
		{"tel:+16505551234;npdi;rn=+1650555", false, "+16505551234;rn=+1650555;npdi", true},
		{"tel:6505551234;phone-context=example.com", false, "6505551234", true},
		{"sip:+16505551234@example.com", false, "+16505551234", true},
		{"sip:+16505551234@example.com", true, "", false},
		{"sip:+16505551234;npdi@example.com;user=phone", true, "+16505551234;npdi", true},
		{"sip:6505551234@example.com;User=Phone", true, "6505551234", true},
		{"sip:alice@example.com", false, "", false},
		{"sip:example.com", false, "", false},
		{"mailto:a@example.com", false, "", false},
		{"tel:abc", false, "", false},
	} {
		t.Run(tc.uri, func(t *testing.T) {
			var u sip.Uri
			if err := sip.ParseUri(tc.uri, &u); err != nil {
				t.Fatal(err)
			}
			got, ok := NumberFromURI(&u, tc.userPhone)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("NumberFromURI(%s, %v) = %q, %v; want %q, %v", tc.uri, tc.userPhone, got, ok, tc.want, tc.ok)
			}
		})
	}
	if _, ok := NumberFromURI(nil, false); ok {
		t.Fatal("NumberFromURI(nil) reported a number")
	}
}

func TestDomain(t *testing.T) {
	for _, tc := range []struct{ aus, suffix, want string }{
		{"12012031234", DefaultSuffix, "4.3.2.1.3.0.2.1.0.2.1.e164.arpa"},
		{"+4412", "e164.arpa.ngv.example.com", "2.1.4.4.e164.arpa.ngv.example.com"},
	} {
		if got := domain(tc.aus, tc.suffix); got != tc.want {
			t.Errorf("domain(%q, %q) = %q; want %q", tc.aus, tc.suffix, got, tc.want)
		}
	}
}

func TestParseServers(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []string
		wantErr string
	}{
		{"1.2.3.4,10.0.0.1, 192.168.1.1", []string{"1.2.3.4:53", "10.0.0.1:53", "192.168.1.1:53"}, ""},
		{"127.0.0.1:5353,::1,[::2]:54", []string{"127.0.0.1:5353", "[::1]:53", "[::2]:54"}, ""},
		{"", nil, ""},
		{"1.1.1.1,2.2.2.2,3.3.3.3,4.4.4.4", nil, "at most 3"},
		{"enum.example.com", nil, "not an IP address"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseServers(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseServers(%q) error %v; want %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, a := range got {
				s = append(s, a.String())
			}
			if !slices.Equal(s, tc.want) {
				t.Fatalf("ParseServers(%q) = %v; want %v", tc.in, s, tc.want)
			}
		})
	}
	if _, err := NewServers(make([]netip.AddrPort, 4), resolve.Options{}, 0); err == nil {
		t.Fatal("NewServers accepted four servers")
	}
	if _, err := NewServers([]netip.AddrPort{{}}, resolve.Options{}, 0); err == nil {
		t.Fatal("NewServers accepted an invalid address")
	}
}
