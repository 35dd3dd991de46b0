package timerwheel

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

const (
	tick10ms = int64(10 * time.Millisecond)
	t0       = int64(1_700_000_000_000_000_000) // a tick boundary
)

func at(d time.Duration) int64 { return t0 + int64(d) }

func ids(es []wentry) []uint64 {
	out := make([]uint64, 0, len(es))
	for _, e := range es {
		out = append(out, e.id)
	}
	return out
}

func TestWheelTable(t *testing.T) {
	type step struct {
		ins  []wentry      // inserted before advancing
		now  time.Duration // Advance to t0+now
		want []uint64
	}
	day := 24 * time.Hour
	tests := []struct {
		name  string
		steps []step
	}{
		{"due on a tick boundary", []step{
			{ins: []wentry{{1, at(100 * time.Millisecond)}}, now: 99 * time.Millisecond},
			{now: 100 * time.Millisecond, want: []uint64{1}},
			{now: time.Second},
		}},
		{"mid-tick due is never early", []step{
			{ins: []wentry{{1, at(105 * time.Millisecond)}}, now: 105 * time.Millisecond},
			{now: 109 * time.Millisecond},
			{now: 110 * time.Millisecond, want: []uint64{1}},
		}},
		{"already due when inserted", []step{
			{now: time.Second},
			{ins: []wentry{{7, at(500 * time.Millisecond)}, {8, at(time.Second)}}, now: time.Second, want: []uint64{7, 8}},
		}},
		{"same due ordered by id", []step{
			{ins: []wentry{{3, at(time.Second)}, {1, at(time.Second)}, {2, at(time.Second)}}, now: time.Second, want: []uint64{1, 2, 3}},
		}},
		{"earlier due first across levels", []step{
			{ins: []wentry{{1, at(time.Hour)}, {2, at(5 * time.Second)}, {3, at(200 * time.Millisecond)}}, now: 2 * time.Hour, want: []uint64{3, 2, 1}},
		}},
		{"level 1 cascade", []step{
			{ins: []wentry{{1, at(5*time.Second + 30*time.Millisecond)}}, now: 5 * time.Second},
			{now: 5*time.Second + 20*time.Millisecond},
			{now: 5*time.Second + 30*time.Millisecond, want: []uint64{1}},
		}},
		{"level 2 cascade stepping", []step{
			{ins: []wentry{{1, at(10 * time.Minute)}}, now: 9 * time.Minute},
			{now: 10*time.Minute - 10*time.Millisecond},
			{now: 10 * time.Minute, want: []uint64{1}},
		}},
		{"level 3 and 4 via jumps", []step{
			{ins: []wentry{{1, at(5 * time.Hour)}, {2, at(30 * day)}}, now: 5*time.Hour - time.Millisecond},
			{now: 5 * time.Hour, want: []uint64{1}},
			{now: 30*day - time.Millisecond},
			{now: 30 * day, want: []uint64{2}},
		}},
		{"far future beyond the top level", []step{
			{ins: []wentry{{1, at(600 * day)}, {2, at(1000 * day)}}, now: 599 * day},
			{now: 600*day - 10*time.Millisecond},
			{now: 600 * day, want: []uint64{1}},
			{now: 1000 * day, want: []uint64{2}},
		}},
		{"big jump returns everything due", []step{
			{ins: []wentry{{4, at(59 * time.Minute)}, {3, at(30 * time.Second)}, {2, at(2 * time.Second)}, {1, at(10 * time.Millisecond)}, {5, at(3 * time.Hour)}}, now: 2 * time.Hour, want: []uint64{1, 2, 3, 4}},
			{now: 3 * time.Hour, want: []uint64{5}},
		}},
		{"clock stepping back", []step{
			{ins: []wentry{{1, at(2 * time.Second)}}, now: time.Second},
			{now: -time.Hour},
			{now: 2 * time.Second, want: []uint64{1}},
		}},
		{"insert after advancing", []step{
			{now: 3 * time.Second},
			{ins: []wentry{{1, at(3*time.Second + 2560*time.Millisecond)}}, now: 3*time.Second + 2550*time.Millisecond},
			{now: 3*time.Second + 2560*time.Millisecond, want: []uint64{1}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWheel(tick10ms, t0)
			total := 0
			for i, st := range tc.steps {
				for _, e := range st.ins {
					w.Insert(e.id, e.due)
					total++
				}
				got := ids(w.Advance(at(st.now), nil))
				total -= len(got)
				if !slices.Equal(got, st.want) && (len(got) != 0 || len(st.want) != 0) {
					t.Fatalf("step %d: Advance(+%v) = %v, want %v", i, st.now, got, st.want)
				}
				if w.Len() != total {
					t.Fatalf("step %d: Len = %d, want %d", i, w.Len(), total)
				}
			}
		})
	}
}

func TestWheelNextWake(t *testing.T) {
	tests := []struct {
		name string
		due  []time.Duration
		want time.Duration // NextWake relative to t0; -1: empty
		max  time.Duration // or at most this, for coarse levels
	}{
		{"empty", nil, -1, 0},
		{"level 0 exact", []time.Duration{150 * time.Millisecond, 2 * time.Second}, 150 * time.Millisecond, 0},
		{"level 0 rounds up to tick", []time.Duration{151 * time.Millisecond}, 160 * time.Millisecond, 0},
		{"coarse level wakes no later than due", []time.Duration{90 * time.Second}, 0, 90 * time.Second},
		{"far future", []time.Duration{900 * 24 * time.Hour}, 0, 900 * 24 * time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWheel(tick10ms, t0)
			for i, d := range tc.due {
				w.Insert(uint64(i+1), at(d))
			}
			got, ok := w.NextWake()
			switch {
			case tc.want < 0:
				if ok {
					t.Fatalf("NextWake = %v, want none", got)
				}
			case tc.max > 0:
				if !ok || got > at(tc.max) || got <= t0 {
					t.Fatalf("NextWake = +%v, want in (0, %v]", time.Duration(got-t0), tc.max)
				}
			default:
				if !ok || got != at(tc.want) {
					t.Fatalf("NextWake = +%v, want +%v", time.Duration(got-t0), tc.want)
				}
			}
		})
	}
	w := newWheel(tick10ms, t0)
	w.Advance(at(time.Second), nil)
	w.Insert(1, at(time.Millisecond))
	if got, ok := w.NextWake(); !ok || got != at(time.Second) {
		t.Fatalf("overdue entry: NextWake = %v,%v, want now", got, ok)
	}
}

