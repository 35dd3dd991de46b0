package kv

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"stillwater/consensus"
)

// ReadOption adjusts a read.
type ReadOption func(*readOptions)

type readOptions struct {
	consistency consensus.Consistency
	cached      bool
}

// LocalRead serves a read from this node's replica: faster, possibly stale.
// Reads are linearizable without it.
func LocalRead() ReadOption {
	return func(o *readOptions) { o.consistency = consensus.Local }
}

func readConsistency(opts []ReadOption) consensus.Consistency {
	return readOpts(opts).consistency
}

func readOpts(opts []ReadOption) readOptions {
	var o readOptions
	for _, f := range opts {
		f(&o)
	}
	return o
}

func checkKey(key string) error {
	if key == "" || len(key) > MaxKeyLen {
		return fmt.Errorf("%w: key length %d (want 1..%d)", ErrInvalid, len(key), MaxKeyLen)
	}
	return nil
}

// shardOfTail routes by the key, which every encoder puts at the end of the
// buffer, so routing needs no copy of it.
func (s *Service) shardOfTail(buf []byte, key string) int {
	return s.cluster.ShardOf(buf[len(buf)-len(key):])
}

// Get returns the record stored under key, or ErrNotFound.
func (s *Service) Get(ctx context.Context, key string, opts ...ReadOption) (Record, error) {
	if err := checkKey(key); err != nil {
		return Record{}, fmt.Errorf("kv: get: %w", err)
	}
	o := readOpts(opts)
	now := s.now()
	q := make([]byte, 0, 1+maxVarint+len(key))
	q = append(q, qGet)
	q = binary.AppendVarint(q, now)
	q = append(q, key...)
	shard := s.shardOfTail(q, key)
	if c := s.cacheOf(shard, o); c != nil {
		if rec, ok := c.get(key, now); ok {
			return rec, nil
		}
		rec, err := s.get(ctx, shard, key, q, o.consistency)
		if err != nil {
			c.abandon(key)
			return rec, err
		}
		c.fill(rec)
		return rec, nil
	}
	return s.get(ctx, shard, key, q, o.consistency)
}

// cacheOf returns the shard's record cache if o asks for a cached read and
// this node holds a replica of the shard, whose Apply keeps the cache true.
func (s *Service) cacheOf(shard int, o readOptions) *recordCache {
	if !o.cached || !s.cluster.Replicates(shard) {
		return nil
	}
	return s.shardCache(shard)
}

func (s *Service) get(ctx context.Context, shard int, key string, q []byte, c consensus.Consistency) (Record, error) {
	res, err := s.cluster.Query(ctx, shard, consensus.KindKV, q, c)
	if err != nil {
		return Record{}, fmt.Errorf("kv: get %q: %w", key, err)
	}
	if len(res) == 1 && res[0] == 0 {
		return Record{}, fmt.Errorf("kv: get %q: %w", key, ErrNotFound)
	}
	if len(res) < 1 || res[0] != 1 {
		return Record{}, fmt.Errorf("kv: get %q: %w", key, errBadResult)
	}
	rec, ok := recordFrom(key, res[1:])
	if !ok {
		return Record{}, fmt.Errorf("kv: get %q: %w", key, errBadResult)
	}
	return rec, nil
}

// recordFrom decodes a stored record; Value aliases enc.
func recordFrom(key string, enc []byte) (Record, bool) {
	h, value, ok := decodeRecord(enc)
	if !ok {
		return Record{}, false
	}
	return Record{
		Key:     key,
		Value:   value,
		Version: Version(h.version),
		HLC:     h.hlc,
		Site:    string(h.site),
		Expiry:  h.expiry,
	}, true
}

// Put stores value under key unconditionally and returns the new version.
func (s *Service) Put(ctx context.Context, key string, value []byte) (Version, error) {
	return s.put(ctx, "put", key, value, 0, false, 0)
}

// PutTTL is Put for a record that expires ttl after the write commits.
func (s *Service) PutTTL(ctx context.Context, key string, value []byte, ttl time.Duration) (Version, error) {
	return s.put(ctx, "put", key, value, ttl, false, 0)
}

// CompareAndSet stores value under key if the record's current version is
// ifVersion (0: the record must not exist). ttl 0 means no expiry. A mismatch
// returns a *ConflictError (errors.Is(err, ErrConflict)) with the current
// version.
func (s *Service) CompareAndSet(ctx context.Context, key string, value []byte, ttl time.Duration, ifVersion Version, opts ...WriteOption) (Version, error) {
	v, _, err := s.putWith(ctx, "compare-and-set", key, value, ttl, true, uint64(ifVersion), nil, writeOpts(opts))
	return v, err
}

