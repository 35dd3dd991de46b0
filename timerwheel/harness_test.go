package timerwheel

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"stillwater/consensus"
)

// fakeCluster is a single-node cluster: every proposal is applied at once, in
// a bbolt write transaction of the shard's own database, stamped with the fake
// clock's time.
type fakeCluster struct {
	clock    *FakeClock
	m        consensus.Machine
	shards   []*fakeShard
	noQuorum atomic.Bool
	onCommit func(commit) // called after each applied command
}

type fakeShard struct {
	mu      sync.Mutex
	db      *bolt.DB
	entries []consensus.Entry
}

type commit struct {
	shard int
	op    byte
	id    ID
	seq   uint64
	st    status
}

func newFakeCluster(tb testing.TB, n int, clock *FakeClock) *fakeCluster {
	c := &fakeCluster{clock: clock}
	for i := range n {
		db, err := bolt.Open(filepath.Join(tb.TempDir(), fmt.Sprintf("shard%d.db", i)), 0o600,
			&bolt.Options{NoSync: true, NoFreelistSync: true})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { db.Close() })
		c.shards = append(c.shards, &fakeShard{db: db})
	}
	return c
}

// open attaches the machine and opens every shard replica.
func (c *fakeCluster) open(tb testing.TB, m consensus.Machine) {
	c.m = m
	for i, sh := range c.shards {
		if err := sh.db.Update(func(tx *bolt.Tx) error { return m.Open(i, tx) }); err != nil {
			tb.Fatal(err)
		}
	}
}

func (c *fakeCluster) Shards() int { return len(c.shards) }

func (c *fakeCluster) ShardOf(key []byte) int {
	h := fnv.New32a()
	h.Write(key)
	return int(h.Sum32() % uint32(len(c.shards)))
}

func (c *fakeCluster) Site() string { return "test" }

func (c *fakeCluster) Replicates(int) bool { return true }

func (c *fakeCluster) Propose(ctx context.Context, shard int, kind consensus.Kind, cmd []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if c.noQuorum.Load() {
		return nil, consensus.ErrNoQuorum
	}
	if kind != consensus.KindTimer {
		return nil, fmt.Errorf("fake cluster: kind %d", kind)
	}
	sh := c.shards[shard]
	sh.mu.Lock()
	var res []byte
	err := sh.db.Update(func(tx *bolt.Tx) error {
		e := consensus.Entry{Index: uint64(len(sh.entries) + 1), Time: c.clock.Now().UnixNano(), Cmd: cmd}
		var err error
		if res, err = c.m.Apply(shard, tx, e); err == nil {
			sh.entries = append(sh.entries, e)
		}
		return err
	})
	sh.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if c.onCommit != nil && len(cmd) >= 2 {
		cm := commit{shard: shard, op: cmd[1], st: status(res[0])}
		if dc, err := decodeCommand(cmd); err == nil {
			cm.id, cm.seq = dc.id, dc.seq
		}
		c.onCommit(cm)
	}
	return res, nil
}

func (c *fakeCluster) Query(ctx context.Context, shard int, kind consensus.Kind, q []byte, _ consensus.Consistency) ([]byte, error) {
	if c.noQuorum.Load() {
		return nil, consensus.ErrNoQuorum
	}
	var res []byte
	err := c.shards[shard].db.View(func(tx *bolt.Tx) error {
		var err error
		res, err = c.m.Query(shard, tx, q)
		return err
	})
	return res, err
}

func (c *fakeCluster) view(shard int, fn func(*bolt.Tx) error) error {
	return c.shards[shard].db.View(fn)
}

var start = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

type harness struct {
	tb      testing.TB
	clock   *FakeClock
	fc      *fakeCluster
	svc     *Service
	commits chan commit
}

type harnessOpt func(*Options)

func withoutView(o *Options) { o.View = nil }

func newHarness(tb testing.TB, shards int, opts ...harnessOpt) *harness {
	clock := NewFakeClock(start)
	fc := newFakeCluster(tb, shards, clock)
	h := &harness{tb: tb, clock: clock, fc: fc, commits: make(chan commit, 1<<16)}
	fc.onCommit = func(c commit) {
		select {
		case h.commits <- c:
		default:
		}
	}
	o := Options{
		Clock:   clock,
		View:    fc.view,
		Workers: 8,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if testing.Verbose() {
		o.Logger = slog.New(slog.NewTextHandler(testWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	for _, f := range opts {
		f(&o)
	}
	h.svc = New(fc, o)
	fc.open(tb, h.svc)
	tb.Cleanup(h.svc.Close)
	return h
}

type testWriter struct{ tb testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.tb.Log(string(p[:len(p)-1]))
	return len(p), nil
}

func (h *harness) leadAll() {
	for i := range h.fc.shards {
		h.svc.LeaderChanged(i, true)
	}
}

func (h *harness) shardOf(id ID) int { return h.fc.ShardOf(id.key()) }

// record reads a timer's record straight from its shard's store.
func (h *harness) record(id ID) *record {
	h.tb.Helper()
	var rec *record
	err := h.fc.view(h.shardOf(id), func(tx *bolt.Tx) error {
		v := tx.Bucket([]byte(bucketTimers)).Get(id.key())
		if v == nil {
			return nil
		}
		var err error
		rec, err = decodeRecord(v)
		return err
	})
	if err != nil {
		h.tb.Fatal(err)
	}
	return rec
}

func (h *harness) set(t Timer) ID {
	h.tb.Helper()
	id, err := h.svc.Set(context.Background(), t)
	if err != nil {
		h.tb.Fatalf("Set: %v", err)
	}
	return id
}

// waitCommit waits for the next committed command of op on timer id.
func (h *harness) waitCommit(op byte, id ID) commit {
	h.tb.Helper()
	for {
		c := recv(h.tb, h.commits, fmt.Sprintf("commit of op %d on %v", op, id))
		if c.op == op && c.id == id {
			return c
		}
	}
}

// recv waits for an event; the deadline only turns a hang into a failure.
func recv[T any](tb testing.TB, ch <-chan T, what string) T {
	tb.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		tb.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// hit is one callback request received.
type hit struct {
	path string
	seq  string
	body string
}

// callbackServer records every callback; answer chooses each status code
// (nil: 200).
func callbackServer(tb testing.TB, answer func(n int, r *http.Request) int) (*httptest.Server, chan hit) {
	hits := make(chan hit, 1024)
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		code := http.StatusOK
		if answer != nil {
			code = answer(int(n.Add(1)), r)
		}
		if r.Method != http.MethodPost {
			code = http.StatusMethodNotAllowed
		}
		hits <- hit{path: r.URL.Path, seq: r.Header.Get("X-Sequence-Number"), body: string(body)}
		w.WriteHeader(code)
	}))
	tb.Cleanup(srv.Close)
	return srv, hits
}

func seqStr(n uint64) string { return strconv.FormatUint(n, 10) }
