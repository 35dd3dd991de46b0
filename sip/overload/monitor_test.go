package overload

import (
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a manually advanced clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func mustNew(t *testing.T, o Options) *Monitor {
	t.Helper()
	m, err := New(o)
	if err != nil {
		t.Fatalf("New(%+v): %v", o, err)
	}
	return m
}

// drive offers requests at a fixed rate for d, completing each admitted one
// at once with the given latency, and calling penalty (if set) every n-th
// admitted request.
func drive(m *Monitor, clk *fakeClock, offered float64, latency, d time.Duration, penaltyEvery int) {
	step := time.Duration(float64(time.Second) / offered)
	admitted := 0
	for elapsed := time.Duration(0); elapsed < d; elapsed += step {
		clk.Advance(step)
		if !m.Admit() {
			continue
		}
		admitted++
		if penaltyEvery > 0 && admitted%penaltyEvery == 0 {
			m.Penalty()
		}
		m.Done(latency)
	}
}

func TestRateAdaptation(t *testing.T) {
	tests := []struct {
		name         string
		opts         Options
		offered      float64
		latency      time.Duration
		penaltyEvery int
		check        func(rate float64) bool
		want         string
	}{
		{
			name:    "low latency and busy raises the rate",
			opts:    Options{InitRate: 100, MaxTokens: 100},
			offered: 1000, latency: time.Millisecond,
			check: func(r float64) bool { return r >= 1000 },
			want:  ">= 1000 (the offered load)",
		},
		{
			name:    "low latency but quiet leaves the rate alone",
			opts:    Options{InitRate: 100, MaxTokens: 100},
			offered: 20, latency: time.Millisecond,
			check: func(r float64) bool { return r == 100 },
			want:  "== 100",
		},
		{
			name:    "latency at target leaves the rate alone",
			opts:    Options{InitRate: 100, MaxTokens: 100},
			offered: 1000, latency: DefaultTargetLatency,
			check: func(r float64) bool { return r == 100 },
			want:  "== 100",
		},
		{
			name:    "high latency lowers the rate to the floor",
			opts:    Options{InitRate: 500, MaxTokens: 100, MinRate: 25},
			offered: 1000, latency: 50 * time.Millisecond,
			check: func(r float64) bool { return r == 25 },
			want:  "== 25 (min rate)",
		},
		{
			name:    "default floor is 10 per second",
			opts:    Options{InitRate: 500, MaxTokens: 100},
			offered: 1000, latency: time.Second,
			check: func(r float64) bool { return r == DefaultMinRate },
			want:  "== 10",
		},
		{
			name:    "max rate caps the increase",
			opts:    Options{InitRate: 100, MaxTokens: 100, MaxRate: 300},
			offered: 1000, latency: time.Millisecond,
			check: func(r float64) bool { return r == 300 },
			want:  "== 300 (max rate)",
		},
		{
			name:    "downstream penalties lower the rate despite low latency",
			opts:    Options{InitRate: 500, MaxTokens: 100},
			offered: 1000, latency: time.Millisecond, penaltyEvery: 20,
			check: func(r float64) bool { return r == DefaultMinRate },
			want:  "== 10",
		},
		{
			name:    "init rate below min rate starts at min rate",
			opts:    Options{InitRate: 1, MinRate: 5, MaxTokens: 1},
			offered: 2, latency: DefaultTargetLatency,
			check: func(r float64) bool { return r == 5 },
			want:  "== 5",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			tc.opts.Clock = clk.Now
			m := mustNew(t, tc.opts)
			drive(m, clk, tc.offered, tc.latency, 30*time.Second, tc.penaltyEvery)
			s := m.Stats()
			if !tc.check(s.Rate) {
				t.Errorf("rate = %.2f, want %s (stats %+v)", s.Rate, tc.want, s)
			}
			if s.Admitted == 0 {
				t.Errorf("nothing admitted: %+v", s)
			}
		})
	}
}

