package timerwheel

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"stillwater/consensus"
)

func TestSetReplaceDelete(t *testing.T) {
	h := newHarness(t, 4)
	ctx := context.Background()
	tm := Timer{
		Interval:  30 * time.Second,
		RepeatFor: 90 * time.Second,
		Callback:  Callback{URI: "http://sprout:9888/timers", Opaque: []byte(`{"aor":"sip:a@example.com"}`)},
		Tags:      []Tag{{Type: "REG", Count: 1}, {Type: "BIND", Count: 2}},
	}
	id := h.set(tm)
	rec := h.record(id)
	if rec == nil {
		t.Fatal("record not stored")
	}
	wantStart := start.UnixMilli()
	if rec.start != wantStart || rec.seq != 1 || rec.interval != 30000 || rec.repeat != 90000 || rec.rf != 2 ||
		rec.pops() != 3 || rec.target != tm.Callback.URI || !bytes.Equal(rec.opaque, tm.Callback.Opaque) {
		t.Fatalf("record = %+v", rec)
	}
	if got, want := rec.due(), start.Add(30*time.Second).UnixNano(); got != want {
		t.Fatalf("due = %v, want %v", time.Unix(0, got), time.Unix(0, want))
	}

	// Replacing restarts the timer from the (later) time of the replacement.
	h.clock.Advance(7 * time.Second)
	tm.ID, tm.Interval, tm.RepeatFor, tm.Tags = id, 10*time.Second, 0, []Tag{{Type: "SUB"}}
	if got := h.set(tm); got != id {
		t.Fatalf("replace returned id %v, want %v", got, id)
	}
	rec = h.record(id)
	if rec.start != start.Add(7*time.Second).UnixMilli() || rec.seq != 1 || rec.pops() != 1 {
		t.Fatalf("replaced record = %+v", rec)
	}
	if n, err := h.svc.Pending(ctx); err != nil || n != 1 {
		t.Fatalf("Pending = %d, %v; want 1", n, err)
	}

	if err := h.svc.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if h.record(id) != nil {
		t.Fatal("record still there after Delete")
	}
	if err := h.svc.Delete(ctx, id); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if n, _ := h.svc.Pending(ctx); n != 0 {
		t.Fatalf("Pending = %d after delete", n)
	}
	if c := h.svc.Counters(); c.Created != 2 || c.Deleted != 1 {
		t.Fatalf("counters = %+v", c)
	}
}

