package proxy

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/emiago/sipgo/sip"

	"stillwater/sip/siptest/endpoint"
)

var update = flag.Bool("update", false, "rewrite golden files")

// lockedRand is a deterministic source safe for concurrent use.
type lockedRand struct {
	mu sync.Mutex
	r  *mrand.ChaCha8
}

func newRand(seed byte) *lockedRand { return &lockedRand{r: mrand.NewChaCha8([32]byte{seed})} }

func (l *lockedRand) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(p)
}

// cancelFor builds the CANCEL of an INVITE the endpoint sent.
func cancelFor(t *testing.T, inv string) string {
	m := endpoint.ParseReq(t, inv)
	lines := []string{
		"CANCEL " + m.Recipient.String() + " SIP/2.0",
		"Via: " + m.Via().Value(),
		"From: " + m.From().Value(),
		"To: " + m.To().Value(),
		"Call-ID: " + m.CallID().Value(),
		fmt.Sprintf("CSeq: %d CANCEL", m.CSeq().SeqNo),
		"Max-Forwards: 70",
	}
	return strings.Join(lines, "\r\n") + "\r\nContent-Length: 0\r\n\r\n"
}

// invite is an INVITE from e to ruri sent through the core, with extra
// header lines.
func invite(e *endpoint.Endpoint, callID, ruri string, extra ...string) string {
	lines := []string{
		"INVITE " + ruri + " SIP/2.0",
		"Via: SIP/2.0/UDP " + e.Addr() + ";branch=z9hG4bK" + callID + ";rport",
		"Max-Forwards: 70",
		"From: <sip:alice@example.com>;tag=a" + callID,
		"To: <" + ruri + ">",
		"Call-ID: " + callID,
		"CSeq: 1 INVITE",
		"Contact: <" + e.URI("alice") + ">",
	}
	lines = append(lines, extra...)
	lines = append(lines, "Content-Type: application/sdp")
	return endpoint.ReqText(lines, endpoint.SDP)
}

// simple is a non-INVITE request from e.
func simple(e *endpoint.Endpoint, method, callID, ruri string, extra ...string) string {
	lines := []string{
		method + " " + ruri + " SIP/2.0",
		"Via: SIP/2.0/UDP " + e.Addr() + ";branch=z9hG4bK" + callID + ";rport",
		"Max-Forwards: 70",
		"From: <sip:alice@example.com>;tag=a" + callID,
		"To: <" + ruri + ">",
		"Call-ID: " + callID,
		"CSeq: 1 " + method,
	}
	return endpoint.ReqText(append(lines, extra...), "")
}

// rig is a running Core on 127.0.0.1 with a UDP and a TCP listener.
type rig struct {
	core *Core
	udp  int
	tcp  int
}

func (r *rig) udpAddr() string { return "127.0.0.1:" + strconv.Itoa(r.udp) }

// newRig starts a Core with the given services; cfg's Listeners are
// replaced by a UDP and a TCP listener serving svc.
func newRig(t *testing.T, cfg Config, svc string, services map[string]Service) *rig {
	t.Helper()
	lo := netip.MustParseAddr("127.0.0.1")
	cfg.Listeners = []Listener{
		{Network: "udp", Addr: netip.AddrPortFrom(lo, 0), Service: svc},
		{Network: "tcp", Addr: netip.AddrPortFrom(lo, 0), Service: svc},
	}
	if cfg.FlowKey == nil {
		cfg.FlowKey = []byte("test flow key")
	}
	if cfg.Rand == nil {
		cfg.Rand = newRand(7)
	}
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range services {
		c.Handle(name, s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := c.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); c.Close() })
	p := c.Ports()
	return &rig{core: c, udp: p[0], tcp: p[1]}
}

// forwardTo is a service forwarding every request to the given URIs.
func forwardTo(t *testing.T, uris ...string) ServiceFunc {
	var targets []Target
	for _, s := range uris {
		var u sip.Uri
		if err := sip.ParseUri(s, &u); err != nil {
			t.Fatal(err)
		}
		targets = append(targets, Target{URI: &u})
	}
	return func(tx *Txn) { tx.Forward(Fork{Targets: targets}) }
}

func mustURI(t *testing.T, s string) sip.Uri {
	t.Helper()
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		t.Fatal(err)
	}
	return u
}

// golden compares got with testdata/name, rewriting it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}
