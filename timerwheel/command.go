package timerwheel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// Commands, queries and results are encoded as
//
//	version(1 byte) op(1 byte) body
//
// with integers big-endian (ids, 8 bytes) or uvarint, byte strings
// length-prefixed (uvarint). Bodies:
//
//	Set     flags(1: bit 0 = create only) id spec
//	Delete  id
//	Pop     id seq gen
//	Import  n {id len record}
//	Rescan  (none)
const cmdVersion = 1

const (
	opSet    byte = 1
	opDelete byte = 2
	opPop    byte = 3
	opImport byte = 4
	// opRescan is proposed by a new leader: when it applies, every earlier
	// entry is in the store, so the leader's wheel is rebuilt from there
	// without missing a timer that was being applied as leadership moved.
	opRescan byte = 5

	qStats byte = 'S'
	qGet   byte = 'G'
)

const flagCreate byte = 1

// importBatch is the number of timers per Import command in an Export.
const importBatch = 256

// Apply results: one status byte.
type status byte

const (
	statusOK         status = 0
	statusNotFound   status = 1
	statusExists     status = 2 // Set with create only, and the id is taken
	statusStale      status = 3 // Pop for a sequence number or instance already gone
	statusBadCommand status = 4
)

func (s status) String() string {
	switch s {
	case statusOK:
		return "ok"
	case statusNotFound:
		return "not found"
	case statusExists:
		return "exists"
	case statusStale:
		return "stale"
	case statusBadCommand:
		return "bad command"
	}
	return fmt.Sprintf("status(%d)", byte(s))
}

func decodeStatus(res []byte) (status, error) {
	if len(res) != 1 || res[0] > byte(statusBadCommand) {
		return 0, fmt.Errorf("timerwheel: unexpected result %x", res)
	}
	return status(res[0]), nil
}

type command struct {
	op      byte
	id      ID
	create  bool
	spec    spec
	seq     uint64
	gen     uint64
	imports []imported
}

type imported struct {
	id  ID
	rec *record
}

func header(op byte, n int) []byte {
	b := make([]byte, 0, 2+n)
	return append(b, cmdVersion, op)
}

func encodeSet(id ID, create bool, s *spec) []byte {
	b := header(opSet, 32+len(s.target)+len(s.opaque)+16*len(s.tags))
	var flags byte
	if create {
		flags |= flagCreate
	}
	b = append(b, flags)
	b = binary.BigEndian.AppendUint64(b, uint64(id))
	b = appendSpec(b, s)
	return appendSpecTail(b, s)
}

func encodeDelete(id ID) []byte {
	return binary.BigEndian.AppendUint64(header(opDelete, 8), uint64(id))
}

func encodePop(id ID, seq, gen uint64) []byte {
	b := binary.BigEndian.AppendUint64(header(opPop, 28), uint64(id))
	b = binary.AppendUvarint(b, seq)
	return binary.AppendUvarint(b, gen)
}

func encodeImport(items []imported) []byte {
	b := header(opImport, 64*len(items))
	b = binary.AppendUvarint(b, uint64(len(items)))
	for _, it := range items {
		b = binary.BigEndian.AppendUint64(b, uint64(it.id))
		b = appendBytes(b, it.rec.encode())
	}
	return b
}

func encodeRescan() []byte { return header(opRescan, 0) }

func decodeCommand(b []byte) (*command, error) {
	if len(b) < 2 {
		return nil, errors.New("command too short")
	}
	if b[0] != cmdVersion {
		return nil, fmt.Errorf("command version %d unknown", b[0])
	}
	c := &command{op: b[1]}
	r := reader{b: b[2:]}
	switch c.op {
	case opSet:
		flags := r.byte()
		c.create = flags&flagCreate != 0
		c.id = ID(r.u64())
		r.spec(&c.spec)
		r.specTail(&c.spec)
	case opDelete:
		c.id = ID(r.u64())
	case opPop:
		c.id = ID(r.u64())
		c.seq = r.uvarint()
		c.gen = r.uvarint()
	case opImport:
		n := r.uvarint()
		if n > uint64(len(r.b)) { // each item takes more than a byte
			return nil, errors.New("import count exceeds command")
		}
		for range n {
			id := ID(r.u64())
			raw := r.bytes()
			if r.err != nil {
				break
			}
			rec, err := decodeRecord(raw)
			if err != nil {
				return nil, fmt.Errorf("import %v: %w", id, err)
			}
			c.imports = append(c.imports, imported{id: id, rec: rec})
		}
	case opRescan:
	default:
		return nil, fmt.Errorf("command op %d unknown", c.op)
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = errors.New("trailing bytes")
	}
	if r.err != nil {
		return nil, fmt.Errorf("decode command op %d: %w", c.op, r.err)
	}
	return c, nil
}

func encodeStatsQuery() []byte { return header(qStats, 0) }

func encodeGetQuery(id ID) []byte {
	return binary.BigEndian.AppendUint64(header(qGet, 8), uint64(id))
}

// shardStats is one shard's answer to a stats query.
type shardStats struct {
	timers int64
	tags   map[string]int64
}

func encodeStats(st shardStats) []byte {
	b := binary.AppendVarint(nil, st.timers)
	b = binary.AppendUvarint(b, uint64(len(st.tags)))
	for _, k := range slices.Sorted(maps.Keys(st.tags)) {
		b = appendBytes(b, []byte(k))
		b = binary.AppendVarint(b, st.tags[k])
	}
	return b
}

func decodeStats(b []byte) (shardStats, error) {
	r := reader{b: b}
	st := shardStats{tags: map[string]int64{}}
	st.timers = r.varint()
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		return st, errors.New("timerwheel: stats count exceeds answer")
	}
	for range n {
		k := string(r.bytes())
		st.tags[k] = r.varint()
	}
	if r.err != nil {
		return st, fmt.Errorf("timerwheel: decode stats: %w", r.err)
	}
	return st, nil
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}
