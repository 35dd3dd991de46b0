package kv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"stillwater/consensus"
)

// Bucket names in each shard's store.
const (
	bucketRecords = "kv.records"
	bucketExpiry  = "kv.expiry"
	bucketFeed    = "kv.feed"
	bucketMeta    = "kv.meta"
	metaKey       = "state"
)

// Export batching: ~256 records per restore command, fewer if values are large
// so that one Raft entry stays small.
const (
	exportBatch    = 256
	exportMaxBytes = 1 << 20
)

var errNotOpened = errors.New("kv buckets missing (shard not opened)")

// Kind implements consensus.Machine.
func (s *Service) Kind() consensus.Kind { return consensus.KindKV }

// Open implements consensus.Machine: it creates the buckets and rebuilds the
// earliest-expiry hint.
func (s *Service) Open(shard int, tx *bolt.Tx) error {
	for _, name := range [...]string{bucketRecords, bucketExpiry, bucketFeed, bucketMeta} {
		if tx.Writable() {
			if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
				return fmt.Errorf("kv: open shard %d: create bucket %s: %w", shard, name, err)
			}
		} else if tx.Bucket([]byte(name)) == nil {
			return fmt.Errorf("kv: open shard %d: bucket %s missing in read-only open", shard, name)
		}
	}
	if c := s.shardCache(shard); c != nil {
		c.reset() // the state may have been replaced under the cache
	}
	st := s.state(shard)
	var earliest int64
	if k, _ := tx.Bucket([]byte(bucketExpiry)).Cursor().First(); len(k) >= 8 {
		earliest = int64(binary.BigEndian.Uint64(k))
	}
	st.setEarliest(earliest)
	if _, ok := decodeMeta(tx.Bucket([]byte(bucketMeta)).Get([]byte(metaKey))); !ok {
		return fmt.Errorf("kv: open shard %d: corrupt meta state", shard)
	}
	return nil
}

// applied is what an applier opened in a transaction, and the shard's meta
// state as the applier left it.
type applied struct {
	recs, exp, feed, meta *bolt.Bucket
	m                     shardMeta
}

// applier carries one Apply's buckets and the shard state it advances.
type applier struct {
	applied
	svc   *Service
	st    *shardState
	cache *recordCache // nil if the shard has none
	e     consensus.Entry

	dirty   bool   // m changed: write it back
	stamped bool   // version and hlc assigned
	version uint64 // version of this command's changes
	hlc     HLC    // HLC of this command's changes
	feedN   uint32 // next position within the command in the feed

	// Earliest-expiry bookkeeping: index entries added and whether the first
	// one may have been removed.
	minAdded     int64
	removedFirst bool
}

// Apply implements consensus.Machine.
func (s *Service) Apply(shard int, tx *bolt.Tx, e consensus.Entry) ([]byte, error) {
	st := s.state(shard)
	st.applyMu.Lock()
	defer st.applyMu.Unlock()

	a := applier{svc: s, st: st, cache: s.shardCache(shard), e: e}
	if o := st.open; o.recs != nil && o.recs.Tx() == tx {
		// The cached buckets keep their transaction alive, so a later
		// transaction cannot have its address: equality means the same one.
		a.applied = o
	} else if err := a.open(tx); err != nil {
		return nil, fmt.Errorf("kv: apply shard %d index %d: %w", shard, e.Index, err)
	}
	st.open = applied{}
	d := decoder{b: e.Cmd}
	var (
		res []byte
		err error
	)
	switch op := d.byte(); op {
	case opPut:
		res, err = a.put(&d)
	case opDelete:
		res, err = a.delete(&d)
	case opBatch:
		res, err = a.batch(&d)
	case opExpire:
		res, err = a.expire(&d)
	case opRestore:
		res, err = a.restore(&d)
	default:
		res = invalidResult(fmt.Sprintf("unknown command %d", op))
	}
	if err == nil {
		err = a.finish()
	}
	if err != nil {
		// The transaction is rolled back: nothing of it may be reused.
		return nil, fmt.Errorf("kv: apply shard %d index %d: %w", shard, e.Index, err)
	}
	st.open = a.applied
	if res[0] == resInvalid {
		// The proposer built a command this version cannot read: a bug or a
		// newer node; the rejection is deterministic, so the shard goes on.
		s.log.Error("rejected command", "shard", shard, "index", e.Index, "reason", string(res[1:]))
	}
	return res, nil
}

