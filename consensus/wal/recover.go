package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"github.com/hashicorp/raft"
)

func corruptf(path string, off int64, format string, args ...any) error {
	return fmt.Errorf("%w: %s at offset %d: %s", ErrCorrupt, path, off, fmt.Sprintf(format, args...))
}

// recover rebuilds the in-memory state from the segment files. It changes
// nothing on disk until the whole log has been read and found sound.
func (w *WAL) recover() error {
	seqs, err := listSegments(w.dir)
	if err != nil {
		return fmt.Errorf("wal: list %s: %w", w.dir, err)
	}
	present := make(map[uint64]bool, len(seqs))
	for _, s := range seqs {
		present[s] = true
	}

	// A crash while creating a segment can leave a file whose header never
	// reached the disk. Nothing was ever written after such a header, so the
	// file carries no data and can go.
	var discard []uint64
	for len(seqs) > 0 {
		last := seqs[len(seqs)-1]
		data, err := os.ReadFile(w.segPath(last))
		if err != nil {
			return fmt.Errorf("wal: read %s: %w", w.segPath(last), err)
		}
		if _, err := decodeSegHeader(data); err == nil {
			break
		} else if len(data) > segHeaderSize && !allZero(data) {
			return corruptf(w.segPath(last), 0, "%v", err)
		}
		discard = append(discard, last)
		delete(present, last)
		seqs = seqs[:len(seqs)-1]
	}

	if len(seqs) == 0 {
		if err := w.removeSegments(discard, "segment creation never completed"); err != nil {
			return err
		}
		f, err := w.createSegment(1, 1)
		if err != nil {
			return fmt.Errorf("wal: %w", err)
		}
		w.segs[1] = f
		w.cur, w.curSeq, w.curOff, w.floor, w.zeroedTo = f, 1, segHeaderSize, 1, segHeaderSize
		return nil
	}

	last := seqs[len(seqs)-1]
	hdr, err := w.readSegHeader(last)
	if err != nil {
		return err
	}
	// The newest header records the lowest segment the log still needs.
	floor := hdr.floor
	if floor == 0 || floor > last {
		return corruptf(w.segPath(last), 0, "segment floor %d outside 1..%d", floor, last)
	}
	for seq := floor; seq <= last; seq++ {
		if !present[seq] {
			return fmt.Errorf("%w: missing segment %s (log needs segments %d..%d)", ErrCorrupt, w.segPath(seq), floor, last)
		}
	}

	byID := make(map[uint32]*group)
	var tailEnd int64
	var zeroTail bool
	for seq := floor; seq <= last; seq++ {
		end, zeros, err := w.replaySegment(seq, seq == last, byID)
		if err != nil {
			return err
		}
		tailEnd, zeroTail = end, zeros
	}
	for _, g := range w.groups {
		g.lfirst, g.llast = g.first, g.last
	}

	// The log is sound: now finish what a crash may have interrupted.
	for seq := floor; seq <= last; seq++ {
		flag := os.O_RDONLY
		if seq == last {
			flag = os.O_RDWR
		}
		f, err := os.OpenFile(w.segPath(seq), flag, 0)
		if err != nil {
			return fmt.Errorf("wal: open segment: %w", err)
		}
		w.segs[seq] = f
	}
	w.cur, w.curSeq, w.curOff, w.floor, w.zeroedTo = w.segs[last], last, tailEnd, floor, tailEnd
	if fi, err := w.cur.Stat(); err != nil {
		return fmt.Errorf("wal: stat %s: %w", w.segPath(last), err)
	} else if zeroTail {
		w.zeroedTo = fi.Size() // prefilled: nothing was torn
	} else if fi.Size() != tailEnd {
		w.log.Warn("truncating torn tail of write-ahead log",
			"file", w.segPath(last), "offset", tailEnd, "dropped_bytes", fi.Size()-tailEnd)
		if err := w.cur.Truncate(tailEnd); err != nil {
			return fmt.Errorf("wal: truncate torn tail of %s: %w", w.segPath(last), err)
		}
		if err := w.sync(w.cur); err != nil {
			return fmt.Errorf("wal: sync %s after truncation: %w", w.segPath(last), err)
		}
	}
	var stale []uint64
	for _, s := range seqs {
		if s < floor {
			stale = append(stale, s)
		}
	}
	if err := w.removeSegments(stale, "below the floor of a completed reclaim"); err != nil {
		return err
	}
	return w.removeSegments(discard, "segment creation never completed")
}

func (w *WAL) removeSegments(seqs []uint64, why string) error {
	if len(seqs) == 0 {
		return nil
	}
	for _, s := range seqs {
		w.log.Info("removing segment", "file", w.segPath(s), "reason", why)
		if err := os.Remove(w.segPath(s)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("wal: remove %s: %w", w.segPath(s), err)
		}
	}
	if err := w.syncDir(); err != nil {
		return fmt.Errorf("wal: sync dir: %w", err)
	}
	return nil
}

func (w *WAL) readSegHeader(seq uint64) (segHeader, error) {
	path := w.segPath(seq)
	f, err := os.Open(path)
	if err != nil {
		return segHeader{}, fmt.Errorf("wal: open %s: %w", path, err)
	}
	defer f.Close()
	b := make([]byte, segHeaderSize)
	if _, err := f.ReadAt(b, 0); err != nil {
		return segHeader{}, corruptf(path, 0, "read segment header: %v", err)
	}
	h, err := decodeSegHeader(b)
	if err != nil {
		return segHeader{}, corruptf(path, 0, "%v", err)
	}
	if h.seq != seq {
		return segHeader{}, corruptf(path, 0, "header names segment %d", h.seq)
	}
	return h, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// replaySegment applies one segment's records and returns the offset just
// past its last good frame, and whether only zeros (prefill) follow it.
func (w *WAL) replaySegment(seq uint64, isLast bool, byID map[uint32]*group) (int64, bool, error) {
	path := w.segPath(seq)
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, false, fmt.Errorf("wal: read %s: %w", path, err)
	}
	h, err := decodeSegHeader(data)
	if err != nil {
		return 0, false, corruptf(path, 0, "%v", err)
	}
	if h.seq != seq {
		return 0, false, corruptf(path, 0, "header names segment %d", h.seq)
	}
	off := segHeaderSize
	for off < len(data) {
		n, ferr := parseFrame(data[off:])
		if ferr != frameOK {
			switch {
			case isLast && allZero(data[off:]):
				return int64(off), true, nil
			case isLast && tornTail(data, off, n, ferr):
				return int64(off), false, nil
			}
			return 0, false, corruptf(path, int64(off), "%s", describeFrameErr(ferr))
		}
		body := data[off+frameHeaderSize : off+n]
		for p := 0; p < len(body); {
			at := int64(off + frameHeaderSize + p)
			rec, err := parseRecord(body[p:])
			if err != nil {
				return 0, false, corruptf(path, at, "%v", err)
			}
			if err := w.replayRecord(rec, seq, at, byID); err != nil {
				return 0, false, corruptf(path, at, "%v", err)
			}
			p += rec.size
		}
		off += n
	}
	return int64(off), false, nil
}

func describeFrameErr(e frameErr) string {
	switch e {
	case frameShort:
		return "frame runs past end of segment"
	case frameBadHeader:
		return "garbage where a frame header should be"
	default:
		return "frame checksum mismatch"
	}
}

// tornTail decides whether a bad frame at off in the last segment is the
// remains of the final, never-acknowledged write. Frames are written one at a
// time, each synced before the next is written, so only the last frame can be
// torn; and a torn write leaves nothing valid after it.
func tornTail(data []byte, off, n int, e frameErr) bool {
	switch e {
	case frameShort:
		return true
	case frameBadBody:
		// The header is intact, so its length is exact: the frame is the last
		// thing in the file only if nothing but prefill follows it.
		return allZero(data[off+n:])
	default:
		// The header itself is unreadable and its length unknown. Anything that
		// still parses as a whole frame further on was written later, which
		// means this frame had been synced: that is damage, not a torn write.
		var magic [4]byte
		binary.LittleEndian.PutUint32(magic[:], frameMagic)
		for p := off + 1; p+frameHeaderSize <= len(data); p++ {
			i := bytes.Index(data[p:], magic[:])
			if i < 0 {
				break
			}
			p += i
			if _, fe := parseFrame(data[p:]); fe == frameOK {
				return false
			}
		}
		return true
	}
}

