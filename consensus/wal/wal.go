// Package wal is a node's single append-only write-ahead log, shared by all of
// the node's Raft groups, with adaptive group commit.
//
// Each group sees its own raft.LogStore and raft.StableStore (a *Group), but
// every group's records go to the same segment files, and one commit loop turns
// whatever is queued from all groups into one write and one fdatasync. That
// keeps the number of device flushes per second roughly constant as groups are
// added, where a store per group would flush once per group.
package wal

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"golang.org/x/sys/unix"
)

var (
	// ErrCorrupt marks a data directory whose contents cannot be trusted:
	// a checksum failure or garbage before the end of the log, or a missing
	// segment. Open refuses such a directory rather than guess.
	ErrCorrupt = errors.New("wal: data directory is damaged")
	// ErrClosed is returned by every operation after Close.
	ErrClosed = errors.New("wal: closed")
	// ErrKeyNotFound is returned by Get and GetUint64 for a missing key. Its
	// text is "not found" because raft compares err.Error() with that string.
	ErrKeyNotFound = errors.New("not found")
	// ErrGroupDropped is returned to a write that raced with DropGroup.
	ErrGroupDropped = errors.New("wal: group was dropped")
)

// Options tune a WAL. The zero value is production-ready.
type Options struct {
	// SegmentSize is the size at which the log moves to a new segment file
	// (default 64 MiB). Segments are reclaimed whole.
	SegmentSize int64
	// MaxWait caps how long a commit waits for recently active groups that are
	// missing from the batch (default 200µs; negative disables waiting).
	MaxWait time.Duration
	// CacheEntries is how many of the most recent entries per group are kept
	// decoded in memory for GetLog (default 1024; negative disables).
	CacheEntries int
	// Logger receives warnings about truncated tails and reclaim problems.
	Logger *slog.Logger
	// NoSync skips fdatasync. Tests only: it voids every durability promise.
	NoSync bool

	// syncHook, when set, replaces fdatasync (tests inject failures with it).
	syncHook func(f *os.File) error
}

const (
	defaultSegmentSize = 64 << 20
	minSegmentSize     = 1 << 10
	defaultMaxWait     = 200 * time.Microsecond
	defaultCache       = 1024
	maxBatchBytes      = 16 << 20
)

// Stats are cumulative counters, safe to read at any time.
type Stats struct {
	Syncs   uint64 // fdatasync calls on segment files
	Batches uint64 // frames written (one write each)
	Records uint64 // records written, including rewrites at segment rotation
	Bytes   uint64 // bytes written to segment files
}

// WAL is one node's write-ahead log. All methods are safe for concurrent use.
type WAL struct {
	dir  string
	opts Options
	log  *slog.Logger
	lock *os.File // flock'd: one process per directory

	mu     sync.RWMutex      // guards groups, views, nextID
	groups map[string]*group // live groups by name
	views  map[string]*Group
	nextID uint32

	segMu sync.RWMutex // guards segs; held shared while reading a segment
	segs  map[uint64]*os.File

	qmu    sync.Mutex // guards queue and closed
	queue  []*request
	closed bool
	// closedFlag mirrors closed for readers, which should not contend on qmu.
	closedFlag atomic.Bool
	notify     chan struct{} // wakes the commit loop; capacity 1
	queued     atomic.Uint64 // requests ever queued; checked while the loop waits
	done       chan struct{} // closed when the commit loop exits

	failed atomic.Pointer[error] // first write/sync error: sticky

	syncs, batches, records, bytes atomic.Uint64

	// Owned by the commit loop (and by Open before it starts).
	cur      *os.File
	curSeq   uint64
	curOff   int64
	zeroedTo int64  // cur holds zeros from curOff up to here (prefill)
	zeros    []byte // a chunk of zeros for prefill, made on first use
	floor    uint64 // lowest segment still needed
	frame    []byte
	act      activity
	lastSync time.Duration
}

// group is the state behind a Group view.
type group struct {
	name string
	id   uint32

	mu          sync.RWMutex // guards the fields below against readers; only the commit loop writes
	first, last uint64       // 0, 0 when there are no entries
	locs        []loc        // locs[i] is where entry first+i lives
	cache       []raft.Log   // ring of recent entries, slot index%len
	stable      map[string][]byte
	dropped     bool

	// Commit-loop view: state including admitted but not yet durable requests.
	lfirst, llast uint64
	ldropped      bool
	namedIn       uint64 // segment holding this group's latest name record
	mark          uint64 // batch number that last included this group
}

// loc is where one entry record lives.
type loc struct {
	off int64
	seg uint32
	n   uint32
}

func (g *group) hasContent() bool { return g.last != 0 || len(g.stable) > 0 }

