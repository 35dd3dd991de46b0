// Package consensus runs a site's Raft groups: the meta group (membership, shard
// placement, shared configuration) and the data shards, all multiplexed over one
// authenticated TCP port per node, with every group's log in one per-node WAL.
//
// Services above it (kv, timerwheel) plug deterministic state machines into every
// shard through the Machine interface and reach the right leader through Cluster.
package consensus

import (
	"context"
	"errors"

	bolt "go.etcd.io/bbolt"
)

// Kind names the state machine a command belongs to inside a shard.
type Kind byte

// The state machines hosted in every data shard.
const (
	KindKV    Kind = 1
	KindTimer Kind = 2
	// KindAtomic carries commands of several machines of one shard, applied
	// in one entry: see EncodeAtomic.
	KindAtomic Kind = 3
)

// Entry is one committed command handed to a Machine.
type Entry struct {
	// Index is the Raft log index: unique and increasing within a shard.
	Index uint64
	// Time is the proposing leader's wall clock in Unix nanoseconds, stamped when
	// the command was proposed and never decreasing within a shard. Machines use
	// it instead of reading a clock, so Apply stays deterministic.
	Time int64
	// Cmd is the command body as the machine encoded it.
	Cmd []byte
}

// Machine is a deterministic state machine living in each data shard's store.
// Each machine keeps its data in bbolt buckets of its own.
type Machine interface {
	Kind() Kind
	// Open creates the machine's buckets and rebuilds any in-memory index from
	// tx. It is called when a shard replica starts and after a snapshot restore.
	Open(shard int, tx *bolt.Tx) error
	// Apply applies one committed command. It must be deterministic: no clock,
	// no randomness, no I/O other than tx. Rejections (a failed compare-and-set,
	// say) are encoded in the result; an error means the store failed and stops
	// the shard.
	Apply(shard int, tx *bolt.Tx, e Entry) ([]byte, error)
	// Query answers a read from local state. Its error is returned to the caller,
	// possibly on another node, as text.
	Query(shard int, tx *bolt.Tx, q []byte) ([]byte, error)
	// Export emits commands which, proposed in order to an empty shard,
	// rebuild the machine's state in that shard. Backups are made of them.
	Export(shard int, tx *bolt.Tx, emit func(cmd []byte) error) error
}

// Guard is implemented by machines whose commands can be refused (a
// compare-and-set that finds another version): in an atomic proposal the
// commands after a refused one are not applied.
type Guard interface {
	Refused(result []byte) bool
}

// LeaderObserver is implemented by machines that act only on the shard leader
// (the timer wheel). LeaderChanged is called when this node gains or loses the
// leadership of a shard; when it gains it, every entry proposed by earlier
// leaders has been applied.
type LeaderObserver interface {
	LeaderChanged(shard int, leader bool)
}

// Consistency selects how a read is served.
type Consistency int

const (
	// Linearizable reads are served by the shard leader after it confirms its
	// leadership and has applied everything it had accepted.
	Linearizable Consistency = iota
	// Local reads are served by this node's replica and may be stale.
	Local
)

// Cluster is what services above consensus use: key routing, proposals that
// any node forwards to the shard leader, and reads.
type Cluster interface {
	// Shards is the number of data shards, fixed when the site was created.
	Shards() int
	// ShardOf maps a key to its shard.
	ShardOf(key []byte) int
	// Propose commits cmd to the shard's log (fsynced on a majority) and returns
	// the machine's result of applying it.
	Propose(ctx context.Context, shard int, kind Kind, cmd []byte) ([]byte, error)
	// Query runs a read against the shard's state.
	Query(ctx context.Context, shard int, kind Kind, q []byte, c Consistency) ([]byte, error)
	// Site is the name of this site, recorded in every record it writes.
	Site() string
	// Replicates reports whether this node holds a replica of the shard,
	// whose machines apply every change committed to it.
	Replicates(shard int) bool
}

// Errors a caller can act on.
var (
	// ErrNoQuorum means the shard cannot commit: no leader is reachable (this
	// node may be cut off from the majority).
	ErrNoQuorum = errors.New("consensus: no leader reachable for shard (no quorum)")
	// ErrStopped means the node is shutting down.
	ErrStopped = errors.New("consensus: node stopped")
)