// TestWheelDrivenByNextWake sleeps the driver exactly as the pop loop does:
// every entry must come out at the tick of its due time, none early, none lost.
func TestWheelDrivenByNextWake(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	spans := []time.Duration{time.Second, time.Minute, time.Hour, 10 * 24 * time.Hour, 800 * 24 * time.Hour}
	w := newWheel(tick10ms, t0)
	want := map[uint64]int64{}
	var lastID uint64
	add := func(now int64, n int) {
		for range n {
			lastID++
			id := lastID
			span := spans[rng.IntN(len(spans))]
			due := now + rng.Int64N(int64(span))
			want[id] = due
			w.Insert(id, due)
		}
	}
	add(t0, 3000)
	now, wakes := t0, 0
	for {
		next, ok := w.NextWake()
		if !ok {
			break
		}
		if next < now {
			t.Fatalf("NextWake %d went back before %d", next, now)
		}
		wakes++
		now = next
		for _, e := range w.Advance(now, nil) {
			due, ok := want[e.id]
			if !ok {
				t.Fatalf("id %d returned twice or never inserted", e.id)
			}
			if due > now {
				t.Fatalf("id %d returned at %d before due %d", e.id, now, due)
			}
			if late := now - ceilDiv(due, tick10ms)*tick10ms; late > 0 {
				t.Fatalf("id %d returned %v after its tick", e.id, time.Duration(late))
			}
			delete(want, e.id)
		}
		if wakes%100 == 0 && lastID < 6000 {
			add(now, 100) // keep inserting while running
		}
	}
	if len(want) != 0 {
		t.Fatalf("%d entries never returned", len(want))
	}
	t.Logf("%d wakes", wakes)
}

// TestWheelRandomSteps advances by random amounts, small and huge: an entry is
// never early and never skips past an Advance that covered its tick.
func TestWheelRandomSteps(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	steps := []time.Duration{time.Millisecond, 7 * time.Millisecond, 300 * time.Millisecond, 40 * time.Second, 3 * time.Hour, 20 * 24 * time.Hour}
	w := newWheel(tick10ms, t0)
	want := map[uint64]int64{}
	now := t0
	for round := range 4000 {
		for range rng.IntN(4) {
			id := uint64(len(want)) + uint64(round)<<32
			due := now + rng.Int64N(int64(steps[rng.IntN(len(steps))]))
			if _, dup := want[id]; dup {
				t.Fatalf("test bug: duplicate id %d", id)
			}
			want[id] = due
			w.Insert(id, due)
		}
		now += rng.Int64N(int64(steps[rng.IntN(len(steps))]))
		for _, e := range w.Advance(now, nil) {
			if e.due > now {
				t.Fatalf("round %d: id %d due %d returned early at %d", round, e.id, e.due, now)
			}
			delete(want, e.id)
		}
		for id, due := range want {
			if ceilDiv(due, tick10ms) <= floorDiv(now, tick10ms) {
				t.Fatalf("round %d: id %d due %d missed by Advance(%d)", round, id, due, now)
			}
		}
	}
}
