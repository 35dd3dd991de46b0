package sipp

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"stillwater/bench/kamailio"
	"stillwater/bench/serverproc"
)

const domain = "example.com"

// callee is one SIPp that registers a user and answers with an out-of-call
// scenario; want is a log line it must have written by the end.
type callee struct {
	ooc  string
	want string
}

func TestScenariosAgainstKamailio(t *testing.T) {
	users := map[string]string{"alice": "alice-secret", "carol": "carol-pw", "dave": "dave-pw"}
	for i := range 40 {
		users[fmt.Sprintf("callee%02d", i)] = fmt.Sprintf("pw%02d", i)
	}
	kam := kamailio.StartTest(t, kamailio.Options{Domain: domain, Users: users, NotRegisteredCode: 480})
	alice := User{Name: "alice", Password: users["alice"], Domain: domain}

	tests := []struct {
		name     string
		scenario string
		caller   User
		service  string // callee user; "" for a new callee per case
		vars     map[string]string
		callees  []callee
		log      []string // lines the caller must log
		udpOnly  bool
	}{
		{name: "register", scenario: "register", caller: alice},
		{name: "reregister", scenario: "reregister", caller: User{Name: "dave", Password: users["dave"], Domain: domain},
			log: []string{"registered dave", "refreshed dave", "deregistered dave"}},
		{name: "wrong password", scenario: "register_wrongpw", caller: User{Name: "alice", Password: "not-the-password", Domain: domain}},
		{name: "call", scenario: "uac_call", caller: alice, callees: []callee{{"uas_answer", "answered"}}},
		{name: "not registered", scenario: "uac_reject", caller: alice, service: "carol",
			vars: map[string]string{"expect": "480"}, log: []string{"final 480"}},
		{name: "unknown user", scenario: "uac_reject", caller: alice, service: "nobody",
			vars: map[string]string{"expect": "404"}, log: []string{"final 404"}},
		{name: "busy", scenario: "uac_reject", caller: alice, vars: map[string]string{"expect": "486"},
			callees: []callee{{"uas_busy", "busy"}}, log: []string{"final 486"}},
		{name: "cancel", scenario: "uac_cancel", caller: alice, callees: []callee{{"uas_ring_cancel", "cancelled"}}},
		{name: "message", scenario: "uac_message", caller: alice, callees: []callee{{"uas_message", "message"}}},
		{name: "prack", scenario: "uac_prack", caller: alice, callees: []callee{{"uas_prack", "prack"}}},
		{name: "fork", scenario: "uac_call", caller: alice,
			callees: []callee{{"uas_answer", "answered"}, {"uas_ring_cancel", "cancelled"}}},
	}
	next := 0
	for _, transport := range []string{"u1", "t1"} {
		for _, tc := range tests {
			t.Run(transport+"/"+tc.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				dir := t.TempDir()
				service := tc.service
				var procs []*Process
				if len(tc.callees) > 0 {
					service = fmt.Sprintf("callee%02d", next)
					next++
					for _, c := range tc.callees {
						procs = append(procs, startCallee(ctx, t, kam, dir, transport, User{Name: service, Password: users[service], Domain: domain}, c.ooc))
					}
				}
				res, err := Run(ctx, Options{
					Scenario: tc.scenario, Target: kam.HostPort(), Transport: transport, Service: service,
					Users: []User{tc.caller}, Vars: tc.vars, Dir: dir, Timeout: 30 * time.Second,
				})
				for i, p := range procs {
					if err := p.WaitLog(ctx, tc.callees[i].want, 1); err != nil {
						t.Error(err)
					}
					cres, err := p.Stop()
					if err != nil {
						t.Errorf("callee %d: %v", i, err)
					}
					if !hasLine(cres.Log, tc.callees[i].want) {
						t.Errorf("callee %d (%s) log %q: no %q line; errors: %s", i, tc.callees[i].ooc, cres.Log, tc.callees[i].want, cres.Errors)
					}
				}
				if err != nil {
					t.Fatalf("%v\nkamailio: %s", err, lastLines(kam.Log(), 20))
				}
				if res.Successful != 1 || res.Failed != 0 || res.ExitStatus != 0 {
					t.Fatalf("successful %d failed %d exit %d, want 1 0 0; errors: %s", res.Successful, res.Failed, res.ExitStatus, res.Errors)
				}
				for _, want := range tc.log {
					if !hasLine(res.Log, want) {
						t.Errorf("caller log %q: no %q line", res.Log, want)
					}
				}
			})
		}
	}

	// A MESSAGE over 1300 bytes sent over UDP: Kamailio (udp_mtu=1300,
	// udp_mtu_try_proto=TCP) carries it to the callee over TCP, as RFC 3261
	// §18.1.1 asks. The callee registers over UDP and a second SIPp
	// listens for TCP on the same port.
	t.Run("u1/large message", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		dir := t.TempDir()
		service := fmt.Sprintf("callee%02d", next)
		udp := startCallee(ctx, t, kam, dir, "u1", User{Name: service, Password: users[service], Domain: domain}, "uas_message")
		tcp, err := Start(ctx, Options{Scenario: "uas_message", Transport: "t1", LocalPort: udp.LocalPort(), Dir: dir, Timeout: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		res, err := Run(ctx, Options{Scenario: "uac_message_large", Target: kam.HostPort(), Transport: "u1", Service: service,
			Users: []User{alice}, Dir: dir, Timeout: 30 * time.Second})
		tres, terr := tcp.Wait()
		ures, _ := udp.Stop()
		if err != nil {
			t.Fatal(err)
		}
		if res.Successful != 1 || res.ExitStatus != 0 {
			t.Fatalf("successful %d failed %d exit %d; errors: %s", res.Successful, res.Failed, res.ExitStatus, res.Errors)
		}
		if terr != nil || tres.Successful != 1 || !hasLine(tres.Log, "TCP") {
			t.Fatalf("TCP callee: %v, successful %d, log %q, UDP callee log %q; errors: %s", terr, tres.Successful, tres.Log, ures.Log, tres.Errors)
		}
	})
}

