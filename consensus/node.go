package consensus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// Config is what a node needs to start.
type Config struct {
	NodeID  string
	Addr    string // consensus host:port: listened on, dialled from, advertised
	Site    string
	SiteKey []byte
	DataDir string
	// Seeds are consensus addresses of members to join through when this
	// node has no state yet.
	Seeds []string
	// Bootstrap creates a new site when this node has no state.
	Bootstrap bool
	Shards    int
	Machines  []Machine
	Logs      LogStores
	Logger    *slog.Logger
	// FaultInjection enables Partition, for fault tests.
	FaultInjection bool
}

// identity is written once a node has created or joined a site; a node with
// an identity restarts into its site instead of joining again.
type identity struct {
	Site   string `json:"site"`
	NodeID string `json:"node_id"`
	Addr   string `json:"addr"`
	Shards int    `json:"shards"`
}

// Node is one member of a site: its replicas of the meta group and of the
// data shards placed on it, and the node-to-node API on the consensus port.
type Node struct {
	cfg    Config
	log    *slog.Logger
	trans  *transport
	deps   groupDeps
	meta   *metaFSM
	client *http.Client
	srv    *http.Server
	id     identity

	mu     sync.RWMutex
	metaG  *group
	shards map[int]*group

	changed chan struct{}
	watchMu sync.Mutex
	watch   chan struct{} // closed and replaced on every meta change
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closing sync.Once
	created bool // this start created the site

	reconciling sync.Mutex // one placement round at a time
	ids         *reqIDs
	serving     atomic.Bool // the node's groups exist: peers' requests are served
}

// Created reports whether this node created its site when it started (as
// opposed to restarting or joining).
func (n *Node) Created() bool { return n.created }

// MetaLinearizable returns the meta state as the meta leader has it once
// everything it had accepted is applied: what an operator just uploaded
// through any node is in it.
func (n *Node) MetaLinearizable(ctx context.Context) (*MetaState, error) {
	if n.metaG.isLeader() {
		if err := n.metaG.raft.Barrier(5 * time.Second).Error(); err != nil {
			return nil, n.classify(err)
		}
		return n.meta.get(), nil
	}
	leader := n.metaG.leaderAddr()
	if leader == "" {
		return nil, fmt.Errorf("%w: meta group has no leader", ErrNoQuorum)
	}
	b, err := n.call(ctx, leader, "/v1/metastate", nil)
	if err != nil {
		return nil, err
	}
	var st MetaState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("consensus: meta state from %s: %w", leader, err)
	}
	return &st, nil
}

// New prepares a node; Start brings it into its site. Machines may hold the
// node as their Cluster from the start, but may use it only once Start has
// returned.
func New(cfg Config) *Node {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Shards <= 0 {
		cfg.Shards = 16
	}
	n := &Node{cfg: cfg, log: cfg.Logger, shards: map[int]*group{}, changed: make(chan struct{}, 1), watch: make(chan struct{}), ids: newReqIDs()}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.meta = newMetaFSM(n.kick)
	return n
}

// SetMachines sets the state machines hosted in every shard, for callers
// that need the node (as their Cluster) to build them. Call it before Start.
func (n *Node) SetMachines(ms ...Machine) {
	n.cfg.Machines = ms
}

// Start opens the node's state, starts its replicas and creates or joins the
// site as needed. It returns once the node is part of the site.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	n := New(cfg)
	if err := n.Start(ctx); err != nil {
		return nil, err
	}
	return n, nil
}

// Start brings a node made by New into its site; on error the node is closed.
func (n *Node) Start(ctx context.Context) error {
	if err := n.start(ctx); err != nil {
		n.Close()
		return err
	}
	return nil
}