func (s *Service) put(ctx context.Context, what, key string, value []byte, ttl time.Duration, cond bool, ifVersion uint64) (Version, error) {
	v, _, err := s.putWith(ctx, what, key, value, ttl, cond, ifVersion, nil, writeOptions{})
	return v, err
}

func (s *Service) putWith(ctx context.Context, what, key string, value []byte, ttl time.Duration, cond bool, ifVersion uint64, also *Rider, o writeOptions) (Version, []byte, error) {
	if err := checkKey(key); err != nil {
		return 0, nil, fmt.Errorf("kv: %s: %w", what, err)
	}
	if ttl < 0 {
		return 0, nil, fmt.Errorf("kv: %s %q: %w: negative ttl", what, key, ErrInvalid)
	}
	site := s.cluster.Site()
	cmd := make([]byte, 0, putSize(site, key, value))
	cmd = appendPut(cmd, site, key, nil, int64(ttl), cond, ifVersion)
	shard := s.shardOfTail(cmd, key)
	cmd = append(cmd, value...)
	var kept *recordCache
	if o.keepCached {
		if kept = s.cacheOf(shard, readOptions{cached: true}); kept != nil {
			kept.expect(key)
		}
	}
	res, alsoRes, err := s.propose(ctx, shard, cmd, also)
	var v Version
	if err == nil {
		v, err = writeResult(res, key)
	}
	if err != nil {
		if kept != nil {
			kept.unexpect(key)
		}
		return 0, nil, fmt.Errorf("kv: %s %q: %w", what, key, err)
	}
	return v, alsoRes, nil
}

// Rider is another machine's command committed in the same log entry as a
// conditional write, and applied only if the write is: a record and the
// timer that expires it, say, change together in one replicated write.
type Rider struct {
	// Shard must be the written key's (ShardOf).
	Shard   int
	Command consensus.Command
}

// ShardOf is the shard that stores key.
func (s *Service) ShardOf(key string) int { return s.cluster.ShardOf([]byte(key)) }

// propose commits a kv command, with also in the same entry if not nil, and
// returns the kv result and also's (nil if it was not applied).
func (s *Service) propose(ctx context.Context, shard int, cmd []byte, also *Rider) (res, alsoRes []byte, err error) {
	if also == nil {
		res, err = s.cluster.Propose(ctx, shard, consensus.KindKV, cmd)
		return res, nil, err
	}
	if also.Shard != shard {
		return nil, nil, fmt.Errorf("%w: rider for shard %d on a write to shard %d", ErrInvalid, also.Shard, shard)
	}
	out, err := s.cluster.Propose(ctx, shard, consensus.KindAtomic,
		consensus.EncodeAtomic(consensus.Command{Kind: consensus.KindKV, Cmd: cmd}, also.Command))
	if err != nil {
		return nil, nil, err
	}
	results, err := consensus.DecodeAtomicResult(out)
	if err != nil || len(results) != 2 || results[0] == nil {
		return nil, nil, errBadResult
	}
	return results[0], results[1], nil
}

// Refused implements consensus.Guard: anything but success stops an atomic
// proposal.
func (s *Service) Refused(res []byte) bool { return len(res) == 0 || res[0] != resOK }

// CompareAndSetWith is CompareAndSet committed in one entry with also,
// which is applied only if the compare-and-set succeeds; its result is
// returned (nil when not applied).
func (s *Service) CompareAndSetWith(ctx context.Context, key string, value []byte, ttl time.Duration, ifVersion Version, also Rider) (Version, []byte, error) {
	return s.putWith(ctx, "compare-and-set", key, value, ttl, true, uint64(ifVersion), &also, writeOptions{})
}

// DeleteIfWith is DeleteIf committed in one entry with also, which is
// applied only if the delete succeeds; its result is returned.
func (s *Service) DeleteIfWith(ctx context.Context, key string, version Version, also Rider) ([]byte, error) {
	if version == 0 {
		return nil, fmt.Errorf("kv: delete %q: %w: version 0", key, ErrInvalid)
	}
	return s.deleteWith(ctx, key, true, uint64(version), &also)
}

