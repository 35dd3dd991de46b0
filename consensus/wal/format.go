package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/hashicorp/raft"
)

// On-disk layout.
//
//	segment := segHeader frame*
//	segHeader (32 B) := magic "SWALSEG1" | seq u64 | floor u64 | version u32 | crc32c(previous 28 B)
//	frame := magic u32 | bodyLen u32 | crc32c(body) u32 | crc32c(previous 12 B) u32 | body
//	body := record*
//	record := len u32 | crc32c(rest) u32 | type u8 | group uvarint | payload     (len counts type..payload)
//
// A frame is what one commit writes with one write and one fdatasync. Frames
// exist to tell a torn tail from damage: only the last frame of the last
// segment can be unsynced, and its header carries its exact extent. The
// newest segment may end in zeros written ahead of the log (prefill); zeros
// where a frame should start end the log. A sealed segment ends at its last
// frame. Records carry their own CRC so a single entry read back from disk is
// verified alone.
// All integers are little-endian.
const (
	segMagic        = "SWALSEG1"
	segHeaderSize   = 32
	segVersion      = 1
	frameMagic      = 0x46425753 // "SWBF"
	frameHeaderSize = 16
	recHeaderSize   = 8
	// maxRecord bounds a single record so a frame length always fits in u32.
	maxRecord = 1 << 30
)

