package timerwheel

import (
	"context"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkSet measures Set through the single-node fake cluster (a bbolt
// write transaction per command, no fsync): the cost of the machine itself.
func BenchmarkSet(b *testing.B) {
	h := newHarness(b, 8)
	h.fc.onCommit = nil
	h.leadAll()
	tm := Timer{Interval: time.Hour, Callback: Callback{Type: "reg", Opaque: make([]byte, 200)}, Tags: []Tag{{"REG", 1}}}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	t0 := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := h.svc.Set(ctx, tm); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "sets/s")
}

// BenchmarkPops measures pops with an in-process callback: b.N timers come
// due at once; each is read, delivered and committed as a Pop.
func BenchmarkPops(b *testing.B) {
	h := newHarness(b, 8, func(o *Options) { o.Workers = 64 })
	var delivered atomic.Int64
	h.svc.Register("reg", func(context.Context, Pop) error {
		delivered.Add(1)
		return nil
	})
	n := int64(b.N)
	var committed atomic.Int64
	done := make(chan struct{})
	h.fc.onCommit = func(c commit) {
		if c.op == opPop && committed.Add(1) == n {
			close(done)
		}
	}
	tm := Timer{Interval: time.Second, Callback: Callback{Type: "reg", Opaque: make([]byte, 200)}}
	for range b.N {
		h.set(tm)
	}
	h.leadAll()
	b.ResetTimer()
	t0 := time.Now()
	h.clock.Advance(time.Second)
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("only %d of %d pops committed", committed.Load(), n)
	}
	b.ReportMetric(float64(n)/time.Since(t0).Seconds(), "pops/s")
	if delivered.Load() < n {
		b.Fatalf("delivered %d < %d", delivered.Load(), n)
	}
}

// BenchmarkWheel1M reports the heap cost of a leader holding one million
// pending timers (registration-like: due within the next hour) in its wheel,
// and the time to insert and to pop them all.
func BenchmarkWheel1M(b *testing.B) {
	const n = 1_000_000
	rng := rand.New(rand.NewPCG(5, 6))
	dues := make([]int64, n)
	for i := range dues {
		dues[i] = t0 + rng.Int64N(int64(time.Hour))
	}
	var perTimer, insertNs, popNs float64
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		w := newWheel(tick10ms, t0)
		s := time.Now()
		for i, d := range dues {
			w.Insert(uint64(i+1), d)
		}
		insertNs = float64(time.Since(s).Nanoseconds()) / n
		runtime.GC()
		runtime.ReadMemStats(&after)
		perTimer = float64(after.HeapAlloc-before.HeapAlloc) / n

		// Pop them all in 10 ms steps, as the loop would under load.
		s = time.Now()
		var out []wentry
		got := 0
		for now := t0; got < n; now += tick10ms {
			out = w.Advance(now, out[:0])
			got += len(out)
		}
		popNs = float64(time.Since(s).Nanoseconds()) / n
		runtime.KeepAlive(w)
	}
	b.ReportMetric(perTimer, "heapB/timer")
	b.ReportMetric(insertNs, "insert-ns/timer")
	b.ReportMetric(popNs, "advance-ns/timer")
	rec := record{spec: spec{kind: cbHTTP, rf: 2, interval: 3_600_000, repeat: 3_600_000,
		target: "http://sprout.site1.example.com:9888/timers", tags: []Tag{{"REG", 1}, {"BIND", 1}}},
		start: time.Now().UnixMilli(), seq: 1, gen: 123_456_789}
	b.ReportMetric(float64(len(rec.encode())), "recordB+opaque")
}