// startCallee registers u from a SIPp that answers with ooc, and returns
// once the registration is done.
func startCallee(ctx context.Context, t *testing.T, kam *kamailio.Server, dir, transport string, u User, ooc string) *Process {
	t.Helper()
	p, err := Start(ctx, Options{
		Scenario: "uas_register", OOC: ooc, Target: kam.HostPort(), Transport: transport,
		Users: []User{u}, Duration: 50 * time.Second, Dir: dir, Timeout: 55 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop() })
	if err := p.WaitLog(ctx, "registered "+u.Name, 1); err != nil {
		t.Fatal(err)
	}
	return p
}

func hasLine(lines []string, substr string) bool {
	for _, l := range lines {
		if strings.Contains(l, substr) {
			return true
		}
	}
	return false
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

func TestOptionsErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no dir", Options{Scenario: "register"}, "Dir is required"},
		{"bad transport", Options{Scenario: "register", Dir: dir, Transport: "x9"}, "transport"},
		{"unknown scenario", Options{Scenario: "nope", Dir: dir}, `no embedded scenario "nope"`},
		{"bad target", Options{Scenario: "register", Dir: dir, Target: "nohostport"}, "target"},
		{"bad user", Options{Scenario: "register", Dir: dir, Target: "127.0.0.1:9", Users: []User{{Name: "a;b", Password: "p", Domain: "d"}}}, "fields must be"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Run(context.Background(), tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run: %v, want error containing %q", err, tc.want)
			}
		})
	}
}

// TestNoServer: a target that never answers ends in a failed call within
// the receive timeout, not a hang.
func TestNoServer(t *testing.T) {
	port, err := serverproc.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Run(ctx, Options{Scenario: "register", Target: fmt.Sprintf("127.0.0.1:%d", port), Dir: t.TempDir(),
		Users: []User{{Name: "a", Password: "p", Domain: domain}}, RecvTimeout: 2 * time.Second, Timeout: 20 * time.Second})
	if err == nil && (res.Failed != 1 || res.ExitStatus != 1) {
		t.Fatalf("result %+v, want one failed call", res)
	}
}

func TestParseFiles(t *testing.T) {
	dir := t.TempDir()
	stat := "StartTime;LastResetTime;SuccessfulCall(P);SuccessfulCall(C);FailedCall(P);FailedCall(C)\n" +
		"a;b;0;3;0;0\n" + "a;b;1;7;0;2\n"
	os.WriteFile(filepath.Join(dir, "stat.csv"), []byte(stat), 0o644)
	ok, failed, err := readStats(filepath.Join(dir, "stat.csv"))
	if err != nil || ok != 7 || failed != 2 {
		t.Fatalf("readStats = %d, %d, %v; want 7, 2", ok, failed, err)
	}
	var rtt strings.Builder
	rtt.WriteString("Date_ms;response_time_ms;rtd_no\n")
	for i := 1; i <= 100; i++ {
		fmt.Fprintf(&rtt, "%d.000;%d;1\n", i, i)
	}
	rtt.WriteString("5.0;42;2\n")
	os.WriteFile(filepath.Join(dir, "x_1_rtt.csv"), []byte(rtt.String()), 0o644)
	got, err := readRTT(dir, map[int]string{1: "inv"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Percentiles{
		"inv": {Count: 100, P50: 50 * time.Millisecond, P90: 90 * time.Millisecond, P99: 99 * time.Millisecond, Max: 100 * time.Millisecond},
		"2":   {Count: 1, P50: 42 * time.Millisecond, P90: 42 * time.Millisecond, P99: 42 * time.Millisecond, Max: 42 * time.Millisecond},
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %+v, want %+v", k, got[k], w)
		}
	}
	if n := rtdNames(`<send start_rtd="reg"/><recv rtd="reg"/><send start_rtd="x"/>`); n[1] != "reg" || n[2] != "x" || len(n) != 2 {
		t.Errorf("rtdNames = %v", n)
	}
}

func TestUsersFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.csv")
	err := writeUsers(path, []User{{Name: "alice", Password: "pw", Domain: "example.com"},
		{Name: "bob", Password: "x:y", Domain: "example.com", AuthName: "bob@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	want := "SEQUENTIAL\nalice;example.com;[authentication username=alice password=pw]\n" +
		"bob;example.com;[authentication username=bob@example.com password=x:y]\n"
	if string(got) != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}