func (a *applier) open(tx *bolt.Tx) error {
	a.recs = tx.Bucket([]byte(bucketRecords))
	a.exp = tx.Bucket([]byte(bucketExpiry))
	a.feed = tx.Bucket([]byte(bucketFeed))
	a.meta = tx.Bucket([]byte(bucketMeta))
	if a.recs == nil || a.exp == nil || a.feed == nil || a.meta == nil {
		return errNotOpened
	}
	m, ok := decodeMeta(a.meta.Get([]byte(metaKey)))
	if !ok {
		return errors.New("corrupt meta state")
	}
	a.m = m
	return nil
}

// stamp assigns this command's version and HLC on its first change.
func (a *applier) stamp() {
	if a.stamped {
		return
	}
	a.stamped, a.dirty = true, true
	a.version = max(a.e.Index, a.m.last+1)
	a.m.last = a.version
	a.hlc = nextHLC(a.m.hlc, a.e.Time)
	a.m.hlc = a.hlc
}

// current reads key's stored record. version is 0 when the record is absent or
// expired at Entry.Time (conditions treat it as gone); storedExpiry is the
// expiry index entry to remove when overwriting.
func (a *applier) current(key []byte) (version uint64, storedExpiry int64, err error) {
	enc := a.recs.Get(key)
	if enc == nil {
		return 0, 0, nil
	}
	h, _, ok := decodeRecord(enc)
	if !ok {
		return 0, 0, fmt.Errorf("corrupt record %q", key)
	}
	if expired(h.expiry, a.e.Time) {
		return 0, h.expiry, nil
	}
	return h.version, h.expiry, nil
}

func (a *applier) expiryFor(ttl int64) (int64, bool) {
	if ttl == 0 {
		return 0, true
	}
	if ttl < 0 || a.e.Time > 0 && ttl > (1<<63-1)-a.e.Time {
		return 0, false
	}
	return a.e.Time + ttl, true
}

// write stores a record, maintains the expiry index and appends the change.
func (a *applier) write(op Op, key []byte, h recordHeader, value []byte, oldExpiry int64) error {
	// The feed entry and the record share one allocation (bbolt keeps values
	// by reference until commit): the entry is the record without its value.
	buf := make([]byte, 0, feedEntrySize(key, h)+recordSize(h, value))
	buf = a.appendFeedEntry(buf, op, key, h)
	entry := buf[:len(buf):len(buf)]
	rec := appendRecord(buf[len(buf):], h, value)
	if err := a.recs.Put(key, rec); err != nil {
		return fmt.Errorf("put record %q: %w", key, err)
	}
	if a.cache != nil {
		a.cache.wrote(key, h, rec[len(rec)-len(value):])
	}
	if err := a.reindex(key, oldExpiry, h.expiry); err != nil {
		return err
	}
	return a.appendFeed(entry)
}

// remove deletes a record and its expiry index entry, and appends the change.
func (a *applier) remove(op Op, key []byte, h recordHeader, storedExpiry int64) error {
	if err := a.recs.Delete(key); err != nil {
		return fmt.Errorf("delete record %q: %w", key, err)
	}
	if a.cache != nil {
		a.cache.changed(key)
	}
	if err := a.reindex(key, storedExpiry, 0); err != nil {
		return err
	}
	return a.appendFeed(a.appendFeedEntry(make([]byte, 0, feedEntrySize(key, h)), op, key, h))
}

// appendFeedEntry encodes a change: its op, key and record header, without
// the value. queryFeed reads a put's value from the record itself, which
// holds it for as long as the change is the key's latest; an older one is
// superseded by a later entry. Keeping values out of the feed keeps its
// retained changes from holding a second copy of the data.
func (a *applier) appendFeedEntry(b []byte, op Op, key []byte, h recordHeader) []byte {
	b = append(b, byte(op))
	b = appendBytes(b, key)
	return appendRecord(b, h, nil)
}

