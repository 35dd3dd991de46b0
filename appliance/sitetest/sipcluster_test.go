package sitetest

import (
	"context"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"stillwater/bench/serverproc"
	"stillwater/bench/sipp"
)

// sipClusterShared shortens registrations so that expiry is seen within
// the test.
const sipClusterShared = imsShared + "reg_max_expires=20\n"

// TestSIPNodeLoss: a UE registered through node 1 stays reachable after
// node 1 is killed: its binding is served by node 2, a call from a UE on
// node 2 reaches it (through node 2's edge, over the flow node 1 anchored),
// and the binding still expires on time with its accepting node dead.
func TestSIPNodeLoss(t *testing.T) {
	skipIfShort(t)
	s := newSite(t, siteOpts{nodes: 3, shared: sipClusterShared})
	n1, n2 := s.node(1), s.node(2)
	users := sipUsers(t, n1, 6505552000, 2)
	callee, caller := users[0], users[1]
	aor := "sip:" + callee.Name + "@" + imsRealm
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	uas := sippCallee(t, ctx, n1.sipTarget(), "u1", callee, "uas_answer")
	waitFor(t, 30*time.Second, "the binding seen from node 2", func() error {
		b, err := n2.bindingsOf(aor)
		if err == nil && len(b) != 1 {
			err = errors.New("bindings: " + strconv.Itoa(len(b)))
		}
		return err
	})

	n1.kill()

	// The site elects new shard leaders; the caller registers through
	// node 2 once it can.
	target2 := net.JoinHostPort(n2.ip, strconv.Itoa(s.ports.sip))
	port, err := serverproc.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the caller registered through node 2", func() error {
		res, err := sipp.Run(ctx, sipp.Options{Scenario: "register", Target: target2, Transport: "u1", LocalPort: port,
			Users: []sipp.User{caller}, Dir: t.TempDir(), Timeout: 20 * time.Second})
		if err == nil && (res.Successful != 1 || res.ExitStatus != 0) {
			err = errors.New("register failed: " + res.Errors)
		}
		return err
	})
	if b, err := n2.bindingsOf(aor); err != nil || len(b) != 1 {
		t.Fatalf("callee's binding after node 1 died: %d, %v", len(b), err)
	}
	sippRun(t, ctx, sipp.Options{Scenario: "uac_call", Target: target2, Transport: "u1", LocalPort: port,
		Service: callee.Name, Users: []sipp.User{caller}})
	if err := uas.WaitLog(ctx, "answered", 1); err != nil {
		t.Fatalf("callee did not answer the call through node 2: %v", err)
	}

	// reg_max_expires is 20 s: the expiry timer pops on a surviving node.
	waitFor(t, 60*time.Second, "the callee's binding to expire", func() error {
		b, err := n2.bindingsOf(aor)
		if err == nil && len(b) != 0 {
			err = errors.New("binding still present")
		}
		return err
	})
}
