package kv

import (
	"encoding/binary"
	"math"
)

// Command encodings. Commands live in the Raft log forever (and in backups), so
// a layout never changes: a new layout gets a new op code. Integers are
// varints, byte strings are length-prefixed, and the last field of a
// command may run to the end.
//
//	put     1 cond ifVersion:uv ttl:v site:bytes key:bytes value:rest
//	delete  2 cond ifVersion:uv site:bytes key:rest
//	batch   3 site:bytes { ttl:v key:bytes value:bytes }*
//	expire  4 upTo:v max:uv
//	restore 5 floor:uv hlcWall:v hlcLogical:uv
//	          { key:bytes version:uv hlcWall:v hlcLogical:uv expiry:v site:bytes value:bytes }*
//
// cond is 0 (unconditional) or 1 (the record's version must equal ifVersion;
// 0 means the record must not exist).
const (
	opPut     byte = 1
	opDelete  byte = 2
	opBatch   byte = 3
	opExpire  byte = 4
	opRestore byte = 5
)

// Queries. Each read carries the reader's clock so expired records are hidden
// by the reader's notion of now, not by the replica's.
//
//	get   1 now:v key:rest                   → 0 | 1 record:rest
//	scan  2 now:v limit:uv prefix:bytes after:rest
//	                                          → more { key:bytes record:bytes }*
//	feed  3 after:uv limit:uv                 → 0 next:uv { index:uv entry:bytes }*
//	                                          | 1 head:uv   (truncated)
const (
	qGet  byte = 1
	qScan byte = 2
	qFeed byte = 3
)

// Apply results.
//
//	ok        0 version:uv          (expire: 0 deleted:uv next:v)
//	conflict  1 current:uv
//	notfound  2
//	invalid   3 message:rest
const (
	resOK       byte = 0
	resConflict byte = 1
	resNotFound byte = 2
	resInvalid  byte = 3
)

// Stored record: fmt(1) version(8) hlcWall(8) hlcLogical(4) expiry(8)
// site:bytes value:rest. Fixed-width fields let reads decode in place.
const (
	recordFormat     = 1
	recordHeaderSize = 1 + 8 + 8 + 4 + 8
)

// Meta state: fmt(1) last(8) hlcWall(8) hlcLogical(4) feedCount(8) feedTrimmed(8).
const (
	metaFormat = 1
	metaSize   = 1 + 8 + 8 + 4 + 8 + 8
)

// Limits on what a caller may write.
const (
	// MaxKeyLen bounds keys (bbolt allows 32 KiB; the expiry index adds 8 bytes).
	MaxKeyLen = 4096
)

// decoder reads the encodings above; the first malformed field sets bad and
// makes every later read return zero values.
type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) fail() {
	d.bad = true
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.bad || n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) rest() []byte {
	v := d.b
	d.b = nil
	return v
}

func (d *decoder) empty() bool { return len(d.b) == 0 }