// Open opens (creating if needed) the WAL in dir and replays it. A torn tail
// is truncated and logged; any other damage makes Open fail with ErrCorrupt.
func Open(dir string, opts Options) (*WAL, error) {
	if opts.SegmentSize == 0 {
		opts.SegmentSize = defaultSegmentSize
	}
	if opts.SegmentSize < minSegmentSize {
		return nil, fmt.Errorf("wal: segment size %d below minimum %d", opts.SegmentSize, minSegmentSize)
	}
	if opts.MaxWait == 0 {
		opts.MaxWait = defaultMaxWait
	}
	if opts.CacheEntries == 0 {
		opts.CacheEntries = defaultCache
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("wal: create dir: %w", err)
	}
	w := &WAL{
		dir:    dir,
		opts:   opts,
		log:    opts.Logger.With("component", "wal", "dir", dir),
		groups: make(map[string]*group),
		views:  make(map[string]*Group),
		nextID: 1,
		segs:   make(map[uint64]*os.File),
		notify: make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	if err := w.lockDir(); err != nil {
		return nil, err
	}
	if err := w.recover(); err != nil {
		w.closeFiles()
		w.lock.Close()
		return nil, err
	}
	go w.run()
	return w, nil
}

// Group returns the view of the named group. The group itself comes into
// existence with its first write.
func (w *WAL) Group(name string) *Group {
	w.mu.RLock()
	v := w.views[name]
	w.mu.RUnlock()
	if v != nil {
		return v
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if v = w.views[name]; v == nil {
		v = &Group{w: w, name: name}
		w.views[name] = v
	}
	return v
}

// Groups lists, sorted, the groups that have log entries or stable keys.
func (w *WAL) Groups() []string {
	w.mu.RLock()
	defer w.mu.RUnlock()
	var out []string
	for name, g := range w.groups {
		g.mu.RLock()
		if g.hasContent() {
			out = append(out, name)
		}
		g.mu.RUnlock()
	}
	sort.Strings(out)
	return out
}

// DropGroup durably forgets a group: its entries and stable keys.
func (w *WAL) DropGroup(name string) error {
	g := w.lookup(name)
	if g == nil {
		return w.failure()
	}
	if err := w.submit(&request{kind: kindDrop, g: g}); err != nil {
		return fmt.Errorf("wal: drop group %q: %w", name, err)
	}
	return nil
}

// Stats returns the current counters.
func (w *WAL) Stats() Stats {
	return Stats{
		Syncs:   w.syncs.Load(),
		Batches: w.batches.Load(),
		Records: w.records.Load(),
		Bytes:   w.bytes.Load(),
	}
}

// Close commits whatever is queued, stops the commit loop and closes files.
func (w *WAL) Close() error {
	w.qmu.Lock()
	if w.closed {
		w.qmu.Unlock()
		return nil
	}
	w.closed = true
	w.closedFlag.Store(true)
	w.qmu.Unlock()
	w.wake()
	<-w.done
	err := w.closeFiles()
	// Closing the descriptor releases the flock.
	if cerr := w.lock.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("wal: close lock file: %w", cerr)
	}
	return err
}

// lockDir takes an exclusive flock on dir/LOCK. Two writers appending to the
// same segments would destroy the log.
func (w *WAL) lockDir() error {
	path := filepath.Join(w.dir, "LOCK")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("wal: open %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("wal: %s is in use by another WAL: %w", w.dir, err)
	}
	w.lock = f
	return nil
}

func (w *WAL) closeFiles() error {
	w.segMu.Lock()
	defer w.segMu.Unlock()
	var errs []error
	for seq, f := range w.segs {
		if err := f.Close(); err != nil {
			errs = append(errs, fmt.Errorf("wal: close segment %d: %w", seq, err))
		}
	}
	w.segs = nil
	return errors.Join(errs...)
}

func (w *WAL) lookup(name string) *group {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.groups[name]
}

// lookupOrCreate returns the live group, creating it (in memory only) if needed.
func (w *WAL) lookupOrCreate(name string) *group {
	if g := w.lookup(name); g != nil {
		return g
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if g := w.groups[name]; g != nil {
		return g
	}
	g := w.newGroup(name, w.nextID)
	w.nextID++
	return g
}

// newGroup registers a group; w.mu must be held (or Open must be running).
func (w *WAL) newGroup(name string, id uint32) *group {
	g := &group{name: name, id: id, stable: make(map[string][]byte)}
	w.groups[name] = g
	return g
}

func (w *WAL) failure() error {
	if p := w.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// fail records the first I/O error. Once a write or sync has failed, the file
// may hold anything past the last good frame, so nothing more is written.
func (w *WAL) fail(err error) error {
	err = fmt.Errorf("wal: log failed, no further writes accepted: %w", err)
	if w.failed.CompareAndSwap(nil, &err) {
		w.log.Error("write-ahead log failed", "err", err)
		return err
	}
	return *w.failed.Load()
}

func (w *WAL) sync(f *os.File) error {
	if w.opts.NoSync {
		return nil
	}
	w.syncs.Add(1)
	if w.opts.syncHook != nil {
		return w.opts.syncHook(f)
	}
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			return err
		}
	}
}

func (w *WAL) syncDir() error {
	if w.opts.NoSync {
		return nil
	}
	d, err := os.Open(w.dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func segName(seq uint64) string { return fmt.Sprintf("%020d.wal", seq) }

func (w *WAL) segPath(seq uint64) string { return filepath.Join(w.dir, segName(seq)) }

// listSegments returns the sequence numbers of the segment files in dir.
func listSegments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var seqs []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".wal")
		if !ok || e.IsDir() {
			continue
		}
		seq, err := strconv.ParseUint(name, 10, 64)
		if err != nil || seq == 0 {
			continue
		}
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	return seqs, nil
}

// createSegment makes a new segment file with a durable header.
func (w *WAL) createSegment(seq, floor uint64) (*os.File, error) {
	path := w.segPath(seq)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return nil, fmt.Errorf("create segment: %w", err)
	}
	if _, err := f.WriteAt(encodeSegHeader(segHeader{seq: seq, floor: floor}), 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("write header of %s: %w", path, err)
	}
	w.bytes.Add(segHeaderSize)
	if err := w.sync(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("sync %s: %w", path, err)
	}
	// The directory entry must be durable before anything acknowledged lives
	// in the file, or a crash could lose the whole segment.
	if err := w.syncDir(); err != nil {
		f.Close()
		return nil, fmt.Errorf("sync dir after creating %s: %w", path, err)
	}
	return f, nil
}
