package enum

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"stillwater/sip/resolve"
	"stillwater/sip/resolve/dnstest"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// guideZone is the ENUM guide's BIND example (relative names under
// e164.arpa). In zone-file strings "\\" is one backslash on the wire.
var guideZone = func() []string {
	const trunk = `"!(^.*$)!sip:\\1@10.147.226.2!" .`
	recs := []string{
		`0.7.2.0.5.5.5.2.1.2 IN NAPTR 1 1 "u" "E2U+sip" ` + trunk,
		`0.7.2.0.5.5.5.2.1.2.1 IN NAPTR 1 1 "u" "E2U+sip" ` + trunk,
		`*.7.2.0.5.5.5.2.1.2 IN NAPTR 1 1 "u" "E2U+sip" "!(^.*$)!sip:+1\\1@ngv.example.com!" .`,
		`*.7.2.0.5.5.5.2.1.2.1 IN NAPTR 1 1 "u" "E2U+sip" "!(\\+^.*$)!sip:\\1@ngv.example.com!" .`,
		`*.7.2.0.5.5.5.2.1.2.1 IN NAPTR 2 1 "u" "E2U+sip" ` + trunk,
		`0.8.2.0.5.5.5.2.1.2 IN NAPTR 1 1 "u" "E2U+sip" "!(^.*$)!sip:+1\\1@ngv.example.com!" .`,
		`*.5.5.5.0.5.6 IN NAPTR 1 1 "u" "E2U+sip" "!(^.*$)!sip:\\1@ngv.example.com!" .`,
		`*.5.5.5.0.5.6.1 IN NAPTR 1 1 "u" "E2U+sip" "!^\\+1(.*$)!sip:\\1@ngv.example.com!" .`,
		`*.5.5.5.0.5.6.1 IN NAPTR 2 1 "u" "E2U+sip" ` + trunk,
		`* IN NAPTR 1 1 "u" "E2U+sip" ` + trunk,
	}
	// The guide's "NANP => SIP trunk" block: every ancestor of the names
	// above, and its wildcard, must route to the trunk too, because a
	// wildcard does not cover names below an existing node.
	for _, n := range []string{"2", "1.2", "2.1.2", "5.2.1.2", "5.5.2.1.2", "5.5.5.2.1.2", "0.5.5.5.2.1.2",
		"2.0.5.5.5.2.1.2", "7.2.0.5.5.5.2.1.2", "1", "2.1", "1.2.1", "2.1.2.1", "5.2.1.2.1", "5.5.2.1.2.1",
		"5.5.5.2.1.2.1", "0.5.5.5.2.1.2.1", "2.0.5.5.5.2.1.2.1", "7.2.0.5.5.5.2.1.2.1", "8.2.0.5.5.5.2.1.2",
		"6", "5.6", "5.0.5.6", "5.5.0.5.6", "5.5.5.0.5.6"} {
		recs = append(recs, n+` IN NAPTR 1 1 "u" "E2U+sip" `+trunk, `*.`+n+` IN NAPTR 1 1 "u" "E2U+sip" `+trunk)
	}
	for i, r := range recs {
		name, rest, _ := strings.Cut(r, " ")
		recs[i] = name + ".e164.arpa. 60 " + rest
	}
	return recs
}()

// newDNSService starts one ENUM server per zone and a Service over them.
func newDNSService(t *testing.T, opts Options, zones ...[]string) (*Service, []*dnstest.Server) {
	t.Helper()
	var servers []*dnstest.Server
	var addrs []netip.AddrPort
	for _, z := range zones {
		s := dnstest.Start(t, dnstest.Options{}, z...)
		servers = append(servers, s)
		addrs = append(addrs, s.Addr())
	}
	if opts.Timeout == 0 {
		opts.Timeout = time.Second
	}
	look, err := NewServers(addrs, resolve.Options{Logger: quietLogger()}, opts.Timeout)
	if err != nil {
		t.Fatalf("NewServers: %v", err)
	}
	opts.Servers = look
	opts.Logger = quietLogger()
	opts.Rand = rand.NewPCG(1, 2)
	svc, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return svc, servers
}

type translateCase struct {
	name    string
	number  string
	want    Result
	wantErr error
}

