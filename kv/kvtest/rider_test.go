package kvtest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"stillwater/kv"
	"stillwater/kv/kvtest"
	"stillwater/timerwheel"
)

// TestRiders writes records and their timers in single entries: the timer
// changes exactly when the write it rides on commits.
func TestRiders(t *testing.T) {
	s := kvtest.NewWith(t, kvtest.Options{Shards: 4, TimerClock: timerwheel.NewFakeClock(time.Now())})
	ctx := context.Background()
	key := "rec/alice"
	shard := s.KV.ShardOf(key)
	id, err := s.Timers.IDOn("timer of "+key, shard)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := s.Timers.IDOn("timer of "+key, shard); again != id {
		t.Fatalf("IDOn not deterministic: %v then %v", id, again)
	}
	set, err := s.Timers.SetChange(timerwheel.Timer{ID: id, Interval: time.Minute,
		Callback: timerwheel.Callback{Type: "t", Opaque: []byte(key)}})
	if err != nil {
		t.Fatal(err)
	}
	if set.Shard != shard {
		t.Fatalf("timer on shard %d, record on %d", set.Shard, shard)
	}
	rider := kv.Rider{Shard: set.Shard, Command: set.Command}
	pending := func() int64 {
		t.Helper()
		n, err := s.Timers.Pending(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	// A refused write leaves the timer alone.
	_, res, err := s.KV.CompareAndSetWith(ctx, key, []byte("v1"), 0, 7, rider)
	if !errors.Is(err, kv.ErrConflict) || res != nil || pending() != 0 {
		t.Fatalf("conflicting write: err %v, rider result %x, %d timers; want a conflict and no timer", err, res, pending())
	}
	ver, res, err := s.KV.CompareAndSetWith(ctx, key, []byte("v1"), 0, 0, rider)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Timers.Applied(set, res); err != nil || pending() != 1 {
		t.Fatalf("write with its timer: %v, %d timers; want 1", err, pending())
	}
	del := s.Timers.DeleteChange(id)
	res, err = s.KV.DeleteIfWith(ctx, key, ver, kv.Rider{Shard: del.Shard, Command: del.Command})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Timers.Applied(del, res); err != nil || pending() != 0 {
		t.Fatalf("delete with its timer: %v, %d timers; want 0", err, pending())
	}
	if _, err := s.KV.Get(ctx, key); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("record after delete: %v", err)
	}

	// A rider must live on the written record's shard.
	other := (shard + 1) % 4
	_, _, err = s.KV.CompareAndSetWith(ctx, key, []byte("v2"), 0, 0, kv.Rider{Shard: other, Command: set.Command})
	if !errors.Is(err, kv.ErrInvalid) {
		t.Fatalf("rider for another shard: %v, want ErrInvalid", err)
	}
	if _, err := s.Timers.IDOn("x", 4); !errors.Is(err, timerwheel.ErrInvalid) {
		t.Fatalf("IDOn for a shard that does not exist: %v", err)
	}
}
