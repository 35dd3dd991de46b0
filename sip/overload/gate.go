package overload

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Refusals; each means "answer 503 now".
var (
	ErrOverloaded = errors.New("overload: no token, request refused")
	ErrQueueFull  = errors.New("overload: request queue full")
	ErrExpired    = errors.New("overload: request waited longer than the queue timeout")
	ErrStopped    = errors.New("overload: gate stopped")
)

// Job is one received request handed to a Gate.
type Job struct {
	// Received is when the request was read off the wire, by the Monitor's
	// clock; queue time and latency are measured from it.
	Received time.Time
	// Run processes the request; the time from Received to its return is
	// reported to the Monitor as the request's latency.
	Run func(ctx context.Context)
	// Refuse is called instead of Run, with ErrExpired or ErrStopped, when
	// the request waited longer than the queue timeout or the gate stopped
	// with it queued; it should send the 503. It may be nil.
	Refuse func(err error)
}

// Gate bounds the requests in process (workers) and waiting (queue) behind
// a Monitor. Requests beyond the token rate are refused at Submit, queued
// requests older than the queue timeout are refused at dequeue, so under
// sustained overload the queue holds at most what the workers clear within
// the timeout and never more than its capacity.
type Gate struct {
	m       *Monitor
	workers int
	queue   chan Job

	mu      sync.RWMutex // excludes Submit from the final drain
	stopped bool
}

// NewGate returns a Gate with the given number of workers and queue
// capacity; Run starts the workers.
func NewGate(m *Monitor, workers, queueLen int) (*Gate, error) {
	if m == nil {
		return nil, errors.New("overload: gate needs a monitor")
	}
	if workers < 1 {
		return nil, fmt.Errorf("overload: gate needs at least one worker, got %d", workers)
	}
	if queueLen < 1 {
		return nil, fmt.Errorf("overload: gate queue length %d is below 1", queueLen)
	}
	return &Gate{m: m, workers: workers, queue: make(chan Job, queueLen)}, nil
}

// Submit admits and queues a job, or refuses it with ErrOverloaded,
// ErrQueueFull or ErrStopped; on refusal the caller sends the 503 itself and
// Refuse is not called. It never blocks.
func (g *Gate) Submit(j Job) error {
	if j.Run == nil {
		return errors.New("overload: job has no Run function")
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.stopped {
		return ErrStopped
	}
	if !g.m.Admit() {
		return ErrOverloaded
	}
	select {
	case g.queue <- j:
		return nil
	default:
		return ErrQueueFull
	}
}

// QueueLen is the number of jobs waiting.
func (g *Gate) QueueLen() int { return len(g.queue) }

// Run processes queued jobs on the workers until ctx is done, then refuses
// (ErrStopped) whatever is still queued and returns once every worker has
// finished its current job.
func (g *Gate) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range g.workers {
		wg.Go(func() { g.work(ctx) })
	}
	wg.Wait()
	g.mu.Lock()
	g.stopped = true
	g.mu.Unlock()
	for {
		select {
		case j := <-g.queue:
			refuse(j, ErrStopped)
		default:
			return
		}
	}
}

func (g *Gate) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-g.queue:
			if ctx.Err() != nil {
				refuse(j, ErrStopped)
				return
			}
			if g.m.Expired(j.Received) {
				refuse(j, ErrExpired)
				continue
			}
			j.Run(ctx)
			g.m.Done(g.m.Now().Sub(j.Received))
		}
	}
}

func refuse(j Job, err error) {
	if j.Refuse != nil {
		j.Refuse(err)
	}
}
