package wal

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// appender stands in for a raft leader's log writer: it has at most one
// StoreLogs in flight for its group and folds every entry that arrived
// meanwhile into the next call, as raft's dispatchLogs does.
type appender struct {
	g        *Group
	data     []byte
	mu       sync.Mutex
	next     uint64
	pending  []chan error
	flushing bool
}

func (a *appender) write() error {
	done := make(chan error, 1)
	a.mu.Lock()
	a.pending = append(a.pending, done)
	if a.flushing {
		a.mu.Unlock()
		return <-done
	}
	a.flushing = true
	for len(a.pending) > 0 {
		batch := a.pending
		a.pending = nil
		logs := make([]*raft.Log, len(batch))
		now := time.Now()
		for i := range logs {
			logs[i] = &raft.Log{Index: a.next + uint64(i), Term: 1, Type: raft.LogCommand, Data: a.data, AppendedAt: now}
		}
		a.next += uint64(len(batch))
		a.mu.Unlock()
		err := a.g.StoreLogs(logs)
		for _, ch := range batch {
			ch <- err
		}
		a.mu.Lock()
	}
	a.flushing = false
	a.mu.Unlock()
	return <-done
}

// BenchmarkGroupCommit: 64 concurrent writers of 200-byte entries spread over
// 1 or 16 groups, fsync on. One op is one entry made durable.
func BenchmarkGroupCommit(b *testing.B) {
	const writers = 64
	for _, bc := range []struct {
		groups  int
		maxWait time.Duration
	}{
		{1, 0},
		{16, 0},
		{16, -1}, // adaptive wait off, for comparison
	} {
		wait := "adaptive"
		if bc.maxWait < 0 {
			wait = "off"
		}
		b.Run(fmt.Sprintf("groups=%d/wait=%s", bc.groups, wait), func(b *testing.B) {
			w, err := Open(b.TempDir(), Options{MaxWait: bc.maxWait})
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			apps := make([]*appender, bc.groups)
			for i := range apps {
				apps[i] = &appender{g: w.Group(fmt.Sprintf("shard-%02d", i)), next: 1, data: make([]byte, 200)}
			}
			var remaining atomic.Int64
			remaining.Store(int64(b.N))
			base := w.Stats()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for i := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					a := apps[i%bc.groups]
					for remaining.Add(-1) >= 0 {
						if err := a.write(); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			st := w.Stats()
			syncs := float64(st.Syncs - base.Syncs)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
			b.ReportMetric(syncs/float64(b.N), "syncs/op")
			b.ReportMetric(float64(st.Records-base.Records)/max(syncs, 1), "records/sync")
		})
	}
}
