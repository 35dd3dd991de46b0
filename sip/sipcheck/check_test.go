package sipcheck

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

var update = flag.Bool("update", false, "rewrite golden files")

// base is a valid INVITE; cases edit it line by line.
const base = "INVITE sip:bob@example.com SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKcheck1\r\n" +
	"Max-Forwards: 70\r\n" +
	"To: <sip:bob@example.com>\r\n" +
	"From: \"Alice\" <sip:alice@example.com>;tag=a1\r\n" +
	"Call-ID: check.1@192.0.2.1\r\n" +
	"CSeq: 1 INVITE\r\n" +
	"Content-Type: application/sdp\r\n" +
	"Content-Length: 4\r\n" +
	"\r\n" +
	"v=0\n"

// edit replaces (or with "" deletes) the header line starting with prefix, or
// appends add before the blank line.
func edit(replace map[string]string, add ...string) []byte {
	head, body, _ := strings.Cut(base, "\r\n\r\n")
	var out []string
	for _, l := range strings.Split(head, "\r\n") {
		replaced := false
		for prefix, with := range replace {
			if strings.HasPrefix(l, prefix) {
				if with != "" {
					out = append(out, with)
				}
				replaced = true
			}
		}
		if !replaced {
			out = append(out, l)
		}
	}
	out = append(out, add...)
	return []byte(strings.Join(out, "\r\n") + "\r\n\r\n" + body)
}

func TestCheckRequest(t *testing.T) {
	tests := []struct {
		name   string
		data   []byte
		policy Policy
		code   int    // 0: accepted
		reason string // substring of the reason
		unsup  []string
	}{
		{name: "valid", data: edit(nil)},
		{name: "sips URI", data: edit(map[string]string{"INVITE ": "INVITE sips:bob@example.com SIP/2.0"})},
		{name: "tel URI", data: edit(map[string]string{"INVITE ": "INVITE tel:+15551234567 SIP/2.0"})},
		{name: "mailto URI", data: edit(map[string]string{"INVITE ": "INVITE mailto:bob@example.com SIP/2.0"}), code: 416},
		{name: "missing Via", data: edit(map[string]string{"Via:": ""}), code: 400, reason: "missing Via"},
		{name: "missing To", data: edit(map[string]string{"To:": ""}), code: 400, reason: "missing To"},
		{name: "missing From", data: edit(map[string]string{"From:": ""}), code: 400, reason: "missing From"},
		{name: "missing Call-ID", data: edit(map[string]string{"Call-ID:": ""}), code: 400, reason: "missing Call-ID"},
		{name: "missing CSeq", data: edit(map[string]string{"CSeq:": ""}), code: 400, reason: "missing CSeq"},
		{name: "missing Max-Forwards passes", data: edit(map[string]string{"Max-Forwards:": ""})},
		{name: "Max-Forwards 255", data: edit(map[string]string{"Max-Forwards:": "Max-Forwards: 255"})},
		{name: "Max-Forwards 256", data: edit(map[string]string{"Max-Forwards:": "Max-Forwards: 256"}), code: 400, reason: "Max-Forwards"},
		{name: "two Call-IDs", data: edit(nil, "i: other@192.0.2.1"), code: 400, reason: "2 Call-ID headers"},
		{name: "CSeq method lower case", data: edit(map[string]string{"CSeq:": "CSeq: 1 invite"}), code: 400, reason: "CSeq method"},
		{name: "lower-case method kept", data: edit(map[string]string{"INVITE ": "invite sip:bob@example.com SIP/2.0", "CSeq:": "CSeq: 1 invite"})},
		{name: "Via version 3.0", data: edit(map[string]string{"Via:": "Via: SIP/3.0/UDP 192.0.2.1"}), code: 400, reason: "Via"},
		{name: "body without Content-Type", data: edit(map[string]string{"Content-Type:": ""}), code: 400, reason: "Content-Type"},
		{name: "malformed Content-Type", data: edit(map[string]string{"Content-Type:": "Content-Type: sdp"}), code: 400, reason: "Content-Type"},
		{name: "good Date", data: edit(nil, "Date: Sat, 13 Nov 2010 23:29:00 GMT")},
		{name: "Proxy-Require unsupported", data: edit(nil, "Proxy-Require: sec-agree, foo"), code: 420, unsup: []string{"sec-agree", "foo"}},
		{name: "Proxy-Require supported", data: edit(nil, "Proxy-Require: sec-agree"), policy: Policy{Supported: []string{"Sec-Agree"}}},
		{name: "Require ignored by a proxy", data: edit(nil, "Require: 100rel")},
		{name: "Require checked by a UAS", data: edit(nil, "Require: 100rel, timer"), policy: Policy{UAS: true, Supported: []string{"timer"}}, code: 420, unsup: []string{"100rel"}},
		{name: "UAS media type accepted", data: edit(nil), policy: Policy{UAS: true, Accept: []string{"application/sdp"}}},
		{name: "UAS media type refused", data: edit(nil), policy: Policy{UAS: true, Accept: []string{"application/xml"}}, code: 415},
		{name: "UAS content coding refused", data: edit(nil, "Content-Encoding: gzip"), policy: Policy{UAS: true}, code: 415},
		{name: "UAS content coding accepted", data: edit(nil, "e: gzip"), policy: Policy{UAS: true, Encodings: []string{"gzip"}}},
		{name: "Contact list", data: edit(nil, `Contact: "A, B" <sip:a@192.0.2.1>;q=0.5, <sip:b@192.0.2.2>`)},
		{name: "Contact star", data: edit(nil, "Contact: *")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg, err := Parse(tc.data)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			e := tc.policy.CheckRequest(msg.(*sip.Request))
			switch {
			case tc.code == 0 && e != nil:
				t.Fatalf("rejected: %v", e)
			case tc.code == 0:
				return
			case e == nil:
				t.Fatalf("accepted, want %d", tc.code)
			}
			if e.Code != tc.code || !strings.Contains(e.Reason, tc.reason) {
				t.Errorf("got %d %q, want %d containing %q", e.Code, e.Reason, tc.code, tc.reason)
			}
			if strings.Join(e.Unsupported, ",") != strings.Join(tc.unsup, ",") {
				t.Errorf("Unsupported = %v, want %v", e.Unsupported, tc.unsup)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name   string
		data   []byte
		reason string
	}{
		{"empty", nil, "end of header section"},
		{"no blank line", []byte("OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n"), "end of header section"},
		{"garbage", []byte("\x00\xff\r\n\r\n"), "start line"},
		{"bare LF in header", edit(map[string]string{"To:": "To: <sip:bob@example.com>\nX: y"}), "bare CR or LF"},
		{"unquoted comma in From", edit(map[string]string{"From:": "From: Smith, Al <sip:al@example.com>;tag=1"}), "From header"},
		{"text after >", edit(map[string]string{"To:": "To: <sip:bob@example.com> junk"}), "To header"},
		{"quoted name without <>", edit(map[string]string{"To:": `To: "Bob" sip:bob@example.com`}), "To header"},
		{"scheme-less address", edit(map[string]string{"To:": "To: bob@example.com"}), "To header"},
		{"Via without transport", edit(map[string]string{"Via:": "Via: SIP/2.0/ 192.0.2.1"}), "Via"},
		{"non-numeric Max-Forwards", edit(map[string]string{"Max-Forwards:": "Max-Forwards: ten"}), "Max-Forwards"},
		{"short body", edit(map[string]string{"Content-Length:": "Content-Length: 40"}), "Content-Length"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.data)
			e, ok := err.(*Error)
			if !ok {
				t.Fatalf("Parse error %v (%T), want *Error", err, err)
			}
			if e.Code != 400 || !strings.Contains(e.Reason, tc.reason) {
				t.Errorf("got %d %q, want 400 naming %q", e.Code, e.Reason, tc.reason)
			}
		})
	}
}

