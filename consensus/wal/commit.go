package wal

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/hashicorp/raft"
)

type reqKind uint8

const (
	kindEntries reqKind = iota
	kindSet
	kindDelete
	kindDrop
)

// request is one durable operation waiting for the commit loop.
type request struct {
	kind reqKind
	g    *group
	buf  []byte // entries, set: records encoded by the caller
	nrec int
	offs []uint32    // entries: start of each record in buf, plus len(buf)
	logs []*raft.Log // entries: kept for the read cache
	lo   uint64      // entries: first index; delete: range
	hi   uint64
	key  string // set
	val  []byte
	done chan error

	noop bool // set by the loop: nothing to write
	at   int  // set by the loop: offset of buf within the frame
}

func (r *request) finish(err error) { r.done <- err }

// submit queues r for the commit loop and waits until it is durable.
func (w *WAL) submit(r *request) error {
	if err := w.failure(); err != nil {
		return err
	}
	r.done = make(chan error, 1)
	w.qmu.Lock()
	if w.closed {
		w.qmu.Unlock()
		return ErrClosed
	}
	w.queue = append(w.queue, r)
	w.queued.Add(1)
	w.qmu.Unlock()
	w.wake()
	return <-r.done
}

func (w *WAL) wake() {
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

func (w *WAL) drain() []*request {
	w.qmu.Lock()
	q := w.queue
	w.queue = nil
	w.qmu.Unlock()
	return q
}

// next blocks until there is work, or returns nil once closed and drained.
func (w *WAL) next() []*request {
	for {
		w.qmu.Lock()
		if q := w.queue; len(q) > 0 {
			w.queue = nil
			w.qmu.Unlock()
			return q
		}
		if w.closed {
			w.qmu.Unlock()
			return nil
		}
		w.qmu.Unlock()
		<-w.notify
	}
}

// run is the commit loop: the only writer of segment files and of the
// in-memory indexes.
func (w *WAL) run() {
	defer close(w.done)
	var pending []*request
	var batchNo uint64
	for {
		if len(pending) == 0 {
			if pending = w.next(); pending == nil {
				return
			}
		} else {
			pending = append(pending, w.drain()...)
		}
		batchNo++
		pending = w.gather(pending, batchNo)
		pending = w.commit(pending)
	}
}

// activity remembers when each group last wrote, so the loop knows which
// groups are worth a short wait.
type activity struct {
	seen map[*group]time.Time
}

func (a *activity) touch(g *group, t time.Time) {
	if a.seen == nil {
		a.seen = make(map[*group]time.Time)
	}
	a.seen[g] = t
}

func (a *activity) forget(g *group) { delete(a.seen, g) }

// missing counts groups active within window that are not present, and
// forgets groups that have gone quiet.
func (a *activity) missing(now time.Time, window time.Duration, present func(*group) bool) int {
	n := 0
	for g, t := range a.seen {
		switch {
		case now.Sub(t) > window:
			delete(a.seen, g)
		case !present(g):
			n++
		}
	}
	return n
}

// activeWindow is how recently a group must have written to count as active.
// It stretches with the device: on a slow disk a group that writes every
// batch still looks active at the start of the next one.
func activeWindow(lastSync time.Duration) time.Duration {
	return min(2*time.Millisecond+3*lastSync, 50*time.Millisecond)
}

// gather waits, at most MaxWait, for recently active groups missing from the
// batch. A group that is not missing never causes a wait, so a lone writer
// pays nothing.
//
// The wait polls with runtime.Gosched instead of a timer: Go timers fire with
// about 1ms granularity on Linux, which would turn a 200µs ceiling into a
// fixed 1ms wait, measured to be worse than not waiting at all.
func (w *WAL) gather(reqs []*request, batchNo uint64) []*request {
	for _, r := range reqs {
		r.g.mark = batchNo
	}
	if w.opts.MaxWait <= 0 || w.failure() != nil {
		return reqs
	}
	present := func(g *group) bool { return g.mark == batchNo }
	start := time.Now()
	window := activeWindow(w.lastSync)
	if w.act.missing(start, window, present) == 0 {
		return reqs
	}
	// The loop sleeps until something is queued or the wait is over:
	// spinning here would take a core from the very goroutines whose
	// records it waits for.
	timer := time.NewTimer(w.opts.MaxWait)
	defer timer.Stop()
	for {
		// Load the counter before draining: anything queued after the drain
		// changes it, so nothing can sit unseen in the queue while we spin.
		seen := w.queued.Load()
		more := w.drain()
		for _, r := range more {
			r.g.mark = batchNo
		}
		reqs = append(reqs, more...)
		if len(more) > 0 && w.act.missing(start, window, present) == 0 {
			return reqs
		}
		for w.queued.Load() == seen {
			select {
			case <-w.notify:
			case <-timer.C:
				return reqs
			}
		}
	}
}

// commit writes a prefix of reqs as one frame with one fdatasync and returns
// what did not fit.
func (w *WAL) commit(reqs []*request) []*request {
	if err := w.failure(); err != nil {
		for _, r := range reqs {
			r.finish(err)
		}
		return nil
	}
	size, n := 0, 0
	for n < len(reqs) {
		s := len(reqs[n].buf) + 64 // 64 covers name/delete/drop records
		if n > 0 && size+s > maxBatchBytes {
			break
		}
		size += s
		n++
	}
	batch, rest := reqs[:n], reqs[n:]
	if w.curOff > segHeaderSize && w.curOff+int64(frameHeaderSize+size) > w.opts.SegmentSize {
		if err := w.rotate(); err != nil {
			err = w.fail(fmt.Errorf("rotate segment: %w", err))
			for _, r := range reqs {
				r.finish(err)
			}
			return nil
		}
	}

	frame := append(w.frame[:0], make([]byte, frameHeaderSize)...)
	admitted := make([]*request, 0, len(batch))
	nrec := 0
	for _, r := range batch {
		if err := w.admit(r); err != nil {
			r.finish(err)
			continue
		}
		if r.noop {
			r.finish(nil)
			continue
		}
		g := r.g
		if g.namedIn != w.curSeq {
			// Every segment names the groups it mentions before their first
			// record, so a segment can be replayed without its predecessors.
			frame = appendNameRecord(frame, g.id, g.name)
			g.namedIn = w.curSeq
			nrec++
		}
		r.at = len(frame)
		switch r.kind {
		case kindEntries, kindSet:
			frame = append(frame, r.buf...)
			nrec += r.nrec
		case kindDelete:
			frame = appendDeleteRecord(frame, g.id, r.lo, r.hi)
			nrec++
		case kindDrop:
			frame = appendDropRecord(frame, g.id)
			nrec++
		}
		admitted = append(admitted, r)
	}
	if cap(frame) <= 2*maxBatchBytes {
		w.frame = frame
	}
	if len(admitted) == 0 {
		return rest
	}
	putFrameHeader(frame)
	base := w.curOff
	start := time.Now()
	if err := w.writeFrame(frame, nrec); err != nil {
		err = w.fail(err)
		for _, r := range admitted {
			r.finish(err)
		}
		return rest
	}
	now := time.Now()
	w.lastSync = now.Sub(start)
	for _, r := range admitted {
		w.apply(r, base)
		w.act.touch(r.g, now)
		r.finish(nil)
	}
	return rest
}

func (w *WAL) writeFrame(frame []byte, nrec int) error {
	n, err := w.cur.WriteAt(frame, w.curOff)
	w.bytes.Add(uint64(n))
	if err != nil {
		return fmt.Errorf("write %s at %d: %w", w.segPath(w.curSeq), w.curOff, err)
	}
	w.batches.Add(1)
	w.records.Add(uint64(nrec))
	w.curOff += int64(n)
	if err := w.prefill(); err != nil {
		return err
	}
	if err := w.sync(w.cur); err != nil {
		return fmt.Errorf("fdatasync %s: %w", w.segPath(w.curSeq), err)
	}
	return nil
}

// zeroChunk is how much prefill writes at a time.
const zeroChunk = 1 << 20

// prefill keeps zeros written ahead of the write offset, a chunk at a time,
// synced along with the frame before them. An fdatasync after overwriting
// blocks the file already has flushes the data alone; after an append it must
// also commit the file's new size through the filesystem's journal, which on
// ext4 here cost twice the CPU (134 against 72 us) and 1.6 times the time.
// Recovery takes zeros where a frame should start for the end of the log.
func (w *WAL) prefill() error {
	if w.curOff+zeroChunk/2 <= w.zeroedTo {
		return nil
	}
	from := max(w.zeroedTo, w.curOff)
	to := min(from+zeroChunk, w.opts.SegmentSize)
	if to <= from {
		return nil
	}
	if w.zeros == nil {
		w.zeros = make([]byte, zeroChunk)
	}
	if _, err := w.cur.WriteAt(w.zeros[:to-from], from); err != nil {
		return fmt.Errorf("prefill %s at %d: %w", w.segPath(w.curSeq), from, err)
	}
	w.zeroedTo = to
	return nil
}

// admit checks r against the loop's view of its group (which includes
// requests already admitted to this batch) and advances that view.
func (w *WAL) admit(r *request) error {
	g := r.g
	if g.ldropped {
		return ErrGroupDropped
	}
	switch r.kind {
	case kindEntries:
		if g.llast != 0 && r.lo != g.llast+1 {
			return fmt.Errorf("wal: group %q: entries must continue the log: got index %d, log holds %d..%d",
				g.name, r.lo, g.lfirst, g.llast)
		}
		if g.llast == 0 {
			g.lfirst = r.lo
		}
		g.llast = r.hi
	case kindDelete:
		lo, hi, ok, err := clampRange(g.lfirst, g.llast, r.lo, r.hi)
		if err != nil {
			return fmt.Errorf("wal: group %q: %w", g.name, err)
		}
		if !ok {
			r.noop = true
			return nil
		}
		r.lo, r.hi = lo, hi
		switch {
		case lo == g.lfirst && hi == g.llast:
			g.lfirst, g.llast = 0, 0
		case lo == g.lfirst:
			g.lfirst = hi + 1
		default:
			g.llast = lo - 1
		}
	case kindDrop:
		g.ldropped = true
	}
	return nil
}

// apply publishes a durable request to readers. base is the frame's offset.
func (w *WAL) apply(r *request, base int64) {
	g := r.g
	switch r.kind {
	case kindEntries:
		g.mu.Lock()
		if g.last == 0 {
			g.first = r.lo
		}
		at := base + int64(r.at)
		for i := 0; i+1 < len(r.offs); i++ {
			g.locs = append(g.locs, loc{seg: uint32(w.curSeq), off: at + int64(r.offs[i]), n: r.offs[i+1] - r.offs[i]})
		}
		g.last = r.hi
		if w.opts.CacheEntries > 0 {
			if g.cache == nil {
				g.cache = make([]raft.Log, w.opts.CacheEntries)
			}
			for _, l := range r.logs {
				c := *l
				if len(c.Data) == 0 {
					c.Data = nil
				}
				if len(c.Extensions) == 0 {
					c.Extensions = nil
				}
				g.cache[l.Index%uint64(len(g.cache))] = c
			}
		}
		g.mu.Unlock()
	case kindSet:
		g.mu.Lock()
		g.stable[r.key] = r.val
		g.mu.Unlock()
	case kindDelete:
		g.mu.Lock()
		_ = g.cut(r.lo, r.hi) // admitted against the same state: cannot fail
		g.mu.Unlock()
	case kindDrop:
		w.mu.Lock()
		if w.groups[g.name] == g {
			delete(w.groups, g.name)
		}
		w.mu.Unlock()
		g.mu.Lock()
		g.first, g.last, g.locs, g.cache, g.dropped = 0, 0, nil, nil, true
		g.stable = make(map[string][]byte)
		g.mu.Unlock()
		w.act.forget(g)
	}
}

// errSegmentGone means a loc pointed into a segment reclaimed since it was
// looked up; the entry has been copied forward (or deleted).
var errSegmentGone = errors.New("wal: segment reclaimed")

// readRecord reads and verifies the record at l.
func (w *WAL) readRecord(l loc) ([]byte, error) {
	w.segMu.RLock()
	defer w.segMu.RUnlock()
	if w.segs == nil {
		return nil, ErrClosed
	}
	f := w.segs[uint64(l.seg)]
	path := w.segPath(uint64(l.seg))
	if f == nil {
		return nil, fmt.Errorf("%w: %s", errSegmentGone, path)
	}
	b := make([]byte, l.n)
	if _, err := f.ReadAt(b, l.off); err != nil {
		return nil, fmt.Errorf("wal: read %s at %d: %w", path, l.off, err)
	}
	if _, err := parseRecord(b); err != nil {
		return nil, corruptf(path, l.off, "%v", err)
	}
	return b, nil
}

// rotate starts a new segment and reclaims old ones. The new segment opens
// with the name of every group with content and every stable value, so that
// no stable key or name ever pins an old segment; groups whose few live
// entries alone hold back old segments are copied forward whole.
func (w *WAL) rotate() error {
	// A sealed segment ends at its last frame: replay reads zeros as the
	// end of the log only in the newest segment. The cut is durable before
	// a newer segment exists.
	if w.zeroedTo > w.curOff {
		if err := w.cur.Truncate(w.curOff); err != nil {
			return fmt.Errorf("cut prefill of %s: %w", w.segPath(w.curSeq), err)
		}
		if err := w.sync(w.cur); err != nil {
			return fmt.Errorf("sync %s: %w", w.segPath(w.curSeq), err)
		}
	}
	next := w.curSeq + 1
	f, err := w.createSegment(next, w.floor)
	if err != nil {
		return err
	}
	w.segMu.Lock()
	w.segs[next] = f
	w.segMu.Unlock()
	w.cur, w.curSeq, w.curOff, w.zeroedTo = f, next, segHeaderSize, segHeaderSize

	w.mu.RLock()
	groups := make([]*group, 0, len(w.groups))
	for _, g := range w.groups {
		groups = append(groups, g)
	}
	w.mu.RUnlock()
	slices.SortFunc(groups, func(a, b *group) int { return cmp.Compare(a.id, b.id) })
	copies, floor := w.planReclaim(groups, next)

	// The loop is the only writer of group state, so it reads it unlocked.
	frame := append(w.frame[:0], make([]byte, frameHeaderSize)...)
	nrec := 0
	for _, g := range groups {
		if !g.hasContent() {
			continue
		}
		frame = appendNameRecord(frame, g.id, g.name)
		g.namedIn = next
		nrec++
		keys := make([]string, 0, len(g.stable))
		for k := range g.stable {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			frame = appendSetRecord(frame, g.id, k, g.stable[k])
			nrec++
		}
	}
	moved := make([][]loc, len(copies))
	for i, g := range copies {
		// Delete-all then the same entries again: replay from this segment
		// alone, or from any older one, ends in the same state.
		frame = appendDeleteRecord(frame, g.id, g.first, g.last)
		nrec++
		moved[i] = make([]loc, len(g.locs))
		for j, l := range g.locs {
			b, err := w.readRecord(l)
			if err != nil {
				return fmt.Errorf("copy group %q forward: %w", g.name, err)
			}
			moved[i][j] = loc{seg: uint32(next), off: w.curOff + int64(len(frame)), n: l.n}
			frame = append(frame, b...)
			nrec++
		}
	}
	if len(frame) > frameHeaderSize {
		putFrameHeader(frame)
		if err := w.writeFrame(frame, nrec); err != nil {
			return err
		}
	}
	for i, g := range copies {
		g.mu.Lock()
		g.locs = moved[i]
		g.mu.Unlock()
	}
	if floor <= w.floor {
		return nil
	}
	// Only now that the copies are durable may the header say the older
	// segments are no longer needed.
	if _, err := f.WriteAt(encodeSegHeader(segHeader{seq: next, floor: floor}), 0); err != nil {
		return fmt.Errorf("update floor of %s: %w", w.segPath(next), err)
	}
	if err := w.sync(f); err != nil {
		return fmt.Errorf("fdatasync %s: %w", w.segPath(next), err)
	}
	old := w.floor
	w.floor = floor
	names := make([]string, len(copies))
	for i, g := range copies {
		names[i] = g.name
	}
	w.log.Debug("reclaiming segments", "from", old, "to", floor-1, "copied_forward", names)
	w.removeBelow(floor)
	return nil
}

// planReclaim picks the groups to copy forward and the resulting floor. Only
// the groups pinning the oldest segments are candidates, and only when the
// segments freed outweigh the bytes copied: a rarely written group's small
// tail is copied, a busy group is left to compact by itself.
func (w *WAL) planReclaim(groups []*group, next uint64) ([]*group, uint64) {
	type pin struct {
		g    *group
		seg  uint64
		live int64
	}
	var pins []pin
	for _, g := range groups {
		if g.last == 0 {
			continue
		}
		var live int64
		for _, l := range g.locs {
			live += int64(l.n)
		}
		pins = append(pins, pin{g: g, seg: uint64(g.locs[0].seg), live: live})
	}
	if len(pins) == 0 {
		return nil, next
	}
	slices.SortStableFunc(pins, func(a, b pin) int { return cmp.Compare(a.seg, b.seg) })
	// Copying k groups frees segments pins[0].seg .. to-1. Take the k with the
	// best net gain, counting a copied byte as four reclaimed ones.
	best, bestGain := 0, int64(0)
	var cost int64
	for k := 1; k <= len(pins); k++ {
		cost += pins[k-1].live
		to := next
		if k < len(pins) {
			to = pins[k].seg
		}
		if gain := int64(to-pins[0].seg)*w.opts.SegmentSize - 4*cost; gain > bestGain {
			best, bestGain = k, gain
		}
	}
	copies := make([]*group, best)
	for i := range copies {
		copies[i] = pins[i].g
	}
	if best == len(pins) {
		return copies, next
	}
	return copies, pins[best].seg
}

// removeBelow deletes segments older than floor. Failure here costs disk
// space, not correctness: Open removes leftovers below the floor.
func (w *WAL) removeBelow(floor uint64) {
	w.segMu.Lock()
	var victims []uint64
	for seq, f := range w.segs {
		if seq < floor {
			victims = append(victims, seq)
			if err := f.Close(); err != nil {
				w.log.Warn("closing reclaimed segment", "file", w.segPath(seq), "err", err)
			}
			delete(w.segs, seq)
		}
	}
	w.segMu.Unlock()
	for _, seq := range victims {
		if err := os.Remove(w.segPath(seq)); err != nil {
			w.log.Warn("removing reclaimed segment", "file", w.segPath(seq), "err", err)
		}
	}
	if err := w.syncDir(); err != nil {
		w.log.Warn("syncing directory after reclaim", "err", err)
	}
}