// runTranslate checks each case; for a DNS-backed svc a want without
// Queries expects one query.
func runTranslate(t *testing.T, svc *Service, cases []translateCase) {
	t.Helper()
	for _, tc := range cases {
		if svc.servers != nil && tc.want.Queries == 0 {
			tc.want.Queries = 1
		}
		t.Run(tc.name, func(t *testing.T) {
			got, err := svc.Translate(context.Background(), tc.number)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Translate(%q) = %+v, %v; want error %v", tc.number, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Translate(%q): %v", tc.number, err)
			}
			if got != tc.want {
				t.Fatalf("Translate(%q) = %+v; want %+v", tc.number, got, tc.want)
			}
		})
	}
}

func terminal(uri string) Result { return Result{URI: uri, Terminal: true} }

// hops sets the expected DNS query count of a DNS result.
func hops(r Result, n int) Result { r.Queries = n; return r }

func TestTranslateGuideRules(t *testing.T) {
	svc, _ := newDNSService(t, Options{}, guideZone)
	runTranslate(t, svc, []translateCase{
		{"demo number exact", "2125550270", terminal("sip:2125550270@10.147.226.2"), nil},
		{"demo number with +1", "+12125550270", terminal("sip:+12125550270@10.147.226.2"), nil},
		{"external block wildcard", "2125550275", terminal("sip:+12125550275@ngv.example.com"), nil},
		// The guide's order-1 pattern (\+^.*$) can never match, so order 2 wins.
		{"external block +1 falls to order 2", "+12125550275", terminal("sip:+12125550275@10.147.226.2"), nil},
		{"external number exact", "2125550280", terminal("sip:+12125550280@ngv.example.com"), nil},
		{"internal numbers", "6505551234", terminal("sip:6505551234@ngv.example.com"), nil},
		{"internal numbers dialled with +1", "+16505551234", terminal("sip:6505551234@ngv.example.com"), nil},
		{"visual separators stripped", "+1 (650) 555-1234", terminal("sip:6505551234@ngv.example.com"), nil},
		{"NANP default to trunk", "+447700900123", terminal("sip:+447700900123@10.147.226.2"), nil},
		{"trunk for sibling of a block", "2125550199", terminal("sip:2125550199@10.147.226.2"), nil},
	})
}

