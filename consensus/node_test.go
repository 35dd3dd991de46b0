package consensus

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// regMachine is a minimal machine for tests: "key=value" commands set a
// register, queries read one.
type regMachine struct{}

func (regMachine) Kind() Kind { return KindKV }
func (regMachine) Open(_ int, tx *bolt.Tx) error {
	_, err := tx.CreateBucketIfNotExists([]byte("reg"))
	return err
}
func (regMachine) Apply(_ int, tx *bolt.Tx, e Entry) ([]byte, error) {
	k, v, _ := strings.Cut(string(e.Cmd), "=")
	return []byte(fmt.Sprint(e.Index)), tx.Bucket([]byte("reg")).Put([]byte(k), []byte(v))
}
func (regMachine) Query(_ int, tx *bolt.Tx, q []byte) ([]byte, error) {
	v := tx.Bucket([]byte("reg")).Get(q)
	if v == nil {
		return nil, fmt.Errorf("no key %q", q)
	}
	return append([]byte(nil), v...), nil
}
func (regMachine) Export(_ int, tx *bolt.Tx, emit func([]byte) error) error {
	return tx.Bucket([]byte("reg")).ForEach(func(k, v []byte) error { return emit([]byte(string(k) + "=" + string(v))) })
}

// memLogs keeps group logs in memory: enough for tests that do not restart.
type memLogs struct {
	mu sync.Mutex
	g  map[string]*raft.InmemStore
}

func (m *memLogs) Group(name string) GroupLog {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.g == nil {
		m.g = map[string]*raft.InmemStore{}
	}
	if m.g[name] == nil {
		m.g[name] = raft.NewInmemStore()
	}
	return m.g[name]
}
func (m *memLogs) Groups() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for k := range m.g {
		out = append(out, k)
	}
	return out
}
func (m *memLogs) DropGroup(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.g, name)
	return nil
}
func (m *memLogs) Close() error { return nil }

var _ io.Closer = (*memLogs)(nil)

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

type testSite struct {
	t     *testing.T
	key   []byte
	port  int
	nodes map[int]*Node
}

func newTestSite(t *testing.T) *testSite {
	key := make([]byte, 32)
	rand.Read(key)
	return &testSite{t: t, key: key, port: freePort(t), nodes: map[int]*Node{}}
}

func (s *testSite) addr(i int) string { return fmt.Sprintf("127.0.0.%d:%d", i, s.port) }