func feedEntrySize(key []byte, h recordHeader) int {
	return 1 + uvarintLen(uint64(len(key))) + len(key) + recordSize(h, nil)
}

func (a *applier) reindex(key []byte, oldExpiry, newExpiry int64) error {
	if oldExpiry == newExpiry {
		return nil
	}
	if oldExpiry != 0 {
		a.st.scratch = appendExpiryKey(a.st.scratch[:0], oldExpiry, key)
		if err := a.exp.Delete(a.st.scratch); err != nil {
			return fmt.Errorf("unindex %q: %w", key, err)
		}
		if oldExpiry <= a.st.earliest.Load() {
			a.removedFirst = true
		}
	}
	if newExpiry != 0 {
		a.st.scratch = appendExpiryKey(a.st.scratch[:0], newExpiry, key)
		if err := a.exp.Put(a.st.scratch, nil); err != nil {
			return fmt.Errorf("index %q: %w", key, err)
		}
		if a.minAdded == 0 || newExpiry < a.minAdded {
			a.minAdded = newExpiry
		}
	}
	return nil
}

func (a *applier) appendFeed(entry []byte) error {
	a.st.scratch = appendFeedKey(a.st.scratch[:0], a.e.Index, a.feedN)
	a.feedN++
	if err := a.feed.Put(a.st.scratch, entry); err != nil {
		return fmt.Errorf("append feed: %w", err)
	}
	a.m.feedCount++
	a.dirty = true
	return nil
}

// finish trims the feed, stores the shard state and refreshes the expiry hint.
func (a *applier) finish() error {
	if !a.dirty {
		return nil
	}
	if a.m.feedCount > a.svc.retention {
		c := a.feed.Cursor()
		for a.m.feedCount > a.svc.retention {
			k, _ := c.First()
			if k == nil {
				a.m.feedCount = 0
				break
			}
			a.m.feedTrimmed = max(a.m.feedTrimmed, binary.BigEndian.Uint64(k))
			if err := c.Delete(); err != nil {
				return fmt.Errorf("trim feed: %w", err)
			}
			a.m.feedCount--
		}
	}
	var enc [metaSize]byte
	if err := a.meta.Put([]byte(metaKey), a.m.append(enc[:0])); err != nil {
		return fmt.Errorf("store meta state: %w", err)
	}
	switch {
	case a.removedFirst:
		var earliest int64
		if k, _ := a.exp.Cursor().First(); len(k) >= 8 {
			earliest = int64(binary.BigEndian.Uint64(k))
		}
		a.st.setEarliest(earliest)
	case a.minAdded != 0:
		a.st.noteExpiry(a.minAdded)
	}
	return nil
}

func (a *applier) put(d *decoder) ([]byte, error) {
	cond := d.byte()
	ifVersion := d.uvarint()
	ttl := d.varint()
	site := d.bytes()
	key := d.bytes()
	value := d.rest()
	if d.bad || cond > 1 || len(key) == 0 || len(key) > MaxKeyLen {
		return invalidResult("malformed put"), nil
	}
	expiry, ok := a.expiryFor(ttl)
	if !ok {
		return invalidResult("bad ttl"), nil
	}
	cur, stored, err := a.current(key)
	if err != nil {
		return nil, err
	}
	if cond == 1 && cur != ifVersion {
		return conflictResult(cur), nil
	}
	a.stamp()
	h := recordHeader{version: a.version, hlc: a.hlc, expiry: expiry, site: site}
	if err := a.write(OpPut, key, h, value, stored); err != nil {
		return nil, err
	}
	return okResult(a.version), nil
}

func (a *applier) delete(d *decoder) ([]byte, error) {
	cond := d.byte()
	ifVersion := d.uvarint()
	site := d.bytes()
	key := d.rest()
	if d.bad || cond > 1 || len(key) == 0 || len(key) > MaxKeyLen {
		return invalidResult("malformed delete"), nil
	}
	cur, stored, err := a.current(key)
	if err != nil {
		return nil, err
	}
	if cond == 1 && cur != ifVersion {
		return conflictResult(cur), nil
	}
	if cur == 0 {
		// Absent, or expired and awaiting the sweeper, which will report it.
		return []byte{resNotFound}, nil
	}
	a.stamp()
	h := recordHeader{version: a.version, hlc: a.hlc, site: site}
	if err := a.remove(OpDelete, key, h, stored); err != nil {
		return nil, err
	}
	return okResult(a.version), nil
}

