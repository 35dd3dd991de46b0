package kv

import (
	"errors"
	"fmt"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestCachedReads(t *testing.T) {
	f := newFixture(t, 1, Options{})
	const key = "hss.irs/1"
	queries := func() int {
		f.c.mu.Lock()
		defer f.c.mu.Unlock()
		return len(f.c.consistency)
	}
	put := func(v string, ttl time.Duration) func() error {
		return func() error { _, err := f.svc.PutTTL(f.ctx, key, []byte(v), ttl); return err }
	}
	steps := []struct {
		name    string
		change  func() error // before the read; nil for none
		want    string       // "" for not found
		queried bool         // the read reached the store
	}{
		{"first read", put("v1", 0), "v1", true},
		{"again", nil, "v1", false},
		{"after a write", put("v2", 0), "v2", false},
		{"again after the write", nil, "v2", false},
		{"expiring record", put("v3", 10*time.Second), "v3", false},
		{"expiring record again", nil, "v3", false},
		{"expired", func() error { f.clock.Advance(11 * time.Second); return nil }, "", true},
		{"rewritten after it expired", put("v4", 0), "v4", false},
		{"deleted", func() error { return f.svc.Delete(f.ctx, key) }, "", true},
		{"not found is not kept", nil, "", true},
		{"written again", put("v5", 0), "v5", true},
		{"shard reopened", func() error {
			return f.c.shards[0].db.Update(func(tx *bolt.Tx) error { return f.svc.Open(0, tx) })
		}, "v5", true},
		{"not replicated here", func() error {
			f.c.mu.Lock()
			f.c.remote = true
			f.c.mu.Unlock()
			return nil
		}, "v5", true},
		{"still not replicated", nil, "v5", true},
	}
	for _, s := range steps {
		if s.change != nil {
			if err := s.change(); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
		}
		before := queries()
		rec, err := f.svc.Get(f.ctx, key, Cached())
		got := string(rec.Value)
		if errors.Is(err, ErrNotFound) {
			got = ""
		} else if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got != s.want {
			t.Fatalf("%s: read %q, want %q", s.name, got, s.want)
		}
		if queried := queries() > before; queried != s.queried {
			t.Fatalf("%s: store queried %v, want %v", s.name, queried, s.queried)
		}
		if got != "" {
			stored, err := f.svc.Get(f.ctx, key)
			if err != nil || !recordsEqual(rec, stored) {
				t.Fatalf("%s: cached %+v, stored %+v (%v)", s.name, rec, stored, err)
			}
		}
	}
}

func TestCacheFillRaces(t *testing.T) {
	rec := func(v string) Record { return Record{Key: "k", Value: []byte(v)} }
	tests := []struct {
		name string
		race func(c *recordCache) // between a missed get and its fill of "old"
		kept bool
	}{
		{"no change", func(*recordCache) {}, true},
		{"key changed", func(c *recordCache) { c.changed([]byte("k")) }, false},
		{"other key changed", func(c *recordCache) { c.changed([]byte("j")) }, true},
		{"shard reset", func(c *recordCache) { c.reset() }, false},
		{"overlapping read of a changed key", func(c *recordCache) {
			c.get("k", 0)
			c.changed([]byte("k"))
			c.fill(rec("new"))
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &recordCache{limit: 1 << 20}
			if _, ok := c.get("k", 0); ok {
				t.Fatal("hit in an empty cache")
			}
			tc.race(c)
			c.fill(rec("old"))
			got, ok := c.get("k", 0)
			if ok != tc.kept || (ok && string(got.Value) != "old") {
				t.Fatalf("after the fill: %q, %v; want kept %v", got.Value, ok, tc.kept)
			}
			if !ok {
				c.abandon("k")
			}
			if len(c.reading) != 0 {
				t.Fatalf("reads still registered: %v", c.reading)
			}
		})
	}
}

func TestCacheBound(t *testing.T) {
	c := &recordCache{limit: 64 << 10}
	for i := range 1000 {
		key := fmt.Sprintf("k%d", i)
		c.get(key, 0)
		c.fill(Record{Key: key, Value: make([]byte, 200)})
		if c.bytes > c.limit {
			t.Fatalf("after %d fills: %d bytes cached, limit %d", i+1, c.bytes, c.limit)
		}
	}
	if len(c.m) == 0 {
		t.Fatal("nothing kept")
	}
	c.get("big", 0)
	c.fill(Record{Key: "big", Value: make([]byte, c.limit/8)})
	if _, ok := c.get("big", 0); ok {
		t.Fatal("a record of an eighth of the cache was kept")
	}
}

func TestKeepCached(t *testing.T) {
	f := newFixture(t, 1, Options{})
	queries := func() int {
		f.c.mu.Lock()
		defer f.c.mu.Unlock()
		return len(f.c.consistency)
	}
	if _, err := f.svc.CompareAndSet(f.ctx, "chal/1", []byte("c1"), time.Minute, 0, KeepCached()); err != nil {
		t.Fatal(err)
	}
	before := queries()
	rec, err := f.svc.Get(f.ctx, "chal/1", Cached())
	if err != nil || string(rec.Value) != "c1" || rec.Version != 1 {
		t.Fatalf("cached read of a kept write: %+v, %v", rec, err)
	}
	if queries() != before {
		t.Fatal("a kept write was read from the store")
	}
	// A write that fails leaves nothing behind.
	if _, err := f.svc.CompareAndSet(f.ctx, "chal/1", []byte("c2"), time.Minute, 0, KeepCached()); !errors.Is(err, ErrConflict) {
		t.Fatalf("second create: %v, want a conflict", err)
	}
	if _, err := f.svc.CompareAndSet(f.ctx, "chal/2", []byte("c2"), time.Minute, 7, KeepCached()); !errors.Is(err, ErrConflict) {
		t.Fatalf("update of a missing record: %v, want a conflict", err)
	}
	c := f.svc.shardCache(0)
	c.mu.Lock()
	_, left := c.m["chal/2"]
	c.mu.Unlock()
	if left {
		t.Fatal("a failed write left its room in the cache")
	}
	if _, err := f.svc.Get(f.ctx, "chal/2", Cached()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("read of the failed write: %v, want ErrNotFound", err)
	}
}