func TestTranslateRuleSelection(t *testing.T) {
	zone := []string{
		// order, then preference (lower first); other services, unknown
		// flags and bad regexps are skipped.
		`1.1.1.1.e164.arpa. 60 IN NAPTR 10 10 "u" "E2U+email:mailto" "!^.*$!mailto:a@example.com!" .`,
		`1.1.1.1.e164.arpa. 60 IN NAPTR 10 20 "u" "E2U+sip" "!^.*$!sip:pref20@example.com!" .`,
		`1.1.1.1.e164.arpa. 60 IN NAPTR 10 15 "u" "E2U+sip" "!^.*$!sip:pref15@example.com!" .`,
		`1.1.1.1.e164.arpa. 60 IN NAPTR 5 10 "s" "E2U+sip" "!^.*$!sip:badflag@example.com!" .`,
		`1.1.1.1.e164.arpa. 60 IN NAPTR 5 10 "u" "E2U+sip" "!^(.*$!sip:badre@example.com!" .`,
		`1.1.1.1.e164.arpa. 60 IN NAPTR 20 1 "u" "E2U+sip" "!^.*$!sip:order20@example.com!" .`,
		// a non-matching higher-priority rule gives way to the next
		`2.2.2.2.e164.arpa. 60 IN NAPTR 10 10 "u" "E2U+sip" "!^\\+44(.*)$!sip:\\1@uk.example.com!" .`,
		`2.2.2.2.e164.arpa. 60 IN NAPTR 10 20 "U" "e2u+SIP" "!^\\+(.*)$!sip:\\1@any.example.com!" .`,
		// other delimiters, the i flag and an escaped delimiter
		`3.3.3.3.e164.arpa. 60 IN NAPTR 10 10 "u" "E2U+sip+voice" "/^\\+(3*)$/sip:\\1@slash.example.com;x=a\\/b/" .`,
		`4.4.4.4.e164.arpa. 60 IN NAPTR 10 10 "u" "E2U+pstn:sip" "#^\\+(4*)$#sip:\\1@hash.example.com#i" .`,
		// RFC 4769 answers carrying number portability data
		`5.5.5.5.e164.arpa. 60 IN NAPTR 10 10 "u" "E2U+pstn:tel" "!^(.*)$!tel:\\1;rn=+16505550000;npdi!" .`,
		`*.3.2.1.2.4.2.e164.arpa. 60 IN NAPTR 1 1 "u" "E2U+pstn:tel" "!(^.*$)!sip:\\1;npdi;rn=+242123@ngv.example.com!" .`,
		`*.3.2.1.2.4.2.1.e164.arpa. 60 IN NAPTR 1 1 "u" "E2U+pstn:tel" "!(^.*$)!sip:\\1;npdi@ngv.example.com!" .`,
		// answers that are not URIs
		`6.6.6.6.e164.arpa. 60 IN NAPTR 10 10 "u" "E2U+sip" "!^.*$!not a uri!" .`,
		`7.7.7.7.e164.arpa. 60 IN NAPTR 10 10 "u" "E2U+sip" "!^.*$!mailto:x@example.com!" .`,
		// names that exist without usable records
		`8.8.8.8.e164.arpa. 60 IN NAPTR 10 10 "u" "E2U+email:mailto" "!^.*$!mailto:a@example.com!" .`,
		`9.9.9.9.e164.arpa. 60 IN NAPTR 10 10 "u" "E2U+sip" "!^\\+1(.*)$!sip:\\1@example.com!" .`,
		`0.0.0.0.e164.arpa. 60 IN TXT "no naptr here"`,
	}
	svc, _ := newDNSService(t, Options{}, zone)
	runTranslate(t, svc, []translateCase{
		{"order then preference", "+1111", terminal("sip:pref15@example.com"), nil},
		{"first matching rule", "+2222", terminal("sip:2222@any.example.com"), nil},
		{"slash delimiter with escape", "+3333", terminal("sip:3333@slash.example.com;x=a/b"), nil},
		{"hash delimiter and i flag", "+4444", terminal("sip:4444@hash.example.com"), nil},
		{"tel answer with rn and npdi", "+5555",
			Result{URI: "tel:+5555;rn=+16505550000;npdi", RoutingNumber: "+16505550000", NPDI: true, Terminal: true}, nil},
		{"guide portability rule", "2421234567",
			Result{URI: "sip:2421234567;npdi;rn=+242123@ngv.example.com", RoutingNumber: "+242123", NPDI: true, Terminal: true}, nil},
		{"guide portability npdi only", "+12421234567",
			Result{URI: "sip:+12421234567;npdi@ngv.example.com", NPDI: true, Terminal: true}, nil},
		{"rn on input without npdi is replaced", "+5555;rn=+1999",
			Result{URI: "tel:+5555;rn=+16505550000;npdi", RoutingNumber: "+16505550000", NPDI: true, Terminal: true}, nil},
		{"npdi on input keeps its own data", "+5555;npdi;rn=+1999",
			Result{URI: "tel:+5555;rn=+16505550000;npdi", RoutingNumber: "+1999", NPDI: true, Terminal: true, NPIgnored: true}, nil},
		{"npdi on input, answer without np data", "+1111;npdi", terminal("sip:pref15@example.com"), nil},
		{"answer not a URI", "+6666", Result{}, ErrInvalidAnswer},
		{"answer of another scheme", "+7777", Result{}, ErrInvalidAnswer},
		{"only other services", "+8888", Result{}, ErrNotFound},
		{"no rule matches", "+9999", Result{}, ErrNotFound},
		{"no NAPTR at name (NODATA)", "+0000", Result{}, ErrNotFound},
		{"no such name (NXDOMAIN)", "+123456", Result{}, ErrNotFound},
		{"letters", "+1650abc", Result{}, ErrNotNumber},
		{"empty", "", Result{}, ErrNotNumber},
		{"only plus", "+", Result{}, ErrNotNumber},
	})
}

