package timerwheel

import (
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"stillwater/consensus"
)

// The machine's buckets in each shard's store.
const (
	bucketTimers = "timerwheel.timers" // 8-byte big-endian id -> record
	bucketTags   = "timerwheel.tags"   // tag type -> 8-byte big-endian count
	bucketMeta   = "timerwheel.meta"
	keyCount     = "timers" // in meta: number of timers
)

// Kind returns consensus.KindTimer.
func (s *Service) Kind() consensus.Kind { return consensus.KindTimer }

// Open creates the buckets; if this node leads the shard (a snapshot was
// restored under it) the shard's wheel is rebuilt from tx.
func (s *Service) Open(shard int, tx *bolt.Tx) error {
	st, err := buckets(tx)
	if err != nil {
		return fmt.Errorf("timerwheel: open shard %d: %w", shard, err)
	}
	if l := s.leader(shard); l != nil && st.timers != nil {
		l.mu.Lock()
		l.wheel = newWheel(wheelTick, s.clock.Now().UnixNano())
		l.mu.Unlock()
		s.rescan(shard, l, st.timers)
	}
	return nil
}

type stores struct {
	timers, tags, meta *bolt.Bucket
}

// buckets returns the machine's buckets, creating any missing in a writable
// tx; in a read-only tx they may be nil (nothing written yet).
func buckets(tx *bolt.Tx) (stores, error) {
	st := stores{
		timers: tx.Bucket([]byte(bucketTimers)),
		tags:   tx.Bucket([]byte(bucketTags)),
		meta:   tx.Bucket([]byte(bucketMeta)),
	}
	if !tx.Writable() || (st.timers != nil && st.tags != nil && st.meta != nil) {
		return st, nil
	}
	var err error
	for _, b := range []struct {
		name string
		p    **bolt.Bucket
	}{{bucketTimers, &st.timers}, {bucketTags, &st.tags}, {bucketMeta, &st.meta}} {
		if *b.p, err = tx.CreateBucketIfNotExists([]byte(b.name)); err != nil {
			return st, fmt.Errorf("bucket %s: %w", b.name, err)
		}
	}
	return st, nil
}

