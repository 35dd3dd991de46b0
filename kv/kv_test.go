package kv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"stillwater/consensus"
)

func TestPutGet(t *testing.T) {
	f := newFixture(t, 1, Options{})
	start := f.clock.Now().UnixNano()
	tests := []struct {
		key     string
		value   string
		version Version
	}{
		{"reg/sip:alice@example.com", "binding-1", 1},
		{"reg/sip:bob@example.com", "", 2},
		{"reg/sip:alice@example.com", "binding-2", 3},
	}
	for _, tc := range tests {
		v, err := f.svc.Put(f.ctx, tc.key, []byte(tc.value))
		if err != nil {
			t.Fatalf("put %s: %v", tc.key, err)
		}
		if v != tc.version {
			t.Fatalf("put %s: version %d, want %d", tc.key, v, tc.version)
		}
		rec, err := f.svc.Get(f.ctx, tc.key)
		if err != nil {
			t.Fatalf("get %s: %v", tc.key, err)
		}
		want := Record{Key: tc.key, Value: []byte(tc.value), Version: tc.version,
			HLC: HLC{Wall: start / 1e6, Logical: uint32(tc.version - 1)}, Site: "paris"}
		if !recordsEqual(rec, want) {
			t.Fatalf("get %s = %+v, want %+v", tc.key, rec, want)
		}
	}
	if _, err := f.svc.Get(f.ctx, "reg/nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get missing: %v, want ErrNotFound", err)
	}
	for _, bad := range []string{"", string(make([]byte, MaxKeyLen+1))} {
		if _, err := f.svc.Put(f.ctx, bad, nil); !errors.Is(err, ErrInvalid) {
			t.Fatalf("put key of %d bytes: %v, want ErrInvalid", len(bad), err)
		}
	}
}

func recordsEqual(a, b Record) bool {
	return a.Key == b.Key && bytes.Equal(a.Value, b.Value) && a.Version == b.Version &&
		a.HLC == b.HLC && a.Site == b.Site && a.Expiry == b.Expiry
}

func TestReadConsistency(t *testing.T) {
	f := newFixture(t, 1, Options{})
	f.svc.Get(f.ctx, "k")
	f.svc.Get(f.ctx, "k", LocalRead())
	f.svc.ScanShard(f.ctx, 0, "", "", 0, LocalRead())
	f.svc.Feed(f.ctx, 0, 0, 0)
	want := []consensus.Consistency{consensus.Linearizable, consensus.Local, consensus.Local, consensus.Linearizable}
	if !slices.Equal(f.c.consistency, want) {
		t.Fatalf("consistency %v, want %v", f.c.consistency, want)
	}
}

func TestCompareAndSet(t *testing.T) {
	f := newFixture(t, 1, Options{})
	const key = "reg/sip:alice@example.com"
	tests := []struct {
		name      string
		ifVersion Version
		wantVer   Version // on success
		conflict  Version // current version reported on conflict, or
		fail      bool
	}{
		{name: "create when absent", ifVersion: 0, wantVer: 1},
		{name: "create when present", ifVersion: 0, fail: true, conflict: 1},
		{name: "update current", ifVersion: 1, wantVer: 3},
		{name: "update stale", ifVersion: 1, fail: true, conflict: 3},
		{name: "update unknown", ifVersion: 99, fail: true, conflict: 3},
		{name: "update current again", ifVersion: 3, wantVer: 6},
	}
	for _, tc := range tests {
		v, err := f.svc.CompareAndSet(f.ctx, key, []byte(tc.name), 0, tc.ifVersion)
		if !tc.fail {
			if err != nil || v != tc.wantVer {
				t.Fatalf("%s: version %d, err %v; want %d", tc.name, v, err, tc.wantVer)
			}
			continue
		}
		var ce *ConflictError
		if !errors.Is(err, ErrConflict) || !errors.As(err, &ce) || ce.Current != tc.conflict || ce.Key != key {
			t.Fatalf("%s: err %v, want conflict at version %d", tc.name, err, tc.conflict)
		}
	}
	rec, err := f.svc.Get(f.ctx, key)
	if err != nil || string(rec.Value) != "update current again" || rec.Version != 6 {
		t.Fatalf("final record %+v, %v", rec, err)
	}
}

