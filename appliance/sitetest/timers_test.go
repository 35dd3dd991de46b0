package sitetest

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

// early allows for the timer service keeping start times in milliseconds.
const early = 10 * time.Millisecond

// TestTimers checks the Chronos API of a three-node site: repeating timers,
// redelivery after a failed callback, and pops on time (interval + 1 s)
// across the kill -9 of a shard leader.
func TestTimers(t *testing.T) {
	s := newSite(t, siteOpts{nodes: 3})
	cb := newCallbacks(t)
	a := s.node(1)

	t.Run("repeat", func(t *testing.T) {
		call := time.Now()
		if _, err := a.createTimer(timerJSON(1, 3, cb.url(), "repeat", "REPEAT")); err != nil {
			t.Fatal(err)
		}
		ret := time.Now()
		if !cb.wait(ret.Add(3*time.Second+time.Second+2*time.Second), func(all []pop) bool { return delivered(all)["repeat"] >= 3 }) {
			t.Fatalf("interval 1, repeat-for 3: want 3 pops, got %+v", cb.of("repeat"))
		}
		// Once the timer is gone from the statistics it can pop no more.
		waitFor(t, 10*time.Second, "the finished timer to leave the statistics", func() error {
			st, err := a.timerStats()
			if err != nil {
				return err
			}
			if st["REPEAT"] != 0 {
				return fmt.Errorf("stats %v", st)
			}
			return nil
		})
		pops := cb.of("repeat")
		if len(pops) != 3 {
			t.Fatalf("want exactly 3 pops, got %+v", pops)
		}
		for k, p := range pops {
			seq := k + 1
			if p.seq != seq {
				t.Errorf("pop %d has sequence number %d", seq, p.seq)
			}
			due := time.Duration(seq) * time.Second
			if p.at.Before(call.Add(due - early)) {
				t.Errorf("pop %d came %v after creation, before it was due", seq, p.at.Sub(call))
			}
			if p.at.After(ret.Add(due + time.Second)) {
				t.Errorf("pop %d came %v after creation, later than due + 1 s", seq, p.at.Sub(ret))
			}
		}
	})

	t.Run("redelivery", func(t *testing.T) {
		cb.failFirst("retry", 1)
		if _, err := a.createTimer(timerJSON(1, 0, cb.url(), "retry", "")); err != nil {
			t.Fatal(err)
		}
		if !cb.wait(time.Now().Add(10*time.Second), func(all []pop) bool { return delivered(all)["retry"] >= 1 }) {
			t.Fatalf("a callback answered 500 was not delivered again: %+v", cb.of("retry"))
		}
		pops := cb.of("retry")
		if len(pops) != 2 || pops[0].code != http.StatusInternalServerError || pops[1].code != http.StatusOK {
			t.Fatalf("want one failed then one delivered callback, got %+v", pops)
		}
		for _, p := range pops {
			if p.seq != 1 {
				t.Errorf("redelivered pop has sequence number %d, want 1", p.seq)
			}
		}
	})

	t.Run("failover", func(t *testing.T) {
		timerFailover(t, s, cb)
	})
}

// timerFailover creates many timers through one node, kills the node leading
// most of their shards 1.5 s later, and checks that every timer pops within
// its interval + 1 s.
func timerFailover(t *testing.T, s *site, cb *callbacks) {
	const (
		count    = 64 // enough that every shard has timers
		interval = 4 * time.Second
		workers  = 8
	)
	type created struct {
		id        string
		call, ret time.Time
	}
	timers := make([]created, count)
	errs := make([]error, count)
	begin := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < count; i += workers {
				call := time.Now()
				id, err := s.node(1).createTimer(timerJSON(int(interval/time.Second), 0, cb.url(), fmt.Sprintf("failover-%d", i), "FAILOVER"))
				timers[i], errs[i] = created{id: id, call: call, ret: time.Now()}, err
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	st, err := s.node(1).status()
	if err != nil {
		t.Fatal(err)
	}
	perShard := map[int]int{}
	for _, c := range timers {
		perShard[timerShard(t, c.id, st.Meta.Shards)]++
	}
	leaders := shardLeaders(st)
	held := map[string]int{} // timers in the shards each node leads
	for sh, n := range perShard {
		held[leaders[sh]] += n
	}
	victim, most := 0, 0
	for i := 1; i <= 3; i++ {
		if held[nodeID(i)] > most {
			victim, most = i, held[nodeID(i)]
		}
	}
	if victim == 0 {
		t.Fatalf("no node leads a shard holding timers: leaders %v, timers per shard %v", leaders, perShard)
	}
	// The kill lands at a chosen moment of the timers' lives (not a wait
	// for a condition): well before they are due, late enough to matter.
	<-time.After(time.Until(begin.Add(1500 * time.Millisecond)))
	s.node(victim).kill()
	t.Logf("killed node %d at %v: it led shards %v, holding %d of the %d timers",
		victim, time.Since(begin).Round(time.Millisecond), ledBy(st, nodeID(victim)), most, count)

	var last time.Time
	for _, c := range timers {
		if c.ret.After(last) {
			last = c.ret
		}
	}
	cb.wait(last.Add(interval+time.Second+3*time.Second), func(all []pop) bool {
		d := delivered(all)
		for i := range count {
			if d[fmt.Sprintf("failover-%d", i)] == 0 {
				return false
			}
		}
		return true
	})
	late := 0
	for i, c := range timers {
		var first *pop
		pops := cb.of(fmt.Sprintf("failover-%d", i))
		for k := range pops {
			if pops[k].code == http.StatusOK {
				first = &pops[k]
				break
			}
		}
		switch {
		case first == nil:
			t.Errorf("timer %d (%s, shard %d) never popped", i, c.id, timerShard(t, c.id, st.Meta.Shards))
		case first.at.Before(c.call.Add(interval - early)):
			t.Errorf("timer %d popped %v after creation, before it was due", i, first.at.Sub(c.call))
		case first.at.After(c.ret.Add(interval + time.Second)):
			late++
			t.Errorf("timer %d (shard %d, led by %s before the kill) popped %v after creation, later than interval + 1 s",
				i, timerShard(t, c.id, st.Meta.Shards), leaders[timerShard(t, c.id, st.Meta.Shards)], first.at.Sub(c.ret).Round(time.Millisecond))
		}
		if first != nil && first.seq != 1 {
			t.Errorf("timer %d popped with sequence number %d", i, first.seq)
		}
		if len(pops) > 1 {
			t.Logf("timer %d delivered %d times (at least once is the promise)", i, len(pops))
		}
	}
	survivor := s.node(1)
	if victim == 1 {
		survivor = s.node(2)
	}
	waitFor(t, 15*time.Second, "the popped timers to leave the statistics", func() error {
		st, err := survivor.timerStats()
		if err != nil {
			return err
		}
		if st["FAILOVER"] != 0 {
			return fmt.Errorf("stats %v", st)
		}
		return nil
	})
}