func (w *WAL) replayRecord(rec record, seq uint64, off int64, byID map[uint32]*group) error {
	if rec.gid >= w.nextID {
		w.nextID = rec.gid + 1
	}
	if rec.typ == recName {
		name := string(rec.payload)
		if name == "" {
			return errors.New("empty group name")
		}
		if g := byID[rec.gid]; g != nil {
			if g.name != name {
				return fmt.Errorf("group id %d renamed from %q to %q", rec.gid, g.name, name)
			}
			g.namedIn = seq
			return nil
		}
		if other := w.groups[name]; other != nil {
			return fmt.Errorf("group %q bound to ids %d and %d", name, other.id, rec.gid)
		}
		g := w.newGroup(name, rec.gid)
		g.namedIn = seq
		byID[rec.gid] = g
		return nil
	}
	g := byID[rec.gid]
	if g == nil {
		return fmt.Errorf("record type %d for unknown group id %d", rec.typ, rec.gid)
	}
	switch rec.typ {
	case recEntry:
		idx, err := entryIndex(rec.payload)
		if err != nil {
			return err
		}
		if idx == 0 || (g.last != 0 && idx != g.last+1) {
			return fmt.Errorf("group %q: entry %d does not follow %d", g.name, idx, g.last)
		}
		if g.last == 0 {
			g.first = idx
		}
		g.last = idx
		g.locs = append(g.locs, loc{seg: uint32(seq), off: off, n: uint32(rec.size)})
	case recSet:
		k, v, err := decodeSet(rec.payload)
		if err != nil {
			return err
		}
		g.stable[k] = v
	case recDelete:
		lo, hi, err := decodeDelete(rec.payload)
		if err != nil {
			return err
		}
		if err := g.cut(lo, hi); err != nil {
			return err
		}
	case recDrop:
		delete(byID, rec.gid)
		delete(w.groups, g.name)
	default:
		return fmt.Errorf("unknown record type %d", rec.typ)
	}
	return nil
}

// clampRange intersects [lo, hi] with the live range [first, last] and
// classifies the deletion. Raft only ever trims a prefix (compaction), a
// suffix (conflicting entries) or everything (after a snapshot restore).
func clampRange(first, last, lo, hi uint64) (cl, ch uint64, ok bool, err error) {
	if last == 0 {
		return 0, 0, false, nil
	}
	lo, hi = max(lo, first), min(hi, last)
	if lo > hi {
		return 0, 0, false, nil
	}
	if lo != first && hi != last {
		return 0, 0, false, fmt.Errorf("delete of %d..%d would leave a hole in %d..%d", lo, hi, first, last)
	}
	return lo, hi, true, nil
}

// cut removes [lo, hi] from the group's entries; the caller holds g.mu or
// owns g exclusively.
func (g *group) cut(lo, hi uint64) error {
	lo, hi, ok, err := clampRange(g.first, g.last, lo, hi)
	if err != nil || !ok {
		return err
	}
	switch {
	case lo == g.first && hi == g.last:
		g.first, g.last, g.locs = 0, 0, nil
	case lo == g.first:
		g.locs = g.locs[hi-g.first+1:]
		// Release the dropped prefix once it dominates the backing array.
		if cap(g.locs) > 2*len(g.locs)+1024 {
			g.locs = append([]loc(nil), g.locs...)
		}
		g.first = hi + 1
	default:
		g.locs = g.locs[:lo-g.first]
		g.last = lo - 1
	}
	if c := g.cache; len(c) > 0 {
		for i := lo; i <= hi && i < lo+uint64(len(c)); i++ {
			if c[i%uint64(len(c))].Index == i {
				c[i%uint64(len(c))] = raft.Log{}
			}
		}
	}
	return nil
}
