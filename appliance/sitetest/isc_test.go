package sitetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"stillwater/bench/sipp"
)

// iscShared shortens the application-server timeouts so that the default
// handling tests stay fast.
const iscShared = imsShared + "session_continued_timeout_ms=1000\nsession_terminated_timeout_ms=1000\n"

// TestISC runs application-server chains (ISC) against a real node: test
// ASs on 127.0.0.5 named by the users' iFCs proxy, answer, reject,
// redirect, act as B2BUA or stay silent; and third-party registration.
func TestISC(t *testing.T) {
	skipIfShort(t)
	s := newSite(t, siteOpts{nodes: 1, shared: iscShared})
	n := s.node(1)
	next := 6505556000
	number := func() int { next++; return next }
	orig := func(priority int, server string) ifcSpec {
		return ifcSpec{priority: priority, method: "INVITE", sessionCase: 0, server: server}
	}
	term := func(priority int, server string) ifcSpec {
		return ifcSpec{priority: priority, method: "INVITE", sessionCase: 1, server: server}
	}

	t.Run("orig and term chains", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		as := newTestAS(t, "127.0.0.5")
		// Listed out of priority order: the chain follows Priority.
		caller := ifcUser(t, n, number(), ifcDocument(mmtelIFC(0, 0),
			orig(2, as.uri(asProxy, "o2")), orig(1, as.uri(asProxy, "o1"))))
		callee := ifcUser(t, n, number(), ifcDocument(term(2, as.uri(asProxy, "t2")),
			term(1, as.uri(asProxy, "t1")), mmtelIFC(3, 1)))
		a, b := registeredUE(t, ctx, n, caller), registeredUE(t, ctx, n, callee)
		c, err := a.call(ctx, b.aor())
		if err != nil {
			t.Fatal(err)
		}
		if c.final.StatusCode != 200 {
			t.Fatalf("call: %d %s, want 200", c.final.StatusCode, c.final.Reason)
		}
		hits := as.hits.all()
		var labels []string
		for _, h := range hits {
			labels = append(labels, h.label())
		}
		if want := []string{"o1", "o2", "t1", "t2"}; !slices.Equal(labels, want) {
			t.Fatalf("the AS saw %v, want %v", labels, want)
		}
		for i, h := range hits {
			served, sescase := a.aor(), "orig"
			if i >= 2 {
				served, sescase = b.aor(), "term"
			}
			checkServedUser(t, h, served, sescase, "reg")
		}
		invites := b.invites.all()
		if len(invites) != 1 {
			t.Fatalf("callee received %d INVITEs, want 1", len(invites))
		}
		if got, want := headerValues(invites[0], "X-AS"), []string{"o1", "o2", "t1", "t2"}; !slices.Equal(got, want) {
			t.Errorf("callee's INVITE went through ASs %v, want %v", got, want)
		}
		if invites[0].GetHeader("P-Served-User") != nil {
			t.Errorf("callee's INVITE carries P-Served-User %q", invites[0].GetHeader("P-Served-User").Value())
		}
		if _, err := b.acks.wait(ctx, "the callee's ACK", atLeast[*sip.Request](1)); err != nil {
			t.Fatal(err)
		}
		if err := a.hangUp(ctx, c); err != nil {
			t.Fatal(err)
		}
		if _, err := b.byes.wait(ctx, "the callee's BYE", atLeast[*sip.Request](1)); err != nil {
			t.Fatal(err)
		}
	})

	// The caller's only originating AS handles the call itself.
	uas := []struct {
		name   string
		mode   string
		status int
		check  func(t *testing.T, as *testAS, res *sip.Response)
	}{
		{name: "AS answers", mode: asAnswer, status: 200, check: func(t *testing.T, as *testAS, res *sip.Response) {
			if ct := res.Contact(); ct == nil || ct.Address.Host != as.ip || ct.Address.Port != as.port {
				t.Errorf("200 Contact %v, want the AS", res.Contact())
			}
		}},
		{name: "AS rejects", mode: asReject, status: 404},
		{name: "AS redirects", mode: asRedirect, status: 302, check: func(t *testing.T, as *testAS, res *sip.Response) {
			if ct := res.Contact(); ct == nil || ct.Address.String() != "sip:6505556999@"+imsRealm {
				t.Errorf("302 Contact %v, want sip:6505556999@%s", res.Contact(), imsRealm)
			}
		}},
	}
	for _, tc := range uas {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			as := newTestAS(t, "127.0.0.5")
			as.redirectTo("x", "sip:6505556999@"+imsRealm)
			caller := ifcUser(t, n, number(), ifcDocument(orig(0, as.uri(tc.mode, "x"))))
			callee := sipUsers(t, n, number(), 1)[0]
			a, b := registeredUE(t, ctx, n, caller), registeredUE(t, ctx, n, callee)
			c, err := a.call(ctx, b.aor())
			if err != nil {
				t.Fatal(err)
			}
			if c.final.StatusCode != tc.status {
				t.Fatalf("call: %d %s, want %d", c.final.StatusCode, c.final.Reason, tc.status)
			}
			if tc.check != nil {
				tc.check(t, as, c.final)
			}
			hits := as.hits.all()
			if len(hits) != 1 {
				t.Fatalf("the AS saw %d requests, want 1", len(hits))
			}
			checkServedUser(t, hits[0], a.aor(), "orig", "reg")
			if c.leg != nil {
				if _, err := as.acks.wait(ctx, "the AS's ACK", atLeast[*sip.Request](1)); err != nil {
					t.Fatal(err)
				}
				if err := a.hangUp(ctx, c); err != nil {
					t.Fatal(err)
				}
				if got := len(as.byes.all()); got != 1 {
					t.Errorf("the AS saw %d BYEs, want 1", got)
				}
			}
			// The AS answered before anything went on towards the callee.
			if got := len(b.invites.all()); got != 0 {
				t.Errorf("the callee was sent %d INVITEs", got)
			}
		})
	}

	t.Run("B2BUA", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		as := newTestAS(t, "127.0.0.5")
		caller := ifcUser(t, n, number(), ifcDocument(orig(0, as.uri(asB2BUA, "x"))))
		callee := sipUsers(t, n, number(), 1)[0] // default MMTEL iFCs
		a, b := registeredUE(t, ctx, n, caller), registeredUE(t, ctx, n, callee)
		c, err := a.call(ctx, b.aor())
		if err != nil {
			t.Fatal(err)
		}
		if c.final.StatusCode != 200 {
			t.Fatalf("call: %d %s, want 200", c.final.StatusCode, c.final.Reason)
		}
		hits := as.hits.all()
		if len(hits) != 1 {
			t.Fatalf("the AS saw %d INVITEs, want 1 (its own must not come back to it)", len(hits))
		}
		checkServedUser(t, hits[0], a.aor(), "orig", "reg")
		invites := b.invites.all()
		if len(invites) != 1 {
			t.Fatalf("callee received %d INVITEs, want 1", len(invites))
		}
		in := invites[0]
		if in.CallID().Value() == c.invite.CallID().Value() {
			t.Errorf("the callee's INVITE has the caller's Call-ID: not a new call from the B2BUA")
		}
		if got := headerValues(in, "X-AS"); !slices.Equal(got, []string{"b2bua"}) {
			t.Errorf("callee's INVITE X-AS %v, want [b2bua]", got)
		}
		if got := in.From().Address.String(); got != a.aor() {
			t.Errorf("callee's INVITE From %s, want %s", got, a.aor())
		}
		if _, err := b.acks.wait(ctx, "the callee's ACK (from the AS)", atLeast[*sip.Request](1)); err != nil {
			t.Fatal(err)
		}
		if _, err := as.acks.wait(ctx, "the AS's ACK (from the caller)", atLeast[*sip.Request](1)); err != nil {
			t.Fatal(err)
		}
		if err := a.hangUp(ctx, c); err != nil {
			t.Fatal(err)
		}
		if _, err := b.byes.wait(ctx, "the callee's BYE, bridged by the AS", atLeast[*sip.Request](1)); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("unresponsive AS, session continued", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		as := newTestAS(t, "127.0.0.5")
		caller := ifcUser(t, n, number(), ifcDocument(orig(1, as.uri(asSilent, "x")), orig(2, as.uri(asProxy, "after"))))
		callee := sipUsers(t, n, number(), 1)[0]
		a, b := registeredUE(t, ctx, n, caller), registeredUE(t, ctx, n, callee)
		c, err := a.call(ctx, b.aor())
		if err != nil {
			t.Fatal(err)
		}
		if c.final.StatusCode != 200 {
			t.Fatalf("call: %d %s, want 200 (the silent AS skipped)", c.final.StatusCode, c.final.Reason)
		}
		var labels []string
		for _, h := range as.hits.all() {
			labels = append(labels, h.label())
		}
		if want := []string{"x", "after"}; !slices.Equal(labels, want) {
			t.Errorf("the AS saw %v, want %v", labels, want)
		}
		invites := b.invites.all()
		if len(invites) != 1 {
			t.Fatalf("callee received %d INVITEs, want 1", len(invites))
		}
		if got := headerValues(invites[0], "X-AS"); !slices.Equal(got, []string{"after"}) {
			t.Errorf("callee's INVITE X-AS %v, want [after]", got)
		}
		if err := a.hangUp(ctx, c); err != nil {
			t.Fatal(err)
		}
		if _, err := b.byes.wait(ctx, "the callee's BYE", atLeast[*sip.Request](1)); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("unresponsive AS, session terminated", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		as := newTestAS(t, "127.0.0.5")
		silent := orig(1, as.uri(asSilent, "x"))
		silent.terminated = true
		caller := ifcUser(t, n, number(), ifcDocument(silent, orig(2, as.uri(asProxy, "after"))))
		callee := sipUsers(t, n, number(), 1)[0]
		a, b := registeredUE(t, ctx, n, caller), registeredUE(t, ctx, n, callee)
		c, err := a.call(ctx, b.aor())
		if err != nil {
			t.Fatal(err)
		}
		if code := c.final.StatusCode; code != 408 && (code < 500 || code > 599) {
			t.Fatalf("call: %d %s, want 408 or 5xx", code, c.final.Reason)
		}
		var labels []string
		for _, h := range as.hits.all() {
			labels = append(labels, h.label())
		}
		if want := []string{"x"}; !slices.Equal(labels, want) {
			t.Errorf("the AS saw %v, want %v (the chain ends at the silent AS)", labels, want)
		}
		if got := len(b.invites.all()); got != 0 {
			t.Errorf("the callee was sent %d INVITEs", got)
		}
	})

	t.Run("third-party register", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		as := newTestAS(t, "127.0.0.5")
		withBody := ifcSpec{priority: 0, method: "REGISTER", sessionCase: -1, server: as.uri(asRegister, "c"),
			serviceInfo: "presence-of-c", includeReq: true, includeRes: true}
		bare := ifcSpec{priority: 0, method: "REGISTER", sessionCase: -1, server: as.uri(asRegister, "d")}
		users := map[string]sipp.User{
			"c": ifcUser(t, n, number(), ifcDocument(withBody, mmtelIFC(1, 0))),
			"d": ifcUser(t, n, number(), ifcDocument(bare)),
		}
		ues := map[string]*testUE{}
		for label, u := range users {
			ues[label] = registeredUE(t, ctx, n, u)
		}
		for _, round := range []struct {
			name    string
			expires int // 0: de-register
		}{{"register", 300}, {"de-register", 0}} {
			if round.expires == 0 {
				for _, ue := range ues {
					if err := ue.register(ctx, 0); err != nil {
						t.Fatal(err)
					}
				}
			}
			want := 1
			if round.expires == 0 {
				want = 2
			}
			for label, ue := range ues {
				hits, err := as.hits.wait(ctx, round.name+" of "+label, func(all []asHit) bool { return len(hitsOf(all, label)) >= want })
				if err != nil {
					t.Fatal(err)
				}
				got := hitsOf(hits, label)
				if len(got) != want {
					t.Fatalf("%s: the AS saw %d REGISTERs for %s, want %d", round.name, len(got), ue.aor(), want)
				}
				checkThirdParty(t, got[want-1].req, ue.aor(), round.expires, label == "c")
			}
		}
	})

	t.Run("third-party register refused, session terminated", func(t *testing.T) {
		// An AS that refuses the third-party REGISTER of an iFC with
		// SESSION_TERMINATED has the user de-registered by the network
		// (TS 24.229 §5.4.1.7).
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		as := newTestAS(t, "127.0.0.5")
		refusing := ifcSpec{priority: 0, method: "REGISTER", sessionCase: -1, server: as.uri(asFailRegister, "e"), terminated: true}
		u := ifcUser(t, n, number(), ifcDocument(refusing))
		ue := registeredUE(t, ctx, n, u)
		if _, err := as.hits.wait(ctx, "the refused third-party REGISTER", func(all []asHit) bool { return len(hitsOf(all, "e")) >= 1 }); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 30*time.Second, "the network to de-register "+ue.aor(), func() error {
			b, err := n.bindingsOf(ue.aor())
			if err == nil && len(b) != 0 {
				err = fmt.Errorf("%d bindings left", len(b))
			}
			return err
		})
	})
}