func (a *applier) batch(d *decoder) ([]byte, error) {
	site := d.bytes()
	if d.bad {
		return invalidResult("malformed batch"), nil
	}
	// Validate every item first so that a bad command changes nothing.
	items := *d
	n := 0
	for !items.empty() {
		ttl := items.varint()
		key := items.bytes()
		items.bytes()
		if items.bad || len(key) == 0 || len(key) > MaxKeyLen {
			return invalidResult("malformed batch item"), nil
		}
		if _, ok := a.expiryFor(ttl); !ok {
			return invalidResult("bad ttl in batch"), nil
		}
		n++
	}
	if n == 0 {
		return okResult(0), nil
	}
	a.stamp()
	for !d.empty() {
		ttl := d.varint()
		key := d.bytes()
		value := d.bytes()
		expiry, _ := a.expiryFor(ttl)
		_, stored, err := a.current(key)
		if err != nil {
			return nil, err
		}
		h := recordHeader{version: a.version, hlc: a.hlc, expiry: expiry, site: site}
		if err := a.write(OpPut, key, h, value, stored); err != nil {
			return nil, err
		}
	}
	return okResult(a.version), nil
}

// expire deletes up to max records whose expiry ≤ min(upTo, Entry.Time).
func (a *applier) expire(d *decoder) ([]byte, error) {
	upTo := d.varint()
	limit := d.uvarint()
	if d.bad || !d.empty() {
		return invalidResult("malformed expire"), nil
	}
	upTo = min(upTo, a.e.Time)
	// Collect first: deleting under a live cursor is fragile in bbolt.
	var due [][]byte
	c := a.exp.Cursor()
	for k, _ := c.First(); k != nil && uint64(len(due)) < limit; k, _ = c.Next() {
		if len(k) < 8 || int64(binary.BigEndian.Uint64(k)) > upTo {
			break
		}
		due = append(due, bytes.Clone(k))
	}
	var deleted uint64
	for _, ik := range due {
		at := int64(binary.BigEndian.Uint64(ik))
		key := ik[8:]
		enc := a.recs.Get(key)
		if enc != nil {
			h, _, ok := decodeRecord(enc)
			if !ok {
				return nil, fmt.Errorf("corrupt record %q", key)
			}
			if h.expiry == at {
				a.stamp()
				ch := recordHeader{version: a.version, hlc: a.hlc, expiry: at}
				if err := a.remove(OpExpire, key, ch, at); err != nil {
					return nil, err
				}
				deleted++
				continue
			}
		}
		// An index entry without its record would be a bug; drop it.
		if err := a.exp.Delete(ik); err != nil {
			return nil, fmt.Errorf("drop stale index entry: %w", err)
		}
		a.removedFirst = true
	}
	var next int64
	if k, _ := a.exp.Cursor().First(); len(k) >= 8 {
		next = int64(binary.BigEndian.Uint64(k))
	}
	if len(due) > 0 {
		a.removedFirst = true
		a.dirty = true
	}
	res := make([]byte, 0, 1+2*maxVarint)
	res = append(res, resOK)
	res = binary.AppendUvarint(res, deleted)
	return binary.AppendVarint(res, next), nil
}

// restore writes records verbatim and raises the version floor and HLC so
// that later writes are newer than anything the exported shard held.
func (a *applier) restore(d *decoder) ([]byte, error) {
	floor := d.uvarint()
	var h HLC
	h.Wall = d.varint()
	logical := d.uvarint()
	h.Logical = uint32(logical)
	if d.bad || logical > 1<<32-1 {
		return invalidResult("malformed restore"), nil
	}
	items := *d
	for !items.empty() {
		key, _, _ := decodeRestoreItem(&items)
		if items.bad || len(key) == 0 || len(key) > MaxKeyLen {
			return invalidResult("malformed restore item"), nil
		}
	}
	a.dirty = true
	a.m.last = max(a.m.last, floor)
	a.m.hlc = maxHLC(a.m.hlc, h)
	var n uint64
	for !d.empty() {
		key, rh, value := decodeRestoreItem(d)
		_, stored, err := a.current(key)
		if err != nil {
			return nil, err
		}
		if err := a.write(OpRestore, key, rh, value, stored); err != nil {
			return nil, err
		}
		a.m.last = max(a.m.last, rh.version)
		a.m.hlc = maxHLC(a.m.hlc, rh.hlc)
		n++
	}
	return okResult(n), nil
}