func TestDelete(t *testing.T) {
	f := newFixture(t, 1, Options{})
	v, _ := f.svc.Put(f.ctx, "a", []byte("1"))
	tests := []struct {
		name     string
		do       func() error
		conflict Version
		wantErr  error
	}{
		{"absent key", func() error { return f.svc.Delete(f.ctx, "missing") }, 0, nil},
		{"conditional stale", func() error { return f.svc.DeleteIf(f.ctx, "a", v+1) }, v, ErrConflict},
		{"conditional zero", func() error { return f.svc.DeleteIf(f.ctx, "a", 0) }, 0, ErrInvalid},
		{"conditional current", func() error { return f.svc.DeleteIf(f.ctx, "a", v) }, 0, nil},
		{"conditional gone", func() error { return f.svc.DeleteIf(f.ctx, "a", v) }, 0, ErrConflict},
		{"unconditional gone", func() error { return f.svc.Delete(f.ctx, "a") }, 0, nil},
	}
	for _, tc := range tests {
		err := tc.do()
		if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
			t.Fatalf("%s: %v, want %v", tc.name, err, tc.wantErr)
		}
		var ce *ConflictError
		if errors.As(err, &ce) && ce.Current != tc.conflict {
			t.Fatalf("%s: conflict at %d, want %d", tc.name, ce.Current, tc.conflict)
		}
	}
	if _, err := f.svc.Get(f.ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
	// Recreating after a delete must not reuse a version.
	v2, err := f.svc.CompareAndSet(f.ctx, "a", []byte("2"), 0, 0)
	if err != nil || v2 <= v {
		t.Fatalf("recreate: version %d (old %d), %v", v2, v, err)
	}
}

