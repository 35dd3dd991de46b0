package consensus

import (
	"bytes"
	"io"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// countMachine counts applies, so a repeated request ID shows up as a
// missing increment.
type countMachine struct {
	regMachine
	applied *int
}

func (m countMachine) Apply(shard int, tx *bolt.Tx, e Entry) ([]byte, error) {
	*m.applied++
	return m.regMachine.Apply(shard, tx, e)
}

func TestRepeatedRequestIsAppliedOnce(t *testing.T) {
	var applied int
	f, err := openShardFSM(0, filepath.Join(t.TempDir(), "s0.db"), []Machine{countMachine{applied: &applied}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ids := newReqIDs()
	a, b := ids.new(), ids.new()
	logs := []*raft.Log{
		{Index: 1, Type: raft.LogCommand, Data: encodeEntry(KindKV, 1, a, []byte("k=1"))},
		{Index: 2, Type: raft.LogCommand, Data: encodeEntry(KindKV, 2, b, []byte("k=2"))},
		{Index: 3, Type: raft.LogCommand, Data: encodeEntry(KindKV, 3, a, []byte("k=1"))}, // a retry of a
	}
	out := f.ApplyBatch(logs)
	if applied != 2 {
		t.Fatalf("applied %d commands, want 2", applied)
	}
	if got := out[2].(applyResult).data; string(got) != "1" {
		t.Fatalf("repeat answered %q, want the first result %q", got, "1")
	}

	// The table travels with snapshots: a replica restored from one still
	// recognises the request.
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	sink := &memSink{Buffer: &buf}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	g, err := openShardFSM(0, filepath.Join(t.TempDir(), "s0.db"), []Machine{countMachine{applied: &applied}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.Restore(io.NopCloser(&buf)); err != nil {
		t.Fatal(err)
	}
	g.ApplyBatch([]*raft.Log{{Index: 4, Type: raft.LogCommand, Data: encodeEntry(KindKV, 4, b, []byte("k=2"))}})
	if applied != 2 {
		t.Fatalf("a restored replica applied a repeated request")
	}
}

type memSink struct{ *bytes.Buffer }

func (memSink) ID() string    { return "mem" }
func (memSink) Cancel() error { return nil }
func (memSink) Close() error  { return nil }
