package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"stillwater/consensus"
	"stillwater/kv"
)

// captureCluster records the commands kv proposes and acknowledges them
// unapplied, so that benchmarks can apply real kv commands themselves.
type captureCluster struct{ cmds [][]byte }

func (c *captureCluster) Shards() int        { return 1 }
func (c *captureCluster) ShardOf([]byte) int { return 0 }
func (c *captureCluster) Site() string       { return "bench" }

func (c *captureCluster) Replicates(int) bool { return true }
func (c *captureCluster) Query(context.Context, int, consensus.Kind, []byte, consensus.Consistency) ([]byte, error) {
	return nil, nil
}
func (c *captureCluster) Propose(_ context.Context, _ int, _ consensus.Kind, cmd []byte) ([]byte, error) {
	c.cmds = append(c.cmds, append([]byte(nil), cmd...))
	return []byte{0, 1}, nil // ok, version 1
}

// BenchmarkShardStoreApply applies 200-byte kv.Put commands to a shard store
// opened as consensus opens it (bbolt, no fsync), committing a transaction
// every batch entries, as Raft hands a shard its committed entries. It shows
// what one transaction costs: the pages it rewrites and the write calls it
// makes, whatever the number of entries in it.
func BenchmarkShardStoreApply(b *testing.B) {
	const keys = 1 << 16
	capture := &captureCluster{}
	enc := kv.New(capture, kv.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	value := make([]byte, 200)
	rand.Read(value)
	for i := range keys {
		if _, err := enc.Put(context.Background(), fmt.Sprintf("bench/w%03d/%06d", i%64, i), value); err != nil {
			b.Fatal(err)
		}
	}
	for _, batch := range []int{1, 4, 16, 64, 512} {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) {
			// The options of consensus's shard stores (consensus/fsm.go).
			db, err := bolt.Open(filepath.Join(b.TempDir(), "s0.db"), 0o600, &bolt.Options{
				NoSync: true, NoFreelistSync: true, InitialMmapSize: 1 << 30, FreelistType: bolt.FreelistMapType,
			})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			svc := kv.New(nil, kv.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			defer svc.Close()
			if err := db.Update(func(tx *bolt.Tx) error { return svc.Open(0, tx) }); err != nil {
				b.Fatal(err)
			}
			var index uint64
			apply := func(n int) {
				err := db.Update(func(tx *bolt.Tx) error {
					for range n {
						index++
						e := consensus.Entry{Index: index, Time: time.Now().UnixNano(), Cmd: capture.cmds[index%keys]}
						if _, err := svc.Apply(0, tx, e); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			// Every key exists first, as in steady state.
			for range keys / 512 {
				apply(512)
			}
			io0 := readIO("")
			b.ResetTimer()
			for done := 0; done < b.N; done += batch {
				apply(min(batch, b.N-done))
			}
			b.StopTimer()
			io1 := readIO("")
			b.ReportMetric(float64(io1.wchar-io0.wchar)/float64(b.N), "written-B/entry")
			b.ReportMetric(float64(io1.syscw-io0.syscw)/float64(b.N), "writes/entry")
		})
	}
}

// BenchmarkSitePut runs kv.Put from 64 goroutines through a fresh in-process
// three-node site of 16 shards, writers spread over the nodes, and reports
// acknowledged writes per second. Use a fixed count, e.g. -benchtime 40000x,
// so that one site serves the whole run.
func BenchmarkSitePut(b *testing.B) {
	for _, shards := range []int{1, 16} {
		b.Run(fmt.Sprintf("shards=%d", shards), func(b *testing.B) {
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			// Raft logs to os.Stderr as it is when a group starts.
			if null, err := os.Open(os.DevNull); err == nil {
				stderr := os.Stderr
				os.Stderr = null
				defer func() { os.Stderr = stderr; null.Close() }()
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			s, err := startSite(ctx, b.TempDir(), shards, siteOptions{}, log)
			cancel()
			if err != nil {
				b.Fatal(err)
			}
			defer s.close()
			value := make([]byte, 200)
			rand.Read(value)
			var worker atomic.Int64
			b.SetParallelism((64 + testingProcs() - 1) / testingProcs())
			b.ResetTimer()
			t0 := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				w := int(worker.Add(1))
				n := s.nodes[w%len(s.nodes)]
				for i := 0; pb.Next(); i++ {
					if _, err := n.kv.Put(context.Background(), fmt.Sprintf("bench/w%03d/%06d", w, i%4096), value); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "writes/s")
		})
	}
}

func testingProcs() int { return runtime.GOMAXPROCS(0) }
