package kv

import (
	"cmp"
	"errors"
	"fmt"
	"strconv"
)

// Version identifies one write of a record: the Raft index of the command that
// produced it (see the package comment for restored shards). Zero means "no
// record" in compare-and-set.
type Version uint64

// HLC is a hybrid logical clock reading: physical Unix milliseconds plus a
// counter ordering events within the same millisecond.
type HLC struct {
	Wall    int64  // Unix milliseconds
	Logical uint32 // orders events within Wall
}

// Compare orders two readings: -1 if h is earlier than o, 0 if equal, +1 if later.
func (h HLC) Compare(o HLC) int {
	if c := cmp.Compare(h.Wall, o.Wall); c != 0 {
		return c
	}
	return cmp.Compare(h.Logical, o.Logical)
}

// IsZero reports whether h is the zero reading.
func (h HLC) IsZero() bool { return h == HLC{} }

func (h HLC) String() string {
	return strconv.FormatInt(h.Wall, 10) + "." + strconv.FormatUint(uint64(h.Logical), 10)
}

// nextHLC is the reading for an event at wall time tNs (Unix ns) following prev:
// max(prev + 1 logical, tNs truncated to ms).
func nextHLC(prev HLC, tNs int64) HLC {
	ms := tNs / 1e6
	if ms > prev.Wall {
		return HLC{Wall: ms}
	}
	if prev.Logical == ^uint32(0) {
		// Four billion events in one millisecond cannot happen; stay ordered anyway.
		return HLC{Wall: prev.Wall + 1}
	}
	return HLC{Wall: prev.Wall, Logical: prev.Logical + 1}
}

func maxHLC(a, b HLC) HLC {
	if a.Compare(b) >= 0 {
		return a
	}
	return b
}

// Record is one stored record as a read returns it.
type Record struct {
	Key     string
	Value   []byte
	Version Version
	HLC     HLC
	Site    string // the site that wrote it
	Expiry  int64  // Unix ns; 0 means it never expires
}

// Op is the kind of a change in the feed.
type Op byte

// Changes recorded in the feed.
const (
	OpPut     Op = 1 // a put, compare-and-set or batch item
	OpDelete  Op = 2 // an explicit delete
	OpExpire  Op = 3 // removal of an expired record by the shard leader
	OpRestore Op = 4 // a record written verbatim by a restore command
)

func (o Op) String() string {
	switch o {
	case OpPut:
		return "put"
	case OpDelete:
		return "delete"
	case OpExpire:
		return "expire"
	case OpRestore:
		return "restore"
	}
	return "op(" + strconv.Itoa(int(o)) + ")"
}

// Change is one committed change from a shard's feed. Record holds the state
// the change produced; for OpDelete and OpExpire Value is nil. Version and HLC
// are those of the command that made the change, except for OpRestore where
// they are the restored record's. Site is empty for OpExpire: every site
// expires records by itself.
type Change struct {
	// Index is the Raft index of the command; pass the last one seen to Feed
	// to resume.
	Index uint64
	Op    Op
	Record
}

// Errors callers act on; match them with errors.Is.
var (
	// ErrNotFound means the record does not exist or has expired.
	ErrNotFound = errors.New("kv: record not found")
	// ErrConflict means a compare-and-set or conditional delete found another
	// version; the error is a *ConflictError carrying the current version.
	ErrConflict = errors.New("kv: version conflict")
	// ErrFeedTruncated means changes after the requested index have been
	// trimmed from the feed: the consumer must resync from the records.
	ErrFeedTruncated = errors.New("kv: feed truncated, resync required")
	// ErrInvalid means a malformed request (empty key, negative TTL, ...).
	ErrInvalid = errors.New("kv: invalid request")

	// errBadResult means a reply this version cannot decode.
	errBadResult = errors.New("malformed result")
)

// ConflictError reports a failed compare-and-set or conditional delete.
type ConflictError struct {
	Key string
	// Current is the record's version when the write was applied; 0 if the
	// record did not exist (or had expired).
	Current Version
}

func (e *ConflictError) Error() string {
	if e.Current == 0 {
		return fmt.Sprintf("kv: version conflict on %q: record does not exist", e.Key)
	}
	return fmt.Sprintf("kv: version conflict on %q: current version %d", e.Key, e.Current)
}

// Is makes errors.Is(err, ErrConflict) hold.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }
