package timerwheel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"stillwater/consensus"
)

// Options configures a Service. Zero values select the defaults.
type Options struct {
	// Clock drives the popping loops; default SystemClock().
	Clock Clock
	// HTTPClient delivers HTTP callbacks; default a client keeping up to
	// Workers idle connections per host (CallbackTimeout bounds each attempt).
	HTTPClient *http.Client
	Logger     *slog.Logger
	// View, if set, reads a shard's local store; the popping loop uses it to
	// read a timer's record at pop time. Without it the loop reads through
	// Cluster.Query with Local consistency, which costs an encode and a copy.
	View func(shard int, fn func(*bolt.Tx) error) error
	// Workers bounds the deliveries in progress on this node; default 64.
	Workers int
	// CallbackTimeout bounds one delivery attempt; default 5 s.
	CallbackTimeout time.Duration
}

// popFunc handles the pops of the in-process callbacks registered for a type.
type popFunc func(ctx context.Context, p Pop) error

// Pop is one pop of a timer, as handed to an in-process callback.
type Pop struct {
	ID ID
	// Seq numbers the pops of one setting of the timer from 1 (Chronos's
	// X-Sequence-Number). A pop may be delivered more than once.
	Seq uint64
	// Last is true on the timer's final pop, after which it no longer exists.
	Last   bool
	Due    time.Time
	Opaque []byte
	Tags   []Tag
}

// Counters are this node's totals since it started, for SNMP.
type Counters struct {
	Created          uint64 // timers created or replaced through this node
	Deleted          uint64 // timers deleted through this node
	Popped           uint64 // pops delivered and committed by this node
	DeliveryFailures uint64 // delivery attempts that failed and will be retried
}

// Service keeps timers in the data shards (it is the consensus.Machine of
// KindTimer) and, on the shards this node leads, pops them.
type Service struct {
	cluster consensus.Cluster
	clock   Clock
	client  *http.Client
	log     *slog.Logger
	view    func(shard int, fn func(*bolt.Tx) error) error
	timeout time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	jobs   chan job

	mu     sync.Mutex
	leads  map[int]*leader // shards this node leads
	closed bool

	hmu      sync.RWMutex
	handlers map[string]popFunc

	created, deleted, popped, failures atomic.Uint64
}

var (
	_ consensus.Machine        = (*Service)(nil)
	_ consensus.LeaderObserver = (*Service)(nil)
)

