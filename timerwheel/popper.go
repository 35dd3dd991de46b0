package timerwheel

import (
	"bytes"
	"container/heap"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"stillwater/consensus"
)

const (
	wheelTick    = int64(10 * time.Millisecond)
	firstBackoff = 250 * time.Millisecond
	maxBackoff   = 5 * time.Second
)

// leader is the popping state of one shard for as long as this node leads it.
// A new leadership gets a new leader; the old one's context is cancelled so
// its deliveries in progress do not commit.
type leader struct {
	shard  int
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when the loop has ended
	wake   chan struct{}

	mu    sync.Mutex
	wheel *wheel
	// inflight holds the timers being delivered or waiting to retry: at most
	// one delivery per timer. The value records that the timer came due again
	// meanwhile, so it is checked once more when the delivery ends.
	inflight map[ID]bool
	retries  retryHeap
	armed    int64 // time the loop is set to wake at; MaxInt64: none
}

func newLeader(parent context.Context, shard int, now int64) *leader {
	ctx, cancel := context.WithCancel(parent)
	return &leader{
		shard:    shard,
		ctx:      ctx,
		cancel:   cancel,
		done:     make(chan struct{}),
		wake:     make(chan struct{}, 1),
		wheel:    newWheel(wheelTick, now),
		inflight: map[ID]bool{},
		armed:    math.MaxInt64,
	}
}

// insert puts a timer's due time in the wheel, waking the loop if it is
// asleep past it. A nil leader (a shard this node does not lead) ignores it.
func (l *leader) insert(id ID, due int64) {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.wheel.Insert(uint64(id), due)
	early := due < l.armed
	l.mu.Unlock()
	if early {
		l.poke()
	}
}

func (l *leader) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// nextWake is when the loop must next run; l.mu held.
func (l *leader) nextWake() (int64, bool) {
	at, ok := l.wheel.NextWake()
	if len(l.retries) > 0 && (!ok || l.retries[0].at < at) {
		return l.retries[0].at, true
	}
	return at, ok
}

// retryLater schedules another attempt at a timer that stays in flight.
func (l *leader) retryLater(id ID, at int64, attempt int) {
	l.mu.Lock()
	heap.Push(&l.retries, retry{at: at, id: id, attempt: attempt})
	early := at < l.armed
	l.mu.Unlock()
	if early {
		l.poke()
	}
}

type retry struct {
	at      int64
	id      ID
	attempt int
}

type retryHeap []retry

