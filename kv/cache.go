package kv

import "sync"

// Cached reads keep records this node read in memory, per shard, and serve
// them again without a Raft round or a store lookup. Every change to a key
// reaches this node's replica through Apply, which gives the key's entry the
// new record or drops it, so an entry is never older than the local replica:
// on the shard's leader a cached read sees every acknowledged write, and
// elsewhere it lags by the replication delay, as LocalRead does.
//
// Fills race with changes: a read that began before a change was applied may
// return the old record after Apply changed the key. A read registers its key
// before it starts, Apply marks the registered keys it changes, and a marked
// read fills nothing.

// DefaultCacheBytes bounds the records a Service keeps for cached reads.
const DefaultCacheBytes = 64 << 20

// Cached serves a read from this node's memory when it holds the record,
// else reads as usual and keeps the result. Use it for records read far more
// often than written, such as provisioned subscriber data: after a change
// through another node, this node may serve the old record until its replica
// applies the change. The Value of a record read this way may be shared
// with other readers: it must not be modified.
func Cached() ReadOption {
	return func(o *readOptions) { o.cached = true }
}

// WriteOption adjusts a write.
type WriteOption func(*writeOptions)

type writeOptions struct {
	keepCached bool
}

func writeOpts(opts []WriteOption) writeOptions {
	var o writeOptions
	for _, f := range opts {
		f(&o)
	}
	return o
}

// KeepCached makes this node cache the record a write stores, for a record
// that is written here and soon read here with Cached, such as a challenge
// and its answer.
func KeepCached() WriteOption {
	return func(o *writeOptions) { o.keepCached = true }
}

// shardCache returns the shard's record cache, nil if cached reads are off.
// A node that joins a site learns the number of shards after New, so the
// caches are made as shards are first seen.
func (s *Service) shardCache(shard int) *recordCache {
	if s.cacheBytes <= 0 || shard < 0 {
		return nil
	}
	if cs := s.caches.Load(); cs != nil && shard < len(*cs) {
		return (*cs)[shard]
	}
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	var cs []*recordCache
	if p := s.caches.Load(); p != nil {
		cs = *p
	}
	if shard < len(cs) {
		return cs[shard]
	}
	n := max(s.cluster.Shards(), shard+1)
	limit := s.cacheBytes / n
	grown := append(make([]*recordCache, 0, n), cs...)
	for len(grown) < n {
		grown = append(grown, &recordCache{limit: limit})
	}
	s.caches.Store(&grown)
	return grown[shard]
}

// recordCache is one shard's cached records. Guarded by mu.
type recordCache struct {
	limit int // bytes

	mu      sync.Mutex
	m       map[string]cachedRecord
	bytes   int
	reading map[string]*pendingRead
}

type cachedRecord struct {
	rec  Record // Value is never modified: readers share it
	size int
	// expected marks a key whose record is not known yet: a write asked to
	// keep it, and Apply will fill it in.
	expected bool
}

// pendingRead is the reads of one key in progress.
type pendingRead struct {
	n       int  // reads in progress
	changed bool // the key changed during one of them
}

// cacheOverhead approximates an entry's bookkeeping beyond key and value.
const cacheOverhead = 96

// entrySize is what keeping rec costs, by the cache's reckoning.
func entrySize(rec Record) int {
	return len(rec.Key) + len(rec.Value) + len(rec.Site) + cacheOverhead
}

// get returns key's cached record if it has not expired at now. Otherwise
// it registers a read of key, to be followed by fill or abandon.
func (c *recordCache) get(key string, now int64) (Record, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[key]; ok && !e.expected && !expired(e.rec.Expiry, now) {
		return e.rec, true
	}
	if c.reading == nil {
		c.reading = make(map[string]*pendingRead)
	}
	p := c.reading[key]
	if p == nil {
		p = &pendingRead{}
		c.reading[key] = p
	}
	p.n++
	return Record{}, false
}

// end unregisters a read of key and reports whether the key stayed unchanged
// while it ran. Guarded by mu.
func (c *recordCache) end(key string) bool {
	p := c.reading[key]
	if p == nil {
		return false
	}
	if p.n--; p.n == 0 {
		delete(c.reading, key)
	}
	return !p.changed
}

// abandon ends a read whose result is not kept.
func (c *recordCache) abandon(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.end(key)
}

// fill ends a read of rec's key and keeps rec, unless the key changed while
// the read ran: the read may then predate the change.
func (c *recordCache) fill(rec Record) {
	size := entrySize(rec)
	value := rec.Value
	rec.Value = nil
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.end(rec.Key) || size > c.limit/16 {
		return // a large record must not flush the rest
	}
	rec.Value = append([]byte(nil), value...)
	if c.m == nil {
		c.m = make(map[string]cachedRecord)
	}
	if old, ok := c.m[rec.Key]; ok {
		c.bytes -= old.size
		delete(c.m, rec.Key)
	}
	c.evictLocked(size)
	c.m[rec.Key] = cachedRecord{rec: rec, size: size}
	c.bytes += size
}

// expect makes room for key's record, which a write about to be proposed
// stores: wrote fills it in when Apply stores it.
func (c *recordCache) expect(key string) {
	size := entrySize(Record{Key: key})
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; ok {
		return
	}
	if c.m == nil {
		c.m = make(map[string]cachedRecord)
	}
	c.evictLocked(size)
	c.m[key] = cachedRecord{rec: Record{Key: key}, size: size, expected: true}
	c.bytes += size
}

// unexpect drops key's room after its write failed.
func (c *recordCache) unexpect(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[key]; ok && e.expected {
		delete(c.m, key)
		c.bytes -= e.size
	}
}

// evictLocked drops entries until size more bytes fit.
func (c *recordCache) evictLocked(size int) {
	for k, e := range c.m {
		if c.bytes+size <= c.limit {
			break
		}
		delete(c.m, k) // map order is random enough for an eviction policy
		c.bytes -= e.size
	}
}

// wrote records that Apply stored value (which nobody modifies later) under
// key with header h: a cached entry takes the new record, so that a record
// read and rewritten in turn, such as a registration, stays cached; reads in
// progress fill nothing.
func (c *recordCache) wrote(key []byte, h recordHeader, value []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.reading[string(key)]; p != nil {
		p.changed = true
	}
	e, ok := c.m[string(key)]
	if !ok {
		return
	}
	rec := Record{Key: e.rec.Key, Value: value, Version: Version(h.version), HLC: h.hlc, Site: string(h.site), Expiry: h.expiry}
	size := entrySize(rec)
	c.bytes += size - e.size
	if size > c.limit/16 || c.bytes > c.limit {
		delete(c.m, e.rec.Key)
		c.bytes -= size
		return
	}
	c.m[e.rec.Key] = cachedRecord{rec: rec, size: size}
}

// changed drops key's entry and spoils the reads of it in progress; Apply
// calls it for every record it removes.
func (c *recordCache) changed(key []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[string(key)]; ok {
		delete(c.m, string(key))
		c.bytes -= e.size
	}
	if p := c.reading[string(key)]; p != nil {
		p.changed = true
	}
}

// reset drops every entry and spoils every read in progress: the shard's
// state was replaced or reopened.
func (c *recordCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m = nil
	c.bytes = 0
	for _, p := range c.reading {
		p.changed = true
	}
}