// Apply applies one committed command. Its result is one status byte.
func (s *Service) Apply(shard int, tx *bolt.Tx, e consensus.Entry) ([]byte, error) {
	c, err := decodeCommand(e.Cmd)
	if err != nil {
		s.log.Warn("rejecting undecodable command", "shard", shard, "index", e.Index, "err", err)
		return []byte{byte(statusBadCommand)}, nil
	}
	st, err := buckets(tx)
	if err != nil {
		return nil, fmt.Errorf("timerwheel: apply at shard %d index %d: %w", shard, e.Index, err)
	}
	l := s.leader(shard)
	var res status
	switch c.op {
	case opSet:
		res, err = st.set(l, c, e)
	case opDelete:
		res, err = st.delete(c.id)
	case opPop:
		res, err = st.pop(l, c)
	case opImport:
		res, err = st.imports(l, c, e)
	case opRescan:
		if l != nil {
			s.rescan(shard, l, st.timers)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("timerwheel: apply op %d at shard %d index %d: %w", c.op, shard, e.Index, err)
	}
	return []byte{byte(res)}, nil
}

func (st stores) get(id ID) (*record, error) {
	v := st.timers.Get(id.key())
	if v == nil {
		return nil, nil
	}
	return decodeRecord(v)
}

func (st stores) put(id ID, r *record) error {
	return st.timers.Put(id.key(), r.encode())
}

func (st stores) set(l *leader, c *command, e consensus.Entry) (status, error) {
	if c.id == 0 || c.spec.check() != "" {
		return statusBadCommand, nil
	}
	old, err := st.get(c.id)
	if err != nil {
		return 0, err
	}
	if old != nil && c.create {
		return statusExists, nil
	}
	rec := &record{spec: c.spec, start: ceilDiv(e.Time, 1e6), seq: 1, gen: e.Index}
	if err := st.replace(c.id, old, rec); err != nil {
		return 0, err
	}
	l.insert(c.id, rec.due())
	return statusOK, nil
}

// replace stores rec in place of old (nil: none) and keeps the counts.
func (st stores) replace(id ID, old, rec *record) error {
	if err := st.put(id, rec); err != nil {
		return err
	}
	if old != nil {
		if err := st.count(old.tags, -1); err != nil {
			return err
		}
	} else if err := st.addTimers(1); err != nil {
		return err
	}
	return st.count(rec.tags, 1)
}

func (st stores) delete(id ID) (status, error) {
	old, err := st.get(id)
	if err != nil || old == nil {
		return statusNotFound, err
	}
	return statusOK, st.remove(id, old)
}

func (st stores) remove(id ID, old *record) error {
	if err := st.timers.Delete(id.key()); err != nil {
		return err
	}
	if err := st.addTimers(-1); err != nil {
		return err
	}
	return st.count(old.tags, -1)
}

// pop commits a delivered pop: the timer moves to its next sequence number,
// or goes after its last pop.
func (st stores) pop(l *leader, c *command) (status, error) {
	rec, err := st.get(c.id)
	if err != nil || rec == nil {
		return statusNotFound, err
	}
	if rec.gen != c.gen || rec.seq != c.seq {
		return statusStale, nil
	}
	if rec.seq >= rec.pops() {
		return statusOK, st.remove(c.id, rec)
	}
	rec.seq++
	if err := st.put(c.id, rec); err != nil {
		return 0, err
	}
	l.insert(c.id, rec.due())
	return statusOK, nil
}

func (st stores) imports(l *leader, c *command, e consensus.Entry) (status, error) {
	for _, it := range c.imports {
		if it.id == 0 || it.rec.check() != "" || it.rec.seq == 0 || it.rec.seq > it.rec.pops() {
			return statusBadCommand, nil
		}
	}
	for _, it := range c.imports {
		old, err := st.get(it.id)
		if err != nil {
			return 0, err
		}
		it.rec.gen = e.Index
		if err := st.replace(it.id, old, it.rec); err != nil {
			return 0, err
		}
		l.insert(it.id, it.rec.due())
	}
	return statusOK, nil
}

// count adds sign*count of each tag to the per-type totals.
func (st stores) count(tags []Tag, sign int64) error {
	for _, tg := range tags {
		k := []byte(tg.Type)
		n := getInt(st.tags.Get(k)) + sign*int64(tg.Count)
		var err error
		if n == 0 {
			err = st.tags.Delete(k)
		} else {
			err = st.tags.Put(k, binary.BigEndian.AppendUint64(nil, uint64(n)))
		}
		if err != nil {
			return fmt.Errorf("tag count %q: %w", tg.Type, err)
		}
	}
	return nil
}

func (st stores) addTimers(d int64) error {
	n := getInt(st.meta.Get([]byte(keyCount))) + d
	return st.meta.Put([]byte(keyCount), binary.BigEndian.AppendUint64(nil, uint64(n)))
}

func getInt(v []byte) int64 {
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

// rescan feeds every stored timer of the shard to the leader's wheel.
// Entries it duplicates are harmless: pops are checked against the record.
func (s *Service) rescan(shard int, l *leader, timers *bolt.Bucket) {
	var bad int
	l.mu.Lock()
	_ = timers.ForEach(func(k, v []byte) error {
		due, err := recordDue(v)
		if err != nil || len(k) != 8 {
			bad++
			return nil
		}
		l.wheel.Insert(binary.BigEndian.Uint64(k), due)
		return nil
	})
	n := l.wheel.Len()
	l.mu.Unlock()
	l.poke()
	if bad > 0 {
		s.log.Error("undecodable timer records skipped", "shard", shard, "count", bad)
	}
	s.log.Info("shard wheel rebuilt", "shard", shard, "entries", n)
}

// Query answers a stats or get query from the local store.
func (s *Service) Query(shard int, tx *bolt.Tx, q []byte) ([]byte, error) {
	if len(q) < 2 || q[0] != cmdVersion {
		return nil, errors.New("timerwheel: malformed query")
	}
	st, err := buckets(tx)
	if err != nil {
		return nil, fmt.Errorf("timerwheel: query shard %d: %w", shard, err)
	}
	switch q[1] {
	case qStats:
		out := shardStats{tags: map[string]int64{}}
		if st.meta != nil {
			out.timers = getInt(st.meta.Get([]byte(keyCount)))
		}
		if st.tags != nil {
			_ = st.tags.ForEach(func(k, v []byte) error {
				out.tags[string(k)] = getInt(v)
				return nil
			})
		}
		return encodeStats(out), nil
	case qGet:
		if len(q) != 10 {
			return nil, errors.New("timerwheel: malformed get query")
		}
		if st.timers == nil {
			return nil, nil
		}
		return append([]byte(nil), st.timers.Get(q[2:])...), nil
	}
	return nil, fmt.Errorf("timerwheel: query op %d unknown", q[1])
}

// Export emits Import commands of up to importBatch timers each. Replayed into
// an empty shard they restore every timer with its due time and sequence
// number, and the tag counts with them.
func (s *Service) Export(shard int, tx *bolt.Tx, emit func(cmd []byte) error) error {
	st, err := buckets(tx)
	if err != nil || st.timers == nil {
		return err
	}
	batch := make([]imported, 0, importBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := emit(encodeImport(batch))
		batch = batch[:0]
		return err
	}
	c := st.timers.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(k) != 8 {
			return fmt.Errorf("timerwheel: export shard %d: bad timer key %x", shard, k)
		}
		rec, err := decodeRecord(v)
		if err != nil {
			return fmt.Errorf("timerwheel: export shard %d: timer %x: %w", shard, k, err)
		}
		batch = append(batch, imported{id: ID(binary.BigEndian.Uint64(k)), rec: rec})
		if len(batch) == importBatch {
			if err := flush(); err != nil {
				return fmt.Errorf("timerwheel: export shard %d: %w", shard, err)
			}
		}
	}
	if err := flush(); err != nil {
		return fmt.Errorf("timerwheel: export shard %d: %w", shard, err)
	}
	return nil
}
