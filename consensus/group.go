package consensus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"stillwater/consensus/wal"
)

const metaGroupID = 0xFFFF

func groupName(shard int) string {
	if shard < 0 {
		return "meta"
	}
	return fmt.Sprintf("s%d", shard)
}

func groupID(shard int) uint16 {
	if shard < 0 {
		return metaGroupID
	}
	return uint16(shard)
}

// Timing tuned for a site on one LAN: a dead leader is replaced in about a
// second, which the timer service's n + 1 s promise depends on.
func raftConfig(nodeID string, logger hclog.Logger, notify chan bool) *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = raft.ServerID(nodeID)
	c.HeartbeatTimeout = 400 * time.Millisecond
	c.ElectionTimeout = 400 * time.Millisecond
	// A lease as long as the heartbeat timeout: a loaded machine's slow
	// fsyncs must not make every leader step down at once.
	c.LeaderLeaseTimeout = 400 * time.Millisecond
	c.CommitTimeout = 20 * time.Millisecond
	// Raft's default. Every commit allocates a batch of this many
	// pointers, whatever it holds: at 512 that was a seventh of a busy
	// node's allocation, and larger batches bought nothing.
	c.MaxAppendEntries = 64
	c.BatchApplyCh = true
	// A snapshot copies the shard's whole bbolt file and fsyncs it, and
	// the log compaction after it moves WAL records: under sustained load
	// at 16384 entries the shards took turns at it every few seconds, and
	// the fsyncs held up every commit behind them. Four times fewer, at
	// the cost of a longer log to replay after a restart.
	c.SnapshotThreshold = 65536
	c.SnapshotInterval = 120 * time.Second
	c.TrailingLogs = 8192
	c.Logger = logger
	c.NotifyCh = notify
	c.NoLegacyTelemetry = true
	return c
}

// group is one Raft group's replica on this node.
type group struct {
	shard   int // -1 for meta
	raft    *raft.Raft
	trans   *raftTransport
	fsm     *shardFSM // nil for meta
	meta    *metaFSM  // nil for shards
	notify  chan bool
	ready   atomic.Bool // leader with everything before its term applied
	stampMu sync.Mutex
	stamp   int64
	done    chan struct{}
	snapDir string
}

type groupDeps struct {
	nodeID   string
	dataDir  string
	trans    *transport
	logs     LogStores
	machines []Machine
	meta     *metaFSM
	hlog     hclog.Logger
	log      *slog.Logger
	onLeader func(shard int, leader bool)
}

func startGroup(d groupDeps, shard int, bootstrap []raft.Server) (*group, error) {
	name := groupName(shard)
	g := &group{shard: shard, notify: make(chan bool, 8), done: make(chan struct{})}
	var fsm raft.FSM
	if shard < 0 {
		g.meta = d.meta
		fsm = d.meta
	} else {
		if err := os.MkdirAll(filepath.Join(d.dataDir, "state"), 0o700); err != nil {
			return nil, fmt.Errorf("consensus: %w", err)
		}
		f, err := openShardFSM(shard, statePath(d.dataDir, name), d.machines)
		if err != nil {
			return nil, err
		}
		g.fsm = f
		fsm = f
	}
	g.snapDir = filepath.Join(d.dataDir, "snapshots", name)
	hl := d.hlog.Named(name)
	snaps, err := raft.NewFileSnapshotStoreWithLogger(g.snapDir, 2, hl)
	if err != nil {
		g.closeFSM()
		return nil, fmt.Errorf("consensus: snapshot store for %s: %w", name, err)
	}
	g.trans = d.trans.register(groupID(shard))
	ls := d.logs.Group(name)
	if len(bootstrap) > 0 {
		has, err := raft.HasExistingState(ls, ls, snaps)
		if err != nil {
			g.abort(d)
			return nil, fmt.Errorf("consensus: %s: %w", name, err)
		}
		if !has {
			if err := raft.BootstrapCluster(raftConfig(d.nodeID, hl, nil), ls, ls, snaps, g.trans, raft.Configuration{Servers: bootstrap}); err != nil {
				g.abort(d)
				return nil, fmt.Errorf("consensus: bootstrap %s: %w", name, err)
			}
		}
	}
	r, err := raft.NewRaft(raftConfig(d.nodeID, hl, g.notify), fsm, ls, ls, snaps, g.trans)
	if err != nil {
		g.abort(d)
		return nil, fmt.Errorf("consensus: start %s: %w", name, err)
	}
	g.raft = r
	go g.watchLeadership(d.onLeader, d.log)
	return g, nil
}

