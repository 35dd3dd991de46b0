package proxy

import (
	"log/slog"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"stillwater/sip/siptest/endpoint"
)

// countingRig is a core whose service answers 200 to everything and counts
// the requests it sees, and a UE to send them.
func countingRig(t *testing.T) (*rig, *endpoint.Endpoint, *atomic.Int32) {
	calls := new(atomic.Int32)
	svc := ServiceFunc(func(tx *Txn) {
		calls.Add(1)
		tx.Reply(200, "OK")
	})
	r := newRig(t, Config{}, "svc", map[string]Service{"svc": svc})
	return r, endpoint.New(t, endpoint.RemoteIP, "ue"), calls
}

// TestRetransmissionAnsweredFromCache: a non-INVITE request retransmitted
// over UDP after its final response gets the same response again, without
// reaching the service a second time, although its transaction has ended.
func TestRetransmissionAnsweredFromCache(t *testing.T) {
	r, ue, calls := countingRig(t)
	msg := simple(ue, "MESSAGE", "rtx1", "sip:bob@example.com")

	ue.Send(r.udpAddr(), msg)
	first := ue.Final("rtx1", sip.MESSAGE)
	if first.StatusCode != 200 {
		t.Fatalf("first answer %d", first.StatusCode)
	}
	if n := r.core.answered.len(); n != 1 {
		t.Fatalf("%d answers kept, want 1", n)
	}
	ue.Send(r.udpAddr(), msg)
	again := ue.Final("rtx1", sip.MESSAGE)
	if again.String() != first.String() {
		t.Fatalf("retransmission answered\n%s\nwant\n%s", again, first)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("service saw the request %d times", n)
	}

	// A new transaction (new branch) is processed.
	ue.Send(r.udpAddr(), simple(ue, "MESSAGE", "rtx2", "sip:bob@example.com"))
	if res := ue.Final("rtx2", sip.MESSAGE); res.StatusCode != 200 || calls.Load() != 2 {
		t.Fatalf("new request: %d, service calls %d", res.StatusCode, calls.Load())
	}
}

func TestAnswerCacheExpiry(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newAnswerCache(32*time.Second, func() time.Time { return now })
	c.add("a", []byte("A"))
	now = now.Add(10 * time.Second)
	c.add("b", []byte("B"))
	c.add("a", []byte("A2")) // the same key again (a new request reusing it)
	cases := []struct {
		at   time.Duration // since the start
		key  string
		want string
	}{
		{20 * time.Second, "a", "A2"},
		{20 * time.Second, "b", "B"},
		{33 * time.Second, "a", "A2"}, // the first add expired, the second not
		{42 * time.Second, "a", ""},
		{42 * time.Second, "b", ""},
	}
	start := time.Unix(1000, 0)
	for _, tc := range cases {
		now = start.Add(tc.at)
		got, ok := c.lookup(tc.key)
		if string(got) != tc.want || ok != (tc.want != "") {
			t.Errorf("at %v %s = %q %v, want %q", tc.at, tc.key, got, ok, tc.want)
		}
	}
	if n := c.len(); n != 0 {
		t.Errorf("%d entries left after expiry", n)
	}
}

// TestAcceptedInviteAbsorbsRetransmission: once an INVITE is answered with
// a 2xx its transaction ends, and a retransmission of the INVITE is absorbed
// rather than processed as a new call.
func TestAcceptedInviteAbsorbsRetransmission(t *testing.T) {
	r, ue, calls := countingRig(t)
	inv := invite(ue, "acc1", "sip:bob@example.com")
	ue.Send(r.udpAddr(), inv)
	if res := ue.Final("acc1", sip.INVITE); res.StatusCode != 200 {
		t.Fatalf("answer %d", res.StatusCode)
	}
	ue.Send(r.udpAddr(), inv)
	// The answer to a request sent after the retransmission is the event
	// to wait on: the socket's datagrams are read in order.
	ue.Send(r.udpAddr(), simple(ue, "OPTIONS", "acc2", "sip:bob@example.com"))
	ue.Final("acc2", sip.OPTIONS)
	if n := calls.Load(); n != 2 {
		t.Fatalf("service saw %d requests, want the INVITE once and the OPTIONS", n)
	}
	for _, m := range ue.Drain() {
		if res := m.Res(); res != nil && res.CallID() != nil && res.CallID().Value() == "acc1" {
			t.Fatalf("retransmitted INVITE answered: %d", res.StatusCode)
		}
	}
}

