package proxy

import (
	"sync"
	"sync/atomic"
	"time"
)

// hopPool runs branches on goroutines that outlive them. A branch to a
// function of this node runs that function's whole chain (S-CSCF,
// registrar, kv, consensus, bbolt), tens of KB of stack: a fresh goroutine
// starts with a few KB and copies its stack at every doubling, which cost
// about 3 % of a registration's CPU. A worker keeps its grown stack for
// the next branch; idle ones exit.
type hopPool struct {
	jobs chan func() // unbuffered: a send succeeds only to an idle worker
	stop <-chan struct{}
	idle time.Duration
	max  int32
	n    atomic.Int32
	wg   sync.WaitGroup // workers running
}

func newHopPool(stop <-chan struct{}, max int, idle time.Duration) *hopPool {
	return &hopPool{jobs: make(chan func()), stop: stop, idle: idle, max: int32(max)}
}

// Go runs fn on an idle worker, a new worker, or, with max workers busy, a
// goroutine of its own.
func (p *hopPool) Go(fn func()) {
	select {
	case p.jobs <- fn:
		return
	default:
	}
	if p.n.Add(1) > p.max {
		p.n.Add(-1)
		go fn()
		return
	}
	p.wg.Add(1)
	go p.work(fn)
}

func (p *hopPool) work(fn func()) {
	defer p.wg.Done()
	defer p.n.Add(-1)
	t := time.NewTimer(p.idle)
	defer t.Stop()
	for {
		fn()
		fn = nil // an idle worker must not keep the branch it ran
		t.Reset(p.idle)
		select {
		case fn = <-p.jobs:
		case <-t.C:
			return
		case <-p.stop:
			return
		}
	}
}