func appendBytes(b []byte, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendString(b []byte, v string) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

const maxVarint = binary.MaxVarintLen64

// appendPut encodes a put (cond false) or a compare-and-set (cond true).
func appendPut(b []byte, site, key string, value []byte, ttl int64, cond bool, ifVersion uint64) []byte {
	b = append(b, opPut, boolByte(cond))
	b = binary.AppendUvarint(b, ifVersion)
	b = binary.AppendVarint(b, ttl)
	b = appendString(b, site)
	b = appendString(b, key)
	return append(b, value...)
}

func putSize(site, key string, value []byte) int {
	return 2 + 3*maxVarint + len(site) + maxVarint + len(key) + len(value)
}

func appendDelete(b []byte, site, key string, cond bool, ifVersion uint64) []byte {
	b = append(b, opDelete, boolByte(cond))
	b = binary.AppendUvarint(b, ifVersion)
	b = appendString(b, site)
	return append(b, key...)
}

func appendBatchHeader(b []byte, site string) []byte {
	b = append(b, opBatch)
	return appendString(b, site)
}

func appendBatchItem(b []byte, key string, value []byte, ttl int64) []byte {
	b = binary.AppendVarint(b, ttl)
	b = appendString(b, key)
	return appendBytes(b, value)
}

func appendExpire(b []byte, upTo int64, limit uint64) []byte {
	b = append(b, opExpire)
	b = binary.AppendVarint(b, upTo)
	return binary.AppendUvarint(b, limit)
}

func appendRestoreHeader(b []byte, floor uint64, h HLC) []byte {
	b = append(b, opRestore)
	b = binary.AppendUvarint(b, floor)
	b = binary.AppendVarint(b, h.Wall)
	return binary.AppendUvarint(b, uint64(h.Logical))
}

func appendRestoreItem(b []byte, key []byte, h recordHeader, value []byte) []byte {
	b = appendBytes(b, key)
	b = binary.AppendUvarint(b, h.version)
	b = binary.AppendVarint(b, h.hlc.Wall)
	b = binary.AppendUvarint(b, uint64(h.hlc.Logical))
	b = binary.AppendVarint(b, h.expiry)
	b = appendBytes(b, h.site)
	return appendBytes(b, value)
}

// decodeRestoreItem reads one item of a restore command.
func decodeRestoreItem(d *decoder) (key []byte, h recordHeader, value []byte) {
	key = d.bytes()
	h.version = d.uvarint()
	h.hlc.Wall = d.varint()
	logical := d.uvarint()
	if logical > math.MaxUint32 {
		d.fail()
	}
	h.hlc.Logical = uint32(logical)
	h.expiry = d.varint()
	h.site = d.bytes()
	value = d.bytes()
	return key, h, value
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// recordHeader is a stored record's metadata. site aliases the encoding it
// was decoded from.
type recordHeader struct {
	version uint64
	hlc     HLC
	expiry  int64
	site    []byte
}

func recordSize(h recordHeader, value []byte) int {
	return recordHeaderSize + uvarintLen(uint64(len(h.site))) + len(h.site) + len(value)
}

func appendRecord(b []byte, h recordHeader, value []byte) []byte {
	b = append(b, recordFormat)
	b = binary.BigEndian.AppendUint64(b, h.version)
	b = binary.BigEndian.AppendUint64(b, uint64(h.hlc.Wall))
	b = binary.BigEndian.AppendUint32(b, h.hlc.Logical)
	b = binary.BigEndian.AppendUint64(b, uint64(h.expiry))
	b = appendBytes(b, h.site)
	return append(b, value...)
}

// decodeRecord reads a stored record in place; site and value alias enc.
func decodeRecord(enc []byte) (h recordHeader, value []byte, ok bool) {
	if len(enc) < recordHeaderSize || enc[0] != recordFormat {
		return h, nil, false
	}
	h.version = binary.BigEndian.Uint64(enc[1:])
	h.hlc.Wall = int64(binary.BigEndian.Uint64(enc[9:]))
	h.hlc.Logical = binary.BigEndian.Uint32(enc[17:])
	h.expiry = int64(binary.BigEndian.Uint64(enc[21:]))
	d := decoder{b: enc[recordHeaderSize:]}
	h.site = d.bytes()
	if d.bad {
		return h, nil, false
	}
	return h, d.rest(), true
}

// expired reports whether a record with this expiry is gone at time now (ns).
func expired(expiry, now int64) bool { return expiry != 0 && expiry <= now }

// expiryKey is the expiry index key: big-endian expiry then the record key, so
// a cursor walks records in expiry order.
func appendExpiryKey(b []byte, expiry int64, key []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(expiry))
	return append(b, key...)
}

// feedKey is (Raft index, position within the command), big-endian.
func appendFeedKey(b []byte, index uint64, n uint32) []byte {
	b = binary.BigEndian.AppendUint64(b, index)
	return binary.BigEndian.AppendUint32(b, n)
}

// Feed entry: op(1) key:bytes record:rest (see applier.feedEntry).
func decodeFeedEntry(enc []byte) (op Op, key []byte, h recordHeader, value []byte, ok bool) {
	d := decoder{b: enc}
	op = Op(d.byte())
	key = d.bytes()
	if d.bad {
		return 0, nil, h, nil, false
	}
	h, value, ok = decodeRecord(d.rest())
	return op, key, h, value, ok
}

// shardMeta is the per-shard state every command may advance.
type shardMeta struct {
	last        uint64 // highest version assigned or restored
	hlc         HLC    // last HLC assigned or restored
	feedCount   uint64 // changes retained in the feed
	feedTrimmed uint64 // Raft index of the newest change trimmed from the feed
}

func (m shardMeta) append(b []byte) []byte {
	b = append(b, metaFormat)
	b = binary.BigEndian.AppendUint64(b, m.last)
	b = binary.BigEndian.AppendUint64(b, uint64(m.hlc.Wall))
	b = binary.BigEndian.AppendUint32(b, m.hlc.Logical)
	b = binary.BigEndian.AppendUint64(b, m.feedCount)
	return binary.BigEndian.AppendUint64(b, m.feedTrimmed)
}

func decodeMeta(enc []byte) (m shardMeta, ok bool) {
	if enc == nil {
		return m, true // a shard never written to
	}
	if len(enc) != metaSize || enc[0] != metaFormat {
		return m, false
	}
	m.last = binary.BigEndian.Uint64(enc[1:])
	m.hlc.Wall = int64(binary.BigEndian.Uint64(enc[9:]))
	m.hlc.Logical = binary.BigEndian.Uint32(enc[17:])
	m.feedCount = binary.BigEndian.Uint64(enc[21:])
	m.feedTrimmed = binary.BigEndian.Uint64(enc[29:])
	return m, true
}