// New returns a Service storing timers through cluster. It starts its
// delivery workers; popping starts on the shards for which LeaderChanged
// reports leadership. Close stops it.
func New(cluster consensus.Cluster, opts Options) *Service {
	if opts.Clock == nil {
		opts.Clock = SystemClock()
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Workers <= 0 {
		opts.Workers = 64
	}
	if opts.HTTPClient == nil {
		// Callbacks mostly go to a few hosts: keep a connection per worker.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = opts.Workers
		opts.HTTPClient = &http.Client{Transport: tr}
	}
	if opts.CallbackTimeout <= 0 {
		opts.CallbackTimeout = 5 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{
		cluster:  cluster,
		clock:    opts.Clock,
		client:   opts.HTTPClient,
		log:      opts.Logger.With("component", "timerwheel"),
		view:     opts.View,
		timeout:  opts.CallbackTimeout,
		ctx:      ctx,
		cancel:   cancel,
		jobs:     make(chan job, opts.Workers),
		leads:    map[int]*leader{},
		handlers: map[string]popFunc{},
	}
	for range opts.Workers {
		s.wg.Go(s.worker)
	}
	return s
}

// Close stops popping and delivering and waits for the goroutines to end.
// Timers stay stored; the next leader pops them.
func (s *Service) Close() {
	s.mu.Lock()
	s.closed = true
	leads := s.leads
	s.leads = map[int]*leader{}
	s.mu.Unlock()
	for _, l := range leads {
		l.cancel()
	}
	s.cancel()
	s.wg.Wait()
}

// Register sets the in-process callback for timers whose Callback.Type is typ.
// h returning nil means delivered; an error (or a panic) makes the pop be
// retried, as does a pop finding no handler, so register before the timers
// of a type can pop. h may be called more than once for a pop.
func (s *Service) Register(typ string, h func(ctx context.Context, p Pop) error) {
	s.hmu.Lock()
	defer s.hmu.Unlock()
	s.handlers[typ] = h
}

// Counters returns this node's counters.
func (s *Service) Counters() Counters {
	return Counters{
		Created:          s.created.Load(),
		Deleted:          s.deleted.Load(),
		Popped:           s.popped.Load(),
		DeliveryFailures: s.failures.Load(),
	}
}

// Set creates the timer t, or replaces it if t.ID names an existing one, and
// returns its ID. A replaced timer starts afresh: its first pop is Interval
// from now, with sequence number 1. Errors wrapping ErrInvalid reject t;
// others (consensus.ErrNoQuorum, say) mean it could not be stored.
func (s *Service) Set(ctx context.Context, t Timer) (ID, error) {
	sp, err := t.spec()
	if err != nil {
		return 0, err
	}
	if t.ID != 0 {
		if err := s.proposeSet(ctx, t.ID, false, &sp); err != nil {
			return 0, err
		}
		return t.ID, nil
	}
	// Fresh ids are random: no coordination, and a collision (one in 2^64 per
	// pair) is caught by the create-only flag and retried.
	for range 8 {
		id := ID(rand.Uint64())
		if id == 0 {
			continue
		}
		err := s.proposeSet(ctx, id, true, &sp)
		if errors.Is(err, errExists) {
			continue
		}
		if err != nil {
			return 0, err
		}
		return id, nil
	}
	return 0, errors.New("timerwheel: no free timer id found")
}

var errExists = errors.New("timerwheel: timer id taken")

func (s *Service) proposeSet(ctx context.Context, id ID, create bool, sp *spec) error {
	st, err := s.propose(ctx, id, encodeSet(id, create, sp))
	if err != nil {
		return err
	}
	switch st {
	case statusOK:
		s.created.Add(1)
		return nil
	case statusExists:
		return errExists
	}
	return fmt.Errorf("timerwheel: set %v: store answered %v", id, st)
}

// Delete deletes a timer. Deleting a timer that does not exist (any more)
// is not an error.
func (s *Service) Delete(ctx context.Context, id ID) error {
	st, err := s.propose(ctx, id, encodeDelete(id))
	if err != nil {
		return err
	}
	switch st {
	case statusOK:
		s.deleted.Add(1)
		return nil
	case statusNotFound:
		return nil
	}
	return fmt.Errorf("timerwheel: delete %v: store answered %v", id, st)
}

func (s *Service) propose(ctx context.Context, id ID, cmd []byte) (status, error) {
	shard := s.cluster.ShardOf(id.key())
	res, err := s.cluster.Propose(ctx, shard, consensus.KindTimer, cmd)
	if err != nil {
		return 0, fmt.Errorf("timerwheel: propose to shard %d: %w", shard, err)
	}
	return decodeStatus(res)
}

// Stats returns the site's exact count of timers per statistics tag type,
// each tag counted as often as its Count, read linearizably from every shard.
func (s *Service) Stats(ctx context.Context) (map[string]int64, error) {
	st, err := s.stats(ctx)
	return st.tags, err
}

// Pending returns the number of timers stored in the site.
func (s *Service) Pending(ctx context.Context) (int64, error) {
	st, err := s.stats(ctx)
	return st.timers, err
}

func (s *Service) stats(ctx context.Context) (shardStats, error) {
	n := s.cluster.Shards()
	answers := make([]shardStats, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for shard := range n {
		wg.Go(func() {
			res, err := s.cluster.Query(ctx, shard, consensus.KindTimer, encodeStatsQuery(), consensus.Linearizable)
			if err != nil {
				errs[shard] = fmt.Errorf("timerwheel: stats of shard %d: %w", shard, err)
				return
			}
			answers[shard], errs[shard] = decodeStats(res)
		})
	}
	wg.Wait()
	total := shardStats{tags: map[string]int64{}}
	if err := errors.Join(errs...); err != nil {
		return total, err
	}
	for _, a := range answers {
		total.timers += a.timers
		for k, v := range a.tags {
			total.tags[k] += v
		}
	}
	return total, nil
}

// LeaderChanged starts popping a shard when this node gains its leadership
// and stops it, abandoning deliveries in progress, when it loses it.
func (s *Service) LeaderChanged(shard int, leading bool) {
	s.mu.Lock()
	old := s.leads[shard]
	if leading {
		if old != nil || s.closed {
			s.mu.Unlock()
			return
		}
		l := newLeader(s.ctx, shard, s.clock.Now().UnixNano())
		s.leads[shard] = l
		s.wg.Add(1)
		s.mu.Unlock()
		s.log.Info("leading shard: popping its timers", "shard", shard)
		go s.lead(l)
		return
	}
	delete(s.leads, shard)
	s.mu.Unlock()
	if old != nil {
		s.log.Info("no longer leading shard: stopped popping", "shard", shard)
		old.cancel()
	}
}

// leader returns the popping state of a shard this node leads, or nil.
func (s *Service) leader(shard int) *leader {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leads[shard]
}
