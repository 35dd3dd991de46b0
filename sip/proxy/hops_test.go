package proxy

import (
	"sync"
	"testing"
	"time"
)

// TestHopPool: branches reuse idle workers, run on their own goroutine past
// the cap, and workers leave when the core stops.
func TestHopPool(t *testing.T) {
	stop := make(chan struct{})
	p := newHopPool(stop, 2, time.Hour)
	var wg sync.WaitGroup
	block := make(chan struct{})
	// Three blocking jobs: two workers and one goroutine beyond the cap.
	for range 3 {
		wg.Add(1)
		p.Go(func() { defer wg.Done(); <-block })
	}
	if n := p.n.Load(); n != 2 {
		t.Fatalf("%d workers for three blocking jobs with a cap of 2", n)
	}
	close(block)
	wg.Wait()
	// Later jobs go to idle workers or, while none is idle, to goroutines
	// of their own: never to more workers.
	for range 100 {
		done := make(chan int32, 1)
		p.Go(func() { done <- p.n.Load() })
		if n := <-done; n > 2 {
			t.Fatalf("%d workers, want at most 2", n)
		}
	}
	close(stop)
	p.wg.Wait() // workers leave when the core stops
}