// atLeast is a wait condition: at least n received.
func atLeast[T any](n int) func([]T) bool { return func(all []T) bool { return len(all) >= n } }

// checkServedUser checks the P-Served-User an AS was sent.
func checkServedUser(t *testing.T, h asHit, served, sescase, regstate string) {
	t.Helper()
	psu := h.req.GetHeader("P-Served-User")
	if psu == nil {
		t.Errorf("%s: no P-Served-User", h.service)
		return
	}
	v := psu.Value()
	if !strings.HasPrefix(v, "<"+served+">") || !strings.Contains(v, "sescase="+sescase) || !strings.Contains(v, "regstate="+regstate) {
		t.Errorf("%s: P-Served-User %q, want <%s>;sescase=%s;regstate=%s", h.service, v, served, sescase, regstate)
	}
}

// checkThirdParty checks a third-party REGISTER: To the IMPU, Expires
// (0 for a de-registration) and, when the iFC asked for them, a
// multipart/mixed body with the ServiceInfo and the REGISTER and its
// response as message/sip parts.
func checkThirdParty(t *testing.T, req *sip.Request, impu string, expires int, withBody bool) {
	t.Helper()
	if got := req.To().Address.String(); got != impu {
		t.Errorf("third-party REGISTER To %s, want %s", got, impu)
	}
	e := req.GetHeader("Expires")
	if e == nil {
		t.Fatalf("third-party REGISTER for %s has no Expires", impu)
	}
	got, err := strconv.Atoi(strings.TrimSpace(e.Value()))
	if err != nil || (expires == 0) != (got == 0) || (expires > 0 && got > expires) {
		t.Errorf("third-party REGISTER for %s: Expires %q, want %d", impu, e.Value(), expires)
	}
	if !withBody {
		if len(req.Body()) != 0 {
			t.Errorf("third-party REGISTER for %s has a body the iFC did not ask for: %q", impu, req.Body())
		}
		return
	}
	ct := req.ContentType()
	if ct == nil {
		t.Fatalf("third-party REGISTER for %s has no Content-Type", impu)
	}
	mt, params, err := mime.ParseMediaType(ct.Value())
	if err != nil || mt != "multipart/mixed" {
		t.Fatalf("third-party REGISTER for %s: Content-Type %q, want multipart/mixed", impu, ct.Value())
	}
	mr := multipart.NewReader(bytes.NewReader(req.Body()), params["boundary"])
	type part struct{ ct, body string }
	var parts []part
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("third-party REGISTER body for %s: %v", impu, err)
		}
		b, _ := io.ReadAll(p)
		parts = append(parts, part{p.Header.Get("Content-Type"), string(b)})
	}
	if len(parts) != 3 {
		t.Fatalf("third-party REGISTER body for %s has %d parts, want 3: %+v", impu, len(parts), parts)
	}
	if parts[0].ct != "application/3gpp-ims+xml" || !strings.Contains(parts[0].body, "<service-info>presence-of-c</service-info>") {
		t.Errorf("first part %+v, want the ServiceInfo", parts[0])
	}
	if parts[1].ct != "message/sip" || !strings.HasPrefix(parts[1].body, "REGISTER ") || !strings.Contains(parts[1].body, impu) {
		t.Errorf("second part %+v, want the REGISTER", parts[1])
	}
	if parts[2].ct != "message/sip" || !strings.HasPrefix(parts[2].body, "SIP/2.0 200") {
		t.Errorf("third part %+v, want the 200 OK", parts[2])
	}
	if expires == 0 && !strings.Contains(parts[1].body, "Expires: 0") {
		t.Errorf("de-registration's REGISTER part has no Expires: 0:\n%s", parts[1].body)
	}
}
