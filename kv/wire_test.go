package kv

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// goldenEncodings are the persistent formats: commands (in the Raft log and
// backups), stored records, feed entries and the shard state. A change here
// must be deliberate: it breaks logs and backups already written.
func goldenEncodings() []struct {
	name string
	enc  []byte
} {
	h := recordHeader{version: 300, hlc: HLC{Wall: 1_700_000_000_123, Logical: 2}, expiry: 1_700_000_600_000_000_000, site: []byte("paris")}
	restore := appendRestoreHeader(nil, 1000, HLC{Wall: 1_700_000_000_999, Logical: 7})
	restore = appendRestoreItem(restore, []byte("reg/sip:alice@example.com"), h, []byte("contact"))
	restore = appendRestoreItem(restore, []byte("sub/bob"), recordHeader{version: 9, hlc: HLC{Wall: 1_600_000_000_000}, site: []byte("london")}, nil)
	batch := appendBatchHeader(nil, "paris")
	batch = appendBatchItem(batch, "sub/6505550001", []byte(`{"a":1}`), 0)
	batch = appendBatchItem(batch, "sub/6505550002", nil, int64(time.Hour))
	a := applier{}
	feed := a.appendFeedEntry(nil, OpPut, []byte("reg/sip:alice@example.com"), h)
	return []struct {
		name string
		enc  []byte
	}{
		{"put", appendPut(nil, "paris", "reg/sip:alice@example.com", []byte("<sip:alice@10.0.0.1>;expires=300"), 0, false, 0)},
		{"put-ttl", appendPut(nil, "paris", "reg/sip:alice@example.com", []byte("v"), int64(300*time.Second), false, 0)},
		{"cas", appendPut(nil, "paris", "reg/sip:alice@example.com", []byte("v"), int64(300*time.Second), true, 1234567)},
		{"cas-create", appendPut(nil, "paris", "impi/alice", []byte("challenge"), int64(40*time.Second), true, 0)},
		{"delete", appendDelete(nil, "paris", "reg/sip:alice@example.com", false, 0)},
		{"delete-if", appendDelete(nil, "paris", "reg/sip:alice@example.com", true, 1234567)},
		{"batch", batch},
		{"expire", appendExpire(nil, 1_700_000_600_000_000_000, sweepBatch)},
		{"restore", restore},
		{"record", appendRecord(nil, h, []byte("contact"))},
		{"feed-entry", feed},
		{"meta", shardMeta{last: 1000, hlc: HLC{Wall: 1_700_000_000_999, Logical: 7}, feedCount: 20000, feedTrimmed: 980}.append(nil)},
	}
}

func TestGoldenEncodings(t *testing.T) {
	var out strings.Builder
	for _, g := range goldenEncodings() {
		out.WriteString("# " + g.name + "\n")
		out.WriteString(hex.Dump(g.enc))
	}
	path := filepath.Join("testdata", "encodings.golden")
	if *update {
		if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if out.String() != string(want) {
		t.Fatalf("encodings changed; if deliberate, run go test -run Golden -update\ngot:\n%s", out.String())
	}
}

func TestSizes(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 16383, 16384, 1<<21 - 1, 1 << 21, 1<<63 - 1, 1<<64 - 1} {
		if got, want := uvarintLen(v), len(binary.AppendUvarint(nil, v)); got != want {
			t.Errorf("uvarintLen(%d) = %d, want %d", v, got, want)
		}
	}
	for _, site := range []int{0, 5, 127, 128, 300} {
		h := recordHeader{version: 1, site: bytes.Repeat([]byte("s"), site)}
		value := bytes.Repeat([]byte("v"), 200)
		if got, want := recordSize(h, value), len(appendRecord(nil, h, value)); got != want {
			t.Errorf("recordSize with site of %d bytes = %d, want %d", site, got, want)
		}
		// A feed entry holds the record's header, not its value.
		a := applier{}
		entry := a.appendFeedEntry(nil, OpPut, []byte("k"), h)
		if len(entry) != feedEntrySize([]byte("k"), h) {
			t.Errorf("feed entry with site of %d bytes: %d bytes, feedEntrySize says %d", site, len(entry), feedEntrySize([]byte("k"), h))
		}
		if _, k, eh, v, ok := decodeFeedEntry(entry); !ok || string(k) != "k" || !bytes.Equal(eh.site, h.site) || len(v) != 0 {
			t.Errorf("feed entry with site of %d bytes does not decode", site)
		}
	}
}

func TestGoldenDecode(t *testing.T) {
	g := map[string][]byte{}
	for _, e := range goldenEncodings() {
		g[e.name] = e.enc
	}
	h, value, ok := decodeRecord(g["record"])
	if !ok || h.version != 300 || h.hlc != (HLC{Wall: 1_700_000_000_123, Logical: 2}) ||
		h.expiry != 1_700_000_600_000_000_000 || string(h.site) != "paris" || string(value) != "contact" {
		t.Fatalf("record decodes to %+v %q", h, value)
	}
	op, key, fh, value, ok := decodeFeedEntry(g["feed-entry"])
	if !ok || op != OpPut || string(key) != "reg/sip:alice@example.com" || fh.version != h.version || len(value) != 0 {
		t.Fatalf("feed entry decodes to %v %q %+v %q", op, key, fh, value)
	}
	m, ok := decodeMeta(g["meta"])
	if !ok || m != (shardMeta{last: 1000, hlc: HLC{Wall: 1_700_000_000_999, Logical: 7}, feedCount: 20000, feedTrimmed: 980}) {
		t.Fatalf("meta decodes to %+v", m)
	}
	d := decoder{b: g["restore"][1:]}
	if floor, wall, logical := d.uvarint(), d.varint(), d.uvarint(); floor != 1000 || wall != 1_700_000_000_999 || logical != 7 {
		t.Fatalf("restore header %d %d %d", floor, wall, logical)
	}
	key, rh, value := decodeRestoreItem(&d)
	if d.bad || string(key) != "reg/sip:alice@example.com" || rh.version != h.version || rh.hlc != h.hlc ||
		rh.expiry != h.expiry || !bytes.Equal(rh.site, h.site) || string(value) != "contact" {
		t.Fatalf("restore item %q %+v %q", key, rh, value)
	}

	// The golden commands apply.
	f := newFixture(t, 1, Options{})
	for _, name := range []string{"put", "put-ttl", "cas", "cas-create", "delete", "delete-if", "batch", "expire", "restore"} {
		res, err := f.c.Propose(f.ctx, 0, 1, g[name])
		if err != nil || len(res) == 0 || res[0] == resInvalid {
			t.Fatalf("%s: result %q, %v", name, res, err)
		}
	}
}
