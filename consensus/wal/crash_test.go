package wal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// frameOffsets lists where each frame of a segment file starts.
func frameOffsets(t *testing.T, path string) []int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var offs []int
	for off := segHeaderSize; off < len(data) && !allZero(data[off:]); {
		n, fe := parseFrame(data[off:])
		if fe != frameOK {
			t.Fatalf("%s: bad frame at %d while laying out test", path, off)
		}
		offs = append(offs, off)
		off += n
	}
	return offs
}

// writeEntries stores entries 1..n one call at a time: one frame each.
func writeEntries(t *testing.T, dir string, opts Options, n uint64) {
	t.Helper()
	w := openT(t, dir, opts)
	g := w.Group("g")
	for i := uint64(1); i <= n; i++ {
		storeRange(t, g, i, i)
	}
	closeT(t, w)
}

func mutate(t *testing.T, path string, fn func([]byte) []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, fn(data), 0o640); err != nil {
		t.Fatal(err)
	}
}

func TestTornTailIsTruncated(t *testing.T) {
	const n = 10
	cases := []struct {
		name     string
		damage   func(data []byte, last int) []byte
		wantLast uint64
		warns    bool
	}{
		{"partial last frame", func(d []byte, last int) []byte { return d[:last+frameHeaderSize+5] }, n - 1, true},
		{"partial frame header", func(d []byte, last int) []byte { return d[:last+7] }, n - 1, true},
		{"checksum mismatch at the end of the last frame", func(d []byte, last int) []byte {
			end, _ := parseFrame(d[last:])
			d[last+end-3] ^= 0x40
			return d
		}, n - 1, true},
		{"checksum mismatch, no prefill", func(d []byte, last int) []byte {
			end, _ := parseFrame(d[last:])
			d = d[:last+end]
			d[len(d)-3] ^= 0x40
			return d
		}, n - 1, true},
		// Zeros where a frame should start end the log: they are what
		// prefill leaves, or a last frame that never reached the disk.
		{"last frame never reached the disk (zeros)", func(d []byte, last int) []byte {
			clear(d[last:])
			return d
		}, n - 1, false},
		{"zeros after the last frame", func(d []byte, last int) []byte { return append(d, make([]byte, 4096)...) }, n, false},
		{"no prefill after the last frame", func(d []byte, last int) []byte {
			end, _ := parseFrame(d[last:])
			return d[:last+end]
		}, n, false},
		{"garbage after the last frame", func(d []byte, last int) []byte {
			return append(d, []byte("\x13\x37partial write of something")...)
		}, n, true},
		{"intact", func(d []byte, last int) []byte { return d }, n, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeEntries(t, dir, Options{NoSync: true}, n)
			path := filepath.Join(dir, segName(1))
			offs := frameOffsets(t, path)
			if len(offs) != n {
				t.Fatalf("%d frames, want %d", len(offs), n)
			}
			mutate(t, path, func(d []byte) []byte { return tc.damage(d, offs[n-1]) })

			o, logs := testOpts(Options{NoSync: true})
			w, err := Open(dir, o)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if last, _ := w.Group("g").LastIndex(); last != tc.wantLast {
				t.Errorf("LastIndex = %d, want %d", last, tc.wantLast)
			}
			if got := strings.Contains(logs.String(), "torn tail"); got != tc.warns {
				t.Errorf("torn-tail warning logged = %v, want %v; log:\n%s", got, tc.warns, logs)
			}
			// The log keeps working after the cut, and the cut is durable.
			storeRange(t, w.Group("g"), tc.wantLast+1, tc.wantLast+2)
			want := dumpAll(t, w)
			closeT(t, w)
			o, logs = testOpts(Options{NoSync: true})
			w, err = Open(dir, o)
			if err != nil {
				t.Fatalf("second Open: %v", err)
			}
			defer closeT(t, w)
			if strings.Contains(logs.String(), "torn tail") {
				t.Errorf("second open still found a torn tail:\n%s", logs)
			}
			if got := dumpAll(t, w); !reflect.DeepEqual(got, want) {
				t.Errorf("state after second open differs")
			}
		})
	}
}

func TestTornSegmentCreationIsDiscarded(t *testing.T) {
	for _, content := range [][]byte{nil, make([]byte, 10), make([]byte, segHeaderSize)} {
		t.Run(fmt.Sprintf("%d bytes", len(content)), func(t *testing.T) {
			dir := t.TempDir()
			writeEntries(t, dir, Options{NoSync: true}, 3)
			if err := os.WriteFile(filepath.Join(dir, segName(2)), content, 0o640); err != nil {
				t.Fatal(err)
			}
			w := openT(t, dir, Options{NoSync: true})
			defer closeT(t, w)
			if last, _ := w.Group("g").LastIndex(); last != 3 {
				t.Errorf("LastIndex = %d", last)
			}
			if segs := segFiles(t, dir); !reflect.DeepEqual(segs, []uint64{1}) {
				t.Errorf("segments = %v, want [1]", segs)
			}
		})
	}
}

