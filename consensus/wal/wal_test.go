package wal

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// logBuf collects log output so tests can assert on warnings.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func testOpts(o Options) (Options, *logBuf) {
	lb := &logBuf{}
	o.Logger = slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return o, lb
}

func openT(t testing.TB, dir string, o Options) *WAL {
	t.Helper()
	o, _ = testOpts(o)
	w, err := Open(dir, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return w
}

func closeT(t testing.TB, w *WAL) {
	t.Helper()
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func mkLog(i uint64, data string) *raft.Log {
	return &raft.Log{
		Index:      i,
		Term:       i/10 + 1,
		Type:       raft.LogCommand,
		Data:       []byte(data),
		AppendedAt: time.Unix(1700000000+int64(i), int64(i)*1000),
	}
}

func storeRange(t testing.TB, g *Group, lo, hi uint64) {
	t.Helper()
	var logs []*raft.Log
	for i := lo; i <= hi; i++ {
		logs = append(logs, mkLog(i, fmt.Sprintf("%s-%d", g.Name(), i)))
	}
	if err := g.StoreLogs(logs); err != nil {
		t.Fatalf("StoreLogs %d..%d: %v", lo, hi, err)
	}
}

// groupState is everything a group holds, normalised for comparison.
type groupState struct {
	First, Last uint64
	Entries     []raft.Log
	Stable      map[string]string
}

func norm(l raft.Log) raft.Log {
	l.AppendedAt = l.AppendedAt.UTC()
	if len(l.Data) == 0 {
		l.Data = nil
	}
	if len(l.Extensions) == 0 {
		l.Extensions = nil
	}
	return l
}

func dumpGroup(t testing.TB, g *Group) groupState {
	t.Helper()
	var s groupState
	var err error
	if s.First, err = g.FirstIndex(); err != nil {
		t.Fatal(err)
	}
	if s.Last, err = g.LastIndex(); err != nil {
		t.Fatal(err)
	}
	if s.Last != 0 {
		for i := s.First; i <= s.Last; i++ {
			var l raft.Log
			if err := g.GetLog(i, &l); err != nil {
				t.Fatalf("group %s GetLog(%d): %v", g.Name(), i, err)
			}
			s.Entries = append(s.Entries, norm(l))
		}
	}
	st := g.w.lookup(g.name)
	s.Stable = map[string]string{}
	if st != nil {
		st.mu.RLock()
		for k, v := range st.stable {
			s.Stable[k] = string(v)
		}
		st.mu.RUnlock()
	}
	return s
}

func dumpAll(t testing.TB, w *WAL) map[string]groupState {
	t.Helper()
	out := map[string]groupState{}
	for _, name := range w.Groups() {
		out[name] = dumpGroup(t, w.Group(name))
	}
	return out
}

func segFiles(t testing.TB, dir string) []uint64 {
	t.Helper()
	seqs, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	return seqs
}

func TestLogStoreOperations(t *testing.T) {
	type step struct {
		op      string // "store" or "delete"
		lo, hi  uint64
		wantErr bool
	}
	cases := []struct {
		name            string
		steps           []step
		first, last     uint64
		present, absent []uint64
	}{
		{"append and read", []step{{"store", 1, 10, false}}, 1, 10, []uint64{1, 5, 10}, []uint64{0, 11}},
		{"single store", []step{{"store", 7, 7, false}}, 7, 7, []uint64{7}, []uint64{6, 8}},
		{"head compaction", []step{{"store", 1, 10, false}, {"delete", 1, 4, false}}, 5, 10, []uint64{5, 10}, []uint64{1, 4}},
		{"tail truncation then append", []step{{"store", 1, 10, false}, {"delete", 7, 10, false}, {"store", 7, 8, false}}, 1, 8, []uint64{1, 7, 8}, []uint64{9, 10}},
		{"delete all then restart at a gap", []step{{"store", 1, 10, false}, {"delete", 1, 10, false}, {"store", 50, 52, false}}, 50, 52, []uint64{50, 52}, []uint64{1, 10, 49}},
		{"delete clamps to live range", []step{{"store", 5, 10, false}, {"delete", 0, 6, false}, {"delete", 9, 100, false}}, 7, 8, []uint64{7, 8}, []uint64{6, 9}},
		{"delete outside range is a no-op", []step{{"store", 5, 10, false}, {"delete", 20, 30, false}, {"delete", 1, 2, false}}, 5, 10, nil, nil},
		{"delete on empty group", []step{{"delete", 1, 10, false}}, 0, 0, nil, []uint64{1}},
		{"gap rejected", []step{{"store", 1, 10, false}, {"store", 12, 12, true}}, 1, 10, nil, []uint64{12}},
		{"overwrite rejected", []step{{"store", 1, 10, false}, {"store", 5, 6, true}}, 1, 10, nil, nil},
		{"hole rejected", []step{{"store", 1, 10, false}, {"delete", 3, 5, true}}, 1, 10, []uint64{3, 4, 5}, nil},
		{"index zero rejected", []step{{"store", 0, 2, true}}, 0, 0, nil, []uint64{1, 2}},
	}
	for _, cacheEntries := range []int{0, -1} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s/cache=%d", tc.name, cacheEntries), func(t *testing.T) {
				dir := t.TempDir()
				w := openT(t, dir, Options{NoSync: true, CacheEntries: cacheEntries})
				g := w.Group("g")
				for _, s := range tc.steps {
					var err error
					if s.op == "store" {
						var logs []*raft.Log
						for i := s.lo; i <= s.hi; i++ {
							logs = append(logs, mkLog(i, fmt.Sprint("v", i)))
						}
						err = g.StoreLogs(logs)
					} else {
						err = g.DeleteRange(s.lo, s.hi)
					}
					if (err != nil) != s.wantErr {
						t.Fatalf("%s %d..%d: err=%v, wantErr=%v", s.op, s.lo, s.hi, err, s.wantErr)
					}
				}
				check := func(w *WAL) {
					t.Helper()
					g := w.Group("g")
					if f, _ := g.FirstIndex(); f != tc.first {
						t.Errorf("FirstIndex=%d want %d", f, tc.first)
					}
					if l, _ := g.LastIndex(); l != tc.last {
						t.Errorf("LastIndex=%d want %d", l, tc.last)
					}
					for _, i := range tc.present {
						var l raft.Log
						if err := g.GetLog(i, &l); err != nil {
							t.Errorf("GetLog(%d): %v", i, err)
						} else if want := norm(*mkLog(i, fmt.Sprint("v", i))); !reflect.DeepEqual(norm(l), want) {
							t.Errorf("GetLog(%d)=%+v want %+v", i, norm(l), want)
						}
					}
					for _, i := range tc.absent {
						var l raft.Log
						if err := g.GetLog(i, &l); !errors.Is(err, raft.ErrLogNotFound) {
							t.Errorf("GetLog(%d) err=%v, want ErrLogNotFound", i, err)
						}
					}
				}
				check(w)
				closeT(t, w)
				w = openT(t, dir, Options{NoSync: true, CacheEntries: cacheEntries})
				defer closeT(t, w)
				check(w)
			})
		}
	}
}

