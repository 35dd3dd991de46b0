package wal

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/raft"
)

// busyWrites appends entries lo..hi to g one at a time, compacting to keep
// the last `keep` entries every `every` entries, as raft would.
func busyWrites(t *testing.T, g *Group, lo, hi, keep, every uint64) {
	t.Helper()
	for i := lo; i <= hi; i++ {
		if err := g.StoreLog(mkLog(i, strings.Repeat("b", 150))); err != nil {
			t.Fatal(err)
		}
		if keep > 0 && i%every == 0 && i > keep {
			if err := g.DeleteRange(0, i-keep); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestSegmentRotationAndReclaim(t *testing.T) {
	cases := []struct {
		name      string
		lagBytes  int    // size of each of the lagging group's 3 entries
		keep      uint64 // busy group's trailing entries after compaction; 0 = never compacts
		reclaimed bool   // whether segment 1 should be gone
		maxSegs   int
	}{
		{"lagging group copied forward", 100, 10, true, 4},
		{"no compaction, nothing reclaimed", 100, 0, false, 1 << 30},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{NoSync: true, SegmentSize: 4 << 10}
			w := openT(t, dir, opts)
			lag, busy := w.Group("meta"), w.Group("shard")
			for i := uint64(1); i <= 3; i++ {
				if err := lag.StoreLog(mkLog(i, strings.Repeat("m", tc.lagBytes))); err != nil {
					t.Fatal(err)
				}
			}
			if err := lag.SetUint64([]byte("CurrentTerm"), 9); err != nil {
				t.Fatal(err)
			}
			if err := busy.Set([]byte("LastVoteCand"), []byte("n1")); err != nil {
				t.Fatal(err)
			}
			seg1, err := os.ReadFile(filepath.Join(dir, segName(1)))
			if err != nil {
				t.Fatal(err)
			}
			busyWrites(t, busy, 1, 600, tc.keep, 10)

			segs := segFiles(t, dir)
			if got := !slices.Contains(segs, 1); got != tc.reclaimed {
				t.Fatalf("segment 1 reclaimed = %v, want %v (segments %v)", got, tc.reclaimed, segs)
			}
			if len(segs) > tc.maxSegs {
				t.Errorf("%d segment files, want at most %d: %v", len(segs), tc.maxSegs, segs)
			}
			if segs[len(segs)-1] < 10 {
				t.Fatalf("only %d segments written; test does not exercise rotation", segs[len(segs)-1])
			}
			want := dumpAll(t, w)
			if got := want["meta"]; got.First != 1 || got.Last != 3 || got.Stable["CurrentTerm"] == "" {
				t.Fatalf("lagging group lost data: %+v", got)
			}
			if got := want["shard"].Stable["LastVoteCand"]; got != "n1" {
				t.Fatalf("busy group's stable key lost: %q", got)
			}
			closeT(t, w)

			if tc.reclaimed {
				// A crash after the floor moved but before the old files were
				// unlinked leaves them behind; Open must ignore and remove them.
				if err := os.WriteFile(filepath.Join(dir, segName(1)), seg1, 0o640); err != nil {
					t.Fatal(err)
				}
			}
			w = openT(t, dir, opts)
			defer closeT(t, w)
			if got := dumpAll(t, w); !reflect.DeepEqual(got, want) {
				t.Fatalf("state after reopen differs:\n got %+v\nwant %+v", summary(got), summary(want))
			}
			if after := segFiles(t, dir); !reflect.DeepEqual(after, segs) {
				t.Errorf("segments after reopen %v, want %v", after, segs)
			}
		})
	}
}

func summary(m map[string]groupState) map[string][2]uint64 {
	out := map[string][2]uint64{}
	for k, v := range m {
		out[k] = [2]uint64{v.First, v.Last}
	}
	return out
}

// TestCrashDuringReclaim fails the sync of the rotation frame that copies a
// lagging group forward. On disk that leaves the copies written but the
// segment header still naming the old floor; replay from the old floor
// through the copies must give back the state from before the failure.
func TestCrashDuringReclaim(t *testing.T) {
	dir := t.TempDir()
	boom := errors.New("power cut")
	var mu sync.Mutex
	armed := false
	perFile := map[string]int{}
	opts := Options{SegmentSize: 4 << 10}
	opts.syncHook = func(f *os.File) error {
		mu.Lock()
		defer mu.Unlock()
		perFile[f.Name()]++
		// The second sync of a new segment is its rotation frame.
		if armed && perFile[f.Name()] == 2 {
			return boom
		}
		return nil
	}
	w := openT(t, dir, opts)
	lag, busy := w.Group("meta"), w.Group("shard")
	for i := uint64(1); i <= 3; i++ {
		if err := lag.StoreLog(mkLog(i, "meta")); err != nil {
			t.Fatal(err)
		}
	}
	if err := lag.SetUint64([]byte("CurrentTerm"), 4); err != nil {
		t.Fatal(err)
	}
	// Fill and compact until the busy group has moved past the segment the
	// lagging group pins: the next rotation will copy the lagging group.
	pin := func(name string) uint32 {
		st := w.lookup(name)
		st.mu.RLock()
		defer st.mu.RUnlock()
		return st.locs[0].seg
	}
	busyWrites(t, busy, 1, 1, 5, 10)
	next := uint64(2)
	for pin("shard") <= pin("meta") {
		busyWrites(t, busy, next, next, 5, 10)
		next++
	}
	oldest := segFiles(t, dir)[0]
	want := dumpAll(t, w)
	mu.Lock()
	armed = true
	mu.Unlock()
	var err error
	for i := next; err == nil; i++ {
		err = busy.StoreLog(mkLog(i, strings.Repeat("b", 150)))
		if err == nil {
			want = dumpAll(t, w)
		}
	}
	if !errors.Is(err, boom) {
		t.Fatalf("write error = %v, want the injected one", err)
	}
	if err := lag.StoreLog(mkLog(4, "x")); !errors.Is(err, boom) {
		t.Fatalf("other group after failure: %v", err)
	}
	w.Close()
	if !slices.Contains(segFiles(t, dir), oldest) {
		t.Fatalf("segment %d removed although the reclaim never completed", oldest)
	}

	w = openT(t, dir, Options{SegmentSize: 4 << 10})
	defer closeT(t, w)
	if got := dumpAll(t, w); !reflect.DeepEqual(got, want) {
		t.Fatalf("state after crash during reclaim:\n got %+v\nwant %+v", summary(got), summary(want))
	}
	// And the log carries on: the next rotations reclaim that segment.
	last, _ := w.Group("shard").LastIndex()
	busyWrites(t, w.Group("shard"), last+1, last+200, 5, 10)
	if slices.Contains(segFiles(t, dir), oldest) {
		t.Errorf("segment %d still present after further rotations: %v", oldest, segFiles(t, dir))
	}
	var l raft.Log
	if err := w.Group("meta").GetLog(3, &l); err != nil || string(l.Data) != "meta" {
		t.Errorf("lagging group entry after recovery: %+v, %v", l, err)
	}
}

func TestPlanReclaim(t *testing.T) {
	const S = 1000
	// mk makes a group whose entries start in segment seg and total live bytes.
	mk := func(name string, seg uint32, live uint32) *group {
		return &group{name: name, first: 1, last: 1, locs: []loc{{seg: seg, n: live}}}
	}
	cases := []struct {
		name      string
		groups    []*group
		next      uint64
		wantCopy  []string
		wantFloor uint64
	}{
		{"no groups", nil, 5, nil, 5},
		{"everyone moved past old segments", []*group{mk("a", 3, 900), mk("b", 4, 900)}, 5, nil, 3},
		{"small laggard copied", []*group{mk("meta", 1, 100), mk("a", 4, 900)}, 5, []string{"meta"}, 4},
		{"laggard too big for the gain", []*group{mk("meta", 3, 600), mk("a", 4, 900)}, 5, nil, 3},
		{"big laggard worth it for a large gain", []*group{mk("meta", 1, 600), mk("a", 9, 900)}, 10, []string{"meta"}, 9},
		{"two laggards", []*group{mk("m1", 1, 100), mk("m2", 2, 100), mk("a", 8, 5000)}, 9, []string{"m1", "m2"}, 8},
		{"everything small is copied", []*group{mk("m1", 1, 100), mk("m2", 2, 100)}, 9, []string{"m1", "m2"}, 9},
		{"busy groups are not copied", []*group{mk("a", 7, 3000), mk("b", 8, 3000)}, 9, nil, 7},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := &WAL{opts: Options{SegmentSize: S}}
			copies, floor := w.planReclaim(tc.groups, tc.next)
			var names []string
			for _, g := range copies {
				names = append(names, g.name)
			}
			if !slices.Equal(names, tc.wantCopy) || floor != tc.wantFloor {
				t.Errorf("copy %v floor %d; want copy %v floor %d", names, floor, tc.wantCopy, tc.wantFloor)
			}
		})
	}
}