// TestAcceptedInviteReleased: once an INVITE received over UDP is answered
// with a 2xx, nothing keeps its transaction, and so the service's state, in
// memory. sipgo's accepted state would have kept it for Timer L (32 s).
func TestAcceptedInviteReleased(t *testing.T) {
	released := make(chan struct{})
	svc := ServiceFunc(func(tx *Txn) {
		runtime.AddCleanup(tx, func(ch chan struct{}) { close(ch) }, released)
		tx.Reply(200, "OK")
	})
	r := newRig(t, Config{}, "svc", map[string]Service{"svc": svc})
	ue := endpoint.New(t, endpoint.RemoteIP, "ue")
	ue.Send(r.udpAddr(), invite(ue, "rel1", "sip:bob@example.com"))
	if res := ue.Final("rel1", sip.INVITE); res.StatusCode != 200 {
		t.Fatalf("answer %d", res.StatusCode)
	}
	waitCollected(t, released)
}

// TestAcceptedBranchReleased: the 2xx to an INVITE the core sent over UDP
// is not kept once relayed. sipgo's client transaction would have kept it,
// with the request, for Timer M (32 s).
func TestAcceptedBranchReleased(t *testing.T) {
	uas := endpoint.New(t, endpoint.RemoteIP, "uas")
	released := make(chan struct{})
	target := mustURI(t, uas.URI("bob"))
	svc := ServiceFunc(func(tx *Txn) {
		tx.Forward(Fork{Targets: []Target{{URI: &target}}, OnResponse: func(res *sip.Response) {
			if res.StatusCode == 200 {
				runtime.AddCleanup(res, func(ch chan struct{}) { close(ch) }, released)
			}
		}})
	})
	r := newRig(t, Config{}, "fwd", map[string]Service{"fwd": svc})
	caller := endpoint.New(t, endpoint.RemoteIP, "ue")
	caller.Send(r.udpAddr(), invite(caller, "relb", "sip:bob@example.com"))
	uas.Answer(uas.Request(sip.INVITE), 200, "OK")
	caller.Response("relb", sip.INVITE, 200)
	waitCollected(t, released)
}

// waitCollected triggers collections until released is closed by a cleanup;
// the deadline only turns a leak into a failure rather than a hang, well
// inside the 32 s a transaction timer would keep the object.
func waitCollected(t *testing.T, released <-chan struct{}) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		runtime.GC()
		select {
		case <-released:
			return
		case <-deadline:
			t.Fatal("still reachable after the call was answered")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestClaimTaken: a 2xx taken from its transaction reaches the branch
// still listening for it; once the branch has gone (its transaction failed
// as the 2xx arrived) it is left to the stateless relay.
func TestClaimTaken(t *testing.T) {
	req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "bob", Host: "example.com"})
	for _, gone := range []bool{false, true} {
		c := &Core{}
		w := &acceptWatch{tx: sip.NewClientTx("z9hG4bKclaim__INVITE", req, nil, slog.New(slog.DiscardHandler)), accepted: make(chan *sip.Response, 1)}
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		if c.claimTaken(res) {
			t.Fatal("claimed a response nothing took")
		}
		c.taken.Store(res, w)
		if gone {
			c.unwatchAccept(w)
		}
		if got := c.claimTaken(res); got == gone {
			t.Errorf("gone=%v: claimed %v", gone, got)
		}
		if !gone && <-w.accepted != res {
			t.Error("the branch got another response")
		}
		if _, left := c.taken.Load(res); left {
			t.Errorf("gone=%v: claim left its entry", gone)
		}
	}
}