func TestNonConsecutiveBatchRejected(t *testing.T) {
	w := openT(t, t.TempDir(), Options{NoSync: true})
	defer closeT(t, w)
	g := w.Group("g")
	if err := g.StoreLogs([]*raft.Log{mkLog(1, "a"), mkLog(3, "b")}); err == nil {
		t.Fatal("want error for non-consecutive batch")
	}
	if err := g.StoreLogs([]*raft.Log{mkLog(1, "a"), nil}); err == nil {
		t.Fatal("want error for nil entry")
	}
	if err := g.StoreLogs(nil); err != nil {
		t.Fatalf("empty StoreLogs: %v", err)
	}
	if got := w.Groups(); len(got) != 0 {
		t.Fatalf("Groups()=%v after only rejected writes", got)
	}
}

func TestEntryRoundTrip(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 300<<10)
	logs := []*raft.Log{
		{Index: 1, Term: 1, Type: raft.LogNoop},
		{Index: 2, Term: 1, Type: raft.LogConfiguration, Data: []byte("cfg"), Extensions: []byte("ext")},
		{Index: 3, Term: 2, Type: raft.LogCommand, Data: big, AppendedAt: time.Date(2025, 3, 4, 5, 6, 7, 8, time.UTC)},
		{Index: 4, Term: 1 << 62, Type: raft.LogBarrier, Extensions: []byte{0, 1, 2}, AppendedAt: time.Unix(-5, 999999999)},
		{Index: 5, Term: 3, Type: raft.LogType(200), Data: []byte{}, AppendedAt: time.Date(3000, 1, 1, 0, 0, 0, 1, time.UTC)},
	}
	for _, cacheEntries := range []int{0, -1} {
		t.Run(fmt.Sprint("cache=", cacheEntries), func(t *testing.T) {
			dir := t.TempDir()
			w := openT(t, dir, Options{NoSync: true, CacheEntries: cacheEntries})
			g := w.Group("g")
			if err := g.StoreLogs(logs); err != nil {
				t.Fatal(err)
			}
			verify := func(g *Group) {
				t.Helper()
				for _, want := range logs {
					var got raft.Log
					if err := g.GetLog(want.Index, &got); err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(norm(got), norm(*want)) {
						t.Errorf("index %d: got %+v want %+v", want.Index, norm(got), norm(*want))
					}
				}
			}
			verify(g)
			closeT(t, w)
			w = openT(t, dir, Options{NoSync: true, CacheEntries: cacheEntries})
			defer closeT(t, w)
			verify(w.Group("g"))
		})
	}
}

