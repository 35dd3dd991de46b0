package mmtel

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/emiago/sipgo/sip"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestInternational(t *testing.T) {
	m := New(Options{})
	uk := New(Options{NationalPrefix: "+44", InternationalPrefixes: []string{"00"}})
	cases := []struct {
		name string
		m    *MMTEL
		uri  string
		want bool
	}{
		{"national E.164", m, "tel:+16505550011", false},
		{"foreign E.164", m, "tel:+447700900123", true},
		{"foreign E.164 in a SIP URI", m, "sip:+447700900123@example.com", true},
		{"international access code", m, "sip:011447700900123@example.com", true},
		{"other access code", m, "sip:00447700900123@example.com", true},
		{"access code then the home country", m, "sip:01116505550011@example.com", false},
		{"national number", m, "sip:6505550011@example.com", false},
		{"visual separators", m, "tel:+44-7700-900123", true},
		{"name", m, "sip:alice@example.com", false},
		{"no user", m, "sip:example.com", false},
		{"UK home", uk, "tel:+447700900123", false},
		{"UK abroad", uk, "tel:+16505550011", true},
		{"UK access code", uk, "sip:0016505550011@example.com", true},
		{"UK access code not configured", uk, "sip:0116505550011@example.com", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var u sip.Uri
			if err := sip.ParseUri(tc.uri, &u); err != nil {
				t.Fatal(err)
			}
			if got := tc.m.international(&u); got != tc.want {
				t.Errorf("international(%s) = %v, want %v", tc.uri, got, tc.want)
			}
		})
	}
}

func parseReq(t *testing.T, text string) *sip.Request {
	t.Helper()
	m, err := sip.ParseMessage([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return m.(*sip.Request)
}

func TestDiversionCount(t *testing.T) {
	base := "INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2;branch=z9hG4bK1\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n"
	cases := []struct {
		name string
		hdrs string
		want int
	}{
		{"none", "", 0},
		{"original entry only", "History-Info: <sip:b@example.com>;index=1\r\n", 0},
		{"retargeted with mp", "History-Info: <sip:x@example.com>;index=1, <sip:b@example.com>;index=1.1;mp=1\r\n", 1},
		{"entries without mp", "History-Info: <sip:x@example.com>;index=1\r\nHistory-Info: <sip:y@example.com>;index=1.1\r\nHistory-Info: <sip:b@example.com>;index=1.1.1\r\n", 2},
		{"Diversion counters add up", "Diversion: <sip:y@example.com>;reason=user-busy;counter=1, <sip:x@example.com>;reason=no-answer;counter=3\r\n", 4},
		{"the larger count wins", "History-Info: <sip:x@example.com>;index=1, <sip:b@example.com>;index=1.1;mp=1\r\nDiversion: <sip:x@example.com>;reason=unconditional\r\nDiversion: <sip:w@example.com>;reason=unconditional\r\n", 2},
		{"nonsense counter counts once", "Diversion: <sip:x@example.com>;counter=lots\r\n", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := parseReq(t, base+tc.hdrs+"Content-Length: 0\r\n\r\n")
			if got := diversionCount(req); got != tc.want {
				t.Errorf("diversionCount = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestDivertedRequest checks the wire form of a request diverted on busy
// by a callee it had already been forwarded to, with the caller's header
// privacy applied.
func TestDivertedRequest(t *testing.T) {
	in, err := os.ReadFile(filepath.Join("testdata", "busy.sip"))
	if err != nil {
		t.Fatal(err)
	}
	req := parseReq(t, string(in))
	edit, anon, ok := privacyEdit(req, false)
	if !ok || !anon {
		t.Fatalf("privacyEdit: ok %v anonymised From %v", ok, anon)
	}
	var target sip.Uri
	if err := sip.ParseUri("sip:6505550021@example.com", &target); err != nil {
		t.Fatal(err)
	}
	edit(req)
	addHistoryInfo(req, req.Recipient.String(), target, 486)
	addDiversion(req, "sip:6505550011@example.com", "user-busy")
	req.Recipient = target
	got := []byte(req.String())
	golden := filepath.Join("testdata", "busy.golden.sip")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("diverted request:\n%s\nwant:\n%s", got, want)
	}
}

func TestPrivacy(t *testing.T) {
	base := "INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2;branch=z9hG4bK1\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n"
	cases := []struct {
		name   string
		hdr    string
		oir    *OIR
		wantOr string // Privacy after originating OIR
	}{
		{"restricted, none asked", "", &OIR{Restricted: true}, "id;header;user"},
		{"restricted, none overrides", "Privacy: none\r\n", &OIR{Restricted: true}, "none"},
		{"restricted, id kept and completed", "Privacy: id\r\n", &OIR{Restricted: true}, "id;header;user"},
		{"not restricted, nothing asked", "", &OIR{}, ""},
		{"not restricted, id asked", "privacy: id\r\n", &OIR{}, "id;user"},
		{"comma separated and unknown values", "Privacy: header, bogus\r\n", &OIR{}, "header;user"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := parseReq(t, base+tc.hdr+"Content-Length: 0\r\n\r\n")
			applyOIR(req, tc.oir)
			if got := parsePrivacy(req).String(); got != tc.wantOr {
				t.Errorf("Privacy after OIR %q, want %q", got, tc.wantOr)
			}
			if n := len(req.GetHeaders("Privacy")); tc.wantOr != "" && n != 1 {
				t.Errorf("%d Privacy headers, want 1", n)
			}
		})
	}
}
