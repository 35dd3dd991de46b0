package kv

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"stillwater/consensus"
)

// benchValue is the size of a registration record with a couple of bindings.
var benchValue = bytes.Repeat([]byte("x"), 600)

const benchKeys = 10000

func benchCommands(ttl bool) [][]byte {
	cmds := make([][]byte, benchKeys)
	for i := range cmds {
		var t int64
		if ttl {
			t = int64(300 * time.Second)
		}
		cmds[i] = appendPut(nil, "paris", fmt.Sprintf("reg/sip:%06d@example.com", i), benchValue, t, false, 0)
	}
	return cmds
}

// BenchmarkApply measures Apply on a real bbolt store (no fsync, as state
// machines run), with one transaction per entry or per 1000 entries.
func BenchmarkApply(b *testing.B) {
	for _, bc := range []struct {
		name  string
		ttl   bool
		perTx int
	}{
		{"put/tx-per-entry", false, 1},
		{"put-ttl/tx-per-entry", true, 1},
		{"put/1000-per-tx", false, 1000},
		{"put-ttl/1000-per-tx", true, 1000},
	} {
		b.Run(bc.name, func(b *testing.B) {
			db, err := bolt.Open(filepath.Join(b.TempDir(), "bench.db"), 0o600, &bolt.Options{NoSync: true})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			svc := New(nil, Options{Logger: testLogger()})
			if err := db.Update(func(tx *bolt.Tx) error { return svc.Open(0, tx) }); err != nil {
				b.Fatal(err)
			}
			cmds := benchCommands(bc.ttl)
			index := uint64(0)
			now := time.Unix(1_700_000_000, 0).UnixNano()
			apply := func(n int) {
				err := db.Update(func(tx *bolt.Tx) error {
					for range n {
						index++
						now += int64(100 * time.Microsecond)
						e := consensus.Entry{Index: index, Time: now, Cmd: cmds[index%benchKeys]}
						if _, err := svc.Apply(0, tx, e); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			// Warm up: every key exists and the feed is full, as in steady state.
			for range (benchKeys + DefaultFeedRetention) / 1000 {
				apply(1000)
			}
			b.SetBytes(int64(len(cmds[0])))
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; done += bc.perTx {
				apply(min(bc.perTx, b.N-done))
			}
		})
	}
}

func BenchmarkEncodePut(b *testing.B) {
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendPut(buf[:0], "paris", "reg/sip:alice@example.com", benchValue, int64(300*time.Second), true, 1234567)
	}
}

func BenchmarkDecodePut(b *testing.B) {
	cmd := appendPut(nil, "paris", "reg/sip:alice@example.com", benchValue, int64(300*time.Second), true, 1234567)
	b.ReportAllocs()
	for b.Loop() {
		d := decoder{b: cmd}
		d.byte()
		d.byte()
		d.uvarint()
		d.varint()
		d.bytes()
		d.bytes()
		if d.rest(); d.bad {
			b.Fatal("bad")
		}
	}
}

func BenchmarkEncodeRecord(b *testing.B) {
	h := recordHeader{version: 1234567, hlc: HLC{Wall: 1_700_000_000_000, Logical: 3}, expiry: 1_700_000_300_000_000_000, site: []byte("paris")}
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendRecord(buf[:0], h, benchValue)
	}
}

func BenchmarkDecodeRecord(b *testing.B) {
	h := recordHeader{version: 1234567, hlc: HLC{Wall: 1_700_000_000_000, Logical: 3}, expiry: 1_700_000_300_000_000_000, site: []byte("paris")}
	enc := appendRecord(nil, h, benchValue)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := decodeRecord(enc); !ok {
			b.Fatal("bad")
		}
	}
}

// BenchmarkServicePutGet runs the client API against the in-process cluster
// (one bbolt transaction per write).
func BenchmarkServicePutGet(b *testing.B) {
	f := newFixture(b, 1, Options{})
	keys := make([]string, benchKeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("reg/sip:%06d@example.com", i)
	}
	b.Run("put-ttl", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := f.svc.PutTTL(f.ctx, keys[i%benchKeys], benchValue, 300*time.Second); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("get", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := f.svc.Get(f.ctx, keys[i%min(i+1, benchKeys)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