func (n *Node) start(ctx context.Context) error {
	cfg := n.cfg
	idPath := filepath.Join(cfg.DataDir, "node.json")
	known, err := readIdentity(idPath)
	if err != nil {
		return err
	}
	if known != nil {
		if known.NodeID != cfg.NodeID || known.Addr != cfg.Addr {
			return fmt.Errorf("consensus: data directory %s belongs to node %s at %s, not %s at %s",
				cfg.DataDir, known.NodeID, known.Addr, cfg.NodeID, cfg.Addr)
		}
		n.id = *known
	}
	tlsConf, err := siteTLS(cfg.SiteKey, cfg.NodeID)
	if err != nil {
		return err
	}
	n.trans, err = newTransport(cfg.Addr, tlsConf, cfg.FaultInjection, n.log, n.serveProposal)
	if err != nil {
		return err
	}
	n.client = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return n.trans.dial(ctx, addr, streamHTTP, 0)
		},
		MaxIdleConnsPerHost: 128,
		IdleConnTimeout:     time.Minute,
	}}
	n.srv = &http.Server{Handler: n.rpcHandler(), ReadHeaderTimeout: 10 * time.Second}

	level := hclog.Warn
	if n.log.Enabled(ctx, slog.LevelDebug-4) {
		level = hclog.Info
	}
	n.deps = groupDeps{
		nodeID: cfg.NodeID, dataDir: cfg.DataDir, trans: n.trans, logs: cfg.Logs,
		machines: cfg.Machines, meta: n.meta, log: n.log, onLeader: n.leaderChanged,
		hlog: hclog.New(&hclog.LoggerOptions{Name: "raft", Level: level, Output: os.Stderr}),
	}

	if err := n.joinSite(ctx, idPath); err != nil {
		return err
	}
	// Peers' requests are served once the node's groups exist.
	n.serving.Store(true)
	go n.srv.Serve(n.trans.http)
	n.wg.Add(2)
	go n.manageReplicas()
	go n.reconcileLoop()
	return nil
}

func readIdentity(path string) (*identity, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("consensus: %w", err)
	}
	var id identity
	if err := json.Unmarshal(b, &id); err != nil || id.NodeID == "" || id.Shards <= 0 {
		return nil, fmt.Errorf("consensus: data directory %s is damaged: %s is unreadable", filepath.Dir(path), path)
	}
	return &id, nil
}

func writeIdentity(path string, id identity) error {
	b, _ := json.MarshalIndent(id, "", "  ")
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("consensus: %w", err)
	}
	if _, err := f.Write(b); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("consensus: write %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}

func (n *Node) self() raft.Server {
	return raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(n.cfg.NodeID), Address: raft.ServerAddress(n.cfg.Addr)}
}

