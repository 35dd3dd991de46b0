package kv

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"stillwater/consensus"
)

// DefaultFeedRetention is the number of changes each shard's feed keeps.
const DefaultFeedRetention = 20000

// Clock is the time source of the client API (reads' notion of now) and of
// the expiry sweeper. Tests inject a fake one.
type Clock interface {
	Now() time.Time
	// After behaves like time.After.
	After(d time.Duration) <-chan time.Time
}

// SystemClock returns the wall clock.
func SystemClock() Clock { return systemClock{} }

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Options configure a Service.
type Options struct {
	// Clock defaults to SystemClock().
	Clock Clock
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// FeedRetention is how many changes each shard's feed keeps (default
	// DefaultFeedRetention). It shapes replicated state: every node of a site
	// must use the same value.
	FeedRetention int
	// CacheBytes bounds the records kept for Cached reads (default
	// DefaultCacheBytes; negative: none are kept).
	CacheBytes int
}

// Service is the kv state machine of every data shard on this node and the
// client API over the site's shards. Its methods are safe for concurrent use.
type Service struct {
	cluster   consensus.Cluster
	clock     Clock
	log       *slog.Logger
	retention uint64

	// caches holds each shard's records for Cached reads (see shardCache);
	// cacheBytes bounds them all.
	caches     atomic.Pointer[[]*recordCache]
	cacheMu    sync.Mutex // serializes growing caches
	cacheBytes int

	mu     sync.Mutex
	shards map[int]*shardState
	closed bool
	wg     sync.WaitGroup
}

// shardState is what the node keeps in memory about one shard: the earliest
// expiry (a hint for the sweeper, rebuilt by Open) and the sweeper's handle.
type shardState struct {
	// applyMu serializes Apply (consensus already does; this keeps scratch safe).
	applyMu sync.Mutex
	scratch []byte // key scratch for Apply; bbolt copies keys
	// open is the applier state of the last Apply, reused while consensus
	// applies into the same transaction: finding the buckets and decoding
	// the meta state again for every entry was half the tree lookups of a
	// put. Guarded by applyMu.
	open applied

	earliest atomic.Int64  // earliest expiry in the index (Unix ns), 0 if none
	wake     chan struct{} // nudges the sweeper when earliest moves earlier

	// Guarded by Service.mu.
	stopSweep context.CancelFunc
}

var (
	_ consensus.Machine        = (*Service)(nil)
	_ consensus.LeaderObserver = (*Service)(nil)
)

// New returns the kv service of this node. Register it as the KindKV machine
// of every data shard and as that shard's LeaderObserver.
func New(cluster consensus.Cluster, opts Options) *Service {
	if opts.Clock == nil {
		opts.Clock = SystemClock()
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.FeedRetention <= 0 {
		opts.FeedRetention = DefaultFeedRetention
	}
	if opts.CacheBytes == 0 {
		opts.CacheBytes = DefaultCacheBytes
	}
	return &Service{
		cluster:    cluster,
		clock:      opts.Clock,
		log:        opts.Logger.With("component", "kv"),
		retention:  uint64(opts.FeedRetention),
		cacheBytes: opts.CacheBytes,
		shards:     make(map[int]*shardState),
	}
}

// state returns the in-memory state of a shard, creating it on first use.
func (s *Service) state(shard int) *shardState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stateLocked(shard)
}

func (s *Service) stateLocked(shard int) *shardState {
	st := s.shards[shard]
	if st == nil {
		st = &shardState{wake: make(chan struct{}, 1)}
		s.shards[shard] = st
	}
	return st
}

// Close stops the expiry sweepers and waits for them to return.
func (s *Service) Close() error {
	s.mu.Lock()
	s.closed = true
	for _, st := range s.shards {
		if st.stopSweep != nil {
			st.stopSweep()
			st.stopSweep = nil
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// now is the reader's clock in Unix ns.
func (s *Service) now() int64 { return s.clock.Now().UnixNano() }

// noteExpiry lowers the shard's earliest-expiry hint and wakes the sweeper.
func (st *shardState) noteExpiry(expiry int64) {
	for {
		cur := st.earliest.Load()
		if cur != 0 && cur <= expiry {
			return
		}
		if st.earliest.CompareAndSwap(cur, expiry) {
			st.nudge()
			return
		}
	}
}

func (st *shardState) setEarliest(expiry int64) {
	if old := st.earliest.Swap(expiry); expiry != 0 && (old == 0 || expiry < old) {
		st.nudge()
	}
}

func (st *shardState) nudge() {
	select {
	case st.wake <- struct{}{}:
	default:
	}
}
