package kv

import (
	"context"
	"hash/fnv"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"stillwater/consensus"
)

// watchdog bounds how long a test waits for an event that should come at once.
const watchdog = 10 * time.Second

// fakeClock is a manual clock: time moves only in Advance.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
	changed chan struct{} // closed and replaced when a waiter is added
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Unix(1_700_000_000, 0), changed: make(chan struct{})}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{at: c.now.Add(d), ch: ch})
	close(c.changed)
	c.changed = make(chan struct{})
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
		} else {
			w.ch <- c.now
		}
	}
	c.waiters = kept
}

// waitForTimer blocks until someone waits for the clock to reach at.
func (c *fakeClock) waitForTimer(t *testing.T, at time.Time) {
	t.Helper()
	dog := time.After(watchdog)
	for {
		c.mu.Lock()
		for _, w := range c.waiters {
			if w.at.Equal(at) {
				c.mu.Unlock()
				return
			}
		}
		changed := c.changed
		c.mu.Unlock()
		select {
		case <-changed:
		case <-dog:
			t.Fatalf("nobody waits for %v", at)
		}
	}
}

// fakeCluster is a single-node cluster: each shard is a bbolt DB to which
// commands are applied synchronously, with Index counting up and Time read
// from the fake clock.
type fakeCluster struct {
	site   string
	clock  *fakeClock
	m      consensus.Machine
	shards []*fakeShard

	mu          sync.Mutex
	onApply     func(shard int, e consensus.Entry, res []byte)
	consistency []consensus.Consistency // of every query, in order
	failNext    error                   // returned once by the next Propose
	lag         time.Duration           // Entry.Time is this far behind the clock
	remote      bool                    // Replicates reports false
}

type fakeShard struct {
	mu       sync.Mutex
	db       *bolt.DB
	index    uint64
	lastTime int64
}

func newFakeCluster(t testing.TB, site string, shards int, clock *fakeClock) *fakeCluster {
	t.Helper()
	c := &fakeCluster{site: site, clock: clock}
	dir := t.TempDir()
	for i := range shards {
		db, err := bolt.Open(filepath.Join(dir, site+"-"+strconv.Itoa(i)+".db"), 0o600, &bolt.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		c.shards = append(c.shards, &fakeShard{db: db})
	}
	return c
}

// attach installs the machine and opens it on every shard, as a replica start does.
func (c *fakeCluster) attach(t testing.TB, m consensus.Machine) {
	t.Helper()
	c.m = m
	for i, sh := range c.shards {
		if err := sh.db.Update(func(tx *bolt.Tx) error { return m.Open(i, tx) }); err != nil {
			t.Fatal(err)
		}
	}
}

func (c *fakeCluster) Shards() int { return len(c.shards) }

func (c *fakeCluster) ShardOf(key []byte) int {
	h := fnv.New32a()
	h.Write(key)
	return int(h.Sum32() % uint32(len(c.shards)))
}

func (c *fakeCluster) Site() string { return c.site }

func (c *fakeCluster) Replicates(int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.remote
}

func (c *fakeCluster) Propose(ctx context.Context, shard int, kind consensus.Kind, cmd []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if kind != consensus.KindKV {
		return nil, io.ErrUnexpectedEOF
	}
	c.mu.Lock()
	fail, lag := c.failNext, c.lag
	c.failNext = nil
	c.mu.Unlock()
	if fail != nil {
		return nil, fail
	}
	sh := c.shards[shard]
	sh.mu.Lock()
	sh.index++
	sh.lastTime = max(sh.lastTime, c.clock.Now().Add(-lag).UnixNano())
	e := consensus.Entry{Index: sh.index, Time: sh.lastTime, Cmd: cmd}
	var res []byte
	err := sh.db.Update(func(tx *bolt.Tx) error {
		var err error
		res, err = c.m.Apply(shard, tx, e)
		return err
	})
	sh.mu.Unlock()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	hook := c.onApply
	c.mu.Unlock()
	if hook != nil {
		hook(shard, e, res)
	}
	return res, nil
}

func (c *fakeCluster) Query(ctx context.Context, shard int, kind consensus.Kind, q []byte, cons consensus.Consistency) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.consistency = append(c.consistency, cons)
	c.mu.Unlock()
	var res []byte
	err := c.shards[shard].db.View(func(tx *bolt.Tx) error {
		var err error
		res, err = c.m.Query(shard, tx, q)
		return err
	})
	return res, err
}

func (c *fakeCluster) setOnApply(f func(shard int, e consensus.Entry, res []byte)) {
	c.mu.Lock()
	c.onApply = f
	c.mu.Unlock()
}

// export runs Export on a shard and returns the commands.
func (c *fakeCluster) export(t testing.TB, shard int) [][]byte {
	t.Helper()
	var cmds [][]byte
	err := c.shards[shard].db.View(func(tx *bolt.Tx) error {
		return c.m.Export(shard, tx, func(cmd []byte) error {
			cmds = append(cmds, cmd)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return cmds
}

// dump returns a bucket's raw contents.
func (c *fakeCluster) dump(t testing.TB, shard int, bucket string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := c.shards[shard].db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucket)).ForEach(func(k, v []byte) error {
			out[string(k)] = string(v)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func testLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

type fixture struct {
	svc   *Service
	c     *fakeCluster
	clock *fakeClock
	ctx   context.Context
}

func newFixture(t testing.TB, shards int, opts Options) *fixture {
	t.Helper()
	clock := newFakeClock()
	c := newFakeCluster(t, "paris", shards, clock)
	opts.Clock = clock
	if opts.Logger == nil {
		opts.Logger = testLogger()
	}
	svc := New(c, opts)
	c.attach(t, svc)
	t.Cleanup(func() { svc.Close() })
	return &fixture{svc: svc, c: c, clock: clock, ctx: context.Background()}
}

// keysIn returns n distinct keys with the prefix that route to shard.
func (f *fixture) keysIn(shard int, prefix string, n int) []string {
	var keys []string
	for i := 0; len(keys) < n; i++ {
		k := prefix + strconv.Itoa(i)
		if f.c.ShardOf([]byte(k)) == shard {
			keys = append(keys, k)
		}
	}
	return keys
}