// joinSite restarts into the site this node belongs to, or creates or joins one.
func (n *Node) joinSite(ctx context.Context, idPath string) error {
	if n.id.NodeID != "" {
		g, err := startGroup(n.deps, -1, nil)
		if err != nil {
			return err
		}
		n.metaG = g
		// Restart the shard replicas this node holds logs for; the replica
		// manager reconciles the rest with the placement once meta catches up.
		for _, name := range n.cfg.Logs.Groups() {
			var shard int
			if _, err := fmt.Sscanf(name, "s%d", &shard); err == nil && shard < n.id.Shards {
				if err := n.startShard(shard, nil); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if n.cfg.Bootstrap {
		g, err := startGroup(n.deps, -1, []raft.Server{n.self()})
		if err != nil {
			return err
		}
		n.metaG = g
		if err := n.waitLeader(ctx, g); err != nil {
			return err
		}
		placement := make([][]string, n.cfg.Shards)
		for i := range placement {
			placement[i] = []string{n.cfg.NodeID}
		}
		for _, c := range []metaCmd{
			{Op: "init", Site: n.cfg.Site, Shards: n.cfg.Shards},
			{Op: "member", Member: &Member{ID: n.cfg.NodeID, Addr: n.cfg.Addr, State: MemberActive}},
			{Op: "placement", Placement: placement},
		} {
			if err := n.proposeMeta(ctx, c); err != nil {
				return err
			}
		}
		for i := 0; i < n.cfg.Shards; i++ {
			if err := n.startShard(i, []raft.Server{n.self()}); err != nil {
				return err
			}
		}
		n.id = identity{Site: n.cfg.Site, NodeID: n.cfg.NodeID, Addr: n.cfg.Addr, Shards: n.cfg.Shards}
		n.created = true
		return writeIdentity(idPath, n.id)
	}
	if len(n.cfg.Seeds) == 0 {
		return errors.New("consensus: node has no state, is not told to bootstrap and has no seed to join through")
	}
	g, err := startGroup(n.deps, -1, nil)
	if err != nil {
		return err
	}
	n.metaG = g
	body, _ := json.Marshal(Member{ID: n.cfg.NodeID, Addr: n.cfg.Addr, State: MemberActive})
	for {
		for _, seed := range n.cfg.Seeds {
			if seed == n.cfg.Addr {
				continue
			}
			resp, err := n.call(ctx, seed, "/v1/join", body)
			if err != nil {
				n.log.Info("consensus: join attempt failed", "seed", seed, "err", err)
				continue
			}
			var st MetaState
			if err := json.Unmarshal(resp, &st); err != nil {
				return fmt.Errorf("consensus: join reply from %s: %w", seed, err)
			}
			if st.Shards <= 0 {
				continue // the site is still being created
			}
			n.id = identity{Site: st.Site, NodeID: n.cfg.NodeID, Addr: n.cfg.Addr, Shards: st.Shards}
			n.log.Info("consensus: joined site", "site", st.Site, "via", seed)
			return writeIdentity(idPath, n.id)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("consensus: could not join through %v: %w", n.cfg.Seeds, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (n *Node) waitLeader(ctx context.Context, g *group) error {
	for !g.ready.Load() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("consensus: waiting for %s leader: %w", groupName(g.shard), ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

func (n *Node) startShard(shard int, bootstrap []raft.Server) error {
	g, err := startGroup(n.deps, shard, bootstrap)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.shards[shard] = g
	n.mu.Unlock()
	return nil
}

// MetaChanged returns a channel that is closed at the next change of the
// meta state (membership, placement or shared configuration).
func (n *Node) MetaChanged() <-chan struct{} {
	n.watchMu.Lock()
	defer n.watchMu.Unlock()
	return n.watch
}

func (n *Node) kick() {
	n.watchMu.Lock()
	close(n.watch)
	n.watch = make(chan struct{})
	n.watchMu.Unlock()
	select {
	case n.changed <- struct{}{}:
	default:
	}
}

func (n *Node) leaderChanged(shard int, leader bool) {
	if shard < 0 {
		n.kick()
		return
	}
	for _, m := range n.cfg.Machines {
		if o, ok := m.(LeaderObserver); ok {
			o.LeaderChanged(shard, leader)
		}
	}
}

func (n *Node) shard(i int) *group {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.shards[i]
}

// Shards implements Cluster.
func (n *Node) Shards() int { return n.id.Shards }

// Site implements Cluster.
func (n *Node) Site() string { return n.id.Site }

// Replicates implements Cluster.
func (n *Node) Replicates(shard int) bool { return n.shard(shard) != nil }

// ID is this node's identifier.
func (n *Node) ID() string { return n.cfg.NodeID }

// ShardOf implements Cluster.
func (n *Node) ShardOf(key []byte) int {
	h := fnv.New32a()
	h.Write(key)
	return int(h.Sum32() % uint32(n.id.Shards))
}

// Meta returns a copy of the replicated site state as this node knows it.
func (n *Node) Meta() *MetaState { return n.meta.get() }

// View reads this node's replica of a shard.
func (n *Node) View(shard int, fn func(*bolt.Tx) error) error {
	g := n.shard(shard)
	if g == nil {
		return fmt.Errorf("consensus: no replica of shard %d on this node", shard)
	}
	return g.fsm.view(fn)
}

// Partition cuts this node's links to the given hosts (fault tests only).
func (n *Node) Partition(hosts []string) error { return n.trans.Partition(hosts) }

// candidates lists where to send a request for a shard: the leader this node
// knows of first, then the members placed on the shard.
func (n *Node) candidates(shard int) []string {
	var out []string
	if g := n.shard(shard); g != nil {
		if a := g.leaderAddr(); a != "" {
			out = append(out, a)
		}
	}
	st := n.meta.get()
	if shard < len(st.Placement) {
		for _, id := range st.Placement[shard] {
			if m, ok := st.Members[id]; ok && !slices.Contains(out, m.Addr) {
				out = append(out, m.Addr)
			}
		}
	}
	return out
}

// Propose implements Cluster.
func (n *Node) Propose(ctx context.Context, shard int, kind Kind, cmd []byte) ([]byte, error) {
	if shard < 0 || shard >= n.id.Shards {
		return nil, fmt.Errorf("consensus: no shard %d", shard)
	}
	id := n.ids.new()
	fwd := func(ctx context.Context, addr string) ([]byte, string, error) {
		return n.forwardPropose(ctx, addr, shard, kind, id, cmd)
	}
	return n.routeVia(ctx, shard, fwd, func(g *group) ([]byte, error) {
		return g.proposeShard(kind, id, cmd)
	})
}

// Query implements Cluster.
func (n *Node) Query(ctx context.Context, shard int, kind Kind, q []byte, c Consistency) ([]byte, error) {
	if shard < 0 || shard >= n.id.Shards {
		return nil, fmt.Errorf("consensus: no shard %d", shard)
	}
	if c == Local {
		if g := n.shard(shard); g != nil {
			return n.localQuery(g, kind, q)
		}
	}
	fwd := func(ctx context.Context, addr string) ([]byte, string, error) {
		return n.forward(ctx, addr, fmt.Sprintf("/v1/query?shard=%d&kind=%d", shard, kind), q)
	}
	return n.routeVia(ctx, shard, fwd, func(g *group) ([]byte, error) {
		if err := g.readIndex(ctx); err != nil {
			return nil, err
		}
		return n.localQuery(g, kind, q)
	})
}

func (n *Node) localQuery(g *group, kind Kind, q []byte) ([]byte, error) {
	m := g.fsm.machines[kind]
	if m == nil {
		return nil, fmt.Errorf("consensus: no machine of kind %d", kind)
	}
	var out []byte
	err := g.fsm.read(func(tx *bolt.Tx) error {
		var err error
		out, err = m.Query(g.shard, tx, q)
		return err
	})
	return out, err
}

// errRemote carries an error returned by a machine on another node.
type errRemote struct{ msg string }

func (e errRemote) Error() string { return e.msg }

// ErrIndeterminate means a write was handed to a leader that lost its
// leadership or its link before answering: it may or may not have committed.
var ErrIndeterminate = errors.New("consensus: outcome unknown: leader changed or link lost during commit")

// route runs op on the shard leader: here if this node leads, else by
// forwarding to the leader, following redirects. A request whose outcome was
// lost with a leader is sent again: reads change nothing, and proposals carry
// a request ID that replicas apply at most once.
func (n *Node) route(ctx context.Context, shard int, path string, body []byte, op func(*group) ([]byte, error)) ([]byte, error) {
	fwd := func(ctx context.Context, addr string) ([]byte, string, error) {
		return n.forward(ctx, addr, path, body)
	}
	return n.routeVia(ctx, shard, fwd, op)
}

// forwarder sends a request to the node at addr: its result, or the leader
// it redirects to with errRedirect, or an error.
type forwarder func(ctx context.Context, addr string) ([]byte, string, error)

func (n *Node) routeVia(ctx context.Context, shard int, fwd forwarder, op func(*group) ([]byte, error)) ([]byte, error) {
	// Most requests find their leader here and succeed at once; the
	// deadline and retries below are for the rest.
	if g := n.shard(shard); g != nil && g.isLeader() {
		res, err := op(g)
		if err == nil || errors.As(err, new(errRemote)) {
			return res, err
		}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	backoff := 5 * time.Millisecond
	var lastErr error = ErrNoQuorum
	for {
		res, err := n.routeOnce(ctx, shard, fwd, op)
		switch {
		case err == nil:
			return res, nil
		case errors.As(err, new(errRemote)):
			return nil, err // the machine's own answer
		case errors.Is(err, ErrIndeterminate) && ctx.Err() != nil:
			return nil, err
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: shard %d: %v", ErrNoQuorum, shard, lastErr)
		case <-time.After(backoff):
		}
		if backoff < 200*time.Millisecond {
			backoff *= 2
		}
	}
}

// routeOnce tries the local replica if it leads, else the candidates, once.
func (n *Node) routeOnce(ctx context.Context, shard int, fwd forwarder, op func(*group) ([]byte, error)) ([]byte, error) {
	if g := n.shard(shard); g != nil && g.isLeader() {
		res, err := op(g)
		return res, n.classify(err)
	}
	var lastErr error = ErrNoQuorum
	for _, addr := range n.candidates(shard) {
		if addr == n.cfg.Addr {
			continue
		}
		res, leader, err := fwd(ctx, addr)
		if errors.Is(err, errRedirect) && leader != "" && leader != addr && leader != n.cfg.Addr {
			res, _, err = fwd(ctx, leader)
		}
		if err == nil || errors.Is(err, ErrIndeterminate) || errors.As(err, new(errRemote)) {
			return res, err
		}
		lastErr = err
		if errors.Is(err, errRedirect) {
			break // the leader is not known yet: wait for an election
		}
	}
	return nil, lastErr
}

func (n *Node) classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrRaftShutdown), errors.Is(err, raft.ErrAbortedByRestore):
		return fmt.Errorf("%w (%v)", ErrIndeterminate, err)
	}
	return err
}

var errRedirect = errors.New("consensus: not the leader")

// forward sends a request to another node's API. A dial failure means it was
// never sent; a failure after sending is indeterminate for writes.
func (n *Node) forward(ctx context.Context, addr, path string, body []byte) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+path, bytes.NewReader(body))
	if err != nil {
		return nil, "", err
	}
	resp, err := n.client.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" || errors.Is(err, errPartitioned) || ctx.Err() != nil {
			return nil, "", fmt.Errorf("consensus: %s unreachable: %w", addr, err)
		}
		return nil, "", fmt.Errorf("%w: %v", ErrIndeterminate, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrIndeterminate, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return b, "", nil
	case http.StatusMisdirectedRequest:
		return nil, resp.Header.Get("X-Leader"), errRedirect
	case http.StatusConflict:
		return nil, "", fmt.Errorf("%w: %s", ErrIndeterminate, b)
	case http.StatusServiceUnavailable:
		return nil, "", fmt.Errorf("%w: %s: %s", ErrNoQuorum, addr, b)
	default:
		return nil, "", errRemote{msg: string(b)}
	}
}

// call posts to another node's API, for control requests.
func (n *Node) call(ctx context.Context, addr, path string, body []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	res, leader, err := n.forward(ctx, addr, path, body)
	if errors.Is(err, errRedirect) && leader != "" {
		res, _, err = n.forward(ctx, leader, path, body)
	}
	return res, err
}

// proposeMeta commits a meta command on the meta leader, here or remote.
func (n *Node) proposeMeta(ctx context.Context, c metaCmd) error {
	body, _ := json.Marshal(c)
	if n.metaG.isLeader() {
		_, err := n.metaG.propose(body)
		return n.classify(err)
	}
	leader := n.metaG.leaderAddr()
	if leader == "" {
		return fmt.Errorf("%w: meta group has no leader", ErrNoQuorum)
	}
	_, err := n.call(ctx, leader, "/v1/meta", body)
	return err
}

// Close stops the node's replicas and its port.
func (n *Node) Close() error {
	var err error
	n.closing.Do(func() { err = n.close() })
	return err
}

func (n *Node) close() error {
	n.cancel()
	n.wg.Wait()
	n.mu.Lock()
	shards := n.shards
	n.shards = map[int]*group{}
	metaG := n.metaG
	n.mu.Unlock()
	var errs []error
	for _, g := range shards {
		errs = append(errs, g.stop(n.deps))
	}
	if metaG != nil {
		errs = append(errs, metaG.stop(n.deps))
	}
	if n.srv != nil {
		n.srv.Close()
	}
	if n.trans != nil {
		errs = append(errs, n.trans.Close())
	}
	return errors.Join(errs...)
}
