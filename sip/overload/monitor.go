// Package overload is the SIP core's latency-driven admission control, the
// replacement for Sprout's LoadMonitor: a token bucket whose refill rate
// follows measured request latency against a target, plus the request queue
// timeout that turns stale queued requests into 503s.
//
// The caller asks Admit before queueing a received request (false: answer 503
// with Retry-After from RetryAfter), checks Expired when a worker picks the
// request up (true: answer 503, do not process), and reports the latency of
// every admitted request it processed through Done; Penalty records an
// overload response from a downstream node. Every AdjustEvery completions the
// rate is recalculated (Welsh and Culler's adaptive overload control, on the
// mean latency of the window as Sprout does):
//
//   - mean latency above target, or any penalty: rate divided by 1.2;
//   - mean latency more than 0.5% under target and the demand significant
//     (offered load at least half the rate, or requests refused in the
//     window): rate raised by -err × MaxTokens × 0.5, where err is
//     (latency - target) / target;
//   - otherwise unchanged.
//
// The rate stays within [MinRate, MaxRate]. Gate combines a Monitor with a
// bounded queue and a worker pool. All time comes from Options.Clock, so the
// package is tested in simulated time.
package overload

import (
	"fmt"
	"math"
	"sync"
	"time"
)

// Clearwater's defaults (sprout_* options) for fields left zero.
const (
	DefaultTargetLatency = 10 * time.Millisecond
	DefaultMaxTokens     = 1000
	DefaultInitRate      = 250.0
	DefaultMinRate       = 10.0
	DefaultQueueTimeout  = 4 * time.Second
	DefaultAdjustEvery   = 20
)

// Adjustment constants, as in Sprout.
const (
	decreaseThreshold = 0.0
	increaseThreshold = -0.005
	decreaseFactor    = 1.2
	increaseFactor    = 0.5
	demandFraction    = 0.5
	maxRetryAfter     = 60 * time.Second
)

// Options configure a Monitor. Zero fields take the Default* values, except
// MaxRate, where zero means no maximum (as sprout_max_token_rate).
type Options struct {
	TargetLatency time.Duration // <process>_target_latency_us
	MaxTokens     int           // <process>_max_tokens: bucket capacity
	InitRate      float64       // <process>_init_token_rate, tokens per second
	MinRate       float64       // <process>_min_token_rate
	MaxRate       float64       // <process>_max_token_rate; 0 for none
	QueueTimeout  time.Duration // <process>_request_queue_timeout
	// AdjustEvery is the number of completed requests between rate
	// recalculations.
	AdjustEvery int
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
}

