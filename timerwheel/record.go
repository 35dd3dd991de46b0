package timerwheel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ID identifies a timer within a site. Its shard is
// cluster.ShardOf(8-byte big-endian ID).
type ID uint64

// String renders the ID as Chronos did: 16 lower-case hex digits.
func (id ID) String() string { return fmt.Sprintf("%016x", uint64(id)) }

func (id ID) key() []byte { return binary.BigEndian.AppendUint64(nil, uint64(id)) }

// FormatID renders a Chronos timer id, "<16 hex digits>-<replication factor>",
// as it appears in the Location of a created timer.
func FormatID(id ID, replicationFactor int) string {
	return id.String() + "-" + strconv.Itoa(replicationFactor)
}

// ParseID parses the timer id of a Chronos URL: "<16 hex>-<replication factor>"
// or "<16 hex><16 hex replica hash>" (older clients); replicationFactor is 0
// when the id does not carry one.
func ParseID(s string) (id ID, replicationFactor int, err error) {
	hexPart, rfPart, dashed := strings.Cut(s, "-")
	switch {
	case dashed && len(hexPart) == 16:
		rf, err := strconv.ParseUint(rfPart, 10, 8)
		if err != nil || rfPart == "" || rfPart[0] == '+' {
			return 0, 0, fmt.Errorf("timer id %q: replication factor must be a number from 0 to 255", s)
		}
		replicationFactor = int(rf)
	case !dashed && len(s) == 32:
		if _, err := strconv.ParseUint(s[16:], 16, 64); err != nil {
			return 0, 0, fmt.Errorf("timer id %q: bad replica hash", s)
		}
		hexPart = s[:16]
	default:
		return 0, 0, fmt.Errorf("timer id %q: want <16 hex digits>-<replication factor>", s)
	}
	v, err := strconv.ParseUint(hexPart, 16, 64)
	if err != nil || hexPart[0] == '+' {
		return 0, 0, fmt.Errorf("timer id %q: bad hex", s)
	}
	if v == 0 {
		return 0, 0, fmt.Errorf("timer id %q: the zero id is reserved", s)
	}
	return ID(v), replicationFactor, nil
}

// Timer is a timer as its owner sets it.
type Timer struct {
	// ID is the timer to create or replace; zero asks Set for a fresh one.
	ID ID
	// Interval is the time from setting the timer to its first pop, and
	// between pops. It is kept to the millisecond, rounded up.
	Interval time.Duration
	// RepeatFor, if not zero, makes the timer pop every Interval until
	// RepeatFor has elapsed since it was set: RepeatFor/Interval pops.
	// Zero means a single pop.
	RepeatFor time.Duration
	// ReplicationFactor is echoed in the Chronos id (the timer is stored on
	// every replica of its shard whatever it says); zero means 2.
	ReplicationFactor int
	Callback          Callback
	// Tags feed the stateful statistics for as long as the timer exists.
	Tags []Tag
}

// Callback says whom a pop is delivered to: an HTTP URI, or the in-process
// handler registered for Type. Exactly one of URI and Type is set.
type Callback struct {
	URI    string
	Type   string
	Opaque []byte
}

// Tag counts a timer Count times (zero counts as one) under Type in Stats.
type Tag struct {
	Type  string
	Count uint32
}

// Limits on what a timer may carry, to keep commands and records small.
const (
	MaxOpaque   = 256 << 10
	maxTarget   = 2048
	maxTags     = 32
	maxTagType  = 128
	maxDuration = math.MaxInt32 * time.Second // Chronos's limit: 32-bit seconds
	defaultRF   = 2
)

// ErrInvalid is wrapped by the errors of Set for a timer that cannot be set.
var ErrInvalid = errors.New("invalid timer")

// Callback kinds as stored.
const (
	cbHTTP  byte = 1
	cbLocal byte = 2
)

// spec is a timer's definition as carried by a Set command. Times are in ms.
type spec struct {
	kind     byte
	rf       uint8
	interval int64
	repeat   int64
	target   string // URI or handler type
	opaque   []byte
	tags     []Tag // sorted by type, unique, counts >= 1
}