func (s *testSite) start(i int, key []byte) (*Node, error) {
	cfg := Config{
		NodeID: fmt.Sprintf("n%d", i), Addr: s.addr(i), Site: "test", SiteKey: key,
		DataDir: s.t.TempDir(), Bootstrap: i == 1, Shards: 4, Machines: []Machine{regMachine{}},
		Logs: &memLogs{}, FaultInjection: true,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if i != 1 {
		cfg.Seeds = []string{s.addr(1)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n, err := Start(ctx, cfg)
	if err == nil {
		s.nodes[i] = n
		s.t.Cleanup(func() { n.Close() })
	}
	return n, err
}

// waitFor polls a condition that converges through the cluster's own events.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func votersEverywhere(n *Node, want int) bool {
	for s := 0; s < n.Shards(); s++ {
		si, err := n.shardInfoRemote(context.Background(), s)
		if err != nil || len(si.Voters) != want {
			return false
		}
	}
	return true
}

func TestSiteFormsReplicatesAndSurvivesLeaderLoss(t *testing.T) {
	s := newTestSite(t)
	for i := 1; i <= 3; i++ {
		if _, err := s.start(i, s.key); err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
	n1 := s.nodes[1]
	waitFor(t, "three voters in every shard", func() bool { return votersEverywhere(n1, 3) })

	ctx := context.Background()
	for i := range 20 {
		node := s.nodes[1+i%3]
		key := fmt.Sprintf("k%d", i)
		if _, err := node.Propose(ctx, node.ShardOf([]byte(key)), KindKV, []byte(key+"=v")); err != nil {
			t.Fatalf("propose via %s: %v", node.ID(), err)
		}
	}
	// Kill the leader of shard 0 and write through it from a survivor.
	si, err := n1.shardInfoRemote(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var victim int
	fmt.Sscanf(si.Leader, "n%d", &victim)
	s.nodes[victim].Close()
	survivor := s.nodes[1+victim%3]
	// A write in flight to the dead leader may be indeterminate; this one is
	// idempotent, so it is sent again.
	for {
		_, err := survivor.Propose(ctx, 0, KindKV, []byte("after=1"))
		if err == nil {
			break
		}
		if !errors.Is(err, ErrIndeterminate) {
			t.Fatalf("propose after leader loss: %v", err)
		}
	}
	for i := range 20 {
		key := fmt.Sprintf("k%d", i)
		v, err := survivor.Query(ctx, survivor.ShardOf([]byte(key)), KindKV, []byte(key), Linearizable)
		if err != nil || string(v) != "v" {
			t.Fatalf("read %s: %q %v", key, v, err)
		}
	}
}

func TestNodeWithoutSiteKeyIsRefused(t *testing.T) {
	s := newTestSite(t)
	if _, err := s.start(1, s.key); err != nil {
		t.Fatal(err)
	}
	other := make([]byte, 32)
	rand.Read(other)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	cfg := Config{NodeID: "n2", Addr: s.addr(2), Site: "test", SiteKey: other, DataDir: t.TempDir(),
		Seeds: []string{s.addr(1)}, Shards: 4, Machines: []Machine{regMachine{}}, Logs: &memLogs{},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if n, err := Start(ctx, cfg); err == nil {
		n.Close()
		t.Fatal("a node with the wrong site key joined the site")
	}
	if got := len(s.nodes[1].Meta().Members); got != 1 {
		t.Fatalf("members = %d, want 1", got)
	}
}

func TestPartitionedNodeStopsAcknowledgingAndCatchesUp(t *testing.T) {
	s := newTestSite(t)
	for i := 1; i <= 3; i++ {
		if _, err := s.start(i, s.key); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "three voters in every shard", func() bool { return votersEverywhere(s.nodes[1], 3) })
	cut := s.nodes[3]
	ctx := context.Background()
	cut.Partition([]string{"127.0.0.1", "127.0.0.2"})
	s.nodes[1].Partition([]string{"127.0.0.3"})
	s.nodes[2].Partition([]string{"127.0.0.3"})

	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	_, err := cut.Propose(short, 1, KindKV, []byte("x=cut"))
	cancel()
	if err == nil {
		t.Fatal("a node cut off from the majority acknowledged a write")
	}
	if _, err := s.nodes[1].Propose(ctx, 1, KindKV, []byte("x=majority")); err != nil {
		t.Fatalf("majority write: %v", err)
	}
	for _, n := range s.nodes {
		n.Partition(nil)
	}
	waitFor(t, "cut node to catch up", func() bool {
		v, err := cut.Query(ctx, 1, KindKV, []byte("x"), Local)
		return err == nil && string(v) == "majority"
	})
}

func TestFourthNodeJoinsAndDecommissions(t *testing.T) {
	s := newTestSite(t)
	for i := 1; i <= 3; i++ {
		if _, err := s.start(i, s.key); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	for i := range 40 {
		key := fmt.Sprintf("k%d", i)
		if _, err := s.nodes[1].Propose(ctx, s.nodes[1].ShardOf([]byte(key)), KindKV, []byte(key+"=v")); err != nil {
			t.Fatal(err)
		}
	}
	// Compact every replica's log so that the new node can only catch up
	// through a snapshot (the FSM's bbolt copy).
	for i := 1; i <= 3; i++ {
		s.nodes[i].mu.RLock()
		var groups []*group
		for _, g := range s.nodes[i].shards {
			groups = append(groups, g)
		}
		s.nodes[i].mu.RUnlock()
		for _, g := range groups {
			rc := g.raft.ReloadableConfig()
			rc.TrailingLogs = 1
			if err := g.raft.ReloadConfig(rc); err != nil {
				t.Fatal(err)
			}
			if err := g.raft.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
				t.Fatalf("snapshot: %v", err)
			}
		}
	}
	n4, err := s.start(4, s.key)
	if err != nil {
		t.Fatal(err)
	}
	want := placeShards(4, n4.Meta().Members)
	waitFor(t, "placement on four nodes", func() bool {
		for sh := range 4 {
			si, err := n4.shardInfoRemote(ctx, sh)
			if err != nil || strings.Join(si.Voters, ",") == "" || len(si.Voters) != 3 {
				return false
			}
			for _, id := range want[sh] {
				if !strings.Contains(strings.Join(si.Voters, ","), id) {
					return false
				}
			}
		}
		return true
	})
	for i := range 40 {
		key := fmt.Sprintf("k%d", i)
		v, err := n4.Query(ctx, n4.ShardOf([]byte(key)), KindKV, []byte(key), Linearizable)
		if err != nil || string(v) != "v" {
			t.Fatalf("read %s via n4: %q %v", key, v, err)
		}
	}
	dctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	if err := n4.Decommission(dctx); err != nil {
		t.Fatal(err)
	}
	n4.Close()
	waitFor(t, "three voters in every shard again", func() bool { return votersEverywhere(s.nodes[1], 3) })
	for i := range 40 {
		key := fmt.Sprintf("k%d", i)
		v, err := s.nodes[2].Query(ctx, s.nodes[2].ShardOf([]byte(key)), KindKV, []byte(key), Linearizable)
		if err != nil || string(v) != "v" {
			t.Fatalf("read %s after decommission: %q %v", key, v, err)
		}
	}
}
