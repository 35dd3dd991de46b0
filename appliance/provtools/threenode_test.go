package provtools

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"stillwater/consensus"
	"stillwater/diameter/homestead"
	"stillwater/diameter/hss"
	"stillwater/kv"
	"stillwater/timerwheel"
)

// threeNodes starts a site of three nodes in this process on 127.0.0.1, .2
// and .3 (each with its fsynced write-ahead log, kv and timers, as a node
// assembles them) with the appliance's default 16 shards, and returns node
// 1's kv once every shard has three replicas agreeing on a leader.
func threeNodes(tb testing.TB) (*kv.Service, *consensus.Node) {
	tb.Helper()
	const shards = 16
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	key := make([]byte, 32)
	rand.Read(key)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := tb.TempDir()
	addr := func(i int) string { return fmt.Sprintf("127.0.0.%d:%d", i, port) }
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	type node struct {
		cons   *consensus.Node
		kv     *kv.Service
		timers *timerwheel.Service
		wal    io.Closer
	}
	start := func(i int) (*node, error) {
		ndir := filepath.Join(dir, fmt.Sprintf("n%d", i))
		logs, w, err := consensus.OpenWAL(filepath.Join(ndir, "wal"), log)
		if err != nil {
			return nil, err
		}
		cfg := consensus.Config{
			NodeID: fmt.Sprintf("n%d", i), Addr: addr(i), Site: "bench", SiteKey: key,
			DataDir: ndir, Bootstrap: i == 1, Shards: shards, Logs: logs, Logger: log,
		}
		if i != 1 {
			cfg.Seeds = []string{addr(1)}
		}
		n := &node{cons: consensus.New(cfg), wal: w}
		n.kv = kv.New(n.cons, kv.Options{Logger: log})
		n.timers = timerwheel.New(n.cons, timerwheel.Options{Logger: log,
			View: func(shard int, fn func(*bolt.Tx) error) error { return n.cons.View(shard, fn) }})
		n.cons.SetMachines(n.kv, n.timers)
		if err := n.cons.Start(ctx); err != nil {
			return nil, fmt.Errorf("node %d: %w", i, err)
		}
		tb.Cleanup(func() { n.timers.Close(); n.kv.Close(); n.cons.Close(); n.wal.Close() })
		return n, nil
	}
	n1, err := start(1)
	if err != nil {
		tb.Skipf("cannot start a three-node site here: %v", err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := 2; i <= 3; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); _, errs[i-2] = start(i) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			tb.Skipf("cannot start a three-node site here: %v", err)
		}
	}
	for {
		if why := formed(n1.cons.Status(ctx), shards); why == "" {
			break
		} else if ctx.Err() != nil {
			tb.Fatalf("site did not form: %s", why)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return n1.kv, n1.cons
}

func formed(st consensus.SiteStatus, shards int) string {
	if st.Meta == nil || len(st.Meta.Members) != 3 || len(st.Nodes) != 3 {
		return "members still joining"
	}
	leaders := map[string]string{}
	for _, ns := range st.Nodes {
		if ns.Error != "" {
			return ns.ID + ": " + ns.Error
		}
		seen := 0
		for _, g := range ns.Groups {
			if !strings.HasPrefix(g.Group, "s") {
				continue
			}
			seen++
			if l, ok := leaders[g.Group]; g.Leader == "" || ok && l != g.Leader {
				return g.Group + ": no agreed leader"
			}
			leaders[g.Group] = g.Leader
		}
		if seen != shards {
			return fmt.Sprintf("%s holds %d of %d shards", ns.ID, seen, shards)
		}
	}
	return ""
}

// BenchmarkImportThreeNodes is BenchmarkImport against a three-node
// loopback site: every batch command is replicated and fsynced on a
// majority before it is acknowledged.
func BenchmarkImportThreeNodes(b *testing.B) {
	kvs, cons := threeNodes(b)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store := hss.New(kvs, hss.Options{
		HomeDomain: "example.com",
		ShardOf:    func(k string) int { return cons.ShardOf([]byte(k)) },
		Simservs:   nopSimservs{},
		Logger:     log,
	})
	srv := httptest.NewServer(homestead.NewProvHandler(store, homestead.WithLogger(log)))
	b.Cleanup(srv.Close)
	client := NewClient(srv.URL)
	dir := b.TempDir()
	const per = 20000
	total := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		file := writeCSV(b, dir, per, i*per, true)
		b.StartTimer()
		var out, errOut bytes.Buffer
		if err := Users(context.Background(), []string{"import", file, "-q"}, &out, &errOut, client); err != nil {
			b.Fatalf("%v: %s", err, errOut.String())
		}
		total += per
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "subscribers/s")
}