func TestSetRejectsInvalid(t *testing.T) {
	h := newHarness(t, 1)
	cb := Callback{URI: "http://x/"}
	tests := []struct {
		name string
		t    Timer
	}{
		{"no callback", Timer{Interval: time.Second}},
		{"both callbacks", Timer{Interval: time.Second, Callback: Callback{URI: "http://x/", Type: "reg"}}},
		{"negative interval", Timer{Interval: -time.Second, Callback: cb}},
		{"zero interval repeating", Timer{RepeatFor: time.Minute, Callback: cb}},
		{"repeat shorter than interval", Timer{Interval: time.Minute, RepeatFor: time.Second, Callback: cb}},
		{"replication factor too big", Timer{Interval: time.Second, ReplicationFactor: 300, Callback: cb}},
		{"opaque too long", Timer{Interval: time.Second, Callback: Callback{URI: "http://x/", Opaque: make([]byte, MaxOpaque+1)}}},
		{"empty tag type", Timer{Interval: time.Second, Callback: cb, Tags: []Tag{{Type: ""}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := h.svc.Set(context.Background(), tc.t); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Set = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestPopHTTPCallback(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []harnessOpt
	}{{"view", nil}, {"local query", []harnessOpt{withoutView}}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, 4, tc.opts...)
			srv, hits := callbackServer(t, nil)
			h.leadAll()
			id := h.set(Timer{Interval: 10 * time.Second, Callback: Callback{URI: srv.URL + "/cb", Opaque: []byte("hello")}})
			h.clock.Advance(10 * time.Second)
			got := recv(t, hits, "callback")
			if got.path != "/cb" || got.seq != "1" || got.body != "hello" {
				t.Fatalf("callback = %+v", got)
			}
			if c := h.waitCommit(opPop, id); c.st != statusOK || c.seq != 1 {
				t.Fatalf("pop commit = %+v", c)
			}
			if h.record(id) != nil {
				t.Fatal("one-shot timer still stored after its pop")
			}
			h.svc.Close() // let the worker finish counting
			if c := h.svc.Counters(); c.Popped != 1 || c.DeliveryFailures != 0 {
				t.Fatalf("counters = %+v", c)
			}
		})
	}
}

func TestRepeatingTimerSequence(t *testing.T) {
	h := newHarness(t, 2)
	srv, hits := callbackServer(t, nil)
	h.leadAll()
	// 35 s / 10 s: three pops, at +10, +20 and +30 s.
	id := h.set(Timer{Interval: 10 * time.Second, RepeatFor: 35 * time.Second, Callback: Callback{URI: srv.URL, Opaque: []byte("x")}})
	for seq := uint64(1); seq <= 3; seq++ {
		h.clock.Advance(10 * time.Second)
		if got := recv(t, hits, "callback"); got.seq != seqStr(seq) {
			t.Fatalf("pop %d: X-Sequence-Number %q", seq, got.seq)
		}
		if c := h.waitCommit(opPop, id); c.st != statusOK || c.seq != seq {
			t.Fatalf("pop %d commit = %+v", seq, c)
		}
		rec := h.record(id)
		if seq < 3 && (rec == nil || rec.seq != seq+1) {
			t.Fatalf("after pop %d record = %+v", seq, rec)
		}
		if seq == 3 && rec != nil {
			t.Fatalf("timer still stored after its last pop: %+v", rec)
		}
	}
}

func TestOverduePopsCatchUp(t *testing.T) {
	// A repeating timer whose pops were missed delivers each in turn, numbered.
	h := newHarness(t, 1)
	srv, hits := callbackServer(t, nil)
	h.set(Timer{Interval: time.Second, RepeatFor: 4 * time.Second, Callback: Callback{URI: srv.URL}})
	h.clock.Advance(time.Minute)
	h.leadAll()
	for seq := uint64(1); seq <= 4; seq++ {
		if got := recv(t, hits, "callback"); got.seq != seqStr(seq) {
			t.Fatalf("pop %d: X-Sequence-Number %q", seq, got.seq)
		}
	}
}

func TestRetryAfterFailedCallback(t *testing.T) {
	h := newHarness(t, 2)
	srv, hits := callbackServer(t, func(n int, _ *http.Request) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	h.leadAll()
	id := h.set(Timer{Interval: 5 * time.Second, Callback: Callback{URI: srv.URL}})
	h.clock.Advance(5 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Attempts 2 and 3 follow after 250 ms and 500 ms, with the same sequence number.
	for i, wait := range []time.Duration{0, 250 * time.Millisecond, 500 * time.Millisecond} {
		if wait > 0 {
			if err := h.clock.WaitArmed(ctx, h.clock.Now().Add(wait)); err != nil {
				t.Fatalf("attempt %d never scheduled after %v: %v (pending %v)", i+1, wait, err, h.clock.Pending())
			}
			h.clock.Advance(wait)
		}
		if got := recv(t, hits, "callback"); got.seq != "1" {
			t.Fatalf("attempt %d: seq %q", i+1, got.seq)
		}
	}
	if c := h.waitCommit(opPop, id); c.st != statusOK {
		t.Fatalf("pop commit = %+v", c)
	}
	h.svc.Close()
	if c := h.svc.Counters(); c.Popped != 1 || c.DeliveryFailures != 2 {
		t.Fatalf("counters = %+v", c)
	}
}

func TestInProcessCallback(t *testing.T) {
	h := newHarness(t, 2)
	pops := make(chan Pop, 8)
	fail := true
	h.svc.Register("reg-expiry", func(ctx context.Context, p Pop) error {
		pops <- p
		if fail {
			fail = false
			return errors.New("busy")
		}
		return nil
	})
	h.leadAll()
	id := h.set(Timer{
		Interval: 2 * time.Second,
		Callback: Callback{Type: "reg-expiry", Opaque: []byte{1, 2, 3}},
		Tags:     []Tag{{Type: "REG"}},
	})
	h.clock.Advance(2 * time.Second)
	p := recv(t, pops, "pop")
	want := Pop{ID: id, Seq: 1, Last: true, Due: start.Add(2 * time.Second), Opaque: []byte{1, 2, 3}, Tags: []Tag{{"REG", 1}}}
	if p.ID != want.ID || p.Seq != want.Seq || !p.Last || !p.Due.Equal(want.Due) ||
		!bytes.Equal(p.Opaque, want.Opaque) || !slices.Equal(p.Tags, want.Tags) {
		t.Fatalf("pop = %+v, want %+v", p, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.clock.WaitArmed(ctx, h.clock.Now().Add(250*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(250 * time.Millisecond)
	recv(t, pops, "second attempt")
	if c := h.waitCommit(opPop, id); c.st != statusOK {
		t.Fatalf("pop commit = %+v", c)
	}
}

func TestLeadershipLossAndGain(t *testing.T) {
	h := newHarness(t, 2)
	srv, hits := callbackServer(t, nil)
	h.leadAll()
	id := h.set(Timer{Interval: 10 * time.Second, Callback: Callback{URI: srv.URL}})
	shard := h.shardOf(id)
	l := h.svc.leader(shard)
	h.svc.LeaderChanged(shard, false)
	recv(t, l.done, "popping loop to end")

	// Nothing on this node pops the shard any more.
	h.clock.Advance(time.Minute)
	if len(hits) != 0 {
		t.Fatalf("popped while not leading: %+v", <-hits)
	}
	if h.svc.leader(shard) != nil {
		t.Fatal("leader state kept after losing leadership")
	}

	// Regaining it pops the overdue timer at once, without the clock moving.
	h.svc.LeaderChanged(shard, true)
	if got := recv(t, hits, "overdue pop"); got.seq != "1" {
		t.Fatalf("seq %q", got.seq)
	}
	if c := h.waitCommit(opPop, id); c.st != statusOK {
		t.Fatalf("pop commit = %+v", c)
	}
}

func TestLeadershipLossAbandonsDelivery(t *testing.T) {
	h := newHarness(t, 1)
	started, release := make(chan struct{}), make(chan struct{})
	srv, _ := callbackServer(t, func(n int, r *http.Request) int {
		close(started)
		<-release
		return http.StatusOK
	})
	h.leadAll()
	id := h.set(Timer{Interval: time.Second, Callback: Callback{URI: srv.URL}})
	h.clock.Advance(time.Second)
	recv(t, started, "delivery to start")
	h.svc.LeaderChanged(0, false)
	close(release)
	h.svc.Close() // waits for the delivery to end
	for len(h.commits) > 0 {
		if c := <-h.commits; c.op == opPop {
			t.Fatalf("pop committed after leadership was lost: %+v", c)
		}
	}
	if rec := h.record(id); rec == nil || rec.seq != 1 {
		t.Fatalf("record = %+v, want untouched", rec)
	}
}

func TestStatsFromTags(t *testing.T) {
	h := newHarness(t, 4)
	ctx := context.Background()
	srv, hits := callbackServer(t, nil)
	cb := Callback{URI: srv.URL}
	check := func(step string, want map[string]int64, wantTimers int64) {
		t.Helper()
		got, err := h.svc.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(got, want) {
			t.Fatalf("%s: Stats = %v, want %v", step, got, want)
		}
		if n, err := h.svc.Pending(ctx); err != nil || n != wantTimers {
			t.Fatalf("%s: Pending = %d, %v; want %d", step, n, err, wantTimers)
		}
	}
	a := h.set(Timer{Interval: time.Hour, Callback: cb, Tags: []Tag{{"REG", 1}, {"BIND", 2}}})
	b := h.set(Timer{Interval: time.Hour, Callback: cb, Tags: []Tag{{"REG", 1}, {"REG", 0}}})
	h.set(Timer{Interval: time.Hour, Callback: cb})
	check("created", map[string]int64{"REG": 3, "BIND": 2}, 3)

	h.set(Timer{ID: a, Interval: 10 * time.Second, Callback: cb, Tags: []Tag{{"SUB", 1}}})
	check("replaced", map[string]int64{"REG": 2, "SUB": 1}, 3)

	if err := h.svc.Delete(ctx, b); err != nil {
		t.Fatal(err)
	}
	check("deleted", map[string]int64{"SUB": 1}, 2)

	h.leadAll()
	h.clock.Advance(10 * time.Second)
	recv(t, hits, "pop of a")
	h.waitCommit(opPop, a)
	check("popped", map[string]int64{}, 1)
}

func TestExportImport(t *testing.T) {
	src := newHarness(t, 2)
	srv, hits := callbackServer(t, nil)
	var ids []ID
	for i := range 700 {
		tm := Timer{Interval: time.Duration(10+i%50) * time.Second, Callback: Callback{URI: srv.URL, Opaque: []byte{byte(i)}},
			Tags: []Tag{{"REG", 1}}}
		if i%3 == 0 {
			tm.RepeatFor = 10 * tm.Interval
		}
		ids = append(ids, src.set(tm))
	}
	// Move one repeating timer on a pop, so a sequence number > 1 is exported.
	src.leadAll()
	src.clock.Advance(10 * time.Second)
	recv(t, hits, "pop")
	src.waitCommit(opPop, ids[0])
	src.svc.Close() // no more pops: the source stays as exported

	dst := newHarness(t, 2)
	dst.clock.AdvanceTo(src.clock.Now())
	for shard := range 2 {
		var cmds [][]byte
		err := src.fc.shards[shard].db.View(func(tx *bolt.Tx) error {
			return src.svc.Export(shard, tx, func(cmd []byte) error {
				cmds = append(cmds, slices.Clone(cmd))
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, cmd := range cmds {
			dc, err := decodeCommand(cmd)
			if err != nil || dc.op != opImport || len(dc.imports) > importBatch {
				t.Fatalf("export command: op %d, %d timers, %v", dc.op, len(dc.imports), err)
			}
			res, err := dst.fc.Propose(context.Background(), shard, consensus.KindTimer, cmd)
			if err != nil || status(res[0]) != statusOK {
				t.Fatalf("import: %v %v", res, err)
			}
		}
	}
	for _, id := range ids {
		a, b := src.record(id), dst.record(id)
		if a == nil && b == nil {
			continue // a one-shot timer that popped
		}
		if a == nil || b == nil {
			t.Fatalf("timer %v: src %v dst %v", id, a, b)
		}
		a.gen, b.gen = 0, 0
		if !bytes.Equal(a.encode(), b.encode()) {
			t.Fatalf("timer %v: src %+v, dst %+v", id, a, b)
		}
	}
	if rec := dst.record(ids[0]); rec.seq != 2 {
		t.Fatalf("imported sequence number %d, want 2", rec.seq)
	}
	ctx := context.Background()
	s1, _ := src.svc.Stats(ctx)
	s2, _ := dst.svc.Stats(ctx)
	n1, _ := src.svc.Pending(ctx)
	n2, _ := dst.svc.Pending(ctx)
	if !maps.Equal(s1, s2) || n1 != n2 || n2 < 690 {
		t.Fatalf("stats src %v/%d, dst %v/%d", s1, n1, s2, n2)
	}
}

// TestApplyDeterministic replays each shard's log into a fresh store: the
// stores must come out byte for byte identical.
func TestApplyDeterministic(t *testing.T) {
	h := newHarness(t, 2)
	srv, hits := callbackServer(t, nil)
	ctx := context.Background()
	var ids []ID
	for i := range 50 {
		ids = append(ids, h.set(Timer{Interval: time.Duration(1+i%5) * time.Second, RepeatFor: 10 * time.Second,
			Callback: Callback{URI: srv.URL}, Tags: []Tag{{"T", uint32(i % 3)}}}))
		h.clock.Advance(100 * time.Millisecond)
	}
	for _, id := range ids[:10] {
		if err := h.svc.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	h.leadAll()
	h.clock.Advance(time.Second)
	for range 5 {
		recv(t, hits, "pop")
	}
	h.svc.Close()

	replica := newFakeCluster(t, 2, h.clock)
	m := New(replica, Options{Clock: h.clock, Logger: h.svc.log})
	defer m.Close()
	replica.open(t, m)
	for shard, sh := range h.fc.shards {
		for _, e := range sh.entries {
			err := replica.shards[shard].db.Update(func(tx *bolt.Tx) error {
				_, err := m.Apply(shard, tx, e)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		if a, b := dump(t, sh.db), dump(t, replica.shards[shard].db); !maps.Equal(a, b) {
			t.Fatalf("shard %d: replayed store differs", shard)
		}
	}
}

func dump(t *testing.T, db *bolt.DB) map[string]string {
	out := map[string]string{}
	err := db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				out[string(name)+"/"+string(k)] = string(v)
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestApplyResults(t *testing.T) {
	h := newHarness(t, 1)
	sp := spec{kind: cbLocal, rf: 2, interval: 1000, target: "t"}
	propose := func(cmd []byte) status {
		t.Helper()
		res, err := h.fc.Propose(context.Background(), 0, consensus.KindTimer, cmd)
		if err != nil {
			t.Fatal(err)
		}
		return status(res[0])
	}
	badSpec := sp
	badSpec.interval, badSpec.repeat = 0, 5
	badImport := &record{spec: sp, start: 1, seq: 2} // past its only pop
	tests := []struct {
		name string
		cmd  []byte
		want status
	}{
		{"set", encodeSet(7, false, &sp), statusOK},
		{"create over existing", encodeSet(7, true, &sp), statusExists},
		{"set zero id", encodeSet(0, false, &sp), statusBadCommand},
		{"set invalid spec", encodeSet(8, false, &badSpec), statusBadCommand},
		{"pop wrong seq", encodePop(7, 2, 1), statusStale},
		{"pop wrong instance", encodePop(7, 1, 99), statusStale},
		{"pop unknown", encodePop(9, 1, 1), statusNotFound},
		{"pop", encodePop(7, 1, 1), statusOK},
		{"delete gone", encodeDelete(7), statusNotFound},
		{"import past last pop", encodeImport([]imported{{id: 3, rec: badImport}}), statusBadCommand},
		{"truncated", encodeSet(7, false, &sp)[:12], statusBadCommand},
		{"unknown op", []byte{cmdVersion, 99}, statusBadCommand},
		{"unknown version", []byte{9, opDelete, 0, 0, 0, 0, 0, 0, 0, 1}, statusBadCommand},
		{"rescan", encodeRescan(), statusOK},
	}
	for _, tc := range tests {
		if got := propose(tc.cmd); got != tc.want {
			t.Errorf("%s: status %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestOpenWhileLeadingRebuildsWheel(t *testing.T) {
	// A snapshot restored under a leader replaces the store: Open refiles the
	// wheel from it.
	h := newHarness(t, 1)
	srv, hits := callbackServer(t, nil)
	h.leadAll()
	h.waitCommit(opRescan, 0)
	id := h.set(Timer{Interval: 3 * time.Second, Callback: Callback{URI: srv.URL}})
	l := h.svc.leader(0)
	err := h.fc.shards[0].db.Update(func(tx *bolt.Tx) error { return h.svc.Open(0, tx) })
	if err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	n := l.wheel.Len()
	l.mu.Unlock()
	if n != 1 {
		t.Fatalf("wheel holds %d entries after Open, want 1", n)
	}
	h.clock.Advance(3 * time.Second)
	recv(t, hits, "pop")
	h.waitCommit(opPop, id)
}
