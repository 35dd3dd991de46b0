// Package kvtest starts a real single-node site (consensus with its
// write-ahead log, kv and timerwheel) in a test's temporary directory, for
// packages above the storage that want real replicated records in their
// tests.
package kvtest

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"stillwater/consensus"
	"stillwater/kv"
	"stillwater/timerwheel"
)

// Site is a running single-node site.
type Site struct {
	Node   *consensus.Node
	KV     *kv.Service
	Timers *timerwheel.Service
}

// New starts a single-node site with the given number of shards (0 means 4)
// and stops it when the test ends.
func New(t testing.TB, shards int) *Site {
	t.Helper()
	return NewWith(t, Options{Shards: shards})
}

// Options shape a test site.
type Options struct {
	// Shards is the number of data shards; 0 means 4.
	Shards int
	// TimerClock, if set, drives the timer service (a timerwheel.FakeClock
	// lets a test decide when timers pop).
	TimerClock timerwheel.Clock
	// TimerWorkers bounds concurrent timer deliveries; 0 is the default.
	TimerWorkers int
}

// NewWith starts a single-node site shaped by o and stops it when the test
// ends.
func NewWith(t testing.TB, o Options) *Site {
	t.Helper()
	shards := o.Shards
	if shards == 0 {
		shards = 4
	}
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	logs, w, err := consensus.OpenWAL(filepath.Join(dir, "wal"), log)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	key := make([]byte, 32)
	rand.Read(key)
	n := consensus.New(consensus.Config{
		NodeID: "n1", Addr: addr, Site: "test", SiteKey: key, DataDir: dir,
		Bootstrap: true, Shards: shards, Logs: logs, Logger: log,
	})
	s := &Site{Node: n}
	s.KV = kv.New(n, kv.Options{Logger: log})
	s.Timers = timerwheel.New(n, timerwheel.Options{Logger: log, Clock: o.TimerClock, Workers: o.TimerWorkers,
		View: func(shard int, fn func(*bolt.Tx) error) error { return n.View(shard, fn) }})
	n.SetMachines(s.KV, s.Timers)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Timers.Close()
		s.KV.Close()
		n.Close()
		w.Close()
	})
	return s
}
