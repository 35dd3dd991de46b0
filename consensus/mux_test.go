package consensus

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

func TestAppendEntriesCodecRoundTrip(t *testing.T) {
	hdr := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("n1"), Addr: []byte("127.0.0.1:7000")}
	reqs := []struct {
		name string
		req  raft.AppendEntriesRequest
	}{
		{"heartbeat", raft.AppendEntriesRequest{RPCHeader: hdr, Term: 3, Leader: []byte("127.0.0.1:7000")}},
		{"entries", raft.AppendEntriesRequest{RPCHeader: hdr, Term: 9, PrevLogEntry: 41, PrevLogTerm: 8, LeaderCommitIndex: 40,
			Entries: []*raft.Log{
				{Index: 42, Term: 9, Type: raft.LogCommand, Data: []byte("put k=v"), AppendedAt: time.Unix(0, 1_700_000_000_123_456_789)},
				{Index: 43, Term: 9, Type: raft.LogConfiguration, Data: bytes.Repeat([]byte{7}, 300), Extensions: []byte("x")},
				{Index: 44, Term: 9, Type: raft.LogNoop},
			}}},
	}
	for _, c := range reqs {
		t.Run(c.name, func(t *testing.T) {
			b := appendAppendRequest(nil, &c.req)
			got, err := decodeAppendRequest(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, c.req) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", *got, c.req)
			}
			// Every truncation is refused with an error, never a panic.
			for n := range len(b) {
				if _, err := decodeAppendRequest(b[:n]); err == nil {
					t.Fatalf("a request cut to %d of %d bytes decoded", n, len(b))
				}
			}
		})
	}
	resps := []raft.AppendEntriesResponse{
		{RPCHeader: hdr, Term: 9, LastLog: 44, Success: true},
		{RPCHeader: hdr, Term: 10, LastLog: 12, NoRetryBackoff: true},
	}
	for i, want := range resps {
		var got raft.AppendEntriesResponse
		if err := decodeAppendResponse(appendAppendResponse(nil, &want), &got); err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("response %d: got %+v, %v; want %+v", i, got, err, want)
		}
	}
}

// testTransports starts two transports on 127.0.0.1 and 127.0.0.2 with the
// same site key, as two nodes' consensus ports.
func testTransports(t *testing.T, proposals func(frame, *frameWriter)) (a, b *transport) {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	port := freePort(t)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	mk := func(host, id string) *transport {
		conf, err := siteTLS(key, id)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := newTransport(fmt.Sprintf("%s:%d", host, port), conf, true, log, proposals)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		return tr
	}
	return mk("127.0.0.1", "a"), mk("127.0.0.2", "b")
}

// follower answers a group's RPCs as a replica would: appends succeed up to
// their last entry, votes are granted, snapshots are read to the end.
func follower(rt *raftTransport, snapshots chan<- []byte) {
	for {
		select {
		case rpc := <-rt.Consumer():
			switch req := rpc.Command.(type) {
			case *raft.AppendEntriesRequest:
				last := req.PrevLogEntry
				if n := len(req.Entries); n > 0 {
					last = req.Entries[n-1].Index
				}
				rpc.Respond(&raft.AppendEntriesResponse{Term: req.Term, LastLog: last, Success: true}, nil)
			case *raft.RequestVoteRequest:
				rpc.Respond(&raft.RequestVoteResponse{Term: req.Term, Granted: true}, nil)
			case *raft.InstallSnapshotRequest:
				data, err := io.ReadAll(rpc.Reader)
				snapshots <- data
				rpc.Respond(&raft.InstallSnapshotResponse{Term: req.Term, Success: err == nil}, err)
			case *raft.TimeoutNowRequest:
				rpc.Respond(nil, errors.New("refused by test"))
			}
		case <-rt.done:
			return
		}
	}
}

func appendReq(idx uint64) *raft.AppendEntriesRequest {
	return &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ID: []byte("a"), Addr: []byte("a")}, Term: 2, PrevLogEntry: idx - 1, PrevLogTerm: 2, LeaderCommitIndex: idx - 1,
		Entries: []*raft.Log{{Index: idx, Term: 2, Type: raft.LogCommand, Data: []byte(fmt.Sprint("entry ", idx))}},
	}
}