func TestTranslateOverrideNPDI(t *testing.T) {
	zone := []string{`5.5.5.5.e164.arpa. 60 IN NAPTR 10 10 "u" "E2U+pstn:tel" "!^(.*)$!tel:\\1;rn=+16505550000;npdi!" .`}
	svc, _ := newDNSService(t, Options{OverrideNPDI: true}, zone)
	runTranslate(t, svc, []translateCase{
		{"override replaces npdi data", "+5555;npdi;rn=+1999",
			Result{URI: "tel:+5555;rn=+16505550000;npdi", RoutingNumber: "+16505550000", NPDI: true, Terminal: true}, nil},
	})
}

func TestTranslateGlobalOnly(t *testing.T) {
	zone := []string{`*.e164.arpa. 60 IN NAPTR 1 1 "u" "E2U+sip" "!^(.*)$!sip:\\1@example.com!" .`}
	svc, _ := newDNSService(t, Options{GlobalOnly: true}, zone)
	runTranslate(t, svc, []translateCase{
		{"global number looked up", "+16505551234", terminal("sip:+16505551234@example.com"), nil},
		{"local number refused", "6505551234", Result{}, ErrNotGlobal},
	})
	svc2, _ := newDNSService(t, Options{}, zone)
	runTranslate(t, svc2, []translateCase{
		{"local number allowed by default", "6505551234", terminal("sip:6505551234@example.com"), nil},
	})
}

func TestTranslateNonTerminal(t *testing.T) {
	zone := []string{
		// +1234 → key +5678 → terminal rule applied to the original AUS.
		`4.3.2.1.e164.arpa. 60 IN NAPTR 10 10 "" "E2U+sip" "!^.*$!+5678!" .`,
		`8.7.6.5.e164.arpa. 60 IN NAPTR 10 10 "u" "E2U+sip" "!^\\+(.*)$!sip:\\1@chain.example.com!" .`,
		// +4321 → replacement field names the next domain.
		`1.2.3.4.e164.arpa. 60 IN NAPTR 10 10 "" "E2U+sip" "" next.enum.example.com.`,
		`next.enum.example.com. 60 IN NAPTR 10 10 "u" "E2U+sip" "!^\\+(.*)$!sip:\\1@next.example.com!" .`,
		// +111 ↔ +222: a loop.
		`1.1.1.e164.arpa. 60 IN NAPTR 10 10 "" "E2U+sip" "!^.*$!+222!" .`,
		`2.2.2.e164.arpa. 60 IN NAPTR 10 10 "" "E2U+sip" "!^.*$!+111!" .`,
		// +31 → +32 → ... → +37: longer than the query bound.
		`1.3.e164.arpa. 60 IN NAPTR 10 10 "" "E2U+sip" "!^.*$!+32!" .`,
		`2.3.e164.arpa. 60 IN NAPTR 10 10 "" "E2U+sip" "!^.*$!+33!" .`,
		`3.3.e164.arpa. 60 IN NAPTR 10 10 "" "E2U+sip" "!^.*$!+34!" .`,
		`4.3.e164.arpa. 60 IN NAPTR 10 10 "" "E2U+sip" "!^.*$!+35!" .`,
		`5.3.e164.arpa. 60 IN NAPTR 10 10 "" "E2U+sip" "!^.*$!+36!" .`,
		`6.3.e164.arpa. 60 IN NAPTR 10 10 "u" "E2U+sip" "!^.*$!sip:end@example.com!" .`,
		// +41 → next key whose name does not exist.
		`1.4.e164.arpa. 60 IN NAPTR 10 10 "" "E2U+sip" "!^.*$!+49!" .`,
		// +51 → output that is neither number nor domain.
		`1.5.e164.arpa. 60 IN NAPTR 10 10 "" "E2U+sip" "!^.*$!sip:x@y!" .`,
	}
	svc, srv := newDNSService(t, Options{}, zone)
	runTranslate(t, svc, []translateCase{
		{"chain via regexp output", "+1234", hops(terminal("sip:1234@chain.example.com"), 2), nil},
		{"chain via replacement field", "+4321", hops(terminal("sip:4321@next.example.com"), 2), nil},
		{"loop guard", "+111", Result{}, ErrLoop},
		{"query bound", "+31", Result{}, ErrLoop},
		{"chain to missing name", "+41", Result{}, ErrNotFound},
		{"chain to garbage", "+51", Result{}, ErrInvalidAnswer},
	})
	if n := srv[0].Count("6.3.e164.arpa", ""); n != 0 {
		t.Errorf("query bound: 6.3.e164.arpa queried %d times; want 0 (bound is %d)", n, DefaultMaxQueries)
	}
	// A larger bound lets the long chain finish.
	long, _ := newDNSService(t, Options{MaxQueries: 6}, zone)
	runTranslate(t, long, []translateCase{
		{"longer bound", "+31", hops(terminal("sip:end@example.com"), 6), nil},
	})
}