// record is a stored timer.
type record struct {
	spec
	start int64  // Unix ms the timer was set (the proposing leader's clock, rounded up)
	seq   uint64 // sequence number of the next pop, from 1
	gen   uint64 // log index of the Set or Import that made this instance
}

// pops is the number of pops the timer makes in all.
func (s *spec) pops() uint64 {
	if s.repeat == 0 {
		return 1
	}
	return uint64(s.repeat / s.interval)
}

// due is the time of the next pop, Unix ns.
func (r *record) due() int64 {
	return (r.start + int64(r.seq)*r.interval) * int64(time.Millisecond)
}

func (t Timer) spec() (spec, error) {
	bad := func(format string, a ...any) (spec, error) {
		return spec{}, fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
	}
	if t.Interval < 0 || t.Interval > maxDuration {
		return bad("interval %v out of range", t.Interval)
	}
	if t.RepeatFor < 0 || t.RepeatFor > maxDuration {
		return bad("repeat-for %v out of range", t.RepeatFor)
	}
	if t.ReplicationFactor < 0 || t.ReplicationFactor > math.MaxUint8 {
		return bad("replication factor %d out of range", t.ReplicationFactor)
	}
	sp := spec{
		rf:       uint8(t.ReplicationFactor),
		interval: ceilDiv(int64(t.Interval), int64(time.Millisecond)),
		repeat:   ceilDiv(int64(t.RepeatFor), int64(time.Millisecond)),
		opaque:   t.Callback.Opaque,
	}
	if sp.rf == 0 {
		sp.rf = defaultRF
	}
	switch {
	case t.Callback.URI != "" && t.Callback.Type != "":
		return bad("callback has both a URI and a handler type")
	case t.Callback.URI != "":
		sp.kind, sp.target = cbHTTP, t.Callback.URI
	case t.Callback.Type != "":
		sp.kind, sp.target = cbLocal, t.Callback.Type
	default:
		return bad("callback has no URI or handler type")
	}
	for _, tg := range t.Tags {
		c := max(tg.Count, 1)
		if i := slices.IndexFunc(sp.tags, func(x Tag) bool { return x.Type == tg.Type }); i >= 0 {
			sp.tags[i].Count += c
			continue
		}
		sp.tags = append(sp.tags, Tag{Type: tg.Type, Count: c})
	}
	slices.SortFunc(sp.tags, func(a, b Tag) int { return strings.Compare(a.Type, b.Type) })
	if reason := sp.check(); reason != "" {
		return bad("%s", reason)
	}
	return sp, nil
}

// check validates a spec, on the proposing side and again in Apply (which must
// not trust a command). It returns the reason it is invalid, or "".
func (s *spec) check() string {
	switch {
	case s.kind != cbHTTP && s.kind != cbLocal:
		return "unknown callback kind"
	case s.rf == 0:
		return "replication factor 0"
	case s.interval < 0 || s.repeat < 0 ||
		s.interval > int64(maxDuration/time.Millisecond) || s.repeat > int64(maxDuration/time.Millisecond):
		return "interval or repeat-for out of range"
	case s.interval == 0 && s.repeat != 0:
		return "a zero interval cannot repeat"
	case s.repeat != 0 && s.repeat < s.interval:
		return "repeat-for shorter than the interval: the timer would never pop"
	case s.target == "" || len(s.target) > maxTarget:
		return "callback URI or type empty or too long"
	case len(s.opaque) > MaxOpaque:
		return fmt.Sprintf("opaque data longer than %d bytes", MaxOpaque)
	case len(s.tags) > maxTags:
		return fmt.Sprintf("more than %d tags", maxTags)
	}
	for i, tg := range s.tags {
		if tg.Type == "" || len(tg.Type) > maxTagType || tg.Count == 0 ||
			(i > 0 && s.tags[i-1].Type >= tg.Type) {
			return "bad statistics tag"
		}
	}
	return ""
}