func TestTransportCarriesRaftRPCsOfManyGroups(t *testing.T) {
	a, b := testTransports(t, nil)
	target := raft.ServerAddress(b.addr)
	snapshots := make(chan []byte, 1)
	for g := range uint16(3) {
		go follower(b.register(g), snapshots)
	}
	heartbeats := make(chan uint64, 1)
	hbGroup := b.raftGroup(1)
	hbGroup.SetHeartbeatHandler(func(rpc raft.RPC) {
		heartbeats <- rpc.Command.(*raft.AppendEntriesRequest).Term
		rpc.Respond(&raft.AppendEntriesResponse{Term: 77, Success: true}, nil)
	})

	for g := range uint16(3) {
		rt := a.register(g)
		var resp raft.AppendEntriesResponse
		if err := rt.AppendEntries("b", target, appendReq(5), &resp); err != nil || !resp.Success || resp.LastLog != 5 {
			t.Fatalf("group %d append: %+v %v", g, resp, err)
		}
		var vote raft.RequestVoteResponse
		if err := rt.RequestVote("b", target, &raft.RequestVoteRequest{Term: 3}, &vote); err != nil || !vote.Granted || vote.Term != 3 {
			t.Fatalf("group %d vote: %+v %v", g, vote, err)
		}
		var tn raft.TimeoutNowResponse
		if err := rt.TimeoutNow("b", target, &raft.TimeoutNowRequest{}, &tn); err == nil || !strings.Contains(err.Error(), "refused by test") {
			t.Fatalf("group %d: the follower's error did not come back: %v", g, err)
		}
	}

	// A heartbeat takes the fast path, not the group's queue.
	var hb raft.AppendEntriesResponse
	err := a.raftGroup(1).AppendEntries("b", target, &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{Addr: []byte("a")}, Term: 4}, &hb)
	if err != nil || hb.Term != 77 || <-heartbeats != 4 {
		t.Fatalf("heartbeat: %+v %v", hb, err)
	}

	// Pipelined appends are answered in the order sent.
	p, err := a.raftGroup(2).AppendEntriesPipeline("b", target)
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(10); i < 20; i++ {
		if _, err := p.AppendEntries(appendReq(i), new(raft.AppendEntriesResponse)); err != nil {
			t.Fatal(err)
		}
	}
	for i := uint64(10); i < 20; i++ {
		f := <-p.Consumer()
		if f.Error() != nil || f.Response().LastLog != i || f.Request().Entries[0].Index != i {
			t.Fatalf("pipeline answer %d: %+v %v", i, f.Response(), f.Error())
		}
	}
	p.Close()

	// A group the peer does not hold is an error naming it.
	var resp raft.AppendEntriesResponse
	if err := a.register(9).AppendEntries("b", target, appendReq(1), &resp); err == nil || !strings.Contains(err.Error(), "no replica of s9") {
		t.Fatalf("unknown group: %v", err)
	}

	// A snapshot travels on a stream of its own.
	data := bytes.Repeat([]byte("snapshot"), 100_000)
	var sresp raft.InstallSnapshotResponse
	err = a.raftGroup(0).InstallSnapshot("b", target, &raft.InstallSnapshotRequest{Term: 5, Size: int64(len(data))}, &sresp, bytes.NewReader(data))
	if err != nil || !sresp.Success || !bytes.Equal(<-snapshots, data) {
		t.Fatalf("snapshot: %+v %v", sresp, err)
	}
}