// writeResult decodes the result of put, delete and batch commands.
func writeResult(res []byte, key string) (Version, error) {
	d := decoder{b: res}
	switch d.byte() {
	case resOK:
		v := d.uvarint()
		if !d.bad {
			return Version(v), nil
		}
	case resConflict:
		cur := d.uvarint()
		if !d.bad {
			return 0, &ConflictError{Key: key, Current: Version(cur)}
		}
	case resNotFound:
		return 0, ErrNotFound
	case resInvalid:
		return 0, fmt.Errorf("%w: %s", ErrInvalid, d.rest())
	}
	return 0, errBadResult
}

// Delete removes the record under key. Deleting an absent record succeeds, so
// a retried delete is harmless.
func (s *Service) Delete(ctx context.Context, key string) error {
	err := s.delete(ctx, key, false, 0)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// DeleteIf removes the record under key if its version is version; otherwise
// it returns a *ConflictError (Current 0 if the record is gone).
func (s *Service) DeleteIf(ctx context.Context, key string, version Version) error {
	if version == 0 {
		return fmt.Errorf("kv: delete %q: %w: version 0", key, ErrInvalid)
	}
	return s.delete(ctx, key, true, uint64(version))
}

func (s *Service) delete(ctx context.Context, key string, cond bool, ifVersion uint64) error {
	_, err := s.deleteWith(ctx, key, cond, ifVersion, nil)
	return err
}

func (s *Service) deleteWith(ctx context.Context, key string, cond bool, ifVersion uint64, also *Rider) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("kv: delete: %w", err)
	}
	site := s.cluster.Site()
	cmd := make([]byte, 0, 2+2*maxVarint+len(site)+len(key))
	cmd = appendDelete(cmd, site, key, cond, ifVersion)
	res, alsoRes, err := s.propose(ctx, s.shardOfTail(cmd, key), cmd, also)
	if err != nil {
		return nil, fmt.Errorf("kv: delete %q: %w", key, err)
	}
	if _, err := writeResult(res, key); err != nil {
		return nil, fmt.Errorf("kv: delete %q: %w", key, err)
	}
	return alsoRes, nil
}

// BatchItem is one record of PutBatch.
type BatchItem struct {
	Key   string
	Value []byte
	TTL   time.Duration // 0: no expiry
}

// Batch limits: one batch command carries at most this many records and
// roughly this many bytes.
const (
	MaxBatchItems = 256
	maxBatchBytes = 1 << 20
)

// PutBatch stores items unconditionally, grouped by shard into commands of up
// to MaxBatchItems records. Each command is atomic and gives its records one
// version; the batch as a whole is not: on error, earlier commands stay
// applied (re-running the batch is harmless).
func (s *Service) PutBatch(ctx context.Context, items []BatchItem) error {
	type routed struct {
		shard int
		i     int
	}
	site := s.cluster.Site()
	order := make([]routed, len(items))
	var kb []byte
	for i, it := range items {
		if err := checkKey(it.Key); err != nil {
			return fmt.Errorf("kv: put batch: %w", err)
		}
		if it.TTL < 0 {
			return fmt.Errorf("kv: put batch %q: %w: negative ttl", it.Key, ErrInvalid)
		}
		kb = append(kb[:0], it.Key...)
		order[i] = routed{shard: s.cluster.ShardOf(kb), i: i}
	}
	slices.SortStableFunc(order, func(a, b routed) int { return cmp.Compare(a.shard, b.shard) })
	for start := 0; start < len(order); {
		shard := order[start].shard
		cmd := appendBatchHeader(nil, site)
		end := start
		for end < len(order) && order[end].shard == shard && end-start < MaxBatchItems && len(cmd) < maxBatchBytes {
			it := items[order[end].i]
			cmd = appendBatchItem(cmd, it.Key, it.Value, int64(it.TTL))
			end++
		}
		res, err := s.cluster.Propose(ctx, shard, consensus.KindKV, cmd)
		if err == nil {
			_, err = writeResult(res, items[order[start].i].Key)
		}
		if err != nil {
			return fmt.Errorf("kv: put batch: shard %d, %d records: %w", shard, end-start, err)
		}
		start = end
	}
	return nil
}

// DefaultScanLimit is the page size of a scan whose limit is 0.
const DefaultScanLimit = 256

