package consensus

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

// TestVerifyRounds: calls that arrive while a check is in flight share the
// next check, never the one in flight.
func TestVerifyRounds(t *testing.T) {
	var v verifyRounds
	var checks atomic.Int32
	release := make(chan error)
	check := func() error {
		checks.Add(1)
		return <-release
	}
	ctx := context.Background()
	first := make(chan error, 1)
	go func() { first <- v.do(ctx, check) }()
	// The first round is in flight once it has taken its caller.
	waitFor(t, "the first check", func() bool { return checks.Load() == 1 })

	const n = 10
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = v.do(ctx, check) })
	}
	waitFor(t, "callers queued behind the first check", func() bool {
		v.mu.Lock()
		defer v.mu.Unlock()
		return len(v.waiting) == n
	})
	lost := errors.New("not leader")
	release <- nil // the first round succeeds
	if err := <-first; err != nil {
		t.Fatalf("first caller: %v", err)
	}
	release <- lost // one round answers all who came later
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, lost) {
			t.Fatalf("caller %d: %v, want the second round's answer", i, err)
		}
	}
	if got := checks.Load(); got != 2 {
		t.Fatalf("%d checks for %d callers, want 2", got, n+1)
	}
	// A caller that gives up is not waited for.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := v.do(cancelled, check); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v", err)
	}
	release <- nil // its round still ends, answering no one
}
