package overload

import (
	"context"
	"errors"
	"testing"
	"time"
)

// blocker is a Job.Run that signals when it starts and returns when released.
type blocker struct {
	started chan struct{}
	release chan struct{}
}

func newBlocker() *blocker {
	return &blocker{started: make(chan struct{}), release: make(chan struct{})}
}

func (b *blocker) run(context.Context) {
	close(b.started)
	<-b.release
}

func startGate(t *testing.T, m *Monitor, workers, queueLen int) (*Gate, context.CancelFunc, <-chan struct{}) {
	t.Helper()
	g, err := NewGate(m, workers, queueLen)
	if err != nil {
		t.Fatalf("NewGate: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		g.Run(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return g, cancel, done
}

func TestGateQueueTimeout(t *testing.T) {
	clk := newFakeClock()
	m := mustNew(t, Options{Clock: clk.Now, QueueTimeout: time.Second})
	g, _, _ := startGate(t, m, 1, 4)

	a := newBlocker()
	if err := g.Submit(Job{Received: clk.Now(), Run: a.run}); err != nil {
		t.Fatalf("Submit A: %v", err)
	}
	<-a.started
	refused := make(chan error, 1)
	ranB := make(chan struct{}, 1)
	if err := g.Submit(Job{
		Received: clk.Now(),
		Run:      func(context.Context) { ranB <- struct{}{} },
		Refuse:   func(err error) { refused <- err },
	}); err != nil {
		t.Fatalf("Submit B: %v", err)
	}
	clk.Advance(2 * time.Second) // B now waited past the timeout
	close(a.release)
	if err := <-refused; !errors.Is(err, ErrExpired) {
		t.Errorf("B refused with %v, want ErrExpired", err)
	}
	select {
	case <-ranB:
		t.Error("expired job B was run")
	default:
	}
	if s := m.Stats(); s.Expired != 1 || s.Admitted != 2 {
		t.Errorf("stats = %+v, want 2 admitted, 1 expired", s)
	}
}

func TestGateRefusals(t *testing.T) {
	clk := newFakeClock()
	m := mustNew(t, Options{Clock: clk.Now, MaxTokens: 4, MinRate: 1, InitRate: 1})
	g, _, _ := startGate(t, m, 1, 2)
	noop := func(context.Context) {}

	a := newBlocker()
	if err := g.Submit(Job{Received: clk.Now(), Run: a.run}); err != nil {
		t.Fatalf("Submit A: %v", err)
	}
	<-a.started
	want := []error{nil, nil, ErrQueueFull, ErrOverloaded}
	for i, w := range want {
		if err := g.Submit(Job{Received: clk.Now(), Run: noop}); !errors.Is(err, w) {
			t.Errorf("submit %d: err = %v, want %v", i, err, w)
		}
	}
	if got := g.QueueLen(); got != 2 {
		t.Errorf("QueueLen = %d, want 2", got)
	}
	if err := g.Submit(Job{Received: clk.Now()}); err == nil {
		t.Error("Submit without Run accepted")
	}
	close(a.release)
}

func TestGateStop(t *testing.T) {
	clk := newFakeClock()
	m := mustNew(t, Options{Clock: clk.Now})
	g, cancel, done := startGate(t, m, 1, 4)

	a := newBlocker()
	if err := g.Submit(Job{Received: clk.Now(), Run: a.run}); err != nil {
		t.Fatalf("Submit A: %v", err)
	}
	<-a.started
	refused := make(chan error, 2)
	for range 2 {
		if err := g.Submit(Job{
			Received: clk.Now(),
			Run:      func(context.Context) { t.Error("queued job ran after stop") },
			Refuse:   func(err error) { refused <- err },
		}); err != nil {
			t.Fatalf("Submit: %v", err)
		}
	}
	cancel()
	close(a.release)
	<-done
	for range 2 {
		if err := <-refused; !errors.Is(err, ErrStopped) {
			t.Errorf("queued job refused with %v, want ErrStopped", err)
		}
	}
	if err := g.Submit(Job{Received: clk.Now(), Run: a.run}); !errors.Is(err, ErrStopped) {
		t.Errorf("Submit after stop = %v, want ErrStopped", err)
	}
}

func TestGateReportsLatency(t *testing.T) {
	clk := newFakeClock()
	m := mustNew(t, Options{Clock: clk.Now, AdjustEvery: 1})
	g, _, _ := startGate(t, m, 1, 1)
	ran := make(chan struct{})
	received := clk.Now()
	clk.Advance(3 * time.Millisecond) // time queued before the worker runs it
	if err := g.Submit(Job{Received: received, Run: func(context.Context) {
		clk.Advance(2 * time.Millisecond)
		close(ran)
	}}); err != nil {
		t.Fatalf("Submit: %v", err)
	}
	<-ran
	// The single worker reports A's latency before it runs the probe.
	got := make(chan time.Duration, 1)
	if err := g.Submit(Job{Received: clk.Now(), Run: func(context.Context) {
		got <- m.Stats().SmoothedLatency
	}}); err != nil {
		t.Fatalf("Submit probe: %v", err)
	}
	if l := <-got; l != 5*time.Millisecond {
		t.Errorf("latency reported = %v, want 5ms (queue time included)", l)
	}
}

func TestNewGateValidation(t *testing.T) {
	m := mustNew(t, Options{})
	tests := []struct {
		m        *Monitor
		workers  int
		queueLen int
	}{
		{nil, 1, 1},
		{m, 0, 1},
		{m, 1, 0},
	}
	for _, tc := range tests {
		if _, err := NewGate(tc.m, tc.workers, tc.queueLen); err == nil {
			t.Errorf("NewGate(%v, %d, %d) accepted", tc.m != nil, tc.workers, tc.queueLen)
		}
	}
}