func (o Options) withDefaults() (Options, error) {
	if o.TargetLatency == 0 {
		o.TargetLatency = DefaultTargetLatency
	}
	if o.MaxTokens == 0 {
		o.MaxTokens = DefaultMaxTokens
	}
	if o.InitRate == 0 {
		o.InitRate = DefaultInitRate
	}
	if o.MinRate == 0 {
		o.MinRate = DefaultMinRate
	}
	if o.QueueTimeout == 0 {
		o.QueueTimeout = DefaultQueueTimeout
	}
	if o.AdjustEvery == 0 {
		o.AdjustEvery = DefaultAdjustEvery
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	switch {
	case o.TargetLatency < 0:
		return o, fmt.Errorf("overload: target latency %v is negative", o.TargetLatency)
	case o.MaxTokens < 0:
		return o, fmt.Errorf("overload: max tokens %d is negative", o.MaxTokens)
	case !(o.MinRate > 0) || math.IsInf(o.MinRate, 0):
		return o, fmt.Errorf("overload: min token rate %v is not a positive number", o.MinRate)
	case !(o.InitRate > 0) || math.IsInf(o.InitRate, 0):
		return o, fmt.Errorf("overload: initial token rate %v is not a positive number", o.InitRate)
	case o.MaxRate < 0 || math.IsNaN(o.MaxRate):
		return o, fmt.Errorf("overload: max token rate %v is negative", o.MaxRate)
	case o.MaxRate != 0 && o.MaxRate < o.MinRate:
		return o, fmt.Errorf("overload: max token rate %v is below min token rate %v", o.MaxRate, o.MinRate)
	case o.QueueTimeout < 0:
		return o, fmt.Errorf("overload: request queue timeout %v is negative", o.QueueTimeout)
	case o.AdjustEvery < 0:
		return o, fmt.Errorf("overload: adjustment window %d is negative", o.AdjustEvery)
	}
	return o, nil
}

// Stats is a snapshot of a Monitor, for the SNMP tables.
type Stats struct {
	Admitted  uint64 // requests given a token
	Rejected  uint64 // requests refused a token
	Expired   uint64 // admitted requests refused for waiting too long in the queue
	Penalties uint64 // downstream overload responses recorded
	// Rate is the current refill rate in tokens per second.
	Rate float64
	// Tokens is the bucket's current content.
	Tokens float64
	// SmoothedLatency is the mean latency of the last complete window.
	SmoothedLatency time.Duration
	TargetLatency   time.Duration
}

// Monitor is a latency-adaptive token bucket. It is safe for concurrent use.
type Monitor struct {
	opts Options

	mu       sync.Mutex
	rate     float64
	tokens   float64
	refilled time.Time

	// Current adjustment window.
	windowStart time.Time
	done        int
	latencySum  time.Duration
	offered     int
	refused     int
	penalties   int

	smoothed time.Duration
	total    Stats
}

// New returns a Monitor with a full bucket. It returns an error naming the
// offending option when the options are inconsistent.
func New(opts Options) (*Monitor, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	now := o.Clock()
	m := &Monitor{
		opts:        o,
		tokens:      float64(o.MaxTokens),
		refilled:    now,
		windowStart: now,
	}
	m.rate = m.clamp(o.InitRate)
	return m, nil
}

// QueueTimeout is the longest an admitted request may wait before it is
// refused.
func (m *Monitor) QueueTimeout() time.Duration { return m.opts.QueueTimeout }

// Now is the Monitor's clock.
func (m *Monitor) Now() time.Time { return m.opts.Clock() }

func (m *Monitor) clamp(r float64) float64 {
	if r < m.opts.MinRate {
		r = m.opts.MinRate
	}
	if m.opts.MaxRate != 0 && r > m.opts.MaxRate {
		r = m.opts.MaxRate
	}
	return r
}

func (m *Monitor) refill(now time.Time) {
	if dt := now.Sub(m.refilled); dt > 0 {
		m.tokens = math.Min(m.tokens+m.rate*dt.Seconds(), float64(m.opts.MaxTokens))
		m.refilled = now
	}
}

// Admit takes a token for a newly received request. False means the request
// must be refused (503) without being queued.
func (m *Monitor) Admit() bool {
	now := m.opts.Clock()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refill(now)
	m.offered++
	if m.tokens >= 1 {
		m.tokens--
		m.total.Admitted++
		return true
	}
	m.refused++
	m.total.Rejected++
	return false
}

// Expired reports whether a request received at received has waited longer
// than the queue timeout; such a request is counted and must be refused
// (503) rather than processed.
func (m *Monitor) Expired(received time.Time) bool {
	if m.opts.Clock().Sub(received) <= m.opts.QueueTimeout {
		return false
	}
	m.mu.Lock()
	m.total.Expired++
	m.mu.Unlock()
	return true
}

// Penalty records an overload response (503) from a downstream node; the
// next adjustment lowers the rate whatever the latency.
func (m *Monitor) Penalty() {
	m.mu.Lock()
	m.penalties++
	m.total.Penalties++
	m.mu.Unlock()
}

// Done reports the latency of an admitted request, measured from its
// receipt (queueing included) to the end of its processing, excluding waits
// on other network elements.
func (m *Monitor) Done(latency time.Duration) {
	now := m.opts.Clock()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.done++
	m.latencySum += max(latency, 0)
	if m.done < m.opts.AdjustEvery {
		return
	}
	m.refill(now) // tokens so far accrue at the old rate
	mean := m.latencySum / time.Duration(m.done)
	m.smoothed = mean
	target := float64(m.opts.TargetLatency)
	errRatio := (float64(mean) - target) / math.Max(target, 1)
	switch {
	case errRatio > decreaseThreshold || m.penalties > 0:
		m.rate = m.clamp(m.rate / decreaseFactor)
	case errRatio < increaseThreshold && m.significantDemand(now):
		m.rate = m.clamp(m.rate - errRatio*float64(m.opts.MaxTokens)*increaseFactor)
	}
	m.windowStart = now
	m.done, m.latencySum, m.offered, m.refused, m.penalties = 0, 0, 0, 0, 0
}

// significantDemand reports whether the window's load justifies a higher
// rate: a quiet period is served fast but proves nothing about capacity.
func (m *Monitor) significantDemand(now time.Time) bool {
	if m.refused > 0 {
		return true
	}
	elapsed := now.Sub(m.windowStart).Seconds()
	if elapsed <= 0 {
		return true
	}
	return float64(m.offered)/elapsed >= demandFraction*m.rate
}

// RetryAfter is the delay to advertise in a 503's Retry-After: the time the
// bucket needs, at the current rate, to absorb the requests refused in the
// current window were they all retried, in whole seconds between 1 s and 60 s.
// Callers may add jitter so refused clients do not return in step.
func (m *Monitor) RetryAfter() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	secs := math.Ceil(float64(m.refused) / m.rate)
	d := time.Duration(secs) * time.Second
	return min(max(d, time.Second), maxRetryAfter)
}

// Stats returns a snapshot of the counters and current state.
func (m *Monitor) Stats() Stats {
	now := m.opts.Clock()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refill(now)
	s := m.total
	s.Rate = m.rate
	s.Tokens = m.tokens
	s.SmoothedLatency = m.smoothed
	s.TargetLatency = m.opts.TargetLatency
	return s
}
