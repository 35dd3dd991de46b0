package kv

import (
	"context"
	"fmt"
	"time"

	"stillwater/consensus"
)

const (
	// sweepBatch bounds the records one Expire command deletes, so that a mass
	// expiry becomes a series of modest Raft entries.
	sweepBatch = 1000
	// sweepRetry is the pause after a failed or fruitless sweep.
	sweepRetry = time.Second
)

// LeaderChanged implements consensus.LeaderObserver: the node runs an expiry
// sweeper for each shard it leads.
func (s *Service) LeaderChanged(shard int, leader bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stateLocked(shard)
	if !leader {
		if st.stopSweep != nil {
			st.stopSweep()
			st.stopSweep = nil
		}
		return
	}
	if s.closed || st.stopSweep != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	st.stopSweep = cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.sweep(ctx, shard, st)
	}()
}

// sweep proposes Expire commands whenever the shard's earliest expiry passes.
// Apply keeps st.earliest current and nudges st.wake when it moves earlier.
func (s *Service) sweep(ctx context.Context, shard int, st *shardState) {
	log := s.log.With("shard", shard)
	log.Debug("expiry sweeper started")
	defer log.Debug("expiry sweeper stopped")
	var pause time.Duration
	for {
		var timer <-chan time.Time
		wake := st.wake
		if pause > 0 {
			// New expiries must not cut a pause short, or a lagging log
			// would make the sweeper spin.
			timer, pause, wake = s.clock.After(pause), 0, nil
		} else if next := st.earliest.Load(); next != 0 {
			now := s.now()
			if next <= now {
				deleted, remaining, err := s.expire(ctx, shard, now)
				switch {
				case ctx.Err() != nil:
					return
				case err != nil:
					log.Warn("expiry sweep failed", "err", err)
					pause = sweepRetry
				case deleted == 0 && remaining != 0 && remaining <= now:
					// The leader's log time lags our clock (or the hint
					// is stale): don't spin.
					pause = sweepRetry
				default:
					if deleted > 0 {
						log.Debug("expired records", "count", deleted)
					}
				}
				continue
			}
			timer = s.clock.After(time.Duration(next - now))
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-timer:
		}
	}
}

// expire proposes one Expire command and returns how many records it deleted
// and the earliest expiry left.
func (s *Service) expire(ctx context.Context, shard int, upTo int64) (deleted uint64, next int64, err error) {
	cmd := appendExpire(make([]byte, 0, 1+2*maxVarint), upTo, sweepBatch)
	res, err := s.cluster.Propose(ctx, shard, consensus.KindKV, cmd)
	if err != nil {
		return 0, 0, fmt.Errorf("kv: expire shard %d: %w", shard, err)
	}
	d := decoder{b: res}
	switch d.byte() {
	case resOK:
		deleted = d.uvarint()
		next = d.varint()
		if !d.bad {
			return deleted, next, nil
		}
	case resInvalid:
		return 0, 0, fmt.Errorf("kv: expire shard %d: %w: %s", shard, ErrInvalid, d.rest())
	}
	return 0, 0, fmt.Errorf("kv: expire shard %d: %w", shard, errBadResult)
}
