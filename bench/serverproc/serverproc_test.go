package serverproc

import (
	"net"
	"strconv"
	"strings"
	"testing"
)

func TestTailKeepsTheEnd(t *testing.T) {
	cases := []struct {
		name   string
		max    int
		writes []string
		want   string
	}{
		{name: "under the limit", max: 8, writes: []string{"abc", "de"}, want: "abcde"},
		{name: "at the limit", max: 5, writes: []string{"abc", "de"}, want: "abcde"},
		{name: "over the limit", max: 4, writes: []string{"abc", "def", "g"}, want: "defg"},
		{name: "one long write", max: 3, writes: []string{strings.Repeat("x", 10) + "end"}, want: "end"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tl := NewTail(tc.max)
			for _, w := range tc.writes {
				if n, err := tl.Write([]byte(w)); err != nil || n != len(w) {
					t.Fatalf("Write(%q) = %d, %v", w, n, err)
				}
			}
			if got := tl.String(); got != tc.want {
				t.Errorf("kept %q, want %q", got, tc.want)
			}
		})
	}
}

func TestFreePortServesUDPAndTCP(t *testing.T) {
	port, err := FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("TCP on the free port: %v", err)
	}
	defer l.Close()
	u, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("UDP on the free port: %v", err)
	}
	u.Close()
	if _, err := FreePort("192.0.2.1"); err == nil {
		t.Error("FreePort on an address not on this host: no error")
	}
}
