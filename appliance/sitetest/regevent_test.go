package sitetest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// TestRegEvent: a UE subscribes to its own registration state through the
// P-CSCF; the S-CSCF's NOTIFYs reach it over its flow with the full
// reginfo, and de-registration is notified.
func TestRegEvent(t *testing.T) {
	skipIfShort(t)
	s := newSite(t, siteOpts{nodes: 1, shared: imsShared})
	n := s.node(1)
	u := sipUsers(t, n, 6505554000, 1)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ue := newTestUE(t, u, n.sipTarget())
	if err := ue.register(ctx, 300); err != nil {
		t.Fatal(err)
	}
	sub := ue.request(sip.SUBSCRIBE, ue.aor(), sip.NewHeader("Event", "reg"),
		sip.NewHeader("Accept", "application/reginfo+xml"), sip.NewHeader("Expires", "600"))
	res, err := ue.do(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE: %d %s", res.StatusCode, res.Reason)
	}
	first, err := ue.waitNotify(ctx, `state="full"`, ue.aor(), `state="active"`)
	if err != nil {
		t.Fatal(err)
	}
	if ss := first.GetHeader("Subscription-State"); ss == nil || !strings.HasPrefix(ss.Value(), "active") {
		t.Errorf("first NOTIFY Subscription-State %v, want active", ss)
	}
	if ct := first.ContentType(); ct == nil || ct.Value() != "application/reginfo+xml" {
		t.Errorf("first NOTIFY Content-Type %v", ct)
	}
	if err := ue.register(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := ue.waitNotify(ctx, `state="terminated"`); err != nil {
		t.Fatal(err)
	}
}
