package registrar

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"stillwater/diameter/hss"
	"stillwater/kv"
	"stillwater/kv/kvtest"
	"stillwater/timerwheel"
)

var update = flag.Bool("update", false, "rewrite golden files")

// site is a real single-node site (consensus, kv, timerwheel) with the
// timer service on a fake clock so tests decide when timers pop. The clock starts at the real time: timers' start times
// are stamped by consensus from the wall clock.
type site struct {
	kv     *kv.Service
	timers *timerwheel.Service
	clock  *timerwheel.FakeClock
}

func newSite(t testing.TB) *site {
	t.Helper()
	clock := timerwheel.NewFakeClock(time.Now().Truncate(time.Second))
	ks := kvtest.NewWith(t, kvtest.Options{Shards: 2, TimerClock: clock, TimerWorkers: 4})
	return &site{kv: ks.KV, timers: ks.Timers, clock: clock}
}

// recorder is a Sender that hands every NOTIFY to the test, after a
// round trip through the wire format, and answers with status (200 unless
// the Request-URI's user is in reject).
type recorder struct {
	mu     sync.Mutex
	reject map[string]int
	ch     chan *sip.Request
}

func (s *recorder) Send(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	msg, err := sip.ParseMessage([]byte(req.String()))
	if err != nil {
		return nil, fmt.Errorf("NOTIFY does not parse: %w\n%s", err, req)
	}
	parsed := msg.(*sip.Request)
	s.mu.Lock()
	code := s.reject[req.Recipient.User]
	s.mu.Unlock()
	select {
	case s.ch <- parsed:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if code == 0 {
		code = 200
	}
	return sip.NewResponseFromRequest(parsed, code, "Whatever", nil), nil
}

type env struct {
	t    testing.TB
	ctx  context.Context
	site *site
	hss  *hss.Store
	reg  *Registrar
	sent *recorder
}

const (
	alice  = "sip:6505550001@example.com"
	alice2 = "sip:6505550002@example.com" // same IRS as alice
	alice3 = "sip:6505550003@example.com" // same IRS, barred
	bob    = "sip:6505550011@example.com"
	aliceI = "6505550001@example.com"
	bobI   = "6505550011@example.com"
	scscf  = "sip:scscf.example.com:5054;transport=tcp"
)

// lockedRand is a deterministic source safe for concurrent use.
type lockedRand struct {
	mu sync.Mutex
	r  *mrand.ChaCha8
}

func (l *lockedRand) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(p)
}

func newEnv(t testing.TB) *env {
	t.Helper()
	s := newSite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	store := hss.New(s.kv, hss.Options{HomeDomain: "example.com", SCSCF: scscf, Logger: log,
		Rand: &lockedRand{r: mrand.NewChaCha8([32]byte{1})}})
	if err := store.CreateLine(ctx, hss.Line{PrivateID: aliceI, PublicIDs: []string{alice, alice2, alice3}, Password: "pw"}); err != nil {
		t.Fatal(err)
	}
	pub, err := store.LookupPublicID(ctx, alice3)
	if err != nil {
		t.Fatal(err)
	}
	barred := "<PublicIdentity><BarringIndication>1</BarringIndication><Identity>" + alice3 + "</Identity></PublicIdentity>"
	if err := store.PutPublicID(ctx, pub.IRS, pub.ServiceProfile, alice3, []byte(barred)); err != nil {
		t.Fatal(err)
	}
	if err := store.CreateLine(ctx, hss.Line{PrivateID: bobI, PublicIDs: []string{bob}, Password: "pw"}); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ctx: ctx, site: s, hss: store, sent: &recorder{reject: map[string]int{}, ch: make(chan *sip.Request, 256)}}
	e.reg = New(Options{
		KV: s.kv, Timers: s.timers, HSS: store,
		MaxExpires: 300 * time.Second, SubMaxExpires: 600 * time.Second,
		ServiceRoute: "sip:scscf.example.com:5054;lr;orig", SCSCFName: scscf,
		Contact: "sip:scscf.example.com:5054;transport=tcp",
		Clock:   s.clock, Rand: &lockedRand{r: mrand.NewChaCha8([32]byte{2})}, Logger: log, Sender: e.sent,
	})
	t.Cleanup(e.reg.Close)
	return e
}