// The record layout, all integers uvarint:
//
//	version(1 byte) kind(1) rf(1) interval_ms repeat_ms start_ms seq gen
//	len target  len opaque  ntags {len type count}
//
// The fields that fix the due time come first so that rebuilding a wheel
// decodes no more than them.
const recordVersion = 1

func appendSpec(b []byte, s *spec) []byte {
	b = append(b, s.kind, s.rf)
	b = binary.AppendUvarint(b, uint64(s.interval))
	return binary.AppendUvarint(b, uint64(s.repeat))
}

func appendSpecTail(b []byte, s *spec) []byte {
	b = appendBytes(b, []byte(s.target))
	b = appendBytes(b, s.opaque)
	b = binary.AppendUvarint(b, uint64(len(s.tags)))
	for _, tg := range s.tags {
		b = appendBytes(b, []byte(tg.Type))
		b = binary.AppendUvarint(b, uint64(tg.Count))
	}
	return b
}

func (r *record) encode() []byte {
	b := make([]byte, 0, 32+len(r.target)+len(r.opaque)+8*len(r.tags))
	b = append(b, recordVersion)
	b = appendSpec(b, &r.spec)
	b = binary.AppendUvarint(b, uint64(r.start))
	b = binary.AppendUvarint(b, r.seq)
	b = binary.AppendUvarint(b, r.gen)
	return appendSpecTail(b, &r.spec)
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// reader decodes the binary formats; the first error sticks.
type reader struct {
	b   []byte
	err error
}

var errShort = errors.New("truncated")

func (r *reader) byte() byte {
	if r.err != nil || len(r.b) < 1 {
		r.fail()
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

// int63 reads a uvarint that must fit an int64.
func (r *reader) int63() int64 {
	v := r.uvarint()
	if v > math.MaxInt64 {
		r.fail()
		return 0
	}
	return int64(v)
}

func (r *reader) u64() uint64 {
	if r.err != nil || len(r.b) < 8 {
		r.fail()
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

// bytes returns a length-prefixed field, copied out of the buffer (bbolt's
// memory is only valid during its transaction).
func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	v := slices.Clone(r.b[:n])
	r.b = r.b[n:]
	return v
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = errShort
	}
}

func (r *reader) spec(s *spec) {
	s.kind = r.byte()
	s.rf = r.byte()
	s.interval = r.int63()
	s.repeat = r.int63()
}

func (r *reader) specTail(s *spec) {
	s.target = string(r.bytes())
	s.opaque = r.bytes()
	n := r.uvarint()
	if n > maxTags {
		r.fail()
		return
	}
	for range n {
		tg := Tag{Type: string(r.bytes())}
		c := r.uvarint()
		if c > math.MaxUint32 {
			r.fail()
		}
		tg.Count = uint32(c)
		s.tags = append(s.tags, tg)
	}
	if len(s.opaque) == 0 {
		s.opaque = nil
	}
}

func decodeRecord(b []byte) (*record, error) {
	r := reader{b: b}
	rec := &record{}
	if v := r.byte(); v != recordVersion && r.err == nil {
		return nil, fmt.Errorf("timer record version %d unknown", v)
	}
	r.spec(&rec.spec)
	rec.start = r.int63()
	rec.seq = r.uvarint()
	rec.gen = r.uvarint()
	r.specTail(&rec.spec)
	if r.err == nil && len(r.b) != 0 {
		r.err = errors.New("trailing bytes")
	}
	if r.err != nil {
		return nil, fmt.Errorf("decode timer record: %w", r.err)
	}
	return rec, nil
}

// recordDue reads only the due time of an encoded record.
func recordDue(b []byte) (int64, error) {
	r := reader{b: b}
	if v := r.byte(); v != recordVersion && r.err == nil {
		return 0, fmt.Errorf("timer record version %d unknown", v)
	}
	var rec record
	r.spec(&rec.spec)
	rec.start = r.int63()
	rec.seq = r.uvarint()
	if r.err != nil {
		return 0, fmt.Errorf("decode timer record: %w", r.err)
	}
	return rec.due(), nil
}
