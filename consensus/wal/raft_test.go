package wal

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// chainFSM folds every command into an order-sensitive hash, so two replicas
// agree only if they applied the same commands in the same order.
type chainFSM struct {
	mu      sync.Mutex
	n       uint64
	hash    uint64
	changed chan struct{} // closed and replaced on every change
}

func newChainFSM() *chainFSM { return &chainFSM{changed: make(chan struct{})} }

type chainState struct{ N, Hash uint64 }

func (f *chainFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := fnv.New64a()
	h.Write(binary.LittleEndian.AppendUint64(nil, f.hash))
	h.Write(l.Data)
	f.hash = h.Sum64()
	f.n++
	close(f.changed)
	f.changed = make(chan struct{})
	return nil
}

func (f *chainFSM) state() (chainState, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return chainState{f.n, f.hash}, f.changed
}

func (f *chainFSM) Snapshot() (raft.FSMSnapshot, error) {
	s, _ := f.state()
	return chainSnap(s), nil
}

func (f *chainFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var s chainState
	if err := json.NewDecoder(rc).Decode(&s); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n, f.hash = s.N, s.Hash
	close(f.changed)
	f.changed = make(chan struct{})
	return nil
}

type chainSnap chainState

func (s chainSnap) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(chainState(s)); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (chainSnap) Release() {}

// testCluster is three nodes, each with one WAL hosting every group.
type testCluster struct {
	t      *testing.T
	root   string
	groups []string
	nodes  [3]*testNode
	events chan raft.Observation
}

type testNode struct {
	wal   *WAL
	rafts map[string]*raft.Raft
	fsms  map[string]*chainFSM
	trans map[string]*raft.InmemTransport
}

func nodeID(i int) raft.ServerID { return raft.ServerID(fmt.Sprintf("n%d", i)) }

func nodeAddr(i int, g string) raft.ServerAddress {
	return raft.ServerAddress(fmt.Sprintf("n%d/%s", i, g))
}

func (c *testCluster) walOpts() Options {
	// Small segments so rotation and reclaim run under raft's own traffic.
	return Options{SegmentSize: 64 << 10}
}

func (c *testCluster) raftConfig(i int) *raft.Config {
	conf := raft.DefaultConfig()
	conf.LocalID = nodeID(i)
	conf.HeartbeatTimeout = 100 * time.Millisecond
	conf.ElectionTimeout = 100 * time.Millisecond
	conf.LeaderLeaseTimeout = 100 * time.Millisecond
	conf.CommitTimeout = 5 * time.Millisecond
	conf.SnapshotThreshold = 200
	conf.SnapshotInterval = 50 * time.Millisecond
	conf.TrailingLogs = 100
	conf.Logger = hclog.NewNullLogger()
	return conf
}