func TestSmoothedLatencyIsWindowMean(t *testing.T) {
	clk := newFakeClock()
	m := mustNew(t, Options{Clock: clk.Now, AdjustEvery: 4, InitRate: 100})
	for _, l := range []time.Duration{2, 4, 6, 8} {
		if !m.Admit() {
			t.Fatal("admit refused with a full bucket")
		}
		m.Done(l * time.Millisecond)
	}
	if got := m.Stats().SmoothedLatency; got != 5*time.Millisecond {
		t.Errorf("smoothed latency = %v, want 5ms", got)
	}
}

func TestBucket(t *testing.T) {
	clk := newFakeClock()
	m := mustNew(t, Options{Clock: clk.Now, MaxTokens: 5, InitRate: 10, MinRate: 1})
	steps := []struct {
		advance time.Duration
		tries   int
		want    int // admitted
	}{
		{0, 6, 5},                      // full bucket, then refused
		{100 * time.Millisecond, 2, 1}, // one token refilled
		{50 * time.Millisecond, 1, 0},  // half a token
		{50 * time.Millisecond, 1, 1},  // the other half
		{time.Hour, 10, 5},             // capped at capacity
	}
	for i, s := range steps {
		clk.Advance(s.advance)
		got := 0
		for range s.tries {
			if m.Admit() {
				got++
			}
		}
		if got != s.want {
			t.Errorf("step %d: admitted %d of %d, want %d", i, got, s.tries, s.want)
		}
	}
	st := m.Stats()
	if st.Admitted != 12 || st.Rejected != 8 {
		t.Errorf("stats = %+v, want 12 admitted, 8 rejected", st)
	}
}

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		name    string
		rate    float64
		refused int
		want    time.Duration
	}{
		{"nothing refused", 10, 0, time.Second},
		{"backlog under a second", 100, 50, time.Second},
		{"backlog rounds up", 10, 25, 3 * time.Second},
		{"capped at a minute", 10, 10000, time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			m := mustNew(t, Options{Clock: clk.Now, MaxTokens: 1, InitRate: tc.rate, MinRate: 1})
			m.Admit() // empty the bucket; no time passes, so no refill
			for range tc.refused {
				if m.Admit() {
					t.Fatal("admitted with an empty bucket")
				}
			}
			if got := m.RetryAfter(); got != tc.want {
				t.Errorf("RetryAfter = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestExpired(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		waited  time.Duration
		want    bool
	}{
		{"fresh", 0, 0, false},
		{"at the default timeout", 0, DefaultQueueTimeout, false},
		{"just past the default timeout", 0, DefaultQueueTimeout + time.Microsecond, true},
		{"past a short timeout", 50 * time.Millisecond, 51 * time.Millisecond, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			m := mustNew(t, Options{Clock: clk.Now, QueueTimeout: tc.timeout})
			received := clk.Now()
			clk.Advance(tc.waited)
			if got := m.Expired(received); got != tc.want {
				t.Errorf("Expired after %v = %v, want %v", tc.waited, got, tc.want)
			}
			wantCount := uint64(0)
			if tc.want {
				wantCount = 1
			}
			if got := m.Stats().Expired; got != wantCount {
				t.Errorf("Stats().Expired = %d, want %d", got, wantCount)
			}
		})
	}
}

func TestOptionsValidation(t *testing.T) {
	tests := []struct {
		opts Options
		want string
	}{
		{Options{TargetLatency: -1}, "target latency"},
		{Options{MaxTokens: -1}, "max tokens"},
		{Options{MinRate: -1}, "min token rate"},
		{Options{MinRate: math.NaN()}, "min token rate"},
		{Options{InitRate: math.Inf(1)}, "initial token rate"},
		{Options{MaxRate: -3}, "max token rate"},
		{Options{MaxRate: 5, MinRate: 10}, "below min token rate"},
		{Options{QueueTimeout: -time.Second}, "queue timeout"},
		{Options{AdjustEvery: -1}, "adjustment window"},
	}
	for _, tc := range tests {
		_, err := New(tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) error = %v, want one naming %q", tc.opts, err, tc.want)
		}
	}
	m, err := New(Options{})
	if err != nil {
		t.Fatalf("New(zero options): %v", err)
	}
	s := m.Stats()
	if s.Rate != DefaultInitRate || s.TargetLatency != DefaultTargetLatency || s.Tokens != DefaultMaxTokens {
		t.Errorf("defaults not applied: %+v", s)
	}
}
