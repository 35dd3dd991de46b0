package sitetest

import (
	"context"
	"testing"
	"time"

	"stillwater/bench/baresip"
)

// TestBaresipCall: two real SIP user agents register with digest
// authentication through the P-CSCF and complete a call with RTP both ways,
// over UDP and over TCP.
func TestBaresipCall(t *testing.T) {
	skipIfShort(t)
	s := newSite(t, siteOpts{nodes: 1, shared: imsShared})
	n := s.node(1)
	users := sipUsers(t, n, 6505553000, 4)
	for i, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			start := func(u int, auto bool) *baresip.UA {
				ua, err := baresip.Start(ctx, baresip.Options{
					User: users[u].Name, AuthUser: users[u].AuthName, Password: sipPassword, Domain: imsRealm,
					Outbound: "sip:" + n.sipTarget() + ";transport=" + transport, Transport: transport, AutoAnswer: auto,
				})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { ua.Close() })
				if err := ua.WaitRegistered(ctx); err != nil {
					t.Fatalf("%s did not register: %v", users[u].Name, err)
				}
				return ua
			}
			caller, callee := start(2*i, false), start(2*i+1, true)
			if err := caller.Dial(ctx, "sip:"+users[2*i+1].Name+"@"+imsRealm); err != nil {
				t.Fatal(err)
			}
			for _, ua := range []*baresip.UA{caller, callee} {
				if _, err := ua.WaitEvent(ctx, baresip.EventCallEstablished); err != nil {
					t.Fatalf("call not established: %v", err)
				}
			}
			if err := caller.Hangup(ctx); err != nil {
				t.Fatal(err)
			}
			for _, ua := range []*baresip.UA{caller, callee} {
				if _, err := ua.WaitEvent(ctx, baresip.EventCallClosed); err != nil {
					t.Fatalf("call not closed: %v", err)
				}
			}
		})
	}
}
