package timerwheel

import (
	"cmp"
	"math"
	"slices"
)

// The wheel has one fine level of 256 ticks and four coarser levels of 64 slots
// each, every slot of level k spanning all of level k-1. With 10 ms ticks level 0
// covers 2.56 s, then 164 s, 2.9 h, 7.8 days and 497 days; timers further out
// wait in a list that is re-examined at every top-level slot boundary.
const (
	l0Bits   = 8
	l0Size   = 1 << l0Bits
	lnBits   = 6
	lnSize   = 1 << lnBits
	nUpper   = 4
	topShift = l0Bits + lnBits*(nUpper-1) // tick bits below a top-level slot

	// maxStep bounds the ticks walked one by one in an Advance; a larger jump
	// (a suspended host, a new leader far behind) re-sorts all entries instead,
	// which costs O(entries) once rather than O(ticks).
	maxStep = 1 << 16

	// keepCap is the largest slot capacity kept for reuse after a slot empties;
	// bigger backing arrays are released so a burst does not pin memory.
	keepCap = 256
)

// wentry is what the wheel holds per timer: 16 bytes. Whether the timer still
// exists, or is still due at that time, is checked against its record at pop
// time, so a replaced or deleted timer simply leaves a stale entry behind.
type wentry struct {
	id  uint64
	due int64 // Unix ns
}

// wheel is a hierarchical timing wheel. It does no I/O and reads no clock: it
// is fed times through Insert and Advance, and says when it next needs one.
// It is not safe for concurrent use.
type wheel struct {
	tick int64 // ns per tick
	base int64 // next tick to process; every tick before it is done
	now  int64 // latest time passed to Advance

	l0    [l0Size][]wentry
	up    [nUpper][lnSize][]wentry
	far   []wentry // due beyond the top level's reach
	ready []wentry // inserted when already due
	n     int
}

// newWheel returns an empty wheel whose present is now (Unix ns).
func newWheel(tick, now int64) *wheel {
	if tick <= 0 {
		panic("timerwheel: wheel tick must be positive")
	}
	return &wheel{tick: tick, base: floorDiv(now, tick) + 1, now: now}
}

// Len is the number of entries held, stale ones included.
func (w *wheel) Len() int { return w.n }

// Insert adds an entry. An entry already due is returned by the next Advance.
func (w *wheel) Insert(id uint64, due int64) {
	w.n++
	e := wentry{id: id, due: due}
	if due <= w.now {
		w.ready = append(w.ready, e)
		return
	}
	// due > now >= (base-1)*tick, so the entry's tick is base or later.
	w.place(e, ceilDiv(due, w.tick))
}

// place files e, due at tick exp >= base, by its distance from base.
func (w *wheel) place(e wentry, exp int64) {
	delta := exp - w.base
	if delta < l0Size {
		w.l0[exp&(l0Size-1)] = append(w.l0[exp&(l0Size-1)], e)
		return
	}
	for k := range nUpper {
		s := uint(l0Bits + lnBits*k)
		if delta < int64(1)<<(s+lnBits) {
			i := (exp >> s) & (lnSize - 1)
			w.up[k][i] = append(w.up[k][i], e)
			return
		}
	}
	w.far = append(w.far, e)
}

// Advance moves the wheel's present to now and appends to out every entry due
// at or before it, ordered by due time then id. An entry is never returned
// before its due time and, once Advance is called, at most one tick after it.
// A now earlier than a previous one (the wall clock stepped back) only
// returns entries inserted as already due.
func (w *wheel) Advance(now int64, out []wentry) []wentry {
	start := len(out)
	w.now = max(w.now, now)
	out = append(out, w.ready...)
	w.ready = recycle(w.ready)

	target := floorDiv(w.now, w.tick)
	if target-w.base >= maxStep {
		out = w.rebuild(target, out)
	} else {
		for ; w.base <= target; w.base++ {
			t := w.base
			if t&(l0Size-1) == 0 {
				w.cascade(t)
			}
			slot := &w.l0[t&(l0Size-1)]
			out = append(out, *slot...)
			*slot = recycle(*slot)
		}
	}
	got := out[start:]
	w.n -= len(got)
	slices.SortFunc(got, func(a, b wentry) int {
		if c := cmp.Compare(a.due, b.due); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	return out
}

// cascade redistributes, at tick t (the current base), every coarse slot whose
// span starts at t into the finer levels. Top-down order lets an entry fall
// through several levels in one step.
func (w *wheel) cascade(t int64) {
	if t&(int64(1)<<topShift-1) == 0 && len(w.far) > 0 {
		far := w.far
		w.far = nil
		for _, e := range far {
			w.place(e, ceilDiv(e.due, w.tick))
		}
	}
	for k := nUpper - 1; k >= 0; k-- {
		s := uint(l0Bits + lnBits*k)
		if t&(int64(1)<<s-1) != 0 {
			continue
		}
		slot := &w.up[k][(t>>s)&(lnSize-1)]
		es := *slot
		*slot = nil
		// Entries of this slot are due in [t, t+2^s): they land in finer levels,
		// never back in a slot being cascaded at t.
		for _, e := range es {
			w.place(e, ceilDiv(e.due, w.tick))
		}
	}
}

// rebuild handles a jump to target tick: entries due by then go to out, the
// rest are re-filed relative to the new base.
func (w *wheel) rebuild(target int64, out []wentry) []wentry {
	all := make([]wentry, 0, w.n-len(w.ready))
	for i := range w.l0 {
		all = append(all, w.l0[i]...)
		w.l0[i] = nil
	}
	for k := range w.up {
		for i := range w.up[k] {
			all = append(all, w.up[k][i]...)
			w.up[k][i] = nil
		}
	}
	all = append(all, w.far...)
	w.far = nil
	w.base = target + 1
	for _, e := range all {
		exp := ceilDiv(e.due, w.tick)
		if exp <= target {
			out = append(out, e)
			continue
		}
		w.place(e, exp)
	}
	return out
}

// NextWake returns the earliest time at which Advance may have something to
// return: exact for entries in the finest level, the start of the slot's span
// for coarser ones (where a cascade is due). ok is false when the wheel is empty.
func (w *wheel) NextWake() (at int64, ok bool) {
	if len(w.ready) > 0 {
		return w.now, true
	}
	if w.n == 0 {
		return 0, false
	}
	best := int64(math.MaxInt64)
	for i := range int64(l0Size) {
		if t := w.base + i; len(w.l0[t&(l0Size-1)]) > 0 {
			best = t
			break
		}
	}
	for k := range nUpper {
		s := uint(l0Bits + lnBits*k)
		for m := range int64(lnSize + 1) {
			blk := w.base>>s + m
			start := blk << s
			if start < w.base {
				continue // this block's slot was cascaded already
			}
			if start >= best {
				break
			}
			if len(w.up[k][blk&(lnSize-1)]) > 0 {
				best = start
				break
			}
		}
	}
	if len(w.far) > 0 {
		best = min(best, ceilDiv(w.base, int64(1)<<topShift)<<topShift)
	}
	if best == math.MaxInt64 {
		return 0, false
	}
	return best * w.tick, true
}

// recycle empties a slot, keeping small backing arrays for reuse.
func recycle(s []wentry) []wentry {
	if cap(s) > keepCap {
		return nil
	}
	return s[:0]
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func ceilDiv(a, b int64) int64 { return -floorDiv(-a, b) }