func okResult(v uint64) []byte {
	return binary.AppendUvarint(append(make([]byte, 0, 1+maxVarint), resOK), v)
}

func conflictResult(cur uint64) []byte {
	return binary.AppendUvarint(append(make([]byte, 0, 1+maxVarint), resConflict), cur)
}

func invalidResult(msg string) []byte {
	return append([]byte{resInvalid}, msg...)
}

// Query implements consensus.Machine.
func (s *Service) Query(shard int, tx *bolt.Tx, q []byte) ([]byte, error) {
	recs := tx.Bucket([]byte(bucketRecords))
	if recs == nil {
		return nil, fmt.Errorf("kv: query shard %d: %w", shard, errNotOpened)
	}
	d := decoder{b: q}
	switch op := d.byte(); op {
	case qGet:
		now := d.varint()
		key := d.rest()
		if d.bad {
			break
		}
		enc := recs.Get(key)
		if enc == nil {
			return []byte{0}, nil
		}
		h, _, ok := decodeRecord(enc)
		if !ok {
			return nil, fmt.Errorf("kv: query shard %d: corrupt record %q", shard, key)
		}
		if expired(h.expiry, now) {
			return []byte{0}, nil
		}
		return append(append(make([]byte, 0, 1+len(enc)), 1), enc...), nil
	case qScan:
		now := d.varint()
		limit := d.uvarint()
		prefix := d.bytes()
		after := d.rest()
		if d.bad {
			break
		}
		return scanShard(recs, now, int(min(limit, maxScanLimit)), prefix, after)
	case qFeed:
		after := d.uvarint()
		limit := d.uvarint()
		if d.bad {
			break
		}
		return s.queryFeed(tx, after, int(min(limit, maxFeedLimit)))
	}
	return nil, fmt.Errorf("kv: query shard %d: malformed query", shard)
}

const (
	maxScanLimit = 10000
	maxFeedLimit = 10000
)

func scanShard(recs *bolt.Bucket, now int64, limit int, prefix, after []byte) ([]byte, error) {
	res := []byte{0} // more flag, set below
	c := recs.Cursor()
	var k, v []byte
	if len(after) > 0 && bytes.Compare(after, prefix) >= 0 {
		k, v = c.Seek(after)
		if bytes.Equal(k, after) {
			k, v = c.Next()
		}
	} else {
		k, v = c.Seek(prefix)
	}
	n := 0
	for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if n == limit {
			res[0] = 1
			break
		}
		h, _, ok := decodeRecord(v)
		if !ok {
			return nil, fmt.Errorf("kv: scan: corrupt record %q", k)
		}
		if expired(h.expiry, now) {
			continue
		}
		res = appendBytes(res, k)
		res = appendBytes(res, v)
		n++
	}
	return res, nil
}