// startNode opens node i's WAL and starts its rafts; bootstrap only once.
func (c *testCluster) startNode(i int, bootstrap bool) {
	t := c.t
	n := &testNode{
		wal:   openT(t, filepath.Join(c.root, fmt.Sprint("node", i), "wal"), c.walOpts()),
		rafts: map[string]*raft.Raft{},
		fsms:  map[string]*chainFSM{},
		trans: map[string]*raft.InmemTransport{},
	}
	c.nodes[i] = n
	for _, g := range c.groups {
		_, tr := raft.NewInmemTransport(nodeAddr(i, g))
		n.trans[g] = tr
		// (Re)connect both directions with every other live node.
		for j, peer := range c.nodes {
			if j == i || peer == nil {
				continue
			}
			tr.Connect(nodeAddr(j, g), peer.trans[g])
			peer.trans[g].Connect(nodeAddr(i, g), tr)
		}
		snaps, err := raft.NewFileSnapshotStore(filepath.Join(c.root, fmt.Sprint("node", i), "snap", g), 2, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		store := n.wal.Group(g)
		conf := c.raftConfig(i)
		if bootstrap {
			var servers []raft.Server
			for j := range 3 {
				servers = append(servers, raft.Server{ID: nodeID(j), Address: nodeAddr(j, g)})
			}
			if err := raft.BootstrapCluster(conf, store, store, snaps, tr, raft.Configuration{Servers: servers}); err != nil {
				t.Fatalf("bootstrap node %d group %s: %v", i, g, err)
			}
		}
		fsm := newChainFSM()
		r, err := raft.NewRaft(conf, fsm, store, store, snaps, tr)
		if err != nil {
			t.Fatalf("node %d group %s: NewRaft: %v", i, g, err)
		}
		r.RegisterObserver(raft.NewObserver(c.events, false, nil))
		n.rafts[g], n.fsms[g] = r, fsm
	}
}

func (c *testCluster) stopNode(i int) {
	n := c.nodes[i]
	for g, r := range n.rafts {
		if err := r.Shutdown().Error(); err != nil {
			c.t.Errorf("shutdown node %d group %s: %v", i, g, err)
		}
		n.trans[g].Close()
	}
	for j, peer := range c.nodes {
		if j != i && peer != nil {
			for _, g := range c.groups {
				peer.trans[g].Disconnect(nodeAddr(i, g))
			}
		}
	}
	closeT(c.t, n.wal)
	c.nodes[i] = nil
}

// leader waits (on raft observations, not sleeps) for a leader of group g.
func (c *testCluster) leader(g string) (int, *raft.Raft) {
	timeout := time.After(30 * time.Second)
	for {
		for i, n := range c.nodes {
			if n != nil && n.rafts[g].State() == raft.Leader {
				return i, n.rafts[g]
			}
		}
		select {
		case <-c.events:
		case <-timeout:
			c.t.Fatalf("no leader for group %s", g)
		}
	}
}

// apply commits count commands to every group, pipelining within a group.
func (c *testCluster) apply(round string, count int) {
	var wg sync.WaitGroup
	for _, g := range c.groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done := 0; done < count; {
				_, r := c.leader(g)
				var futs []raft.ApplyFuture
				for k := done; k < count && k < done+64; k++ {
					futs = append(futs, r.Apply([]byte(fmt.Sprintf("%s/%s/%d", g, round, k)), 5*time.Second))
				}
				ok := 0
				for _, f := range futs {
					if f.Error() == nil {
						ok++
					}
				}
				// A leadership change may fail some; the rest are retried under
				// new payload numbers, and replicas are compared with each
				// other, not with a fixed count.
				done += max(ok, 1)
			}
		}()
	}
	wg.Wait()
}

// converge waits until every live replica of every group matches the leader.
func (c *testCluster) converge() {
	for _, g := range c.groups {
		li, r := c.leader(g)
		if err := r.Barrier(10 * time.Second).Error(); err != nil {
			c.t.Fatalf("barrier on group %s: %v", g, err)
		}
		want, _ := c.nodes[li].fsms[g].state()
		for i, n := range c.nodes {
			if n == nil {
				continue
			}
			timeout := time.After(30 * time.Second)
			for {
				got, changed := n.fsms[g].state()
				if got.N >= want.N {
					if got != want {
						c.t.Fatalf("group %s node %d diverged: %+v, leader %+v", g, i, got, want)
					}
					break
				}
				select {
				case <-changed:
				case <-timeout:
					c.t.Fatalf("group %s node %d stuck at %+v, leader at %+v", g, i, got, want)
				}
			}
		}
	}
}

func TestRaftClusterOnSharedWALs(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 12-raft cluster")
	}
	c := &testCluster{
		t:      t,
		root:   t.TempDir(),
		groups: []string{"meta", "shard-0", "shard-1", "shard-2"},
		events: make(chan raft.Observation, 1024),
	}
	for i := range 3 {
		c.startNode(i, true)
	}
	defer func() {
		for i, n := range c.nodes {
			if n != nil {
				c.stopNode(i)
			}
		}
	}()

	c.apply("a", 600)
	c.converge()

	// Take a follower of the first shard down (whichever node that is, it
	// hosts every group), move the cluster far past its log, bring it back
	// from its WAL and check every group catches up.
	li, _ := c.leader("shard-0")
	down := (li + 1) % 3
	before := c.nodes[down].wal.Groups()
	c.stopNode(down)
	c.apply("b", 600)

	c.startNode(down, false)
	if got := c.nodes[down].wal.Groups(); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Fatalf("restarted WAL groups %v, before %v", got, before)
	}
	c.apply("c", 300)
	c.converge()

	for i, n := range c.nodes {
		st := n.wal.Stats()
		t.Logf("node %d: %+v, %.1f records/sync, segments %v", i, st,
			float64(st.Records)/float64(max(st.Syncs, 1)), segFiles(t, filepath.Join(c.root, fmt.Sprint("node", i), "wal")))
		for _, g := range c.groups {
			s, _ := n.fsms[g].state()
			first, _ := n.wal.Group(g).FirstIndex()
			last, _ := n.wal.Group(g).LastIndex()
			t.Logf("  %s: applied %d commands, log %d..%d", g, s.N, first, last)
		}
	}
}
