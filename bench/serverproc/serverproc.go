// Package serverproc has what the harnesses that run an external SIP
// server or tool (Kamailio, SIPp, a Stillwater node) share: a port free on
// both UDP and TCP for it to listen on, and the tail of its output for the
// error that says why it failed.
package serverproc

import (
	"fmt"
	"net"
	"strconv"
	"sync"
)

// FreePort returns a port free on ip for both UDP and TCP, so that a
// server can listen on the same port over both.
func FreePort(ip string) (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			return 0, fmt.Errorf("free port on %s: %w", ip, err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if udpFree(ip, port) {
			return port, nil
		}
	}
	return 0, fmt.Errorf("free port on %s: none free for both UDP and TCP", ip)
}

// StablePort returns the first port from lo up to hi free on ip for both
// UDP and TCP. Below the kernel's ephemeral range, no outgoing connection
// takes it, so a tool can use it again and again (a UE keeps its contact).
func StablePort(ip string, lo, hi int) (int, error) {
	for port := lo; port < hi; port++ {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
		if err != nil {
			continue
		}
		l.Close()
		if udpFree(ip, port) {
			return port, nil
		}
	}
	return 0, fmt.Errorf("no port free for both UDP and TCP on %s in %d-%d", ip, lo, hi-1)
}

func udpFree(ip string, port int) bool {
	u, err := net.ListenPacket("udp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	u.Close()
	return true
}

// Tail keeps the last bytes written to it.
type Tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

// NewTail keeps the last max bytes written to it.
func NewTail(max int) *Tail { return &Tail{max: max} }

func (t *Tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

// String is what is kept.
func (t *Tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
