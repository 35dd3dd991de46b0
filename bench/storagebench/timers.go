package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"stillwater/timerwheel"
)

// timerResult holds the in-process timer figures.
type timerResult struct {
	shards  int
	leaders string
	creates loadResult
	pops    popResult
}

type popResult struct {
	n           int
	createdIn   time.Duration // time to create the n timers
	overran     bool          // creation ended after the due time
	first, last time.Duration // first and last delivery after the due time
	done        time.Duration // every pop committed, after the due time
	dups        int64         // deliveries beyond one per timer
}

func (p popResult) rate() float64 { return float64(p.n) / p.done.Seconds() }

const benchTimerType = "storagebench"

// runTimers measures Set with an in-process callback (64 concurrent by
// default, spread over the three nodes), then pops of timers that all come
// due at one moment.
func runTimers(ctx context.Context, o *options) (timerResult, error) {
	dir, err := os.MkdirTemp(o.dir, "timers-")
	if err != nil {
		return timerResult{}, err
	}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	s, err := startSite(sctx, dir, o.timerShards, siteOptions{walMaxWait: o.walMaxWait}, o.log)
	cancel()
	if err != nil {
		return timerResult{}, err
	}
	defer s.close()
	res := timerResult{shards: o.timerShards, leaders: s.leaderCounts(ctx)}

	var delivered, first, last atomic.Int64
	var due atomic.Int64 // Unix ns the pop batch is due at; 0 while creating
	for _, n := range s.nodes {
		n.timers.Register(benchTimerType, func(_ context.Context, p timerwheel.Pop) error {
			now := time.Now().UnixNano()
			if d := due.Load(); d != 0 && p.Due.UnixNano() >= d-int64(time.Second) {
				delivered.Add(1)
				first.CompareAndSwap(0, now)
				for {
					l := last.Load()
					if now <= l || last.CompareAndSwap(l, now) {
						break
					}
				}
			}
			return nil
		})
	}

	opaque := make([]byte, o.valueSize)
	long := timerwheel.Timer{Interval: time.Hour, Callback: timerwheel.Callback{Type: benchTimerType, Opaque: opaque}}
	set := func(ctx context.Context, w, _ int) error {
		_, err := s.nodes[w%len(s.nodes)].timers.Set(ctx, long)
		return err
	}
	mark := func(open bool) {
		if open {
			startProfile(o, "timer-creates")
		} else {
			stopProfile()
		}
	}
	res.creates = runLoad(ctx, o.writers, o.timerWarmup, o.timerDuration, set, mark)

	if o.pops <= 0 {
		return res, nil
	}
	// Every timer is due at the same instant, far enough ahead for all of
	// them to be created first at the rate just measured.
	rate := max(res.creates.rate(), 500)
	at := time.Now().Add(time.Duration(1.5*float64(o.pops)/rate*float64(time.Second)) + 2*time.Second)
	res.pops.n = o.pops
	var next atomic.Int64
	var wg sync.WaitGroup
	var setErrs atomic.Int64
	var firstErr atomic.Value
	t0 := time.Now()
	for w := range o.writers {
		wg.Go(func() {
			n := s.nodes[w%len(s.nodes)]
			for next.Add(1) <= int64(o.pops) {
				tm := timerwheel.Timer{Interval: time.Until(at), Callback: timerwheel.Callback{Type: benchTimerType, Opaque: opaque}}
				for {
					_, err := n.timers.Set(ctx, tm)
					if err == nil || ctx.Err() != nil {
						break
					}
					if setErrs.Add(1) == 1 {
						firstErr.Store(err.Error())
					}
					sleep(ctx, 10*time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	res.pops.createdIn = time.Since(t0)
	res.pops.overran = time.Now().After(at)
	if e := firstErr.Load(); e != nil {
		fmt.Fprintf(console, "  %d timer creates failed and were retried; first: %v\n", setErrs.Load(), e)
	}
	popped := func() uint64 {
		var n uint64
		for _, nd := range s.nodes {
			n += nd.timers.Counters().Popped
		}
		return n
	}
	base := popped()
	due.Store(at.UnixNano())
	sleep(ctx, time.Until(at))
	startProfile(o, "timer-pops")
	defer stopProfile()
	deadline := at.Add(5 * time.Minute)
	for popped()-base < uint64(o.pops) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return res, fmt.Errorf("only %d of %d pops committed 5 minutes after they were due", popped()-base, o.pops)
		}
		time.Sleep(5 * time.Millisecond)
	}
	res.pops.done = time.Since(at)
	res.pops.first = time.Duration(first.Load() - at.UnixNano())
	res.pops.last = time.Duration(last.Load() - at.UnixNano())
	res.pops.dups = delivered.Load() - int64(o.pops)
	return res, nil
}
