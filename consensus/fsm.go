package consensus

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// Shard log entries are framed as kind(1) | leader time(8) | request id(16) |
// command.
const entryHeader = 25

func encodeEntry(kind Kind, now int64, id reqID, cmd []byte) []byte {
	b := make([]byte, entryHeader+len(cmd))
	b[0] = byte(kind)
	binary.BigEndian.PutUint64(b[1:9], uint64(now))
	copy(b[9:25], id[:])
	copy(b[25:], cmd)
	return b
}

// kindNoop marks the empty entry a new leader commits before serving reads.
const kindNoop Kind = 0

// applyResult is what a shard's Apply future yields.
type applyResult struct {
	data []byte
	err  error
}

// shardFSM hosts the machines of one data shard on a bbolt file. The file is
// not fsynced: it is rebuilt from the latest snapshot and the log whenever the
// replica starts.
//
// Apply batches share one write transaction until a reader needs the state,
// the transaction has grown large or commitDelay has passed: a commit writes
// every dirty page, so committing each small batch of a busy shard on its own
// cost more than applying it. Nothing is lost by the wait, as the file is
// never the durable copy.
type shardFSM struct {
	shard    int
	path     string
	machines map[Kind]Machine

	mu      sync.RWMutex // guards db against swap during restore
	db      *bolt.DB
	applied atomic.Uint64
	lastT   int64
	dedup   *dedupTable

	txMu      sync.Mutex // guards the open write transaction
	tx        *bolt.Tx   // applied entries not yet committed, or nil
	txEntries int
	timer     *time.Timer // commits tx after commitDelay

	waitMu  sync.Mutex
	advance chan struct{} // closed and replaced whenever applied moves
}

// waitApplied blocks until the replica has applied index idx.
func (f *shardFSM) waitApplied(ctx context.Context, idx uint64) error {
	for {
		f.waitMu.Lock()
		ch := f.advance
		f.waitMu.Unlock()
		if f.applied.Load() >= idx {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// A write transaction is committed commitDelay after its first batch, or
// once it holds commitEntries entries, unless a reader commits it sooner.
// With 16 shards a node holds 16 open transactions; committing each every
// 50ms spent a fifth of the site's CPU in bbolt's spill and page writes,
// every 250ms an eighth.
const (
	commitDelay   = 250 * time.Millisecond
	commitEntries = 1024
)

func boltOptions() *bolt.Options {
	// A large initial map avoids remapping, which would make writers wait for
	// long read transactions (snapshots). It costs address space only.
	return &bolt.Options{NoSync: true, NoFreelistSync: true, InitialMmapSize: 1 << 30, FreelistType: bolt.FreelistMapType}
}

func openShardFSM(shard int, path string, machines []Machine) (*shardFSM, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("consensus: reset state of shard %d: %w", shard, err)
	}
	f := &shardFSM{shard: shard, path: path, machines: map[Kind]Machine{}, advance: make(chan struct{}), dedup: newDedupTable()}
	f.timer = time.AfterFunc(time.Hour, f.commitTimer)
	f.timer.Stop()
	for _, m := range machines {
		f.machines[m.Kind()] = m
	}
	db, err := f.openDB(path)
	if err != nil {
		return nil, err
	}
	f.db = db
	return f, nil
}

func (f *shardFSM) openDB(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, boltOptions())
	if err != nil {
		return nil, fmt.Errorf("consensus: open state of shard %d: %w", f.shard, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, m := range f.machines {
			if err := m.Open(f.shard, tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("consensus: open machines of shard %d: %w", f.shard, err)
	}
	return db, nil
}

func (f *shardFSM) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies a batch of committed entries to the open write
// transaction.
func (f *shardFSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	f.mu.RLock()
	defer f.mu.RUnlock()
	f.txMu.Lock()
	err := f.applyLocked(logs, out)
	f.txMu.Unlock()
	if err != nil {
		// The store failed: a replica that cannot apply must not go on.
		panic(err)
	}
	if n := len(logs); n > 0 {
		f.applied.Store(logs[n-1].Index)
		f.waitMu.Lock()
		close(f.advance)
		f.advance = make(chan struct{})
		f.waitMu.Unlock()
	}
	return out
}

func (f *shardFSM) applyLocked(logs []*raft.Log, out []any) error {
	if f.tx == nil {
		tx, err := f.db.Begin(true)
		if err != nil {
			return fmt.Errorf("consensus: shard %d: begin: %w", f.shard, err)
		}
		f.tx, f.txEntries = tx, 0
		f.timer.Reset(commitDelay)
	}
	err := func(tx *bolt.Tx) error {
		for i, l := range logs {
			if l.Type != raft.LogCommand {
				continue
			}
			if len(l.Data) < entryHeader {
				out[i] = applyResult{err: fmt.Errorf("consensus: short entry at index %d", l.Index)}
				continue
			}
			if Kind(l.Data[0]) == kindNoop {
				continue
			}
			var id reqID
			copy(id[:], l.Data[9:25])
			if res, seen := f.dedup.lookup(id); seen {
				out[i] = applyResult{data: res}
				continue
			}
			kind := Kind(l.Data[0])
			m := f.machines[kind]
			if m == nil && kind != KindAtomic {
				out[i] = applyResult{err: fmt.Errorf("consensus: no machine of kind %d", l.Data[0])}
				continue
			}
			t := int64(binary.BigEndian.Uint64(l.Data[1:9]))
			if t < f.lastT {
				t = f.lastT // a new leader's clock may lag; time never goes back
			}
			f.lastT = t
			e := Entry{Index: l.Index, Time: t, Cmd: l.Data[entryHeader:]}
			var (
				res []byte
				err error
			)
			if kind == KindAtomic {
				var bad error
				if res, bad, err = f.applyAtomic(tx, e); bad != nil {
					out[i] = applyResult{err: bad}
					continue
				}
			} else {
				res, err = m.Apply(f.shard, tx, e)
			}
			if err != nil {
				return fmt.Errorf("consensus: shard %d apply index %d: %w", f.shard, l.Index, err)
			}
			out[i] = applyResult{data: res}
			f.dedup.add(id, res)
		}
		return nil
	}(f.tx)
	if err != nil {
		_ = f.tx.Rollback()
		f.tx = nil
		return err
	}
	f.txEntries += len(logs)
	if f.txEntries >= commitEntries {
		return f.commitLocked()
	}
	return nil
}

// commitLocked commits the open write transaction, if any.
func (f *shardFSM) commitLocked() error {
	if f.tx == nil {
		return nil
	}
	f.timer.Stop()
	tx := f.tx
	f.tx = nil
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("consensus: shard %d: commit: %w", f.shard, err)
	}
	return nil
}

// commit makes everything applied so far visible to readers.
func (f *shardFSM) commit() error {
	f.txMu.Lock()
	defer f.txMu.Unlock()
	return f.commitLocked()
}

func (f *shardFSM) commitTimer() {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if err := f.commit(); err != nil {
		panic(err) // as in ApplyBatch: the store failed
	}
}

// read runs a short read-only query on everything applied before the call.
// While a write transaction is open the query runs inside it rather than
// committing it first: reads are frequent, and each commit writes pages.
func (f *shardFSM) read(fn func(*bolt.Tx) error) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	f.txMu.Lock()
	if f.tx != nil {
		defer f.txMu.Unlock()
		return fn(f.tx)
	}
	f.txMu.Unlock()
	return f.db.View(fn)
}

// view reads the state with everything applied before the call.
func (f *shardFSM) view(fn func(*bolt.Tx) error) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if err := f.commit(); err != nil {
		return err
	}
	return f.db.View(fn)
}

func (f *shardFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	// Raft calls Snapshot between applies, so the table is current.
	if err := f.commit(); err != nil {
		f.mu.RUnlock()
		return nil, err
	}
	if err := f.db.Update(f.dedup.save); err != nil {
		f.mu.RUnlock()
		return nil, fmt.Errorf("consensus: snapshot shard %d: %w", f.shard, err)
	}
	tx, err := f.db.Begin(false)
	f.mu.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("consensus: snapshot shard %d: %w", f.shard, err)
	}
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], uint64(f.lastT))
	return &boltSnapshot{tx: tx, header: hdr}, nil
}