// Record types.
const (
	recName   byte = 1 // payload: group name; binds the record's group id
	recEntry  byte = 2 // payload: one raft.Log
	recSet    byte = 3 // payload: key, value (stable store)
	recDelete byte = 4 // payload: min, max (inclusive, already clamped to live range)
	recDrop   byte = 5 // payload: none; forgets the group
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// beginRecord reserves a record header and writes type and group; finishRecord
// fills length and CRC once the payload has been appended.
func beginRecord(dst []byte, typ byte, gid uint32) ([]byte, int) {
	start := len(dst)
	dst = append(dst, make([]byte, recHeaderSize)...)
	dst = append(dst, typ)
	dst = binary.AppendUvarint(dst, uint64(gid))
	return dst, start
}

func finishRecord(dst []byte, start int) []byte {
	body := dst[start+recHeaderSize:]
	binary.LittleEndian.PutUint32(dst[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(dst[start+4:], crc(body))
	return dst
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

func appendEntryRecord(dst []byte, gid uint32, l *raft.Log) []byte {
	dst, start := beginRecord(dst, recEntry, gid)
	dst = binary.AppendUvarint(dst, l.Index)
	dst = binary.AppendUvarint(dst, l.Term)
	dst = append(dst, byte(l.Type))
	if l.AppendedAt.IsZero() {
		dst = append(dst, 0)
	} else {
		// Seconds + nanoseconds rather than UnixNano: no range limit.
		dst = append(dst, 1)
		dst = binary.AppendVarint(dst, l.AppendedAt.Unix())
		dst = binary.AppendUvarint(dst, uint64(l.AppendedAt.Nanosecond()))
	}
	dst = appendBytes(dst, l.Data)
	dst = appendBytes(dst, l.Extensions)
	return finishRecord(dst, start)
}

func appendNameRecord(dst []byte, gid uint32, name string) []byte {
	dst, start := beginRecord(dst, recName, gid)
	dst = append(dst, name...)
	return finishRecord(dst, start)
}

func appendSetRecord(dst []byte, gid uint32, key string, val []byte) []byte {
	dst, start := beginRecord(dst, recSet, gid)
	dst = appendBytes(dst, []byte(key))
	dst = appendBytes(dst, val)
	return finishRecord(dst, start)
}

func appendDeleteRecord(dst []byte, gid uint32, lo, hi uint64) []byte {
	dst, start := beginRecord(dst, recDelete, gid)
	dst = binary.AppendUvarint(dst, lo)
	dst = binary.AppendUvarint(dst, hi)
	return finishRecord(dst, start)
}

func appendDropRecord(dst []byte, gid uint32) []byte {
	dst, start := beginRecord(dst, recDrop, gid)
	return finishRecord(dst, start)
}

// record is one parsed record; payload aliases the input buffer.
type record struct {
	typ     byte
	gid     uint32
	payload []byte
	size    int // total bytes including header
}

var errBadRecord = errors.New("bad record")

// parseRecord parses and verifies the record at the start of b.
func parseRecord(b []byte) (record, error) {
	if len(b) < recHeaderSize+2 {
		return record{}, fmt.Errorf("%w: short header", errBadRecord)
	}
	n := int(binary.LittleEndian.Uint32(b))
	if n < 2 || n > len(b)-recHeaderSize {
		return record{}, fmt.Errorf("%w: length %d out of range", errBadRecord, n)
	}
	body := b[recHeaderSize : recHeaderSize+n]
	if crc(body) != binary.LittleEndian.Uint32(b[4:]) {
		return record{}, fmt.Errorf("%w: checksum mismatch", errBadRecord)
	}
	gid, k := binary.Uvarint(body[1:])
	if k <= 0 || gid > 1<<32-1 {
		return record{}, fmt.Errorf("%w: bad group id", errBadRecord)
	}
	return record{typ: body[0], gid: uint32(gid), payload: body[1+k:], size: recHeaderSize + n}, nil
}

// decoder reads fields from a payload, remembering the first failure.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("%w: truncated field", errBadRecord)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("%w: truncated field", errBadRecord)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = fmt.Errorf("%w: truncated field", errBadRecord)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

// bytes returns a sub-slice of the payload (nil when empty); callers copy if
// the payload buffer is reused.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = fmt.Errorf("%w: field length %d exceeds record", errBadRecord, n)
		return nil
	}
	if n == 0 {
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", errBadRecord, len(d.b))
	}
	return d.err
}

func decodeEntry(payload []byte, l *raft.Log) error {
	d := decoder{b: payload}
	l.Index = d.uvarint()
	l.Term = d.uvarint()
	l.Type = raft.LogType(d.byte())
	l.AppendedAt = time.Time{}
	switch d.byte() {
	case 0:
	case 1:
		sec := d.varint()
		nsec := d.uvarint()
		if nsec >= 1e9 {
			d.err = fmt.Errorf("%w: nanoseconds %d out of range", errBadRecord, nsec)
		}
		l.AppendedAt = time.Unix(sec, int64(nsec))
	default:
		d.err = fmt.Errorf("%w: bad time flag", errBadRecord)
	}
	l.Data = d.bytes()
	l.Extensions = d.bytes()
	return d.done()
}

// entryIndex reads only the index, which is all replay needs.
func entryIndex(payload []byte) (uint64, error) {
	d := decoder{b: payload}
	idx := d.uvarint()
	return idx, d.err
}

func decodeSet(payload []byte) (key string, val []byte, err error) {
	d := decoder{b: payload}
	k := d.bytes()
	v := d.bytes()
	if err := d.done(); err != nil {
		return "", nil, err
	}
	return string(k), append([]byte{}, v...), nil
}

func decodeDelete(payload []byte) (lo, hi uint64, err error) {
	d := decoder{b: payload}
	lo = d.uvarint()
	hi = d.uvarint()
	return lo, hi, d.done()
}

// Frame header helpers.

func putFrameHeader(frame []byte) {
	body := frame[frameHeaderSize:]
	binary.LittleEndian.PutUint32(frame[0:], frameMagic)
	binary.LittleEndian.PutUint32(frame[4:], uint32(len(body)))
	binary.LittleEndian.PutUint32(frame[8:], crc(body))
	binary.LittleEndian.PutUint32(frame[12:], crc(frame[:12]))
}

type frameErr int

const (
	frameOK        frameErr = iota
	frameShort              // header or body runs past the end of the data
	frameBadHeader          // header magic or checksum wrong: its length cannot be trusted
	frameBadBody            // header intact but body checksum wrong
)

// parseFrame checks the frame at the start of b and returns its total size.
func parseFrame(b []byte) (int, frameErr) {
	if len(b) < frameHeaderSize {
		return 0, frameShort
	}
	if binary.LittleEndian.Uint32(b) != frameMagic || crc(b[:12]) != binary.LittleEndian.Uint32(b[12:]) {
		return 0, frameBadHeader
	}
	n := frameHeaderSize + int(binary.LittleEndian.Uint32(b[4:]))
	if n > len(b) {
		return n, frameShort
	}
	if crc(b[frameHeaderSize:n]) != binary.LittleEndian.Uint32(b[8:]) {
		return n, frameBadBody
	}
	return n, frameOK
}

// Segment header helpers.

type segHeader struct {
	seq, floor uint64
}

func encodeSegHeader(h segHeader) []byte {
	b := make([]byte, segHeaderSize)
	copy(b, segMagic)
	binary.LittleEndian.PutUint64(b[8:], h.seq)
	binary.LittleEndian.PutUint64(b[16:], h.floor)
	binary.LittleEndian.PutUint32(b[24:], segVersion)
	binary.LittleEndian.PutUint32(b[28:], crc(b[:28]))
	return b
}

func decodeSegHeader(b []byte) (segHeader, error) {
	if len(b) < segHeaderSize {
		return segHeader{}, errors.New("short segment header")
	}
	if string(b[:8]) != segMagic {
		return segHeader{}, errors.New("bad segment magic")
	}
	if crc(b[:28]) != binary.LittleEndian.Uint32(b[28:]) {
		return segHeader{}, errors.New("segment header checksum mismatch")
	}
	if v := binary.LittleEndian.Uint32(b[24:]); v != segVersion {
		return segHeader{}, fmt.Errorf("unsupported segment version %d", v)
	}
	return segHeader{
		seq:   binary.LittleEndian.Uint64(b[8:]),
		floor: binary.LittleEndian.Uint64(b[16:]),
	}, nil
}