// msg parses a SIP request from lines joined with CRLF.
func msg(t testing.TB, lines ...string) *sip.Request {
	t.Helper()
	text := strings.Join(lines, "\r\n") + "\r\nContent-Length: 0\r\n\r\n"
	m, err := sip.ParseMessage([]byte(text))
	if err != nil {
		t.Fatalf("test request does not parse: %v\n%s", err, text)
	}
	return m.(*sip.Request)
}

// registerReq is a REGISTER for aor with the given Call-ID, CSeq and extra
// header lines.
func registerReq(t testing.TB, aor, callID string, cseq int, extra ...string) *sip.Request {
	t.Helper()
	lines := []string{
		"REGISTER sip:example.com SIP/2.0",
		"Via: SIP/2.0/TCP 10.0.0.9:5058;branch=z9hG4bK" + callID + fmt.Sprint(cseq),
		"From: <" + aor + ">;tag=reg" + callID,
		"To: <" + aor + ">",
		"Call-ID: " + callID,
		fmt.Sprintf("CSeq: %d REGISTER", cseq),
		"Max-Forwards: 70",
	}
	return msg(t, append(lines, extra...)...)
}

func subscribeReq(t *testing.T, impu, callID, fromTag, toTag string, cseq int, extra ...string) *sip.Request {
	t.Helper()
	to := "To: <" + impu + ">"
	if toTag != "" {
		to += ";tag=" + toTag
	}
	lines := []string{
		"SUBSCRIBE " + impu + " SIP/2.0",
		"Via: SIP/2.0/TCP 10.0.0.9:5058;branch=z9hG4bKs" + callID + fmt.Sprint(cseq),
		"From: <" + impu + ">;tag=" + fromTag,
		to,
		"Call-ID: " + callID,
		fmt.Sprintf("CSeq: %d SUBSCRIBE", cseq),
		"Max-Forwards: 70",
		"Record-Route: <sip:pcscf.example.com:5058;transport=tcp;lr>",
	}
	if !slices.ContainsFunc(extra, func(l string) bool { return strings.HasPrefix(l, "Contact:") }) {
		lines = append(lines, "Contact: <sip:ue@192.0.2.10:5060;transport=tcp>")
	}
	return msg(t, append(lines, extra...)...)
}

// notify waits for the next NOTIFY sent.
func (e *env) notify() *sip.Request {
	e.t.Helper()
	select {
	case r := <-e.sent.ch:
		return r
	case <-e.ctx.Done():
		e.t.Fatal("no NOTIFY sent")
		return nil
	}
}

// noNotify checks no NOTIFY is queued now. NOTIFYs are sent in the
// background, so callers first wait for those they expect.
func (e *env) noNotify() {
	e.t.Helper()
	select {
	case r := <-e.sent.ch:
		e.t.Fatalf("unexpected NOTIFY:\n%s", r)
	default:
	}
}

// bindings returns the live binding ids of impu with their seconds left.
func (e *env) bindings(impu string) map[string]int64 {
	e.t.Helper()
	bs, err := e.reg.Lookup(e.ctx, impu)
	if errors.Is(err, ErrNotFound) {
		return map[string]int64{}
	}
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]int64{}
	for _, b := range bs {
		out[b.ID] = int64(b.Expires.Sub(e.site.clock.Now()) / time.Second)
	}
	return out
}

func (e *env) regState(impu string) hss.RegState {
	e.t.Helper()
	rd, err := e.hss.RegData(e.ctx, impu)
	if err != nil {
		e.t.Fatal(err)
	}
	return rd.State
}

// golden compares got with testdata/name, rewriting it under -update.
func golden(t *testing.T, name string, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
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

// wire renders a message with the test start time replaced, so golden files
// do not depend on when the test ran.
func (e *env) wire(m interface{ String() string }) string {
	s := m.String()
	s = strings.ReplaceAll(s, e.site.clock.Now().UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT"), "<DATE>")
	return strings.ReplaceAll(s, "\r\n", "\n")
}

func headers(m interface{ GetHeaders(string) []sip.Header }, name string) []string {
	var out []string
	for _, h := range m.GetHeaders(name) {
		out = append(out, h.Value())
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