// TestReadsRaceReclaim reads a lagging group's entries from disk while
// rotations keep copying it forward and deleting the segments it was in.
func TestReadsRaceReclaim(t *testing.T) {
	dir := t.TempDir()
	w := openT(t, dir, Options{NoSync: true, SegmentSize: 2 << 10, CacheEntries: -1})
	defer closeT(t, w)
	lag, busy := w.Group("meta"), w.Group("shard")
	storeRange(t, lag, 1, 5)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	reads := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for i := uint64(1); i <= 5; i++ {
				var l raft.Log
				if err := lag.GetLog(i, &l); err != nil {
					t.Errorf("GetLog(%d) during reclaim: %v", i, err)
					return
				}
				if want := "meta-" + string(rune('0'+i)); string(l.Data) != want {
					t.Errorf("GetLog(%d) = %q, want %q", i, l.Data, want)
					return
				}
				reads++
			}
		}
	}()
	busyWrites(t, busy, 1, 1500, 5, 5)
	close(stop)
	wg.Wait()
	if segs := segFiles(t, dir); segs[0] < 100 {
		t.Errorf("oldest segment %d: reclaim did not keep up (%v)", segs[0], segs)
	}
	t.Logf("%d reads, segments now %v", reads, segFiles(t, dir))
}
