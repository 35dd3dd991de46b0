package pcscf

import (
	"fmt"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// TestFlowTableSweep: registrations of UEs that never come back are
// dropped from the flow table once they have expired.
func TestFlowTableSweep(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := New(Options{Clock: func() time.Time { return now }})
	ok := func(expires int) *sip.Response {
		res := sip.NewResponse(200, "OK")
		c := &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", Host: "192.0.2.1"}, Params: sip.NewParams()}
		c.Params.Add("expires", fmt.Sprint(expires))
		res.AppendHeader(c)
		return res
	}
	for i := range sweepEvery - 1 {
		p.learn(fmt.Sprintf("flow%d", i), fmt.Sprintf("sip:%d@example.com", i), ok(60))
	}
	now = now.Add(2 * time.Minute)
	p.learn("fresh", "sip:fresh@example.com", ok(600))
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.flows) != 1 || p.flows["fresh"] == nil {
		t.Fatalf("flow table after the sweep holds %d flows, want only the fresh one", len(p.flows))
	}
}