func (g *group) abort(d groupDeps) {
	d.trans.unregister(groupID(g.shard), g.trans)
	g.closeFSM()
}

func (g *group) closeFSM() {
	if g.fsm != nil {
		g.fsm.Close()
	}
}

// watchLeadership marks the replica ready to serve linearizable reads once a
// barrier shows that every entry of earlier terms is applied.
func (g *group) watchLeadership(onLeader func(int, bool), log *slog.Logger) {
	for {
		select {
		case <-g.done:
			return
		case leader := <-g.notify:
			if !leader {
				if g.ready.Swap(false) && onLeader != nil {
					onLeader(g.shard, false)
				}
				continue
			}
			if err := g.barrier(); err != nil {
				log.Warn("consensus: barrier after election failed", "group", groupName(g.shard), "err", err)
				continue
			}
			if g.raft.State() == raft.Leader && !g.ready.Swap(true) && onLeader != nil {
				onLeader(g.shard, true)
			}
		}
	}
}

// barrier commits an empty command of the new term and waits until it is
// applied: every earlier entry is then applied too, and the replica's applied
// index (which only entries given to the state machine move) has caught up
// with the log.
func (g *group) barrier() error {
	if g.fsm == nil {
		return g.raft.Barrier(5 * time.Second).Error()
	}
	_, err := g.proposeShard(kindNoop, reqID{}, nil)
	return err
}

func (g *group) isLeader() bool { return g.raft.State() == raft.Leader }

func (g *group) leaderAddr() string {
	addr, _ := g.raft.LeaderWithID()
	return string(addr)
}

// nextStamp is the leader time for a new entry: the wall clock, never going
// backwards within this leadership.
func (g *group) nextStamp() int64 {
	now := time.Now().UnixNano()
	g.stampMu.Lock()
	defer g.stampMu.Unlock()
	if now <= g.stamp {
		now = g.stamp + 1
	}
	g.stamp = now
	return now
}

// propose commits an entry as leader and waits for it to be applied.
func (g *group) propose(data []byte) ([]byte, error) {
	f := g.raft.Apply(data, 5*time.Second)
	if err := f.Error(); err != nil {
		return nil, err
	}
	switch r := f.Response().(type) {
	case applyResult:
		return r.data, r.err
	case nil:
		return nil, nil
	default:
		return nil, fmt.Errorf("consensus: unexpected apply response %T", r)
	}
}

func (g *group) proposeShard(kind Kind, id reqID, cmd []byte) ([]byte, error) {
	return g.propose(encodeEntry(kind, g.nextStamp(), id, cmd))
}

// readIndex waits until this leader may serve a linearizable read: it still
// leads (a heartbeat round to a majority) and has applied everything it had
// accepted when the read arrived.
func (g *group) readIndex(ctx context.Context) error {
	if !g.ready.Load() {
		return raft.ErrNotLeader
	}
	last := g.raft.LastIndex()
	if err := g.raft.VerifyLeader().Error(); err != nil {
		return err
	}
	return g.fsm.waitApplied(ctx, last)
}

func (g *group) stop(d groupDeps) error {
	close(g.done)
	err := g.raft.Shutdown().Error()
	d.trans.unregister(groupID(g.shard), g.trans)
	g.closeFSM()
	if g.ready.Swap(false) && d.onLeader != nil {
		d.onLeader(g.shard, false)
	}
	return err
}

// retryable reports whether a proposal failed before it could have been
// appended to any log, so that sending it again cannot apply it twice.
func retryable(err error) bool {
	return errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrEnqueueTimeout) ||
		errors.Is(err, raft.ErrLeadershipTransferInProgress)
}

// LogStores is the durable home of every group's Raft log and stable state
// on a node: one write-ahead log shared by all groups.
type LogStores interface {
	Group(name string) GroupLog
	Groups() []string
	DropGroup(name string) error
	io.Closer
}

// GroupLog is one group's view of the node's log.
type GroupLog interface {
	raft.LogStore
	raft.StableStore
}

// walLogs adapts the node's shared write-ahead log to LogStores.
type walLogs struct{ *wal.WAL }

func (w walLogs) Group(name string) GroupLog { return w.WAL.Group(name) }

// OpenWAL opens the node's write-ahead log in dir. A damaged log is refused
// with an error wrapping wal.ErrCorrupt.
func OpenWAL(dir string, log *slog.Logger) (LogStores, *wal.WAL, error) {
	w, err := wal.Open(dir, wal.Options{Logger: log})
	if err != nil {
		return nil, nil, err
	}
	return walLogs{w}, w, nil
}
