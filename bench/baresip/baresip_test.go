package baresip

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// testLogger sends driver logs (including baresip's output) to t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func startUA(t *testing.T, ctx context.Context, o Options) *UA {
	t.Helper()
	o.Logger = testLogger(t)
	u, err := Start(ctx, o)
	if err != nil {
		t.Fatalf("Start(%s): %v", o.User, err)
	}
	t.Cleanup(func() {
		if err := u.Close(); err != nil {
			t.Errorf("Close(%s): %v", o.User, err)
		}
	})
	return u
}

func waitEvent(t *testing.T, ctx context.Context, u *UA, typ string) Event {
	t.Helper()
	ev, err := u.WaitEvent(ctx, typ)
	if err != nil {
		t.Fatalf("%s: %v", u.opts.User, err)
	}
	return ev
}

// TestPeerToPeerCall has two UAs call each other directly, with manual and
// automatic answer, over UDP and TCP.
func TestPeerToPeerCall(t *testing.T) {
	tests := []struct {
		transport  string
		autoAnswer bool
	}{
		{"udp", false},
		{"tcp", false},
		{"udp", true},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/auto=%v", tc.transport, tc.autoAnswer), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			alice := startUA(t, ctx, Options{User: "alice", Transport: tc.transport})
			bob := startUA(t, ctx, Options{User: "bob", Transport: tc.transport, AutoAnswer: tc.autoAnswer})

			if err := alice.Dial(ctx, bob.URI()); err != nil {
				t.Fatal(err)
			}
			// baresip answers at once in auto mode and then reports no
			// CALL_INCOMING.
			if !tc.autoAnswer {
				in := waitEvent(t, ctx, bob, EventCallIncoming)
				if !strings.HasPrefix(in.PeerURI, "sip:alice@127.0.0.1") || in.Direction != "incoming" {
					t.Errorf("CALL_INCOMING = %+v, want from sip:alice@127.0.0.1", in)
				}
				waitEvent(t, ctx, alice, EventCallRinging)
				if err := bob.Answer(ctx); err != nil {
					t.Fatal(err)
				}
			}
			a := waitEvent(t, ctx, alice, EventCallEstablished)
			b := waitEvent(t, ctx, bob, EventCallEstablished)
			if a.ID == "" || a.ID != b.ID {
				t.Errorf("call ids differ: alice %q, bob %q", a.ID, b.ID)
			}
			// Media flows both ways without any sound device.
			waitEvent(t, ctx, alice, EventCallRTPEstablish)
			waitEvent(t, ctx, bob, EventCallRTPEstablish)

			if err := alice.Hangup(ctx); err != nil {
				t.Fatal(err)
			}
			waitEvent(t, ctx, alice, EventCallClosed)
			if ev := waitEvent(t, ctx, bob, EventCallClosed); ev.ID != a.ID {
				t.Errorf("bob closed call %q, want %q", ev.ID, a.ID)
			}
		})
	}
}

// TestRejectedCall checks that a callee hanging up on an incoming call
// closes the call on both sides.
func TestRejectedCall(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	alice := startUA(t, ctx, Options{User: "alice"})
	bob := startUA(t, ctx, Options{User: "bob"})
	if err := alice.Dial(ctx, bob.URI()); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, ctx, bob, EventCallIncoming)
	if err := bob.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	ev := waitEvent(t, ctx, alice, EventCallClosed)
	if ev.Param == "" {
		t.Errorf("CALL_CLOSED without a reason: %+v", ev)
	}
	waitEvent(t, ctx, bob, EventCallClosed)
}

// registrar is a minimal digest-authenticating SIP registrar.
type registrar struct {
	realm, nonce string
	users        map[string]string // digest username -> password
	// release, when set, holds every final answer until it is closed or
	// ctx ends, so the answer lands while WaitRegistered is waiting.
	release chan struct{}
	ctx     context.Context

	mu   sync.Mutex
	seen []string // "<status> <digest username>" per REGISTER answered
}