func TestStableStore(t *testing.T) {
	dir := t.TempDir()
	w := openT(t, dir, Options{NoSync: true})
	g := w.Group("g")

	// Raft tells "missing" from failure by err.Error() == "not found".
	if v, err := g.Get([]byte("k")); err == nil || err.Error() != "not found" || v != nil {
		t.Fatalf("Get missing = %q, %v", v, err)
	}
	if v, err := g.GetUint64([]byte("CurrentTerm")); err == nil || err.Error() != "not found" || v != 0 {
		t.Fatalf("GetUint64 missing = %d, %v", v, err)
	}
	if !errors.Is(func() error { _, err := g.Get([]byte("k")); return err }(), ErrKeyNotFound) {
		t.Fatal("missing key error is not ErrKeyNotFound")
	}
	if ok, err := raft.HasExistingState(g, g, raft.NewInmemSnapshotStore()); err != nil || ok {
		t.Fatalf("HasExistingState on empty group = %v, %v", ok, err)
	}

	steps := []struct {
		key string
		val []byte
		u64 *uint64
	}{
		{key: "LastVoteCand", val: []byte("node-1")},
		{key: "CurrentTerm", u64: ptr(uint64(7))},
		{key: "LastVoteTerm", u64: ptr(uint64(0))},
		{key: "LastVoteCand", val: []byte("node-2")}, // overwrite
		{key: "empty", val: []byte{}},
		{key: "CurrentTerm", u64: ptr(uint64(1<<63 + 5))},
	}
	want := map[string][]byte{}
	for _, s := range steps {
		var err error
		if s.u64 != nil {
			err = g.SetUint64([]byte(s.key), *s.u64)
			want[s.key] = []byte{byte(*s.u64 >> 56), byte(*s.u64 >> 48), byte(*s.u64 >> 40), byte(*s.u64 >> 32), byte(*s.u64 >> 24), byte(*s.u64 >> 16), byte(*s.u64 >> 8), byte(*s.u64)}
		} else {
			err = g.Set([]byte(s.key), s.val)
			want[s.key] = s.val
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	verify := func(g *Group) {
		t.Helper()
		for k, v := range want {
			got, err := g.Get([]byte(k))
			if err != nil || !bytes.Equal(got, v) {
				t.Errorf("Get(%q) = %q, %v; want %q", k, got, err, v)
			}
		}
		if v, err := g.GetUint64([]byte("CurrentTerm")); err != nil || v != 1<<63+5 {
			t.Errorf("GetUint64(CurrentTerm) = %d, %v", v, err)
		}
		if _, err := g.GetUint64([]byte("LastVoteCand")); err == nil {
			t.Error("GetUint64 of a non-uint64 value should fail")
		}
		if ok, err := raft.HasExistingState(g, g, raft.NewInmemSnapshotStore()); err != nil || !ok {
			t.Errorf("HasExistingState = %v, %v", ok, err)
		}
	}
	verify(g)
	// Values returned are copies.
	v, _ := g.Get([]byte("LastVoteCand"))
	v[0] = 'X'
	verify(g)
	closeT(t, w)
	w = openT(t, dir, Options{NoSync: true})
	defer closeT(t, w)
	verify(w.Group("g"))
	if got := w.Groups(); !slices.Equal(got, []string{"g"}) {
		t.Errorf("Groups() = %v", got)
	}
}

func ptr[T any](v T) *T { return &v }

func TestManyGroupsConcurrentAndReopen(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 64 << 10}
	w := openT(t, dir, opts)
	const groups, rounds = 12, 60
	var wg sync.WaitGroup
	for gi := range groups {
		wg.Add(2)
		name := fmt.Sprintf("shard-%02d", gi)
		g := w.Group(name)
		// Writer, shaped like raft: batches, term updates, compaction.
		go func() {
			defer wg.Done()
			next := uint64(1)
			for r := range rounds {
				n := uint64(r%4 + 1)
				var logs []*raft.Log
				for i := range n {
					logs = append(logs, mkLog(next+i, strings.Repeat(name, r%5+1)))
				}
				if err := g.StoreLogs(logs); err != nil {
					t.Error(err)
					return
				}
				next += n
				if r%10 == 0 {
					if err := g.SetUint64([]byte("CurrentTerm"), uint64(r)); err != nil {
						t.Error(err)
						return
					}
				}
				if r%15 == 14 {
					if err := g.DeleteRange(1, next-8); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
		// Reader racing the writer, like raft replication.
		go func() {
			defer wg.Done()
			for range 200 {
				last, err := g.LastIndex()
				if err != nil {
					t.Error(err)
					return
				}
				if last == 0 {
					runtime.Gosched()
					continue
				}
				var l raft.Log
				if err := g.GetLog(last, &l); err != nil {
					t.Errorf("GetLog(%d): %v", last, err)
					return
				}
				if l.Index != last {
					t.Errorf("GetLog(%d) returned index %d", last, l.Index)
					return
				}
			}
		}()
	}
	wg.Wait()
	before := dumpAll(t, w)
	if len(before) != groups {
		t.Fatalf("Groups() has %d groups, want %d", len(before), groups)
	}
	st := w.Stats()
	t.Logf("stats: %+v", st)
	if st.Syncs == 0 || st.Batches == 0 || st.Records == 0 || st.Bytes == 0 {
		t.Errorf("stats not counted: %+v", st)
	}
	closeT(t, w)
	w = openT(t, dir, opts)
	defer closeT(t, w)
	after := dumpAll(t, w)
	if !reflect.DeepEqual(before, after) {
		for name := range before {
			if !reflect.DeepEqual(before[name], after[name]) {
				t.Errorf("group %s differs after reopen:\nbefore first=%d last=%d stable=%v\nafter  first=%d last=%d stable=%v",
					name, before[name].First, before[name].Last, before[name].Stable, after[name].First, after[name].Last, after[name].Stable)
			}
		}
		t.Fatal("state differs after reopen")
	}
}

// TestGroupCommitSharesSync holds the first fdatasync until writers from 15
// other groups are queued, then checks they all went out in one more sync.
func TestGroupCommitSharesSync(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	var armed atomic.Bool
	opts := Options{MaxWait: -1}
	opts.syncHook = func(*os.File) error {
		if !armed.Load() {
			return nil
		}
		once.Do(func() {
			close(entered)
			<-release
		})
		return nil
	}
	w := openT(t, t.TempDir(), opts)
	defer closeT(t, w)
	base := w.Stats()
	armed.Store(true)

	errs := make(chan error, 16)
	go func() { errs <- w.Group("g00").StoreLog(mkLog(1, "x")) }()
	<-entered
	queued := w.queued.Load()
	for i := 1; i < 16; i++ {
		g := w.Group(fmt.Sprintf("g%02d", i))
		go func() { errs <- g.StoreLog(mkLog(1, "x")) }()
	}
	for w.queued.Load() < queued+15 {
		runtime.Gosched()
	}
	close(release)
	for range 16 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	st := w.Stats()
	if got := st.Syncs - base.Syncs; got != 2 {
		t.Errorf("16 writers took %d syncs, want 2", got)
	}
	if got := st.Batches - base.Batches; got != 2 {
		t.Errorf("16 writers took %d batches, want 2", got)
	}
}

func TestGatherWaitsOnlyForMissingActiveGroups(t *testing.T) {
	a, b, c := &group{name: "a"}, &group{name: "b"}, &group{name: "c"}
	now := time.Unix(100, 0)
	cases := []struct {
		name   string
		seen   map[*group]time.Duration // how long ago each group wrote
		inB    []*group
		window time.Duration
		want   int
	}{
		{"lone writer never waits", map[*group]time.Duration{a: 0}, []*group{a}, time.Millisecond, 0},
		{"active group missing", map[*group]time.Duration{a: 0, b: 100 * time.Microsecond}, []*group{a}, time.Millisecond, 1},
		{"quiet group ignored", map[*group]time.Duration{a: 0, b: 5 * time.Millisecond}, []*group{a}, time.Millisecond, 0},
		{"all present", map[*group]time.Duration{a: 0, b: 0, c: 0}, []*group{a, b, c}, time.Millisecond, 0},
		{"two missing", map[*group]time.Duration{a: 0, b: 0, c: 0}, []*group{a}, time.Millisecond, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var act activity
			for g, ago := range tc.seen {
				act.touch(g, now.Add(-ago))
			}
			present := func(g *group) bool { return slices.Contains(tc.inB, g) }
			if got := act.missing(now, tc.window, present); got != tc.want {
				t.Errorf("missing = %d, want %d", got, tc.want)
			}
		})
	}
	if w := activeWindow(10 * time.Millisecond); w < 30*time.Millisecond {
		t.Errorf("active window %v does not stretch with a slow device", w)
	}

	// gather itself: no missing group means the queue is left alone.
	w := &WAL{opts: Options{MaxWait: time.Hour}}
	w.act.touch(a, time.Now())
	w.queue = []*request{{g: a}}
	w.queued.Store(1)
	got := w.gather([]*request{{g: a}}, 1)
	if len(got) != 1 || len(w.queue) != 1 {
		t.Fatalf("gather waited or drained with nothing missing: got %d, queue %d", len(got), len(w.queue))
	}
	// A missing active group already queued is picked up at once, long
	// before the (one hour) ceiling.
	w.act.touch(b, time.Now())
	w.queue = append(w.queue, &request{g: b})
	w.queued.Store(2)
	got = w.gather([]*request{{g: a}}, 2)
	if len(got) != 3 || len(w.queue) != 0 {
		t.Fatalf("gather: got %d requests, queue %d; want 3, 0", len(got), len(w.queue))
	}
}

func TestStickyWriteError(t *testing.T) {
	boom := errors.New("injected EIO")
	var mu sync.Mutex
	failing := false
	opts := Options{}
	opts.syncHook = func(*os.File) error {
		mu.Lock()
		defer mu.Unlock()
		if failing {
			return boom
		}
		return nil
	}
	w := openT(t, t.TempDir(), opts)
	defer w.Close()
	a, b := w.Group("a"), w.Group("b")
	storeRange(t, a, 1, 3)
	mu.Lock()
	failing = true
	mu.Unlock()
	if err := a.StoreLog(mkLog(4, "x")); !errors.Is(err, boom) {
		t.Fatalf("first failure: %v", err)
	}
	mu.Lock()
	failing = false // the device "recovers"; the WAL must not
	mu.Unlock()
	writes := []struct {
		name string
		fn   func() error
	}{
		{"same group", func() error { return a.StoreLog(mkLog(4, "x")) }},
		{"other group", func() error { return b.StoreLog(mkLog(1, "x")) }},
		{"set", func() error { return b.Set([]byte("k"), []byte("v")) }},
		{"set uint64", func() error { return a.SetUint64([]byte("k"), 1) }},
		{"delete", func() error { return a.DeleteRange(1, 1) }},
		{"drop", func() error { return w.DropGroup("a") }},
	}
	for _, wr := range writes {
		if err := wr.fn(); !errors.Is(err, boom) {
			t.Errorf("%s after failure: err = %v, want the original error", wr.name, err)
		}
	}
	// What was durable stays readable.
	if last, _ := a.LastIndex(); last != 3 {
		t.Errorf("LastIndex after failure = %d, want 3", last)
	}
	var l raft.Log
	if err := a.GetLog(2, &l); err != nil {
		t.Errorf("GetLog after failure: %v", err)
	}
}

func TestDropGroup(t *testing.T) {
	dir := t.TempDir()
	opts := Options{NoSync: true, SegmentSize: 4 << 10}
	w := openT(t, dir, opts)
	a, b := w.Group("a"), w.Group("b")
	storeRange(t, a, 1, 20)
	storeRange(t, b, 1, 20)
	if err := a.SetUint64([]byte("CurrentTerm"), 3); err != nil {
		t.Fatal(err)
	}
	if err := w.DropGroup("a"); err != nil {
		t.Fatal(err)
	}
	if err := w.DropGroup("never-existed"); err != nil {
		t.Fatal(err)
	}
	checkDropped := func(w *WAL) {
		t.Helper()
		if got := w.Groups(); !slices.Equal(got, []string{"b"}) {
			t.Errorf("Groups() = %v, want [b]", got)
		}
		a := w.Group("a")
		if l, _ := a.LastIndex(); l != 0 {
			t.Errorf("dropped group LastIndex = %d", l)
		}
		if _, err := a.GetUint64([]byte("CurrentTerm")); !errors.Is(err, ErrKeyNotFound) {
			t.Errorf("dropped group stable key: %v", err)
		}
	}
	checkDropped(w)
	closeT(t, w)
	w = openT(t, dir, opts)
	checkDropped(w)

	// A group of the same name can start over, and survives reclaim and
	// reopen without any trace of its predecessor.
	a = w.Group("a")
	storeRange(t, a, 100, 105)
	b = w.Group("b")
	for i := uint64(21); i <= 200; i++ {
		storeRange(t, b, i, i)
		if i%20 == 0 {
			if err := b.DeleteRange(1, i-5); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := dumpAll(t, w)
	if f := want["a"].First; f != 100 {
		t.Fatalf("recreated group first = %d", f)
	}
	closeT(t, w)
	w = openT(t, dir, opts)
	defer closeT(t, w)
	if got := dumpAll(t, w); !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopen:\n%+v\nwant\n%+v", got, want)
	}
}

func TestClosed(t *testing.T) {
	dir := t.TempDir()
	w := openT(t, dir, Options{NoSync: true})
	if _, err := Open(dir, Options{NoSync: true}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open of a directory in use: %v", err)
	}
	g := w.Group("g")
	storeRange(t, g, 1, 2)
	closeT(t, w)
	closeT(t, w) // idempotent
	var l raft.Log
	ops := map[string]error{
		"StoreLog":    g.StoreLog(mkLog(3, "x")),
		"DeleteRange": g.DeleteRange(1, 1),
		"Set":         g.Set([]byte("k"), nil),
		"GetLog":      g.GetLog(1, &l),
		"DropGroup":   w.DropGroup("g"),
	}
	_, ops["Get"] = g.Get([]byte("k"))
	_, ops["LastIndex"] = g.LastIndex()
	for _, name := range slices.Sorted(maps.Keys(ops)) {
		if !errors.Is(ops[name], ErrClosed) {
			t.Errorf("%s after Close: %v", name, ops[name])
		}
	}
	// Close released the directory.
	closeT(t, openT(t, dir, Options{NoSync: true}))
}