func TestTranslateFailover(t *testing.T) {
	zoneA := []string{`*.e164.arpa. 60 IN NAPTR 1 1 "u" "E2U+sip" "!^(.*)$!sip:\\1@first.example.com!" .`}
	zoneB := []string{`*.e164.arpa. 60 IN NAPTR 1 1 "u" "E2U+sip" "!^(.*)$!sip:\\1@second.example.com!" .`}
	zoneC := []string{`*.e164.arpa. 60 IN NAPTR 1 1 "u" "E2U+sip" "!^(.*)$!sip:\\1@third.example.com!" .`}
	const name = "4.3.2.1.e164.arpa"
	for _, tc := range []struct {
		name    string
		modes   []dnstest.Mode
		want    string
		wantErr error
		asked   []int // queries each server should see
	}{
		{"primary answers", []dnstest.Mode{dnstest.Answer, dnstest.Answer, dnstest.Answer}, "sip:+1234@first.example.com", nil, []int{1, 0, 0}},
		{"primary times out", []dnstest.Mode{dnstest.Drop, dnstest.Answer, dnstest.Answer}, "sip:+1234@second.example.com", nil, []int{1, 1, 0}},
		{"primary SERVFAIL", []dnstest.Mode{dnstest.ServFail, dnstest.Answer, dnstest.Answer}, "sip:+1234@second.example.com", nil, []int{1, 1, 0}},
		{"tertiary", []dnstest.Mode{dnstest.ServFail, dnstest.Drop, dnstest.Answer}, "sip:+1234@third.example.com", nil, []int{1, 1, 1}},
		{"all fail", []dnstest.Mode{dnstest.Drop, dnstest.ServFail, dnstest.ServFail}, "", ErrUnavailable, []int{1, 1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc, srv := newDNSService(t, Options{Timeout: 150 * time.Millisecond}, zoneA, zoneB, zoneC)
			for i, m := range tc.modes {
				srv[i].SetMode(m)
			}
			got, err := svc.Translate(context.Background(), "+1234")
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Translate = %+v, %v; want %v", got, err, tc.wantErr)
				}
			} else if err != nil || got.URI != tc.want {
				t.Fatalf("Translate = %+v, %v; want %s", got, err, tc.want)
			}
			for i, want := range tc.asked {
				if n := srv[i].Count(name, ""); (n > 0) != (want > 0) {
					t.Errorf("server %d asked %d times; want %d", i, n, want)
				}
			}
		})
	}
}

func TestTranslateNotFoundStopsFailover(t *testing.T) {
	empty := []string{`1.e164.arpa. 60 IN NAPTR 1 1 "u" "E2U+sip" "!^(.*)$!sip:\\1@one.example.com!" .`}
	full := []string{`*.e164.arpa. 60 IN NAPTR 1 1 "u" "E2U+sip" "!^(.*)$!sip:\\1@second.example.com!" .`}
	svc, srv := newDNSService(t, Options{}, empty, full)
	if _, err := svc.Translate(context.Background(), "+99"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Translate: %v; want ErrNotFound", err)
	}
	if n := srv[1].Count("9.9.e164.arpa", ""); n != 0 {
		t.Fatalf("secondary asked %d times after an NXDOMAIN; want 0", n)
	}
}

func TestTranslateCancelled(t *testing.T) {
	zone := []string{`*.e164.arpa. 60 IN NAPTR 1 1 "u" "E2U+sip" "!^(.*)$!sip:\\1@x.example.com!" .`}
	svc, _ := newDNSService(t, Options{}, zone)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := svc.Translate(ctx, "+1"); !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Translate with cancelled context: %v; want ErrUnavailable wrapping context.Canceled", err)
	}
}