func TestDamageIsRefused(t *testing.T) {
	const n = 10
	type setup struct {
		path string
		offs []int
	}
	cases := []struct {
		name    string
		segSize int64 // > 0: spread entries over several segments
		damage  func(t *testing.T, dir string, s setup) (wantOff int)
		wantMsg string
	}{
		{"checksum mismatch in first frame", 0, func(t *testing.T, dir string, s setup) int {
			mutate(t, s.path, func(d []byte) []byte { d[s.offs[0]+frameHeaderSize+12] ^= 1; return d })
			return s.offs[0]
		}, "checksum"},
		{"garbage over a frame header mid-log", 0, func(t *testing.T, dir string, s setup) int {
			mutate(t, s.path, func(d []byte) []byte { copy(d[s.offs[4]:], bytes.Repeat([]byte{0xff}, frameHeaderSize)); return d })
			return s.offs[4]
		}, "garbage"},
		{"zeroed frame mid-log", 0, func(t *testing.T, dir string, s setup) int {
			mutate(t, s.path, func(d []byte) []byte { clear(d[s.offs[5]:s.offs[6]]); return d })
			return s.offs[5]
		}, "garbage"},
		{"bad checksum in the second-to-last frame", 0, func(t *testing.T, dir string, s setup) int {
			mutate(t, s.path, func(d []byte) []byte { d[s.offs[n-2]+frameHeaderSize+3] ^= 0x80; return d })
			return s.offs[n-2]
		}, "checksum"},
		{"damaged segment header", 0, func(t *testing.T, dir string, s setup) int {
			mutate(t, s.path, func(d []byte) []byte { d[3] = 'X'; return d })
			return 0
		}, "magic"},
		{"torn tail in a sealed segment", 256, func(t *testing.T, dir string, s setup) int {
			p := filepath.Join(dir, segName(2))
			data, _ := os.ReadFile(p)
			mutate(t, p, func(d []byte) []byte { return d[:len(d)-4] })
			return frameOffsets2(data)[len(frameOffsets2(data))-1]
		}, "past end"},
		{"missing middle segment", 256, func(t *testing.T, dir string, s setup) int {
			if err := os.Remove(filepath.Join(dir, segName(2))); err != nil {
				t.Fatal(err)
			}
			return -1
		}, "missing segment"},
		{"missing oldest segment", 256, func(t *testing.T, dir string, s setup) int {
			if err := os.Remove(filepath.Join(dir, segName(1))); err != nil {
				t.Fatal(err)
			}
			return -1
		}, "missing segment"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{NoSync: true, SegmentSize: 1 << 20}
			if tc.segSize > 0 {
				opts.SegmentSize = minSegmentSize
			}
			w := openT(t, dir, opts)
			g := w.Group("g")
			for i := uint64(1); i <= n; i++ {
				if err := g.StoreLog(mkLog(i, strings.Repeat("d", int(tc.segSize)))); err != nil {
					t.Fatal(err)
				}
			}
			closeT(t, w)
			if tc.segSize > 0 && len(segFiles(t, dir)) < 3 {
				t.Fatalf("want several segments, have %v", segFiles(t, dir))
			}
			s := setup{path: filepath.Join(dir, segName(1))}
			s.offs = frameOffsets(t, s.path)
			wantOff := tc.damage(t, dir, s)

			_, err := Open(dir, Options{NoSync: true, SegmentSize: opts.SegmentSize})
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open err = %v, want ErrCorrupt", err)
			}
			msg := err.Error()
			t.Log(msg)
			for _, want := range []string{"damaged", ".wal", tc.wantMsg} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not mention %q", msg, want)
				}
			}
			if wantOff >= 0 && !strings.Contains(msg, fmt.Sprintf("offset %d:", wantOff)) {
				t.Errorf("error %q does not name offset %d", msg, wantOff)
			}
		})
	}
}

func frameOffsets2(data []byte) []int {
	var offs []int
	for off := segHeaderSize; off < len(data); {
		n, fe := parseFrame(data[off:])
		if fe != frameOK {
			break
		}
		offs = append(offs, off)
		off += n
	}
	return offs
}

// TestPrefill: the newest segment keeps zeros written ahead of its last
// frame, which a reopen takes for the end of the log without calling it
// torn; a sealed segment ends at its last frame.
func TestPrefill(t *testing.T) {
	dir := t.TempDir()
	opts := Options{NoSync: true, SegmentSize: 4 << 20}
	w := openT(t, dir, opts)
	g := w.Group("g")
	const n = 50
	for i := uint64(1); i <= n; i++ {
		storeRange(t, g, i, i)
	}
	closeT(t, w)
	first := filepath.Join(dir, segName(1))
	end := logEnd(t, first)
	if size := fileSize(t, first); size < int64(end+zeroChunk/2) {
		t.Fatalf("segment is %d bytes, log ends at %d: want at least %d bytes of zeros ahead", size, end, zeroChunk/2)
	}

	o, logs := testOpts(opts)
	w, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	if last, _ := w.Group("g").LastIndex(); last != n {
		t.Errorf("LastIndex = %d, want %d", last, n)
	}
	if strings.Contains(logs.String(), "torn tail") {
		t.Errorf("prefill taken for a torn tail:\n%s", logs)
	}
	big := strings.Repeat("x", 512<<10)
	for i := uint64(n + 1); len(segFiles(t, dir)) < 2; i++ {
		if err := w.Group("g").StoreLog(mkLog(i, big)); err != nil {
			t.Fatal(err)
		}
	}
	closeT(t, w)
	if size, end := fileSize(t, first), logEnd(t, first); size != int64(end) {
		t.Errorf("sealed segment is %d bytes, its last frame ends at %d", size, end)
	}
	w = openT(t, dir, opts)
	defer closeT(t, w)
	if first, _ := w.Group("g").FirstIndex(); first != 1 {
		t.Errorf("FirstIndex = %d after rotation, want 1", first)
	}
}

// logEnd is the offset just past the last frame of a segment file.
func logEnd(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	offs := frameOffsets(t, path)
	last := offs[len(offs)-1]
	n, _ := parseFrame(data[last:])
	return last + n
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
