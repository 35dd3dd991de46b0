package consensus

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// guardMachine is a regMachine that refuses "refuse" commands, writing
// nothing for them.
type guardMachine struct{ regMachine }

func (guardMachine) Apply(shard int, tx *bolt.Tx, e Entry) ([]byte, error) {
	if string(e.Cmd) == "refuse" {
		return []byte("refused"), nil
	}
	return regMachine{}.Apply(shard, tx, e)
}
func (guardMachine) Refused(res []byte) bool { return string(res) == "refused" }

// sideMachine is a regMachine of another kind, in a bucket of its own.
type sideMachine struct{}

func (sideMachine) Kind() Kind { return KindTimer }
func (sideMachine) Open(_ int, tx *bolt.Tx) error {
	_, err := tx.CreateBucketIfNotExists([]byte("side"))
	return err
}
func (sideMachine) Apply(_ int, tx *bolt.Tx, e Entry) ([]byte, error) {
	k, v, _ := strings.Cut(string(e.Cmd), "=")
	return []byte("side"), tx.Bucket([]byte("side")).Put([]byte(k), []byte(v))
}
func (sideMachine) Query(int, *bolt.Tx, []byte) ([]byte, error)    { return nil, nil }
func (sideMachine) Export(int, *bolt.Tx, func([]byte) error) error { return nil }

func TestAtomicProposal(t *testing.T) {
	f, err := openShardFSM(0, filepath.Join(t.TempDir(), "s0.db"), []Machine{guardMachine{}, sideMachine{}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ids := newReqIDs()
	kv := func(c string) Command { return Command{Kind: KindKV, Cmd: []byte(c)} }
	side := func(c string) Command { return Command{Kind: KindTimer, Cmd: []byte(c)} }
	for i, tc := range []struct {
		name    string
		body    []byte
		want    []string // results; "-" for a skipped command
		wantErr bool
		reg     map[string]string // expected after
		sides   map[string]string
	}{
		{name: "both applied", body: EncodeAtomic(kv("a=1"), side("b=2")),
			want: []string{"1", "side"}, reg: map[string]string{"a": "1"}, sides: map[string]string{"b": "2"}},
		{name: "refusal skips the rest", body: EncodeAtomic(kv("refuse"), side("c=3")),
			want: []string{"refused", "-"}, sides: map[string]string{"c": ""}},
		{name: "a machine twice", body: EncodeAtomic(kv("d=4"), kv("e=5")), wantErr: true,
			reg: map[string]string{"d": "", "e": ""}},
		{name: "unknown machine", body: EncodeAtomic(kv("f=6"), Command{Kind: 9, Cmd: []byte("x")}), wantErr: true,
			reg: map[string]string{"f": ""}},
		{name: "truncated", body: EncodeAtomic(kv("g=7"), side("h=8"))[:6], wantErr: true,
			reg: map[string]string{"g": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			idx := uint64(i + 1)
			out := f.ApplyBatch([]*raft.Log{{Index: idx, Type: raft.LogCommand, Data: encodeEntry(KindAtomic, int64(idx), ids.new(), tc.body)}})
			r := out[0].(applyResult)
			if tc.wantErr {
				if r.err == nil || !errors.Is(r.err, errAtomicBody) {
					t.Fatalf("result %q, err %v; want a malformed-command error", r.data, r.err)
				}
			} else {
				if r.err != nil {
					t.Fatal(r.err)
				}
				res, err := DecodeAtomicResult(r.data)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, x := range res {
					if x == nil {
						got = append(got, "-")
					} else {
						got = append(got, string(x))
					}
				}
				if strings.Join(got, ",") != strings.Join(tc.want, ",") {
					t.Fatalf("results %q, want %q", got, tc.want)
				}
			}
			if err := f.commit(); err != nil {
				t.Fatal(err)
			}
			check := func(bucket string, want map[string]string) {
				err := f.read(func(tx *bolt.Tx) error {
					for k, v := range want {
						if got := string(tx.Bucket([]byte(bucket)).Get([]byte(k))); got != v {
							t.Errorf("%s %q = %q, want %q", bucket, k, got, v)
						}
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			check("reg", tc.reg)
			check("side", tc.sides)
		})
	}
}