// ScanShard returns up to limit live records of one shard whose keys start
// with prefix, in key order, beginning after the key after ("" to start).
// next is the key to pass as after for the following page, "" when the scan
// is complete.
func (s *Service) ScanShard(ctx context.Context, shard int, prefix, after string, limit int, opts ...ReadOption) (recs []Record, next string, err error) {
	if limit <= 0 {
		limit = DefaultScanLimit
	}
	limit = min(limit, maxScanLimit)
	q := make([]byte, 0, 1+3*maxVarint+len(prefix)+len(after))
	q = append(q, qScan)
	q = binary.AppendVarint(q, s.now())
	q = binary.AppendUvarint(q, uint64(limit))
	q = appendString(q, prefix)
	q = append(q, after...)
	res, err := s.cluster.Query(ctx, shard, consensus.KindKV, q, readConsistency(opts))
	if err != nil {
		return nil, "", fmt.Errorf("kv: scan shard %d prefix %q: %w", shard, prefix, err)
	}
	d := decoder{b: res}
	more := d.byte() == 1
	for !d.bad && !d.empty() {
		k := d.bytes()
		enc := d.bytes()
		if d.bad {
			break
		}
		rec, ok := recordFrom(string(k), enc)
		if !ok {
			d.bad = true
			break
		}
		recs = append(recs, rec)
	}
	if d.bad {
		return nil, "", fmt.Errorf("kv: scan shard %d prefix %q: %w", shard, prefix, errBadResult)
	}
	if more && len(recs) > 0 {
		next = recs[len(recs)-1].Key
	}
	return recs, next, nil
}

// Scan calls fn for every live record whose key starts with prefix, shard by
// shard, in key order within a shard. It is not a snapshot across shards.
// An error from fn stops the scan and is returned.
func (s *Service) Scan(ctx context.Context, prefix string, fn func(Record) error, opts ...ReadOption) error {
	for shard := range s.cluster.Shards() {
		after := ""
		for {
			recs, next, err := s.ScanShard(ctx, shard, prefix, after, DefaultScanLimit, opts...)
			if err != nil {
				return err
			}
			for _, r := range recs {
				if err := fn(r); err != nil {
					return err
				}
			}
			if next == "" {
				break
			}
			after = next
		}
	}
	return nil
}

// Feed returns up to limit changes of a shard committed after Raft index
// after (0: from the start), oldest first, and the index to pass as after
// next time. The changes of one command are never split: a page exceeds limit
// only when a single command made more changes.
//
// A put that the key's next change has superseded is left out: its value is
// no longer stored, and the later change carries the key's state. A consumer
// that applies changes in order, last writer wins, still ends with every
// key as the shard has it.
//
// If changes after after have been trimmed, Feed returns ErrFeedTruncated and,
// as next, the feed's current head: resync from the records (Scan started
// after this call), then follow the feed from next.
func (s *Service) Feed(ctx context.Context, shard int, after uint64, limit int, opts ...ReadOption) ([]Change, uint64, error) {
	if limit <= 0 {
		limit = DefaultScanLimit
	}
	q := make([]byte, 0, 1+2*maxVarint)
	q = append(q, qFeed)
	q = binary.AppendUvarint(q, after)
	q = binary.AppendUvarint(q, uint64(limit))
	res, err := s.cluster.Query(ctx, shard, consensus.KindKV, q, readConsistency(opts))
	if err != nil {
		return nil, after, fmt.Errorf("kv: feed shard %d after %d: %w", shard, after, err)
	}
	d := decoder{b: res}
	status := d.byte()
	next := d.uvarint()
	if d.bad {
		return nil, after, fmt.Errorf("kv: feed shard %d after %d: %w", shard, after, errBadResult)
	}
	if status == 1 {
		return nil, next, fmt.Errorf("kv: feed shard %d after %d (resume from %d after resync): %w", shard, after, next, ErrFeedTruncated)
	}
	var changes []Change
	for !d.bad && !d.empty() {
		idx := d.uvarint()
		op, key, h, value, ok := decodeFeedEntry(d.bytes())
		if !ok {
			d.bad = true
			break
		}
		if op == OpDelete || op == OpExpire {
			value = nil
		}
		changes = append(changes, Change{Index: idx, Op: op, Record: Record{
			Key: string(key), Value: value, Version: Version(h.version),
			HLC: h.hlc, Site: string(h.site), Expiry: h.expiry,
		}})
	}
	if d.bad {
		return nil, after, fmt.Errorf("kv: feed shard %d after %d: %w", shard, after, errBadResult)
	}
	return changes, next, nil
}
