package baresip

import (
	"bufio"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	if got != string(want) {
		t.Errorf("%s mismatch\n--- got\n%s--- want\n%s", name, got, want)
	}
}

func TestRenderFiles(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"p2p_udp", Options{User: "alice", SIPPort: 5062}},
		{"registered_tcp", Options{
			User: "6505550001", AuthUser: "6505550001@example.com", Password: "secret",
			Domain: "example.com", Outbound: "sip:127.0.0.1:5060;transport=tcp;lr",
			RegInterval: 300, LocalIP: "127.0.0.2", SIPPort: 5070, Transport: "tcp", AutoAnswer: true,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opts
			if err := o.validate(); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name+".config", renderConfig(&o, "127.0.0.1:4444"))
			golden(t, tc.name+".accounts", renderAccount(&o))
		})
	}
}

func TestValidateRejects(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no user", Options{}, "User is required"},
		{"bad transport", Options{User: "a", Transport: "sctp"}, `Transport "sctp"`},
		{"ipv6", Options{User: "a", LocalIP: "::1"}, "not an IPv4 address"},
		{"not an ip", Options{User: "a", LocalIP: "localhost"}, "not an IPv4 address"},
		{"port", Options{User: "a", SIPPort: 70000}, "out of range"},
		{"password with semicolon", Options{User: "a", Password: "x;y"}, "Options.Password"},
		{"user with space", Options{User: "a b"}, "Options.User"},
		{"outbound quote", Options{User: "a", Outbound: `sip:"x"`}, "Options.Outbound"},
		{"outbound scheme", Options{User: "a", Outbound: "http://x"}, "want a sip: URI"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.opts.validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("validate() = %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func TestNetstring(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr string
	}{
		{"two frames", `3:abc,0:,`, []string{"abc", ""}, ""},
		{"empty stream", ``, nil, ""},
		{"bad length byte", `3x:abc,`, nil, "unexpected byte"},
		{"no digits", `:abc,`, nil, "no digits"},
		{"missing comma", `3:abcd`, nil, "missing trailing"},
		{"truncated payload", `5:ab`, nil, "unexpected EOF"},
		{"truncated length", `12`, nil, "unexpected EOF"},
		{"huge", `99999999:`, nil, "exceeds"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := bufio.NewReader(strings.NewReader(tc.in))
			var got []string
			var err error
			for {
				var b []byte
				if b, err = readNetstring(r); err != nil {
					break
				}
				got = append(got, string(b))
			}
			if tc.wantErr == "" {
				if !errors.Is(err, io.EOF) {
					t.Fatalf("err = %v, want clean EOF", err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
				t.Fatalf("frames = %q, want %q", got, tc.want)
			}
		})
	}
	if got := string(encodeNetstring([]byte(`{"a":1}`))); got != `7:{"a":1},` {
		t.Fatalf("encodeNetstring = %q", got)
	}
}

func TestDecodeMessage(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    message
		wantErr string
	}{
		{
			name: "event",
			in:   `{"event":true,"type":"CALL_INCOMING","class":"call","accountaor":"sip:bob@127.0.0.1","direction":"incoming","peeruri":"sip:alice@127.0.0.1","id":"0b8a","param":"sip:alice@127.0.0.1"}`,
			want: message{Event: true, ev: Event{Type: "CALL_INCOMING", Class: "call", AccountAOR: "sip:bob@127.0.0.1",
				Direction: "incoming", PeerURI: "sip:alice@127.0.0.1", ID: "0b8a", Param: "sip:alice@127.0.0.1"}},
		},
		{
			name: "response",
			in:   `{"response":true,"ok":true,"data":"Quit\n","token":"4"}`,
			want: message{Response: true, OK: true, Data: "Quit\n", Token: "4"},
		},
		{name: "not json", in: `{"event":`, wantErr: "decode ctrl_tcp message"},
		{name: "neither", in: `{"x":1}`, wantErr: "neither event nor response"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeMessage([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestLineRing(t *testing.T) {
	r := newLineRing(3, slog.New(slog.DiscardHandler))
	for _, chunk := range []string{"one\ntw", "o\r\n\x1b[31mthree\x1b[;m\nfour\n", "part"} {
		if _, err := r.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	got := strings.Join(r.Lines(), "|")
	if want := "two|three|four|part"; got != want {
		t.Fatalf("Lines() = %q, want %q", got, want)
	}
}
