package kamailio

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCheckConfig(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"defaults", Options{Users: map[string]string{"alice": "secret"}}},
		{"escaped password", Options{Domain: "ims.test", Users: map[string]string{"bob": `p:w\x`}, Children: 4, NotRegisteredCode: 404}},
		{"no users", Options{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Dir = t.TempDir()
			if err := Check(context.Background(), tc.opts); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no dir", Options{}, "Dir is required"},
		{"bad code", Options{Dir: t.TempDir(), NotRegisteredCode: 200}, "not a final error status"},
		{"newline in password", Options{Dir: t.TempDir(), Users: map[string]string{"a": "x\ny"}}, "control characters"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := WriteConfig(&tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("WriteConfig: %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func TestUsersTable(t *testing.T) {
	dir := t.TempDir()
	if err := writeUsers(filepath.Join(dir, "users"), map[string]string{"bob": `p:w\x`, "alice": "secret"}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "users"))
	if err != nil {
		t.Fatal(err)
	}
	want := "id(int,auto) key_name(string) key_type(int) value_type(int) key_value(string) expires(int)\n" +
		"1:alice:0:0:secret:0\n2:bob:0:0:p\\:w\\\\x:0\n"
	if string(got) != want {
		t.Fatalf("users table:\n%s\nwant:\n%s", got, want)
	}
}

// TestStartAnswers starts Kamailio and checks both sockets and the
// challenge a REGISTER without credentials gets.
func TestStartAnswers(t *testing.T) {
	s := StartTest(t, Options{Users: map[string]string{"alice": "secret"}})
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			c, err := net.DialTimeout(network, s.HostPort(), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			la := c.LocalAddr().(interface{ String() string }).String()
			req := fmt.Sprintf("REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/%s %s;branch=z9hG4bK-t%s\r\n"+
				"From: <sip:alice@example.com>;tag=1\r\nTo: <sip:alice@example.com>\r\nCall-ID: t-%s\r\nCSeq: 1 REGISTER\r\n"+
				"Contact: <sip:alice@%s>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
				strings.ToUpper(network), la, network, network, la)
			if _, err := c.Write([]byte(req)); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 4096)
			n, err := c.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			resp := buf[:n]
			if !bytes.HasPrefix(resp, []byte("SIP/2.0 401 ")) || !bytes.Contains(resp, []byte(`WWW-Authenticate: Digest realm="example.com"`)) {
				t.Fatalf("response:\n%s", resp)
			}
		})
	}
	s.Close()
	if _, err := net.DialTimeout("tcp", s.HostPort(), time.Second); err == nil {
		t.Fatal("still listening after Close")
	}
}