func TestPartitionCutsTheSharedConnection(t *testing.T) {
	a, b := testTransports(t, nil)
	target := raft.ServerAddress(b.addr)
	go follower(b.register(0), nil)
	rt := a.register(0)
	var resp raft.AppendEntriesResponse
	if err := rt.AppendEntries("b", target, appendReq(1), &resp); err != nil {
		t.Fatal(err)
	}
	p, err := rt.AppendEntriesPipeline("b", target)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := a.Partition([]string{"127.0.0.2"}); err != nil {
		t.Fatal(err)
	}
	if err := rt.AppendEntries("b", target, appendReq(2), &resp); !errors.Is(err, errPartitioned) {
		t.Fatalf("append across a partition: %v", err)
	}
	// The pipeline's connection was cut: it fails rather than hangs.
	if f, err := p.AppendEntries(appendReq(2), new(raft.AppendEntriesResponse)); err == nil {
		if f.Error() == nil {
			t.Fatal("a pipelined append across a partition succeeded")
		}
	}
	if err := a.Partition(nil); err != nil {
		t.Fatal(err)
	}
	if err := rt.AppendEntries("b", target, appendReq(2), &resp); err != nil || !resp.Success {
		t.Fatalf("append after healing: %+v %v", resp, err)
	}
}

func TestForwardedProposalOutcomes(t *testing.T) {
	cases := []struct {
		name   string
		answer proposeResult
		check  func(res []byte, leader string, err error) bool
	}{
		{"committed", proposeResult{propOK, []byte("result")}, func(res []byte, _ string, err error) bool {
			return err == nil && string(res) == "result"
		}},
		{"redirect", proposeResult{propRedirect, []byte("127.0.0.3:1")}, func(_ []byte, leader string, err error) bool {
			return errors.Is(err, errRedirect) && leader == "127.0.0.3:1"
		}},
		{"indeterminate", proposeResult{propIndeterminate, []byte("leadership lost")}, func(_ []byte, _ string, err error) bool {
			return errors.Is(err, ErrIndeterminate)
		}},
		{"no quorum", proposeResult{propNoQuorum, []byte("enqueue timeout")}, func(_ []byte, _ string, err error) bool {
			return errors.Is(err, ErrNoQuorum)
		}},
		{"machine error", proposeResult{propRemote, []byte("bad command")}, func(_ []byte, _ string, err error) bool {
			return errors.As(err, new(errRemote)) && err.Error() == "bad command"
		}},
		{"link lost after sending", proposeResult{status: 255}, func(_ []byte, _ string, err error) bool {
			return errors.Is(err, ErrIndeterminate)
		}},
	}
	byCmd := map[string]proposeResult{}
	for _, c := range cases {
		byCmd[c.name] = c.answer
	}
	a, b := testTransports(t, func(f frame, w *frameWriter) {
		if len(f.payload) < 17 || f.group != 3 || Kind(f.payload[0]) != KindKV {
			respondPropose(w, f, proposeResult{propRemote, []byte("mangled proposal")})
			return
		}
		r := byCmd[string(f.payload[17:])]
		if r.status == 255 {
			w.conn.Close()
			return
		}
		respondPropose(w, f, r)
	})
	n := &Node{trans: a}
	ids := newReqIDs()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			res, leader, err := n.forwardPropose(ctx, b.addr, 3, KindKV, ids.new(), []byte(c.name))
			if !c.check(res, leader, err) {
				t.Fatalf("got %q, leader %q, err %v", res, leader, err)
			}
		})
	}
}

func TestAppliedEntriesAreVisibleAtOnce(t *testing.T) {
	f, err := openShardFSM(0, filepath.Join(t.TempDir(), "s0.db"), []Machine{regMachine{}})
	if err != nil {
		t.Fatal(err)
	}
	ids := newReqIDs()
	for i := range 3 {
		f.ApplyBatch([]*raft.Log{{Index: uint64(i + 1), Type: raft.LogCommand, Data: encodeEntry(KindKV, 1, ids.new(), fmt.Appendf(nil, "k%d=v%d", i, i))}})
		// Readers see every applied entry, whether or not its transaction
		// has been committed by the timer yet.
		err := f.view(func(tx *bolt.Tx) error {
			for j := 0; j <= i; j++ {
				if v := tx.Bucket([]byte("reg")).Get(fmt.Appendf(nil, "k%d", j)); string(v) != fmt.Sprintf("v%d", j) {
					return fmt.Errorf("after apply %d: k%d = %q", i, j, v)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Closing with a transaction open neither hangs nor fails.
	f.ApplyBatch([]*raft.Log{{Index: 4, Type: raft.LogCommand, Data: encodeEntry(KindKV, 1, ids.new(), []byte("k9=v9"))}})
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