func (f *shardFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var hdr [8]byte
	if _, err := io.ReadFull(rc, hdr[:]); err != nil {
		return fmt.Errorf("consensus: restore shard %d: %w", f.shard, err)
	}
	tmp := f.path + ".restore"
	out, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("consensus: restore shard %d: %w", f.shard, err)
	}
	if _, err := io.Copy(out, rc); err != nil {
		out.Close()
		return fmt.Errorf("consensus: restore shard %d: %w", f.shard, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("consensus: restore shard %d: %w", f.shard, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rollback()
	if err := f.db.Close(); err != nil {
		return fmt.Errorf("consensus: restore shard %d: %w", f.shard, err)
	}
	if err := os.Rename(tmp, f.path); err != nil {
		return fmt.Errorf("consensus: restore shard %d: %w", f.shard, err)
	}
	db, err := f.openDB(f.path)
	if err != nil {
		return err
	}
	f.db = db
	f.lastT = int64(binary.BigEndian.Uint64(hdr[:]))
	return db.View(func(tx *bolt.Tx) error {
		d, err := loadDedupTable(tx)
		f.dedup = d
		return err
	})
}

// rollback drops the open write transaction: the state it was to extend is
// being replaced or discarded.
func (f *shardFSM) rollback() {
	f.txMu.Lock()
	defer f.txMu.Unlock()
	f.timer.Stop()
	if f.tx != nil {
		_ = f.tx.Rollback()
		f.tx = nil
	}
}

func (f *shardFSM) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rollback()
	err := f.db.Close()
	_ = os.Remove(f.path)
	return err
}

type boltSnapshot struct {
	tx     *bolt.Tx
	header [8]byte
}

func (s *boltSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s.header[:]); err != nil {
		sink.Cancel()
		return err
	}
	if _, err := s.tx.WriteTo(sink); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *boltSnapshot) Release() { _ = s.tx.Rollback() }

func statePath(dir string, group string) string { return filepath.Join(dir, "state", group+".db") }