func TestScan(t *testing.T) {
	f := newFixture(t, 4, Options{})
	want := map[string]string{}
	for i := range 40 {
		k := fmt.Sprintf("sub/%03d", i)
		want[k] = fmt.Sprint(i)
		if _, err := f.svc.Put(f.ctx, k, []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"su", "sub", "subx/1", "reg/1", "zzz"} {
		f.svc.Put(f.ctx, k, []byte("other"))
	}

	t.Run("all shards", func(t *testing.T) {
		got := map[string]string{}
		err := f.svc.Scan(f.ctx, "sub/", func(r Record) error {
			got[r.Key] = string(r.Value)
			return nil
		})
		if err != nil || !maps.Equal(got, want) {
			t.Fatalf("scan = %v, %v; want %v", got, err, want)
		}
	})

	for _, limit := range []int{1, 3, 7, 100} {
		t.Run(fmt.Sprintf("pages of %d", limit), func(t *testing.T) {
			got := map[string]string{}
			for shard := range f.c.Shards() {
				var keys []string
				after := ""
				for pages := 0; ; pages++ {
					recs, next, err := f.svc.ScanShard(f.ctx, shard, "sub/", after, limit)
					if err != nil {
						t.Fatal(err)
					}
					if len(recs) > limit || pages > 40 {
						t.Fatalf("page of %d records, limit %d (page %d)", len(recs), limit, pages)
					}
					for _, r := range recs {
						keys = append(keys, r.Key)
						got[r.Key] = string(r.Value)
						if f.c.ShardOf([]byte(r.Key)) != shard {
							t.Fatalf("%s returned by shard %d", r.Key, shard)
						}
					}
					if next == "" {
						break
					}
					after = next
				}
				if !slices.IsSorted(keys) || len(slices.Compact(slices.Clone(keys))) != len(keys) {
					t.Fatalf("shard %d keys %v not sorted and unique", shard, keys)
				}
			}
			if !maps.Equal(got, want) {
				t.Fatalf("paged scan = %v, want %v", got, want)
			}
		})
	}

	t.Run("after outside prefix", func(t *testing.T) {
		var n int
		for shard := range f.c.Shards() {
			recs, _, err := f.svc.ScanShard(f.ctx, shard, "sub/", "a", 100)
			if err != nil {
				t.Fatal(err)
			}
			n += len(recs)
		}
		if n != len(want) {
			t.Fatalf("got %d records, want %d", n, len(want))
		}
	})

	t.Run("fn error stops", func(t *testing.T) {
		stop := errors.New("stop")
		n := 0
		err := f.svc.Scan(f.ctx, "sub/", func(Record) error { n++; return stop })
		if !errors.Is(err, stop) || n != 1 {
			t.Fatalf("err %v after %d records", err, n)
		}
	})
}

func TestTTLHiddenOnRead(t *testing.T) {
	f := newFixture(t, 2, Options{})
	created := f.clock.Now()
	if _, err := f.svc.PutTTL(f.ctx, "reg/a", []byte("x"), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Put(f.ctx, "reg/b", []byte("y")); err != nil {
		t.Fatal(err)
	}
	rec, err := f.svc.Get(f.ctx, "reg/a")
	if err != nil || rec.Expiry != created.Add(10*time.Second).UnixNano() {
		t.Fatalf("get = %+v, %v", rec, err)
	}
	scan := func() []string {
		var keys []string
		if err := f.svc.Scan(f.ctx, "reg/", func(r Record) error {
			keys = append(keys, r.Key)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		slices.Sort(keys)
		return keys
	}
	steps := []struct {
		advance time.Duration
		visible bool
	}{
		{9 * time.Second, true},
		{time.Second - 1, true},
		{1, false}, // expiry ≤ now: gone
		{time.Hour, false},
	}
	for _, st := range steps {
		f.clock.Advance(st.advance)
		_, err := f.svc.Get(f.ctx, "reg/a")
		if st.visible != (err == nil) || (!st.visible && !errors.Is(err, ErrNotFound)) {
			t.Fatalf("at +%v: get err %v, visible want %v", f.clock.Now().Sub(created), err, st.visible)
		}
		want := []string{"reg/b"}
		if st.visible {
			want = []string{"reg/a", "reg/b"}
		}
		if got := scan(); !slices.Equal(got, want) {
			t.Fatalf("at +%v: scan %v, want %v", f.clock.Now().Sub(created), got, want)
		}
	}
	// Nobody leads, so the record is still stored, hidden.
	if raw := f.c.dump(t, f.c.ShardOf([]byte("reg/a")), bucketRecords); raw["reg/a"] == "" {
		t.Fatal("expired record swept without a leader")
	}
	// Writes treat it as absent: create-if-absent succeeds, delete finds nothing.
	if err := f.svc.DeleteIf(f.ctx, "reg/a", 1); !errors.Is(err, ErrConflict) {
		t.Fatalf("conditional delete of expired record: %v", err)
	}
	v, err := f.svc.CompareAndSet(f.ctx, "reg/a", []byte("new"), 0, 0)
	if err != nil {
		t.Fatalf("create over expired record: %v", err)
	}
	rec, err = f.svc.Get(f.ctx, "reg/a")
	if err != nil || rec.Version != v || rec.Expiry != 0 {
		t.Fatalf("recreated = %+v, %v", rec, err)
	}
	if idx := f.c.dump(t, f.c.ShardOf([]byte("reg/a")), bucketExpiry); len(idx) != 0 {
		t.Fatalf("expiry index still holds %d entries", len(idx))
	}
}

// applied collects the results of commands of one op as the fake cluster
// applies them.
func watchOp(f *fixture, op byte) <-chan []byte {
	ch := make(chan []byte, 100)
	f.c.setOnApply(func(shard int, e consensus.Entry, res []byte) {
		if len(e.Cmd) > 0 && e.Cmd[0] == op {
			ch <- res
		}
	})
	return ch
}

func recv(t *testing.T, ch <-chan []byte) []byte {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(watchdog):
		t.Fatal("no command applied")
		return nil
	}
}

func decodeExpireResult(t *testing.T, res []byte) (deleted uint64, next int64) {
	t.Helper()
	d := decoder{b: res}
	if d.byte() != resOK {
		t.Fatalf("expire result %x", res)
	}
	deleted, next = d.uvarint(), d.varint()
	if d.bad {
		t.Fatalf("expire result %x", res)
	}
	return deleted, next
}

func TestSweeper(t *testing.T) {
	f := newFixture(t, 1, Options{})
	expires := watchOp(f, opExpire)
	f.svc.LeaderChanged(0, true)
	t0 := f.clock.Now()

	if _, err := f.svc.PutTTL(f.ctx, "reg/a", []byte("a"), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.PutTTL(f.ctx, "reg/b", []byte("b"), 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.PutTTL(f.ctx, "reg/c", []byte("c"), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// Renew c before it expires: its old expiry must not remove it.
	f.clock.Advance(5 * time.Second)
	if _, err := f.svc.PutTTL(f.ctx, "reg/c", []byte("c2"), 30*time.Second); err != nil {
		t.Fatal(err)
	}

	f.clock.waitForTimer(t, t0.Add(10*time.Second))
	f.clock.Advance(5 * time.Second) // t0+10s: a expires
	if deleted, next := decodeExpireResult(t, recv(t, expires)); deleted != 1 || next != t0.Add(20*time.Second).UnixNano() {
		t.Fatalf("first sweep deleted %d, next %d", deleted, next)
	}
	f.clock.waitForTimer(t, t0.Add(20*time.Second))
	f.clock.Advance(10 * time.Second) // t0+20s: b expires
	if deleted, _ := decodeExpireResult(t, recv(t, expires)); deleted != 1 {
		t.Fatalf("second sweep deleted %d", deleted)
	}
	// A new, earlier expiry wakes the sweeper.
	if _, err := f.svc.PutTTL(f.ctx, "reg/d", []byte("d"), time.Second); err != nil {
		t.Fatal(err)
	}
	f.clock.waitForTimer(t, t0.Add(21*time.Second))
	f.svc.LeaderChanged(0, false)
	f.clock.Advance(time.Second)
	f.svc.LeaderChanged(0, true) // a new leader sweeps what is overdue at once
	if deleted, next := decodeExpireResult(t, recv(t, expires)); deleted != 1 || next != t0.Add(35*time.Second).UnixNano() {
		t.Fatalf("third sweep deleted %d, next %d", deleted, next)
	}

	raw := f.c.dump(t, 0, bucketRecords)
	if len(raw) != 1 || raw["reg/c"] == "" {
		t.Fatalf("records left: %v", slices.Collect(maps.Keys(raw)))
	}
	changes, _, err := f.svc.Feed(f.ctx, 0, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var expired []string
	for _, c := range changes {
		if c.Op == OpExpire {
			expired = append(expired, c.Key)
			if c.Site != "" || c.Value != nil || c.Expiry == 0 {
				t.Fatalf("expire change %+v", c)
			}
		}
	}
	if !slices.Equal(expired, []string{"reg/a", "reg/b", "reg/d"}) {
		t.Fatalf("expired %v", expired)
	}
}

func TestSweeperRetries(t *testing.T) {
	tests := []struct {
		name  string
		setup func(c *fakeCluster)
	}{
		{"propose fails", func(c *fakeCluster) { c.failNext = consensus.ErrNoQuorum }},
		// The log's time lags the sweeper's clock: the first Expire removes
		// nothing, and the sweeper pauses instead of spinning.
		{"log time behind", func(c *fakeCluster) { c.lag = 500 * time.Millisecond }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, 1, Options{})
			if _, err := f.svc.PutTTL(f.ctx, "reg/a", nil, time.Second); err != nil {
				t.Fatal(err)
			}
			expires := watchOp(f, opExpire)
			f.c.mu.Lock()
			tc.setup(f.c)
			f.c.mu.Unlock()
			f.clock.Advance(time.Second)
			f.svc.LeaderChanged(0, true)
			f.clock.waitForTimer(t, f.clock.Now().Add(sweepRetry))
			f.clock.Advance(sweepRetry)
			for {
				if deleted, _ := decodeExpireResult(t, recv(t, expires)); deleted == 1 {
					break
				}
			}
			if n := len(f.c.dump(t, 0, bucketRecords)); n != 0 {
				t.Fatalf("%d records left", n)
			}
		})
	}
}

func TestExpireCommand(t *testing.T) {
	t0 := newFakeClock().Now()
	at := func(s int) int64 { return t0.Add(time.Duration(s) * time.Second).UnixNano() }
	tests := []struct {
		name        string
		upTo        int64
		limit       uint64
		advance     time.Duration // before proposing: Entry.Time
		wantDeleted uint64
		wantNext    int64
		wantLeft    []string
	}{
		{"nothing due", at(5), 100, 5 * time.Second, 0, at(10), []string{"a", "b", "c", "d"}},
		{"one due", at(10), 100, 10 * time.Second, 1, at(20), []string{"b", "c", "d"}},
		{"limited", at(30), 1, 30 * time.Second, 1, at(20), []string{"b", "c", "d"}},
		{"upTo ahead of log time", at(30), 100, 10 * time.Second, 1, at(20), []string{"b", "c", "d"}},
		{"all due", at(30), 100, 30 * time.Second, 3, 0, []string{"d"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, 1, Options{})
			for _, r := range []struct {
				key string
				ttl time.Duration
			}{{"a", 10 * time.Second}, {"b", 20 * time.Second}, {"c", 20 * time.Second}, {"d", 0}} {
				if _, err := f.svc.PutTTL(f.ctx, r.key, nil, r.ttl); err != nil {
					t.Fatal(err)
				}
			}
			f.clock.Advance(tc.advance)
			res, err := f.c.Propose(f.ctx, 0, consensus.KindKV, appendExpire(nil, tc.upTo, tc.limit))
			if err != nil {
				t.Fatal(err)
			}
			deleted, next := decodeExpireResult(t, res)
			left := slices.Sorted(maps.Keys(f.c.dump(t, 0, bucketRecords)))
			if deleted != tc.wantDeleted || next != tc.wantNext || !slices.Equal(left, tc.wantLeft) {
				t.Fatalf("deleted %d next %d left %v; want %d %d %v", deleted, next, left, tc.wantDeleted, tc.wantNext, tc.wantLeft)
			}
		})
	}
}

func TestHLC(t *testing.T) {
	tests := []struct {
		prev HLC
		t    int64
		want HLC
	}{
		{HLC{}, 5_000_000, HLC{Wall: 5}},
		{HLC{Wall: 5}, 5_999_999, HLC{Wall: 5, Logical: 1}},
		{HLC{Wall: 5, Logical: 1}, 6_000_000, HLC{Wall: 6}},
		{HLC{Wall: 9, Logical: 3}, 6_000_000, HLC{Wall: 9, Logical: 4}}, // clock behind
		{HLC{Wall: 9, Logical: ^uint32(0)}, 9_000_000, HLC{Wall: 10}},
	}
	for _, tc := range tests {
		if got := nextHLC(tc.prev, tc.t); got != tc.want || got.Compare(tc.prev) <= 0 {
			t.Errorf("nextHLC(%v, %d) = %v, want %v", tc.prev, tc.t, got, tc.want)
		}
	}

	f := newFixture(t, 1, Options{})
	var prev HLC
	for i, step := range []time.Duration{0, 0, 0, time.Millisecond, 0, time.Microsecond, time.Second} {
		f.clock.Advance(step)
		if _, err := f.svc.Put(f.ctx, fmt.Sprint("k", i), nil); err != nil {
			t.Fatal(err)
		}
		rec, _ := f.svc.Get(f.ctx, fmt.Sprint("k", i))
		if rec.HLC.Compare(prev) <= 0 || rec.HLC.Wall != f.clock.Now().UnixMilli() && rec.HLC.Wall != prev.Wall {
			t.Fatalf("write %d: HLC %v after %v", i, rec.HLC, prev)
		}
		prev = rec.HLC
	}
	if prev != (HLC{Wall: f.clock.Now().UnixMilli()}) {
		t.Fatalf("after a second, HLC %v", prev)
	}
}

func TestFeed(t *testing.T) {
	f := newFixture(t, 1, Options{FeedRetention: 8})
	f.svc.Put(f.ctx, "a", []byte("1"))               // 1
	f.svc.PutTTL(f.ctx, "b", []byte("2"), time.Hour) // 2
	f.svc.Delete(f.ctx, "a")                         // 3
	f.svc.Delete(f.ctx, "a")                         // 4: nothing to delete, no change
	f.svc.CompareAndSet(f.ctx, "b", nil, 0, 1)       // 5: conflict, no change
	items := []BatchItem{{Key: "c1", Value: []byte("c1")}, {Key: "c2"}, {Key: "c3", TTL: time.Minute}}
	if err := f.svc.PutBatch(f.ctx, items); err != nil { // 6: three changes
		t.Fatal(err)
	}
	f.svc.Put(f.ctx, "d", []byte("4")) // 7

	type ch struct {
		idx uint64
		op  Op
		key string
	}
	// The put of a at 1 is superseded by its delete at 3: its value is gone,
	// and the delete tells a consumer all it needs.
	all := []ch{{2, OpPut, "b"}, {3, OpDelete, "a"}, {6, OpPut, "c1"}, {6, OpPut, "c2"}, {6, OpPut, "c3"}, {7, OpPut, "d"}}
	brief := func(cs []Change) []ch {
		var out []ch
		for _, c := range cs {
			out = append(out, ch{c.Index, c.Op, c.Key})
		}
		return out
	}
	tests := []struct {
		after    uint64
		limit    int
		want     []ch
		wantNext uint64
	}{
		{0, 100, all, 7},
		{0, 1, all[:1], 2},
		{0, 2, all[:2], 3},
		{2, 1, all[1:2], 3},
		{3, 1, all[2:5], 6}, // a command's changes stay together
		{2, 2, all[1:2], 3}, // rather than splitting the batch
		{2, 4, all[1:5], 6},
		{6, 10, all[5:], 7},
		{7, 10, nil, 7},
		{100, 10, nil, 100},
	}
	for _, tc := range tests {
		got, next, err := f.svc.Feed(f.ctx, 0, tc.after, tc.limit)
		if err != nil || next != tc.wantNext || !slices.Equal(brief(got), tc.want) {
			t.Fatalf("Feed(after %d, limit %d) = %v next %d err %v; want %v next %d", tc.after, tc.limit, brief(got), next, err, tc.want, tc.wantNext)
		}
	}
	got, _, _ := f.svc.Feed(f.ctx, 0, 0, 100)
	b := got[0]
	if b.Site != "paris" || string(b.Value) != "2" || b.Version != 2 || b.Expiry == 0 || b.HLC.IsZero() {
		t.Fatalf("change %+v", b)
	}
	if got[1].Value != nil || got[1].Version != 3 {
		t.Fatalf("delete change %+v", got[1])
	}

	// Nine changes exceed the retention of 8: index 1 is trimmed.
	f.svc.Put(f.ctx, "e", nil) // 8
	f.svc.Put(f.ctx, "f", nil) // 9
	if _, _, err := f.svc.Feed(f.ctx, 0, 1, 100); err != nil {
		t.Fatalf("after 1 (only index 1 trimmed): %v", err)
	}
	_, next, err := f.svc.Feed(f.ctx, 0, 0, 100)
	if !errors.Is(err, ErrFeedTruncated) || next != 9 {
		t.Fatalf("after 0: next %d, err %v; want ErrFeedTruncated at head 9", next, err)
	}
	// Trim into the batch: its remaining changes are incomplete, so resuming
	// from before it is truncated too.
	f.svc.Put(f.ctx, "g", nil) // 10
	f.svc.Put(f.ctx, "h", nil) // 11
	f.svc.Put(f.ctx, "i", nil) // 12: by now 2, 3 and 6/c1 are trimmed
	for _, after := range []uint64{2, 3, 5} {
		if _, _, err := f.svc.Feed(f.ctx, 0, after, 100); !errors.Is(err, ErrFeedTruncated) {
			t.Fatalf("after %d: %v, want ErrFeedTruncated", after, err)
		}
	}
	got, next, err = f.svc.Feed(f.ctx, 0, 6, 100)
	if err != nil || next != 12 || len(got) != 6 {
		t.Fatalf("after 6: %v next %d err %v", brief(got), next, err)
	}
	if n := len(f.c.dump(t, 0, bucketFeed)); n != 8 {
		t.Fatalf("feed holds %d changes, want 8", n)
	}
	// Overwriting i supersedes its change at 12: the new one carries the
	// new value.
	f.svc.Put(f.ctx, "i", []byte("new")) // 13
	got, next, err = f.svc.Feed(f.ctx, 0, 11, 100)
	if err != nil || next != 13 || len(got) != 1 || got[0].Index != 13 || string(got[0].Value) != "new" {
		t.Fatalf("after 11: %+v next %d err %v; want only i's change at 13", got, next, err)
	}
}

func TestPutBatch(t *testing.T) {
	f := newFixture(t, 3, Options{})
	var items []BatchItem
	for i := range 600 {
		items = append(items, BatchItem{Key: fmt.Sprintf("prov/%04d", i), Value: []byte(fmt.Sprint(i))})
	}
	items[7].TTL = time.Minute
	if err := f.svc.PutBatch(f.ctx, items); err != nil {
		t.Fatal(err)
	}
	versions := map[int]map[Version]int{}
	for _, it := range items {
		rec, err := f.svc.Get(f.ctx, it.Key)
		if err != nil || !bytes.Equal(rec.Value, it.Value) {
			t.Fatalf("%s: %+v %v", it.Key, rec, err)
		}
		if (it.TTL != 0) != (rec.Expiry != 0) {
			t.Fatalf("%s expiry %d", it.Key, rec.Expiry)
		}
		shard := f.c.ShardOf([]byte(it.Key))
		if versions[shard] == nil {
			versions[shard] = map[Version]int{}
		}
		versions[shard][rec.Version]++
	}
	for shard, vs := range versions {
		for v, n := range vs {
			if n > MaxBatchItems {
				t.Fatalf("shard %d: %d records share version %d", shard, n, v)
			}
		}
		if len(vs) < 1 || len(vs) > 3 {
			t.Fatalf("shard %d: %d commands", shard, len(vs))
		}
	}
	if err := f.svc.PutBatch(f.ctx, []BatchItem{{Key: "ok"}, {Key: ""}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("batch with empty key: %v", err)
	}
}

func TestRejectedCommands(t *testing.T) {
	f := newFixture(t, 1, Options{})
	f.svc.Put(f.ctx, "a", []byte("1"))
	before := f.c.dump(t, 0, bucketMeta)
	tests := []struct {
		name string
		cmd  []byte
	}{
		{"empty", []byte{}},
		{"unknown op", []byte{99}},
		{"truncated put", appendPut(nil, "s", "k", nil, 0, false, 0)[:5]},
		{"put without key", appendPut(nil, "s", "", []byte("v"), 0, false, 0)},
		{"bad cond", append([]byte{opPut, 7}, appendPut(nil, "s", "k", nil, 0, false, 0)[2:]...)},
		{"negative ttl", appendPut(nil, "s", "k", nil, -1, false, 0)},
		{"batch with bad item", appendBatchItem(appendBatchItem(appendBatchHeader(nil, "s"), "x", nil, 0), "", nil, 0)},
		{"expire with trailing bytes", append(appendExpire(nil, 1, 1), 0)},
		{"restore truncated", appendRestoreItem(appendRestoreHeader(nil, 1, HLC{}), []byte("k"), recordHeader{version: 1}, nil)[:8]},
	}
	for _, tc := range tests {
		res, err := f.c.Propose(f.ctx, 0, consensus.KindKV, tc.cmd)
		if err != nil {
			t.Fatalf("%s: Apply failed: %v", tc.name, err)
		}
		if _, err := writeResult(res, ""); !errors.Is(err, ErrInvalid) {
			t.Fatalf("%s: result %x, want invalid", tc.name, res)
		}
	}
	if after := f.c.dump(t, 0, bucketMeta); !maps.Equal(before, after) {
		t.Fatal("rejected commands changed the shard state")
	}
	if got := slices.Sorted(maps.Keys(f.c.dump(t, 0, bucketRecords))); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("records %v", got)
	}
}

func TestOpenRebuildsExpiryHint(t *testing.T) {
	f := newFixture(t, 1, Options{})
	f.svc.PutTTL(f.ctx, "a", nil, time.Minute)
	f.svc.PutTTL(f.ctx, "b", nil, time.Second)
	want := f.clock.Now().Add(time.Second).UnixNano()

	// A fresh service on the same store, as after a restart.
	svc := New(f.c, Options{Clock: f.clock, Logger: testLogger()})
	t.Cleanup(func() { svc.Close() })
	f.c.attach(t, svc)
	if got := svc.state(0).earliest.Load(); got != want {
		t.Fatalf("earliest %d, want %d", got, want)
	}
}

func TestExportRestore(t *testing.T) {
	const shards = 3
	src := newFixture(t, shards, Options{})
	ctx := context.Background()
	var keys []string
	for i := range 1200 {
		k := fmt.Sprintf("reg/sip:%04d@example.com", i)
		keys = append(keys, k)
		var err error
		switch i % 4 {
		case 0:
			_, err = src.svc.Put(ctx, k, bytes.Repeat([]byte{byte(i)}, i%50))
		case 1:
			_, err = src.svc.PutTTL(ctx, k, []byte("ttl"), time.Duration(i)*time.Second)
		case 2:
			_, err = src.svc.CompareAndSet(ctx, k, []byte("cas"), time.Hour, 0)
		case 3:
			_, err = src.svc.Put(ctx, k, nil)
			if err == nil && i%8 == 3 {
				err = src.svc.Delete(ctx, k)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		if i%100 == 0 {
			src.clock.Advance(time.Millisecond)
		}
	}
	// One shard also holds records another site wrote, restored earlier.
	src.c.site = "london"
	src.svc.Put(ctx, "sub/remote", []byte("from london"))
	src.c.site = "paris"
	// Records expired but not yet swept travel too.
	src.clock.Advance(100 * time.Second)

	// The fresh log starts at index 1, and its clock is behind the source's.
	dst := newFixture(t, shards, Options{})
	for shard := range shards {
		cmds := src.c.export(t, shard)
		if len(cmds) < 2 {
			t.Fatalf("shard %d exported in %d commands; want batches of %d", shard, len(cmds), exportBatch)
		}
		for _, cmd := range cmds {
			if _, err := dst.c.Propose(ctx, shard, consensus.KindKV, cmd); err != nil {
				t.Fatal(err)
			}
		}
		for _, b := range []string{bucketRecords, bucketExpiry} {
			if s, d := src.c.dump(t, shard, b), dst.c.dump(t, shard, b); !maps.Equal(s, d) {
				t.Fatalf("shard %d bucket %s differs after restore: %d vs %d entries", shard, b, len(s), len(d))
			}
		}
		if again := dst.c.export(t, shard); !slices.EqualFunc(again, cmds, bytes.Equal) {
			t.Fatalf("shard %d: export of the restored shard differs", shard)
		}
	}

	// Restored versions stay usable for compare-and-set, and later versions
	// and HLCs are above everything restored.
	k := keys[2]
	old, err := dst.svc.Get(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dst.svc.CompareAndSet(ctx, k, []byte("x"), 0, old.Version+1); !errors.Is(err, ErrConflict) {
		t.Fatalf("cas with wrong version: %v", err)
	}
	v, err := dst.svc.CompareAndSet(ctx, k, []byte("x"), 0, old.Version)
	if err != nil {
		t.Fatalf("cas with restored version: %v", err)
	}
	shard := dst.c.ShardOf([]byte(k))
	var maxV Version
	var maxH HLC
	src.svc.Scan(ctx, "", func(r Record) error {
		if src.c.ShardOf([]byte(r.Key)) == shard {
			maxV = max(maxV, r.Version)
			maxH = maxHLC(maxH, r.HLC)
		}
		return nil
	}, LocalRead())
	rec, _ := dst.svc.Get(ctx, k)
	if v <= maxV || rec.Version != v || rec.HLC.Compare(maxH) <= 0 || rec.Site != "paris" {
		t.Fatalf("write after restore: %+v; restored max version %d, HLC %v", rec, maxV, maxH)
	}
	remote, err := dst.svc.Get(ctx, "sub/remote")
	if err != nil || remote.Site != "london" {
		t.Fatalf("restored remote record %+v, %v", remote, err)
	}
}

func TestExportEmptyShard(t *testing.T) {
	f := newFixture(t, 1, Options{})
	if cmds := f.c.export(t, 0); len(cmds) != 0 {
		t.Fatalf("pristine shard exported %d commands", len(cmds))
	}
	v, _ := f.svc.Put(f.ctx, "a", nil)
	f.svc.Delete(f.ctx, "a")
	cmds := f.c.export(t, 0)
	if len(cmds) != 1 {
		t.Fatalf("emptied shard exported %d commands, want 1 carrying the floor", len(cmds))
	}
	g := newFixture(t, 1, Options{})
	g.c.Propose(g.ctx, 0, consensus.KindKV, cmds[0])
	if v2, _ := g.svc.Put(g.ctx, "a", nil); v2 <= v+1 {
		t.Fatalf("version after restore %d, source issued up to %d", v2, v+1)
	}
}

type binReg struct{ Contact string }

func (r *binReg) MarshalBinary() ([]byte, error) { return []byte(r.Contact), nil }
func (r *binReg) UnmarshalBinary(b []byte) error {
	r.Contact = string(b)
	return nil
}

type jsonReg struct {
	Contact string `json:"contact"`
	Expires int    `json:"expires"`
}

func TestTable(t *testing.T) {
	f := newFixture(t, 2, Options{})
	t.Run("json", func(t *testing.T) {
		testTable(t, f, NewTable[jsonReg](f.svc, "regj", nil), func(s string) jsonReg { return jsonReg{Contact: s, Expires: 300} })
		raw, err := f.svc.Get(f.ctx, "regj/alice")
		if err != nil || string(raw.Value) != `{"contact":"alice-2","expires":300}` {
			t.Fatalf("raw %q %v", raw.Value, err)
		}
	})
	t.Run("binary", func(t *testing.T) {
		testTable(t, f, NewTable[binReg](f.svc, "regb", BinaryCodec[binReg, *binReg]{}), func(s string) binReg { return binReg{Contact: s} })
		raw, err := f.svc.Get(f.ctx, "regb/alice")
		if err != nil || string(raw.Value) != "alice-2" {
			t.Fatalf("raw %q %v", raw.Value, err)
		}
	})
}

// cachedReg has a slice, so aliasing between the cache and callers would show.
type cachedReg struct {
	Contacts []string `json:"c"`
}

func cloneCachedReg(r cachedReg) cachedReg {
	return cachedReg{Contacts: slices.Clone(r.Contacts)}
}

func TestTableCache(t *testing.T) {
	f := newFixture(t, 2, Options{})
	ctx := f.ctx
	cached := NewTable[cachedReg](f.svc, "cached", nil).WithCache(1<<20, cloneCachedReg)
	plain := NewTable[cachedReg](f.svc, "cached", nil)

	v1, err := cached.Put(ctx, "alice", cachedReg{Contacts: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	got, ver, err := cached.Get(ctx, "alice")
	if err != nil || ver != v1 || !slices.Equal(got.Contacts, []string{"a"}) {
		t.Fatalf("get after put = %v %d %v", got, ver, err)
	}
	got.Contacts[0] = "mutated" // the caller's copy only
	if again, _, _ := cached.Get(ctx, "alice"); again.Contacts[0] != "a" {
		t.Fatalf("cache shares memory with a caller: %v", again)
	}

	// A write the cache did not see (another node, another table value)
	// changes the version, so the stale entry is not used.
	v2, err := plain.CAS(ctx, "alice", cachedReg{Contacts: []string{"b"}}, 0, v1)
	if err != nil {
		t.Fatal(err)
	}
	got, ver, err = cached.Get(ctx, "alice")
	if err != nil || ver != v2 || !slices.Equal(got.Contacts, []string{"b"}) {
		t.Fatalf("get after foreign write = %v %d %v", got, ver, err)
	}

	// Deleted elsewhere: the read says so whatever the cache holds.
	if err := plain.Delete(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cached.Get(ctx, "alice"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after foreign delete: %v", err)
	}

	// The cache stays within its size.
	small := NewTable[cachedReg](f.svc, "small", nil).WithCache(2000, cloneCachedReg)
	for i := range 100 {
		k := fmt.Sprintf("k%03d", i)
		if _, err := small.Put(ctx, k, cachedReg{Contacts: []string{strings.Repeat("x", 100)}}); err != nil {
			t.Fatal(err)
		}
		if small.cache.bytes > 2000 {
			t.Fatalf("cache holds %d bytes after %d puts", small.cache.bytes, i+1)
		}
	}
	if n := len(small.cache.m); n == 0 || n == 100 {
		t.Fatalf("cache holds %d entries", n)
	}
	for i := range 100 {
		k := fmt.Sprintf("k%03d", i)
		if v, _, err := small.Get(ctx, k); err != nil || len(v.Contacts) != 1 {
			t.Fatalf("get %s = %v %v", k, v, err)
		}
	}
}

func testTable[T comparable](t *testing.T, f *fixture, tb *Table[T], mk func(string) T) {
	ctx := f.ctx
	if _, _, err := tb.Get(ctx, "alice"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get absent: %v", err)
	}
	v1, err := tb.CAS(ctx, "alice", mk("alice-1"), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.CAS(ctx, "alice", mk("x"), 0, 0); !errors.Is(err, ErrConflict) {
		t.Fatalf("cas create twice: %v", err)
	}
	v2, err := tb.CAS(ctx, "alice", mk("alice-2"), 0, v1)
	if err != nil {
		t.Fatal(err)
	}
	got, ver, err := tb.Get(ctx, "alice")
	if err != nil || got != mk("alice-2") || ver != v2 {
		t.Fatalf("get = %v %d %v", got, ver, err)
	}
	tb.Put(ctx, "bob", mk("bob"))
	tb.PutTTL(ctx, "carol", mk("carol"), time.Minute)
	tb.Put(ctx, "xavier", mk("xavier"))
	var keys []string
	if err := tb.Scan(ctx, "", func(k string, v T, _ Version) error {
		if v != mk(k) && k != "alice" {
			t.Errorf("%s = %v", k, v)
		}
		keys = append(keys, k)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"alice", "bob", "carol", "xavier"}) {
		t.Fatalf("scan keys %v", keys)
	}
	if err := tb.DeleteIf(ctx, "alice", v1); !errors.Is(err, ErrConflict) {
		t.Fatalf("delete stale: %v", err)
	}
	if err := tb.DeleteIf(ctx, "alice", v2); err != nil {
		t.Fatal(err)
	}
	if err := tb.Delete(ctx, "xavier"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tb.Get(ctx, "xavier"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
	tb.Put(ctx, "alice", mk("alice-2")) // leave it for the raw check
}

func TestSweeperStopsOnClose(t *testing.T) {
	f := newFixture(t, 4, Options{})
	for shard := range 4 {
		f.svc.LeaderChanged(shard, true)
	}
	f.svc.LeaderChanged(1, false)
	f.svc.LeaderChanged(2, true) // already running: no second sweeper
	f.svc.Close()
	f.svc.LeaderChanged(3, true) // after Close: ignored
	f.svc.Close()
}
