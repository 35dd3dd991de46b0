package timerwheel

import (
	"bytes"
	"encoding/hex"
	"reflect"
	"testing"
	"time"
)

// The golden bytes pin the stored and logged formats: a change here breaks
// existing logs, snapshots and backups.
func TestCommandGolden(t *testing.T) {
	setSpec := spec{kind: cbHTTP, rf: 2, interval: 30000, target: "http://s/t", opaque: []byte("op"),
		tags: []Tag{{"A", 1}, {"B", 2}}}
	rec := &record{spec: spec{kind: cbLocal, rf: 3, interval: 1000, repeat: 5000, target: "reg"},
		start: 1_900_000_000_000, seq: 2, gen: 7}
	tests := []struct {
		name   string
		cmd    []byte
		golden string
		want   command
	}{
		{"set", encodeSet(0x0102030405060708, true, &setSpec),
			"0101" + "01" + "0102030405060708" + "0102" + "b0ea01" + "00" + "0a687474703a2f2f732f74" + "026f70" + "02" + "014101" + "014202",
			command{op: opSet, id: 0x0102030405060708, create: true, spec: setSpec}},
		{"delete", encodeDelete(0xab), "0102" + "00000000000000ab", command{op: opDelete, id: 0xab}},
		{"pop", encodePop(0xab, 3, 300), "0103" + "00000000000000ab" + "03" + "ac02", command{op: opPop, id: 0xab, seq: 3, gen: 300}},
		{"import", encodeImport([]imported{{id: 0xab, rec: rec}}),
			"0104" + "01" + "00000000000000ab" + "15" + "010203e807882780f0cc86a6370207037265670000",
			command{op: opImport, imports: []imported{{id: 0xab, rec: rec}}}},
		{"rescan", encodeRescan(), "0105", command{op: opRescan}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := hex.EncodeToString(tc.cmd); got != tc.golden {
				t.Fatalf("encoded\n got %s\nwant %s", got, tc.golden)
			}
			c, err := decodeCommand(tc.cmd)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*c, tc.want) {
				t.Fatalf("decoded %+v, want %+v", *c, tc.want)
			}
		})
	}
}

func TestRecordRoundTrip(t *testing.T) {
	tests := []*record{
		{spec: spec{kind: cbHTTP, rf: 2, interval: 3_600_000, target: "http://sprout.example.com:9888/timers",
			opaque: bytes.Repeat([]byte("x"), 300), tags: []Tag{{"BIND", 1}, {"REG", 1}}},
			start: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli(), seq: 1, gen: 123456},
		{spec: spec{kind: cbLocal, rf: 1, target: "x"}, start: 1, seq: 1, gen: 1},
	}
	for _, rec := range tests {
		b := rec.encode()
		got, err := decodeRecord(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, rec) {
			t.Fatalf("round trip %+v -> %+v", rec, got)
		}
		due, err := recordDue(b)
		if err != nil || due != rec.due() {
			t.Fatalf("recordDue = %d, %v; want %d", due, err, rec.due())
		}
		for n := range len(b) {
			if _, err := decodeRecord(b[:n]); err == nil {
				t.Fatalf("truncated record (%d of %d bytes) decoded", n, len(b))
			}
		}
	}
}

func TestStatsRoundTrip(t *testing.T) {
	in := shardStats{timers: 42, tags: map[string]int64{"REG": 40, "BIND": 2}}
	out, err := decodeStats(encodeStats(in))
	if err != nil || !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip %+v -> %+v, %v", in, out, err)
	}
}

func TestParseID(t *testing.T) {
	tests := []struct {
		in     string
		id     ID
		rf     int
		hasErr bool
	}{
		{"0123456789abcdef-2", 0x0123456789abcdef, 2, false},
		{"0123456789ABCDEF-13", 0x0123456789abcdef, 13, false},
		{"0123456789abcdef0000000000000003", 0x0123456789abcdef, 0, false},
		{"0123456789abcdef-0", 0x0123456789abcdef, 0, false},
		{"0123456789abcdef", 0, 0, true},
		{"0123456789abcde-2", 0, 0, true},
		{"0123456789abcdeg-2", 0, 0, true},
		{"0123456789abcdef-", 0, 0, true},
		{"0123456789abcdef-x", 0, 0, true},
		{"0123456789abcdef-256", 0, 0, true},
		{"0000000000000000-2", 0, 0, true},
		{"", 0, 0, true},
	}
	for _, tc := range tests {
		id, rf, err := ParseID(tc.in)
		if (err != nil) != tc.hasErr || id != tc.id || rf != tc.rf {
			t.Errorf("ParseID(%q) = %v, %d, %v", tc.in, id, rf, err)
		}
	}
	if got := FormatID(0xab, 2); got != "00000000000000ab-2" {
		t.Errorf("FormatID = %q", got)
	}
}