func (r *registrar) handle(req *sip.Request, tx sip.ServerTransaction) {
	status, user := r.check(req)
	r.mu.Lock()
	r.seen = append(r.seen, fmt.Sprintf("%d %s", status, user))
	r.mu.Unlock()

	if status != 401 && r.release != nil {
		select {
		case <-r.release:
		case <-r.ctx.Done():
			return
		}
	}
	var res *sip.Response
	switch status {
	case 401:
		res = sip.NewResponseFromRequest(req, 401, "Unauthorized", nil)
		res.AppendHeader(sip.NewHeader("WWW-Authenticate",
			fmt.Sprintf(`Digest realm="%s", nonce="%s", algorithm=MD5, qop="auth"`, r.realm, r.nonce)))
	case 403:
		res = sip.NewResponseFromRequest(req, 403, "Forbidden", nil)
	case 400:
		res = sip.NewResponseFromRequest(req, 400, "Bad Authorization", nil)
	default:
		res = sip.NewResponseFromRequest(req, 200, "OK", nil)
		expires := "3600"
		if h := req.GetHeader("Expires"); h != nil {
			expires = h.Value()
		}
		if c := req.Contact(); c != nil {
			res.AppendHeader(sip.NewHeader("Contact", c.Value()+";expires="+expires))
		}
	}
	_ = tx.Respond(res)
}

// check returns the status for req and the digest username it carried.
func (r *registrar) check(req *sip.Request) (int, string) {
	h := req.GetHeader("Authorization")
	if h == nil {
		return 401, ""
	}
	p, ok := parseDigest(h.Value())
	if !ok {
		return 400, ""
	}
	pass, known := r.users[p["username"]]
	if !known || p["realm"] != r.realm || p["nonce"] != r.nonce {
		return 403, p["username"]
	}
	ha1 := md5hex(p["username"] + ":" + r.realm + ":" + pass)
	ha2 := md5hex(string(req.Method) + ":" + p["uri"])
	want := md5hex(ha1 + ":" + r.nonce + ":" + ha2)
	if p["qop"] != "" {
		want = md5hex(strings.Join([]string{ha1, r.nonce, p["nc"], p["cnonce"], p["qop"], ha2}, ":"))
	}
	if p["response"] != want {
		return 403, p["username"]
	}
	return 200, p["username"]
}

func (r *registrar) log() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// parseDigest splits `Digest k="v", k=v` into a map.
func parseDigest(v string) (map[string]string, bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(v), "Digest ")
	if !ok {
		return nil, false
	}
	out := map[string]string{}
	for rest = strings.TrimSpace(rest); rest != ""; rest = strings.TrimLeft(rest, ", ") {
		k, after, ok := strings.Cut(rest, "=")
		if !ok {
			return nil, false
		}
		k = strings.TrimSpace(k)
		if strings.HasPrefix(after, `"`) {
			end := strings.IndexByte(after[1:], '"')
			if end < 0 {
				return nil, false
			}
			out[k], rest = after[1:1+end], after[2+end:]
		} else {
			end := strings.IndexByte(after, ',')
			if end < 0 {
				end = len(after)
			}
			out[k], rest = strings.TrimSpace(after[:end]), after[end:]
		}
	}
	return out, true
}

// startRegistrar serves r on 127.0.0.1 over transport and returns its
// address.
func startRegistrar(t *testing.T, r *registrar, transport string) string {
	t.Helper()
	ua, err := sipgo.NewUA()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	srv.OnRegister(r.handle)
	var (
		addr  string
		serve func() error
		stop  func() error
	)
	switch transport {
	case "udp":
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr, serve, stop = pc.LocalAddr().String(), func() error { return srv.ServeUDP(pc) }, pc.Close
	case "tcp":
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr, serve, stop = l.Addr().String(), func() error { return srv.ServeTCP(l) }, l.Close
	default:
		t.Fatalf("registrar transport %q", transport)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = serve() }()
	t.Cleanup(func() {
		_ = stop()
		_ = ua.Close()
		<-done
	})
	return addr
}