func TestTranslateFile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "enum.json"))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(Options{File: data, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	runTranslate(t, svc, []translateCase{
		{"demo number", "2125550270", terminal("sip:2125550270@10.147.226.2"), nil},
		{"external block", "2125550275", terminal("sip:+12125550275@ngv.example.com"), nil},
		{"external block with +1", "+12125550275", terminal("sip:+12125550275@ngv.example.com"), nil},
		{"external number", "2125550280", terminal("sip:+12125550280@ngv.example.com"), nil},
		{"internal", "6505551234", terminal("sip:6505551234@ngv.example.com"), nil},
		{"internal dialled with +1", "+1 650 555-1234", terminal("sip:6505551234@ngv.example.com"), nil},
		{"default block", "+447700900123", terminal("sip:+447700900123@10.147.226.2"), nil},
		{"portability block", "+12421234567",
			Result{URI: "sip:+12421234567;npdi;rn=+242123@ngv.example.com", RoutingNumber: "+242123", NPDI: true, Terminal: true}, nil},
		{"not a number", "alice", Result{}, ErrNotNumber},
	})

	noDefault, err := New(Options{File: []byte(`{"number_blocks":[{"prefix":"+1","regex":"!^\\+1(555.*)$!sip:\\1@x.example.com!"}]}`), Logger: quietLogger()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	runTranslate(t, noDefault, []translateCase{
		{"no block", "+44123", Result{}, ErrNotFound},
		{"block regex does not match", "+1650", Result{}, ErrNotFound},
		{"block matches", "+15551", terminal("sip:5551@x.example.com"), nil},
	})
}

func TestNew(t *testing.T) {
	srv := dnstest.Start(t, dnstest.Options{})
	look, err := NewServers([]netip.AddrPort{srv.Addr()}, resolve.Options{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	four := []NAPTRLookuper{look[0], look[0], look[0], look[0]}
	for _, tc := range []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{"nothing configured", Options{}, "no ENUM server or enum.json"},
		{"too many servers", Options{Servers: four}, "at most 3"},
		{"resolver plus three servers", Options{Resolver: look[0], Servers: four[:3]}, "at most 3"},
		{"nil server", Options{Servers: []NAPTRLookuper{nil}}, "Servers[0] is nil"},
		{"bad file", Options{File: []byte(`{}`)}, "number_blocks"},
		{"servers win over a bad file", Options{Servers: look, File: []byte(`{}`), Logger: quietLogger()}, ""},
		{"resolver alone", Options{Resolver: look[0]}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opts)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("New: %v; want error containing %q", err, tc.wantErr)
			}
		})
	}
}

func BenchmarkTranslateFile(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "enum.json"))
	if err != nil {
		b.Fatal(err)
	}
	svc, err := New(Options{File: data, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := svc.Translate(ctx, "+16505551234"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTranslateDNSCached measures a translation whose NAPTR answer is
// in the resolver's cache: the per-call cost without network I/O.
func BenchmarkTranslateDNSCached(b *testing.B) {
	srv := dnstest.Start(b, dnstest.Options{}, guideZone...)
	look, err := NewServers([]netip.AddrPort{srv.Addr()}, resolve.Options{Logger: quietLogger()}, time.Second)
	if err != nil {
		b.Fatal(err)
	}
	svc, err := New(Options{Servers: look, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := svc.Translate(ctx, "+16505551234"); err != nil {
			b.Fatal(err)
		}
	}
}

func TestTranslateConcurrent(t *testing.T) {
	svc, _ := newDNSService(t, Options{}, guideZone)
	numbers := map[string]string{
		"+16505551234": "sip:6505551234@ngv.example.com",
		"2125550275":   "sip:+12125550275@ngv.example.com",
		"+447700900":   "sip:+447700900@10.147.226.2",
	}
	errs := make(chan error, 8*len(numbers))
	done := make(chan struct{})
	for range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for n, want := range numbers {
				got, err := svc.Translate(context.Background(), n)
				if err == nil && got.URI != want {
					err = errors.New(n + ": got " + got.URI + ", want " + want)
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	for range 8 {
		<-done
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
