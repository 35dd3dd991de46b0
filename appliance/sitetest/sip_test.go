package sitetest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"stillwater/bench/serverproc"
	"stillwater/bench/sipp"
)

// sipPassword is every SIP test user's password.
const sipPassword = "sip-secret-7"

// sipUsers provisions count users from first and returns them.
func sipUsers(t *testing.T, n *node, first, count int) []sipp.User {
	t.Helper()
	rng := strconv.Itoa(first)
	if count > 1 {
		rng += ".." + strconv.Itoa(first+count-1)
	}
	if out, errOut, err := n.cli("users", "create", rng, imsRealm, sipPassword); err != nil {
		t.Fatalf("users create: %v\n%s%s", err, out, errOut)
	}
	var us []sipp.User
	for i := range count {
		name := strconv.Itoa(first + i)
		us = append(us, sipp.User{Name: name, Password: sipPassword, Domain: imsRealm, AuthName: name + "@" + imsRealm})
	}
	return us
}

func (n *node) sipTarget() string {
	return net.JoinHostPort(n.ip, strconv.Itoa(n.site.ports.sip))
}

// sippRun runs one SIPp scenario to completion and fails the test unless
// every call succeeded.
func sippRun(t *testing.T, ctx context.Context, o sipp.Options) sipp.Result {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.Timeout == 0 {
		o.Timeout = 40 * time.Second
	}
	res, err := sipp.Run(ctx, o)
	if err != nil {
		t.Fatalf("%s: %v", o.Scenario, err)
	}
	if res.Successful < max(o.Calls, 1) || res.Failed != 0 || res.ExitStatus != 0 {
		t.Fatalf("%s: successful %d failed %d exit %d; errors: %s", o.Scenario, res.Successful, res.Failed, res.ExitStatus, res.Errors)
	}
	return res
}

// sippCallee registers u from a SIPp that answers requests with ooc and
// returns once the binding exists.
func sippCallee(t *testing.T, ctx context.Context, target, transport string, u sipp.User, ooc string) *sipp.Process {
	t.Helper()
	p, err := sipp.Start(ctx, sipp.Options{
		Scenario: "uas_register", OOC: ooc, Target: target, Transport: transport,
		Users: []sipp.User{u}, Duration: 50 * time.Second, Dir: t.TempDir(), Timeout: 55 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop() })
	if err := p.WaitLog(ctx, "registered "+u.Name, 1); err != nil {
		t.Fatalf("callee %s: %v", u.Name, err)
	}
	return p
}

// sippCaller registers u from a fixed local port, so that the calls it
// then makes from that port arrive over the flow it registered (IMS edges
// accept originating requests only from registered flows).
func sippCaller(t *testing.T, ctx context.Context, target, transport string, u sipp.User) int {
	t.Helper()
	port, err := serverproc.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	sippRun(t, ctx, sipp.Options{Scenario: "register", Target: target, Transport: transport, LocalPort: port, Users: []sipp.User{u}})
	return port
}

func hasLogLine(lines []string, substr string) bool {
	for _, l := range lines {
		if strings.Contains(l, substr) {
			return true
		}
	}
	return false
}

