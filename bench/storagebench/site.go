package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"stillwater/consensus"
	"stillwater/consensus/wal"
	"stillwater/kv"
	"stillwater/timerwheel"
)

// siteOptions vary a site from what the appliance builds, for diagnosis.
type siteOptions struct {
	null       bool          // nullMachine in place of kv
	walMaxWait time.Duration // 0: the WAL's default; negative: no wait
}

// walStores is consensus.OpenWAL's adapter, for a WAL opened with options
// of the benchmark's choosing.
type walStores struct{ *wal.WAL }

func (w walStores) Group(name string) consensus.GroupLog { return w.WAL.Group(name) }

// site is three nodes in this process on 127.0.0.1, .2 and .3, assembled as
// appliance.Start assembles one: a real WAL (fsync on) per node, kv and
// timerwheel as the shards' machines.
type site struct {
	dir   string
	nodes []*siteNode
}

type siteNode struct {
	id     string
	addr   string
	cons   *consensus.Node
	wal    *wal.WAL
	kv     *kv.Service
	timers *timerwheel.Service
}

// startSite forms a fresh site with the given shard count under dir. Node 1
// creates the site (and so first leads every shard); nodes 2 and 3 join. It
// returns once every shard has three replicas that agree on a leader.
func startSite(ctx context.Context, dir string, shards int, o siteOptions, log *slog.Logger) (*site, error) {
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	port := ports[0]
	key := make([]byte, 32)
	rand.Read(key)
	s := &site{dir: dir}
	addr := func(i int) string { return fmt.Sprintf("127.0.0.%d:%d", i, port) }
	start := func(i int) (*siteNode, error) {
		ndir := filepath.Join(dir, fmt.Sprintf("n%d", i))
		var logs consensus.LogStores
		var w *wal.WAL
		var err error
		if o.walMaxWait == 0 {
			logs, w, err = consensus.OpenWAL(filepath.Join(ndir, "wal"), log)
		} else {
			w, err = wal.Open(filepath.Join(ndir, "wal"), wal.Options{Logger: log, MaxWait: o.walMaxWait})
			logs = walStores{w}
		}
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
		n := &siteNode{id: cfg.NodeID, addr: cfg.Addr, wal: w}
		n.cons = consensus.New(cfg)
		n.kv = kv.New(n.cons, kv.Options{Logger: log})
		n.timers = timerwheel.New(n.cons, timerwheel.Options{
			Logger: log,
			View:   func(shard int, fn func(*bolt.Tx) error) error { return n.cons.View(shard, fn) },
		})
		if o.null {
			n.cons.SetMachines(nullMachine{}, n.timers)
		} else {
			n.cons.SetMachines(n.kv, n.timers)
		}
		if err := n.cons.Start(ctx); err != nil {
			n.timers.Close()
			n.kv.Close()
			w.Close()
			return nil, fmt.Errorf("node %d: %w", i, err)
		}
		return n, nil
	}
	n1, err := start(1)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.nodes = []*siteNode{n1, nil, nil}
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := 2; i <= 3; i++ {
		wg.Go(func() { s.nodes[i-1], errs[i-1] = start(i) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		s.close()
		return nil, err
	}
	if err := s.waitFormed(ctx, shards); err != nil {
		s.close()
		return nil, err
	}
	if err := s.waitBalanced(ctx, shards); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// waitBalanced waits until no node leads more than its share of the shards,
// as the site's leader balancer arranges a few transfers at a time: node 1
// created the site and first led every shard, and a measurement taken then
// would load one node with all the leaders' work.
func (s *site) waitBalanced(ctx context.Context, shards int) error {
	share := (shards + len(s.nodes) - 1) / len(s.nodes)
	for {
		leaders := s.leaders(ctx)
		counts := make([]int, len(s.nodes))
		for _, i := range leaders {
			counts[i]++
		}
		if len(leaders) == shards && slices.Max(counts) <= share {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("leaders did not balance (%s): %w", s.leaderCounts(context.Background()), ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitFormed waits until every node holds a replica of every shard and all
// three agree on its leader, which a follower learns only once the leader
// has added it as a voter.
func (s *site) waitFormed(ctx context.Context, shards int) error {
	for {
		if ok, _ := s.formed(ctx, shards); ok {
			return nil
		}
		select {
		case <-ctx.Done():
			_, why := s.formed(context.Background(), shards)
			return fmt.Errorf("site did not form: %s", why)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *site) formed(ctx context.Context, shards int) (bool, string) {
	why := formedWhy(s.nodes[0].cons.Status(ctx), shards, len(s.nodes))
	return why == "", why
}

// leaders maps each shard to the index in s.nodes of its leader.
func (s *site) leaders(ctx context.Context) map[int]int {
	out := map[int]int{}
	for _, ns := range s.nodes[0].cons.Status(ctx).Nodes {
		for _, g := range ns.Groups {
			var shard int
			if _, err := fmt.Sscanf(g.Group, "s%d", &shard); err != nil || g.State != "Leader" {
				continue
			}
			for i, n := range s.nodes {
				if n.id == ns.ID {
					out[shard] = i
				}
			}
		}
	}
	return out
}

// leaderCounts renders how many shards each node leads, e.g. "n1:16".
func (s *site) leaderCounts(ctx context.Context) string {
	counts := make([]int, len(s.nodes))
	for _, i := range s.leaders(ctx) {
		counts[i]++
	}
	var parts []string
	for i, n := range s.nodes {
		parts = append(parts, fmt.Sprintf("%s:%d", n.id, counts[i]))
	}
	return strings.Join(parts, " ")
}

func (s *site) walStats() []wal.Stats {
	out := make([]wal.Stats, len(s.nodes))
	for i, n := range s.nodes {
		out[i] = n.wal.Stats()
	}
	return out
}

func (s *site) close() {
	var wg sync.WaitGroup
	for _, n := range s.nodes {
		if n == nil {
			continue
		}
		wg.Go(func() {
			n.timers.Close()
			n.kv.Close()
			n.cons.Close()
			n.wal.Close()
		})
	}
	wg.Wait()
	os.RemoveAll(s.dir)
}

// freePorts returns n distinct ports free on 127.0.0.1, .2 and .3 alike.
func freePorts(n int) ([]int, error) {
	var held []net.Listener
	defer func() {
		for _, ln := range held {
			ln.Close()
		}
	}()
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		if tries > 100 {
			return nil, fmt.Errorf("no free port on 127.0.0.1-3")
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		held = append(held, ln)
		port := ln.Addr().(*net.TCPAddr).Port
		ok := true
		for _, ip := range []string{"127.0.0.2", "127.0.0.3"} {
			other, err := net.Listen("tcp", fmt.Sprintf("%s:%d", ip, port))
			if err != nil {
				ok = false
				break
			}
			held = append(held, other)
		}
		if ok {
			ports = append(ports, port)
		}
	}
	return ports, nil
}

// nullMachine stands in for kv with -apply null: it accepts every command
// without touching the shard's store, so a run measures Raft, the WAL, the
// transport and forwarding without the state machine.
type nullMachine struct{}

func (nullMachine) Kind() consensus.Kind                                 { return consensus.KindKV }
func (nullMachine) Open(int, *bolt.Tx) error                             { return nil }
func (nullMachine) Apply(int, *bolt.Tx, consensus.Entry) ([]byte, error) { return nil, nil }
func (nullMachine) Query(int, *bolt.Tx, []byte) ([]byte, error)          { return nil, nil }
func (nullMachine) Export(int, *bolt.Tx, func([]byte) error) error       { return nil }