func TestCheckResponse(t *testing.T) {
	ok := "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKr\r\nTo: <sip:b@example.com>;tag=b\r\n" +
		"From: <sip:a@example.com>;tag=a\r\nCall-ID: r1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
	tests := []struct {
		name string
		data string
		want string // substring of the error; "" for accepted
	}{
		{"valid", ok, ""},
		{"status 700", strings.Replace(ok, "200 OK", "700 Odd", 1), "out of range"},
		{"status 99", strings.Replace(ok, "200 OK", "099 Odd", 1), "out of range"},
		{"version", strings.Replace(ok, "SIP/2.0 200", "SIP/3.0 200", 1), "version"},
		{"no Via", strings.Replace(ok, "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKr\r\n", "", 1), "missing Via"},
		{"two CSeqs", strings.Replace(ok, "Content-Length: 0", "CSeq: 2 INVITE\r\nContent-Length: 0", 1), "2 CSeq"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg, err := Parse([]byte(tc.data))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			err = CheckResponse(msg.(*sip.Response))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("dropped: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	if CheckResponse(nil) == nil || CheckRequest(nil) == nil {
		t.Error("nil message accepted")
	}
}

// TestErrorResponse checks the wire form of error responses against golden
// files.
func TestErrorResponse(t *testing.T) {
	tests := []struct {
		golden string
		data   []byte
		policy Policy
	}{
		{"420.sip", edit(nil, "Proxy-Require: sec-agree, foo"), Policy{}},
		{"415.sip", edit(nil, "Content-Encoding: br"), Policy{UAS: true, Encodings: []string{"gzip"}}},
		{"400.sip", edit(map[string]string{"CSeq:": "CSeq: 1 BYE"}), Policy{}},
	}
	for _, tc := range tests {
		t.Run(tc.golden, func(t *testing.T) {
			msg, err := Parse(tc.data)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			req := msg.(*sip.Request)
			e := tc.policy.CheckRequest(req)
			if e == nil {
				t.Fatal("accepted")
			}
			res, err := e.Response(req, "uas-tag-1")
			if err != nil {
				t.Fatalf("Response: %v", err)
			}
			got := []byte(res.String())
			path := filepath.Join("testdata", "golden", tc.golden)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("response differs from %s:\n%q\nwant\n%q", path, got, want)
			}
		})
	}
	if _, err := (&Error{Code: 400}).Response(&sip.Request{}, ""); err != ErrUnanswerable {
		t.Errorf("Response to a headerless request: %v, want ErrUnanswerable", err)
	}
}
