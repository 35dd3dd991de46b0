package wal

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
)

// Group is one Raft group's view of the WAL: a raft.LogStore,
// raft.StableStore and raft.MonotonicLogStore. Writes return once durable.
type Group struct {
	w    *WAL
	name string
}

var (
	_ raft.LogStore          = (*Group)(nil)
	_ raft.StableStore       = (*Group)(nil)
	_ raft.MonotonicLogStore = (*Group)(nil)
)

// Name returns the group's name.
func (g *Group) Name() string { return g.name }

// IsMonotonic tells raft that the log cannot have gaps, so after a snapshot
// restore raft deletes the whole log instead of leaving one.
func (g *Group) IsMonotonic() bool { return true }

func (g *Group) state() (*group, error) {
	if g.w.isClosed() {
		return nil, ErrClosed
	}
	return g.w.lookup(g.name), nil
}

func (w *WAL) isClosed() bool { return w.closedFlag.Load() }

// FirstIndex returns the first index held, 0 if none.
func (g *Group) FirstIndex() (uint64, error) {
	st, err := g.state()
	if err != nil || st == nil {
		return 0, err
	}
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.first, nil
}

// LastIndex returns the last index held, 0 if none.
func (g *Group) LastIndex() (uint64, error) {
	st, err := g.state()
	if err != nil || st == nil {
		return 0, err
	}
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.last, nil
}

// GetLog reads an entry, from the recent-entry cache when possible. A missing
// index yields raft.ErrLogNotFound.
func (g *Group) GetLog(index uint64, out *raft.Log) error {
	st, err := g.state()
	if err != nil {
		return err
	}
	if st == nil {
		return raft.ErrLogNotFound
	}
	// The disk read happens outside the group lock so a cold read never holds
	// up the commit loop. Records are immutable once written; the only hazard
	// is the segment being reclaimed meanwhile, after the entry was copied
	// forward, and then the lookup is simply repeated.
	for {
		l, hit, ok := st.find(index, out)
		if !ok {
			return raft.ErrLogNotFound
		}
		if hit {
			return nil
		}
		b, err := g.w.readRecord(l)
		if errors.Is(err, errSegmentGone) {
			continue
		}
		if err != nil {
			return fmt.Errorf("wal: group %q: get log %d: %w", g.name, index, err)
		}
		rec, _ := parseRecord(b) // verified by readRecord
		path := g.w.segPath(uint64(l.seg))
		if rec.typ != recEntry || rec.gid != st.id {
			return corruptf(path, l.off, "group %q index %d points at a record of type %d for group id %d", g.name, index, rec.typ, rec.gid)
		}
		if err := decodeEntry(rec.payload, out); err != nil {
			return corruptf(path, l.off, "%v", err)
		}
		if out.Index != index {
			return corruptf(path, l.off, "group %q: expected index %d, record holds %d", g.name, index, out.Index)
		}
		return nil
	}
}

// find looks index up: a cache hit fills out; otherwise it returns the loc.
func (st *group) find(index uint64, out *raft.Log) (l loc, hit, ok bool) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	if st.last == 0 || index < st.first || index > st.last {
		return loc{}, false, false
	}
	if n := uint64(len(st.cache)); n > 0 {
		if c := &st.cache[index%n]; c.Index == index {
			*out = *c
			return loc{}, true, true
		}
	}
	return st.locs[index-st.first], false, true
}

// StoreLog stores one entry durably.
func (g *Group) StoreLog(l *raft.Log) error { return g.StoreLogs([]*raft.Log{l}) }

// StoreLogs stores entries durably. They must be consecutive and, unless the
// group is empty, continue right after its last index.
func (g *Group) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return g.w.failure()
	}
	if g.w.isClosed() {
		return ErrClosed
	}
	size := 0
	for i, l := range logs {
		if l == nil {
			return fmt.Errorf("wal: group %q: nil log at position %d", g.name, i)
		}
		if l.Index == 0 {
			return fmt.Errorf("wal: group %q: log index 0 is invalid", g.name)
		}
		if i > 0 && l.Index != logs[i-1].Index+1 {
			return fmt.Errorf("wal: group %q: entries not consecutive: %d after %d", g.name, l.Index, logs[i-1].Index)
		}
		n := len(l.Data) + len(l.Extensions) + 64
		if n > maxRecord {
			return fmt.Errorf("wal: group %q: entry %d is %d bytes, limit %d", g.name, l.Index, n, maxRecord)
		}
		size += n
	}
	st := g.w.lookupOrCreate(g.name)
	r := &request{
		kind: kindEntries,
		g:    st,
		buf:  make([]byte, 0, size),
		offs: make([]uint32, 0, len(logs)+1),
		logs: logs,
		nrec: len(logs),
		lo:   logs[0].Index,
		hi:   logs[len(logs)-1].Index,
	}
	for _, l := range logs {
		r.offs = append(r.offs, uint32(len(r.buf)))
		r.buf = appendEntryRecord(r.buf, st.id, l)
	}
	r.offs = append(r.offs, uint32(len(r.buf)))
	if err := g.w.submit(r); err != nil {
		return fmt.Errorf("wal: group %q: store logs %d..%d: %w", g.name, r.lo, r.hi, err)
	}
	return nil
}

// DeleteRange durably deletes entries min..max inclusive. Only a prefix, a
// suffix or the whole log may be deleted; a hole is an error.
func (g *Group) DeleteRange(min, max uint64) error {
	if g.w.isClosed() {
		return ErrClosed
	}
	st := g.w.lookup(g.name)
	if st == nil || min > max {
		return g.w.failure()
	}
	if err := g.w.submit(&request{kind: kindDelete, g: st, lo: min, hi: max}); err != nil {
		return fmt.Errorf("wal: group %q: delete range %d..%d: %w", g.name, min, max, err)
	}
	return nil
}

// Set stores a stable key durably.
func (g *Group) Set(key, val []byte) error {
	if g.w.isClosed() {
		return ErrClosed
	}
	if len(key)+len(val)+64 > maxRecord {
		return fmt.Errorf("wal: group %q: stable value too large", g.name)
	}
	st := g.w.lookupOrCreate(g.name)
	v := append([]byte{}, val...)
	r := &request{
		kind: kindSet,
		g:    st,
		key:  string(key),
		val:  v,
		buf:  appendSetRecord(nil, st.id, string(key), v),
		nrec: 1,
	}
	if err := g.w.submit(r); err != nil {
		return fmt.Errorf("wal: group %q: set %q: %w", g.name, key, err)
	}
	return nil
}

// Get returns a copy of a stable value, or ErrKeyNotFound.
func (g *Group) Get(key []byte) ([]byte, error) {
	st, err := g.state()
	if err != nil {
		return nil, err
	}
	if st == nil {
		return nil, ErrKeyNotFound
	}
	st.mu.RLock()
	defer st.mu.RUnlock()
	v, ok := st.stable[string(key)]
	if !ok {
		return nil, ErrKeyNotFound
	}
	return append([]byte{}, v...), nil
}

// SetUint64 stores a stable uint64 (8 bytes big-endian, like raft-boltdb).
func (g *Group) SetUint64(key []byte, val uint64) error {
	return g.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 returns a stable uint64, or 0 and ErrKeyNotFound.
func (g *Group) GetUint64(key []byte) (uint64, error) {
	v, err := g.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("wal: group %q: key %q holds %d bytes, not a uint64", g.name, key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}