func (h retryHeap) Len() int           { return len(h) }
func (h retryHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h retryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *retryHeap) Push(x any)        { *h = append(*h, x.(retry)) }
func (h *retryHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

type job struct {
	l       *leader
	id      ID
	attempt int
}

// backoff is the wait before attempt n (n >= 1) at a failed delivery.
func backoff(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	if n > 6 {
		return maxBackoff
	}
	return min(firstBackoff<<(n-1), maxBackoff)
}

// lead runs the popping loop of a shard this node leads.
func (s *Service) lead(l *leader) {
	defer s.wg.Done()
	defer close(l.done)
	if !s.proposeRescan(l) {
		return
	}
	var (
		due  []wentry
		jobs []job
		stop func() bool
	)
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	for {
		now := s.clock.Now().UnixNano()
		jobs = jobs[:0]
		l.mu.Lock()
		due = l.wheel.Advance(now, due[:0])
		for _, e := range due {
			id := ID(e.id)
			if _, busy := l.inflight[id]; busy {
				l.inflight[id] = true
				continue
			}
			l.inflight[id] = false
			jobs = append(jobs, job{l: l, id: id})
		}
		for len(l.retries) > 0 && l.retries[0].at <= now {
			r := heap.Pop(&l.retries).(retry)
			jobs = append(jobs, job{l: l, id: r.id, attempt: r.attempt})
		}
		next, ok := l.nextWake()
		l.armed = math.MaxInt64
		if ok {
			l.armed = next
		}
		l.mu.Unlock()

		for _, j := range jobs {
			select {
			case s.jobs <- j:
			case <-l.ctx.Done():
				return
			}
		}
		if stop != nil {
			stop()
			stop = nil
		}
		if ok {
			stop = s.clock.AfterFunc(time.Duration(next-now), l.poke)
			// The clock may have passed next while we worked, and the alarm
			// above was set relative to the time read then.
			if s.clock.Now().UnixNano() >= next {
				l.poke()
			}
		}
		select {
		case <-l.wake:
		case <-l.ctx.Done():
			return
		}
	}
}

// proposeRescan commits the marker that rebuilds the new leader's wheel, until
// it succeeds or leadership is lost.
func (s *Service) proposeRescan(l *leader) bool {
	for attempt := 1; ; attempt++ {
		_, err := s.cluster.Propose(l.ctx, l.shard, consensus.KindTimer, encodeRescan())
		if err == nil {
			return true
		}
		if l.ctx.Err() != nil {
			return false
		}
		s.log.Warn("cannot commit wheel rebuild; retrying", "shard", l.shard, "err", err)
		if !s.sleep(l.ctx, backoff(attempt)) {
			return false
		}
	}
}

func (s *Service) sleep(ctx context.Context, d time.Duration) bool {
	ch := make(chan struct{})
	stop := s.clock.AfterFunc(d, func() { close(ch) })
	defer stop()
	select {
	case <-ch:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *Service) worker() {
	for {
		select {
		case j := <-s.jobs:
			s.pop(j)
		case <-s.ctx.Done():
			return
		}
	}
}

// pop makes one delivery attempt of a timer that came due.
func (s *Service) pop(j job) {
	l := j.l
	if l.ctx.Err() != nil {
		return
	}
	rec, err := s.read(l.ctx, l.shard, j.id)
	if err != nil {
		if l.ctx.Err() == nil {
			s.log.Warn("cannot read timer; retrying", "shard", l.shard, "timer", j.id, "err", err)
			s.again(l, j)
		}
		return
	}
	// Gone, or replaced or moved on by a pop since it was filed: its present
	// due time has (or had) its own wheel entry.
	if rec == nil || rec.due() > s.clock.Now().UnixNano() {
		s.finish(l, j.id)
		return
	}
	p := Pop{
		ID:     j.id,
		Seq:    rec.seq,
		Last:   rec.seq >= rec.pops(),
		Due:    time.Unix(0, rec.due()),
		Opaque: rec.opaque,
		Tags:   rec.tags,
	}
	if err := s.deliver(l.ctx, rec, p); err != nil {
		if l.ctx.Err() == nil {
			s.failures.Add(1)
			s.log.Warn("timer callback failed; retrying", "shard", l.shard, "timer", j.id, "seq", p.Seq,
				"attempt", j.attempt+1, "err", err)
			s.again(l, j)
		}
		return
	}
	if l.ctx.Err() != nil {
		return // leadership lost: the next leader pops it again
	}
	res, err := s.cluster.Propose(l.ctx, l.shard, consensus.KindTimer, encodePop(j.id, rec.seq, rec.gen))
	if err != nil {
		if l.ctx.Err() == nil {
			s.log.Warn("cannot commit pop; delivering again", "shard", l.shard, "timer", j.id, "seq", p.Seq, "err", err)
			s.again(l, j)
		}
		return
	}
	if st, err := decodeStatus(res); err != nil || st != statusOK {
		// Deleted or replaced while being delivered.
		s.log.Debug("pop not committed", "shard", l.shard, "timer", j.id, "seq", p.Seq, "status", st, "err", err)
	} else {
		s.popped.Add(1)
	}
	s.finish(l, j.id)
}

func (s *Service) again(l *leader, j job) {
	l.retryLater(j.id, s.clock.Now().Add(backoff(j.attempt+1)).UnixNano(), j.attempt+1)
}

// finish ends a timer's delivery; if it came due again meanwhile it is
// checked again at once.
func (s *Service) finish(l *leader, id ID) {
	l.mu.Lock()
	if !l.inflight[id] {
		delete(l.inflight, id)
		l.mu.Unlock()
		return
	}
	l.inflight[id] = false
	l.mu.Unlock()
	l.retryLater(id, s.clock.Now().UnixNano(), 0)
}

// read returns a timer's record from this node's store, nil if there is none.
func (s *Service) read(ctx context.Context, shard int, id ID) (*record, error) {
	if s.view != nil {
		var rec *record
		err := s.view(shard, func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte(bucketTimers))
			if b == nil {
				return nil
			}
			v := b.Get(id.key())
			if v == nil {
				return nil
			}
			var err error
			rec, err = decodeRecord(v)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("read timer %v: %w", id, err)
		}
		return rec, nil
	}
	v, err := s.cluster.Query(ctx, shard, consensus.KindTimer, encodeGetQuery(id), consensus.Local)
	if err != nil {
		return nil, fmt.Errorf("read timer %v: %w", id, err)
	}
	if len(v) == 0 {
		return nil, nil
	}
	return decodeRecord(v)
}

func (s *Service) deliver(ctx context.Context, rec *record, p Pop) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if rec.kind == cbLocal {
		return s.deliverLocal(ctx, rec.target, p)
	}
	return s.deliverHTTP(ctx, rec.target, p)
}

// deliverHTTP posts the opaque data to the callback URI as Chronos did; only
// a 200 answer counts as delivered.
func (s *Service) deliverHTTP(ctx context.Context, uri string, p Pop) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, bytes.NewReader(p.Opaque))
	if err != nil {
		return fmt.Errorf("callback request: %w", err)
	}
	req.Header.Set("X-Sequence-Number", strconv.FormatUint(p.Seq, 10))
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	// Drain a little so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("callback %s answered %s", uri, resp.Status)
	}
	return nil
}

func (s *Service) deliverLocal(ctx context.Context, typ string, p Pop) (err error) {
	s.hmu.RLock()
	h := s.handlers[typ]
	s.hmu.RUnlock()
	if h == nil {
		return fmt.Errorf("no handler registered for timer type %q", typ)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler for timer type %q panicked: %v", typ, r)
		}
	}()
	if err := h(ctx, p); err != nil {
		return fmt.Errorf("handler for timer type %q: %w", typ, err)
	}
	return nil
}