// TestRegisterDigest registers against a digest-checking registrar and
// reports a wrong password as a registration failure.
func TestRegisterDigest(t *testing.T) {
	tests := []struct {
		name      string
		transport string
		password  string
		held      bool     // answer only after Start returned
		wantErr   string   // empty: registration succeeds
		wantSeen  []string // registrar's log
	}{
		{"udp", "udp", "secret", false, "", []string{"401 ", "200 alice@example.com"}},
		{"tcp", "tcp", "secret", false, "", []string{"401 ", "200 alice@example.com"}},
		{"wrong password", "udp", "wrong", false, "403 Forbidden", []string{"401 ", "403 alice@example.com"}},
		{"udp answered late", "udp", "secret", true, "", []string{"401 ", "200 alice@example.com"}},
		{"wrong password answered late", "tcp", "wrong", true, "403 Forbidden", []string{"401 ", "403 alice@example.com"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			reg := &registrar{realm: "example.com", nonce: "c2l0ZXN0bm9uY2U", users: map[string]string{"alice@example.com": "secret"}, ctx: ctx}
			if tc.held {
				reg.release = make(chan struct{})
			}
			addr := startRegistrar(t, reg, tc.transport)
			u := startUA(t, ctx, Options{
				User: "alice", AuthUser: "alice@example.com", Password: tc.password, Domain: "example.com",
				Outbound: "sip:" + addr + ";transport=" + tc.transport, Transport: tc.transport, RegInterval: 600,
			})
			if tc.held {
				close(reg.release)
				want := EventRegisterOK
				if tc.wantErr != "" {
					want = EventRegisterFail
				}
				if ev := waitEvent(t, ctx, u, want); ev.AccountAOR != "sip:alice@example.com" {
					t.Errorf("%s for %q", want, ev.AccountAOR)
				}
			}
			err := u.WaitRegistered(ctx)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("WaitRegistered: %v", err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("WaitRegistered = %v, want error containing %q", err, tc.wantErr)
			}
			if got := reg.log(); strings.Join(got[:min(len(got), len(tc.wantSeen))], "|") != strings.Join(tc.wantSeen, "|") {
				t.Errorf("registrar saw %q, want %q", got, tc.wantSeen)
			}
		})
	}
}

// TestStartFailureShowsOutput checks that a baresip which cannot bind its
// SIP port exits with an error carrying its own last output.
func TestStartFailureShowsOutput(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	pc, err := net.ListenPacket("udp4", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()

	u, err := Start(ctx, Options{User: "alice", SIPPort: port, Logger: testLogger(t)})
	if err == nil {
		_ = u.Close()
		t.Fatal("Start succeeded on a port in use")
	}
	if !errors.Is(err, ErrExited) {
		t.Errorf("error %v does not wrap ErrExited", err)
	}
	for _, want := range []string{"baresip exited during start-up", "last output:", "baresip v1.0.0"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestWaitAfterExit checks that waits end with an error, not a hang, when
// baresip dies.
func TestWaitAfterExit(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	u := startUA(t, ctx, Options{User: "alice"})
	if err := u.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_, err := u.WaitEvent(ctx, EventCallIncoming)
	if err == nil || !strings.Contains(err.Error(), "baresip exited") || !errors.Is(err, ErrExited) {
		t.Fatalf("WaitEvent after kill = %v, want exit error", err)
	}
	if err := u.Dial(ctx, "sip:bob@127.0.0.1:9"); err == nil {
		t.Fatal("Dial after kill succeeded")
	}
	if err := u.WaitRegistered(ctx); err == nil || !strings.Contains(err.Error(), "no Outbound") {
		t.Fatalf("WaitRegistered without Outbound = %v", err)
	}
}

// TestWaitEventContext checks that WaitEvent is bounded by its context.
func TestWaitEventContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	u := startUA(t, ctx, Options{User: "alice"})
	wctx, wcancel := context.WithCancel(ctx)
	wcancel()
	if _, err := u.WaitEvent(wctx, EventCallIncoming); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("WaitEvent with cancelled ctx = %v", err)
	}
	if err := u.Dial(ctx, "sip:bob\r\n@x"); err == nil || !strings.Contains(err.Error(), "invalid URI") {
		t.Fatalf("Dial with CRLF = %v", err)
	}
}

// TestRegisterClosedPort reports a registrar that refuses TCP connections.
func TestRegisterClosedPort(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	u := startUA(t, ctx, Options{User: "alice", Password: "secret", Domain: "example.com",
		Outbound: "sip:" + addr + ";transport=tcp", Transport: "tcp"})
	err = u.WaitRegistered(ctx)
	if err == nil || !strings.Contains(err.Error(), "Connection refused") {
		t.Fatalf("WaitRegistered = %v, want connection refused", err)
	}
	ev := waitEvent(t, ctx, u, EventRegisterFail)
	if ev.AccountAOR != "sip:alice@example.com" {
		t.Errorf("REGISTER_FAIL for %q", ev.AccountAOR)
	}
}