// TestSIPCore runs the SIP acceptance scenarios against an all-in-one node
// over UDP and TCP: registration with digest authentication, calls through
// the P-CSCF and S-CSCF, failures relayed, CANCEL, MESSAGE, PRACK, forking
// and a large MESSAGE over UDP.
func TestSIPCore(t *testing.T) {
	skipIfShort(t)
	s := newSite(t, siteOpts{nodes: 1, shared: imsShared})
	n := s.node(1)
	users := sipUsers(t, n, 6505551000, 40)
	target := n.sipTarget()
	next := 0
	user := func() sipp.User { u := users[next]; next++; return u }

	type callee struct{ ooc, want string }
	tests := []struct {
		name     string
		scenario string
		callees  []callee
		vars     map[string]string
		log      []string // lines the caller must log
		noCallee bool     // the callee exists but is not registered
	}{
		{name: "call", scenario: "uac_call", callees: []callee{{"uas_answer", "answered"}}},
		{name: "not registered", scenario: "uac_reject", noCallee: true, vars: map[string]string{"expect": "480"}, log: []string{"final 480"}},
		{name: "busy", scenario: "uac_reject", vars: map[string]string{"expect": "486"}, callees: []callee{{"uas_busy", "busy"}}, log: []string{"final 486"}},
		{name: "cancel", scenario: "uac_cancel", callees: []callee{{"uas_ring_cancel", "cancelled"}}},
		{name: "message", scenario: "uac_message", callees: []callee{{"uas_message", "message"}}},
		{name: "prack", scenario: "uac_prack", callees: []callee{{"uas_prack", "prack"}}},
		{name: "fork", scenario: "uac_call", callees: []callee{{"uas_answer", "answered"}, {"uas_ring_cancel", "cancelled"}}},
	}
	for _, transport := range []string{"u1", "t1"} {
		t.Run(transport+"/register", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			sippRun(t, ctx, sipp.Options{Scenario: "register", Target: target, Transport: transport, Users: []sipp.User{user()}})
		})
		t.Run(transport+"/refresh and de-register", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			u := user()
			res := sippRun(t, ctx, sipp.Options{Scenario: "reregister", Target: target, Transport: transport, Users: []sipp.User{u}})
			for _, want := range []string{"registered", "refreshed", "deregistered"} {
				if !hasLogLine(res.Log, want+" "+u.Name) {
					t.Errorf("log %q: no %q", res.Log, want)
				}
			}
			if b := n.bindings(t, "sip:"+u.Name+"@"+imsRealm); len(b) != 0 {
				t.Errorf("bindings after de-registration: %v", b)
			}
		})
		t.Run(transport+"/wrong password", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			u := user()
			u.Password = "not-" + sipPassword
			sippRun(t, ctx, sipp.Options{Scenario: "register_wrongpw", Target: target, Transport: transport, Users: []sipp.User{u}})
		})
		for _, tc := range tests {
			t.Run(transport+"/"+tc.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
				defer cancel()
				caller, callee := user(), user()
				var procs []*sipp.Process
				for _, c := range tc.callees {
					procs = append(procs, sippCallee(t, ctx, target, transport, callee, c.ooc))
				}
				port := sippCaller(t, ctx, target, transport, caller)
				res := sippRun(t, ctx, sipp.Options{Scenario: tc.scenario, Target: target, Transport: transport, LocalPort: port,
					Service: callee.Name, Users: []sipp.User{caller}, Vars: tc.vars})
				for _, want := range tc.log {
					if !hasLogLine(res.Log, want) {
						t.Errorf("caller log %q: no %q", res.Log, want)
					}
				}
				for i, p := range procs {
					// The caller may finish first (a CANCEL is answered
					// upstream at once), so wait for the callee's line.
					werr := p.WaitLog(ctx, tc.callees[i].want, 1)
					cres, err := p.Stop()
					if err != nil {
						t.Errorf("callee %d: %v", i, err)
					}
					if werr != nil {
						t.Errorf("callee %d (%s) log %q: no %q line (%v); errors: %s", i, tc.callees[i].ooc, cres.Log, tc.callees[i].want, werr, cres.Errors)
					}
				}
			})
		}
	}
	t.Run("u1/large message", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		caller, callee := user(), user()
		udp := sippCallee(t, ctx, target, "u1", callee, "uas_message")
		tcp, err := sipp.Start(ctx, sipp.Options{Scenario: "uas_message", Transport: "t1", LocalPort: udp.LocalPort(), Dir: t.TempDir(), Timeout: 40 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		port := sippCaller(t, ctx, target, "u1", caller)
		sippRun(t, ctx, sipp.Options{Scenario: "uac_message_large", Target: target, Transport: "u1", LocalPort: port,
			Service: callee.Name, Users: []sipp.User{caller}})
		tres, terr := tcp.Wait()
		udp.Stop()
		if terr != nil || tres.Successful != 1 || !hasLogLine(tres.Log, "TCP") {
			t.Fatalf("the large MESSAGE did not reach the callee over TCP: %v, successful %d, log %q; errors: %s", terr, tres.Successful, tres.Log, tres.Errors)
		}
	})
}

// bindings lists an IMPU's bindings through Sprout's management API.
func (n *node) bindings(t *testing.T, impu string) []json.RawMessage {
	t.Helper()
	b, err := n.bindingsOf(impu)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (n *node) bindingsOf(impu string) ([]json.RawMessage, error) {
	url := fmt.Sprintf("http://%s/impu/%s/bindings", net.JoinHostPort(n.ip, strconv.Itoa(n.site.ports.sproutMgmt)), impu)
	r, err := do(http.MethodGet, url, "", nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if r.code == http.StatusNotFound {
		return nil, nil
	}
	if r.code != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, r)
	}
	var body struct {
		Bindings map[string]json.RawMessage `json:"bindings"`
	}
	if err := json.Unmarshal([]byte(r.body), &body); err != nil {
		return nil, fmt.Errorf("GET %s: %w in %s", url, err, r.body)
	}
	var out []json.RawMessage
	for _, b := range body.Bindings {
		out = append(out, b)
	}
	return out, nil
}