// queryFeed returns changes after index after. The changes of one command are
// never split across pages: a page holds at most limit changes unless a single
// command made more, in which case it holds that command's changes alone.
func (s *Service) queryFeed(tx *bolt.Tx, after uint64, limit int) ([]byte, error) {
	feed := tx.Bucket([]byte(bucketFeed))
	meta := tx.Bucket([]byte(bucketMeta))
	recs := tx.Bucket([]byte(bucketRecords))
	if feed == nil || meta == nil || recs == nil {
		return nil, errNotOpened
	}
	m, ok := decodeMeta(meta.Get([]byte(metaKey)))
	if !ok {
		return nil, errors.New("corrupt meta state")
	}
	c := feed.Cursor()
	if after < m.feedTrimmed {
		head := m.feedTrimmed
		if k, _ := c.Last(); k != nil {
			head = max(head, binary.BigEndian.Uint64(k))
		}
		return binary.AppendUvarint([]byte{1}, head), nil
	}
	var (
		body     []byte
		n        int
		next     = after // index of the last complete command in body
		cur      uint64  // index of the command being added
		curStart int     // where cur's changes begin in body
	)
	if after == ^uint64(0) {
		return binary.AppendUvarint([]byte{0}, next), nil
	}
	var start [12]byte
	for k, v := c.Seek(appendFeedKey(start[:0], after+1, 0)); ; k, v = c.Next() {
		if k == nil {
			if cur != 0 {
				next = cur
			}
			break
		}
		idx := binary.BigEndian.Uint64(k)
		if idx != cur {
			if cur != 0 {
				next = cur
			}
			if n >= limit {
				break
			}
			cur, curStart = idx, len(body)
		} else if n >= limit && curStart > 0 {
			// cur does not fit and is not alone on the page: leave it whole
			// for the next page.
			body = body[:curStart]
			break
		}
		entry, ok, err := feedChange(recs, v)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue // superseded: a later change of the key follows
		}
		body = binary.AppendUvarint(body, idx)
		body = appendBytes(body, entry)
		n++
	}
	res := make([]byte, 0, 1+maxVarint+len(body))
	res = append(res, 0)
	res = binary.AppendUvarint(res, next)
	return append(res, body...), nil
}

// feedChange is the change a feed entry describes, as Feed decodes it: a
// removal as stored, a put with the value of the record it wrote. ok is
// false for a put the key has been written or removed since: its value is
// gone, and a later entry carries the key's state.
func feedChange(recs *bolt.Bucket, entry []byte) (change []byte, ok bool, err error) {
	op, key, h, _, valid := decodeFeedEntry(entry)
	if !valid {
		return nil, false, errors.New("corrupt feed entry")
	}
	if op == OpDelete || op == OpExpire {
		return entry, true, nil
	}
	cur := recs.Get(key)
	if cur == nil {
		return nil, false, nil
	}
	ch, _, valid := decodeRecord(cur)
	if !valid {
		return nil, false, fmt.Errorf("corrupt record %q", key)
	}
	if ch.version != h.version {
		return nil, false, nil
	}
	change = make([]byte, 0, 1+uvarintLen(uint64(len(key)))+len(key)+len(cur))
	change = append(change, byte(op))
	change = appendBytes(change, key)
	return append(change, cur...), true, nil
}

// Export implements consensus.Machine. It emits restore commands of up to
// exportBatch records in key order. Every command carries the shard's highest
// version and HLC, so that a shard rebuilt from them issues versions above any
// the exported shard issued (a client's cached version can never match a
// different write) and HLCs above every restored record's. A shard never
// written to exports nothing; one whose records are all gone exports a single
// empty restore carrying those floors.
func (s *Service) Export(shard int, tx *bolt.Tx, emit func(cmd []byte) error) error {
	recs := tx.Bucket([]byte(bucketRecords))
	meta := tx.Bucket([]byte(bucketMeta))
	if recs == nil || meta == nil {
		return nil
	}
	m, ok := decodeMeta(meta.Get([]byte(metaKey)))
	if !ok {
		return fmt.Errorf("kv: export shard %d: corrupt meta state", shard)
	}
	header := appendRestoreHeader(nil, m.last, m.hlc)
	var (
		cmd     []byte
		n       int
		emitted bool
	)
	flush := func() error {
		emitted = true
		if err := emit(cmd); err != nil {
			return fmt.Errorf("kv: export shard %d: %w", shard, err)
		}
		cmd, n = nil, 0
		return nil
	}
	c := recs.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		h, value, ok := decodeRecord(v)
		if !ok {
			return fmt.Errorf("kv: export shard %d: corrupt record %q", shard, k)
		}
		if cmd == nil {
			// A fresh buffer per command: emit may keep it.
			cmd = append(make([]byte, 0, 64<<10), header...)
		}
		cmd = appendRestoreItem(cmd, k, h, value)
		if n++; n == exportBatch || len(cmd) >= exportMaxBytes {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if n > 0 || (!emitted && m.last != 0) {
		if cmd == nil {
			cmd = header
		}
		return flush()
	}
	return nil
}
