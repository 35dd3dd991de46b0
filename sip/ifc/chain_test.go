package ifc

import (
	"slices"
	"strings"
	"testing"
)

func servers(ifcs []IFC) []string {
	var out []string
	for _, f := range ifcs {
		out = append(out, f.AS.ServerName)
	}
	return out
}

func mustParse(t testing.TB, doc string) []IFC {
	t.Helper()
	p, errs := Parse([]byte(doc))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return p.IFCs
}

func TestConfigIFCsSharedSets(t *testing.T) {
	sets, errs := ParseSet(readTestdata(t, "shared_ifcs.xml"))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	profile, errs := Parse(readTestdata(t, "service_profile.xml"))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	cfg := &Config{Shared: sets.Shared}
	tests := []struct {
		name     string
		ids      []uint32
		want     []string
		wantErrs []string
	}{
		{"none", nil, []string{"sip:mmtel.example.com", "sip:presence.example.com;lr", "sips:video-as.example.com", "sip:vm.example.com:5060;transport=tcp", "sip:mmtel.example.com"}, nil},
		// Set 20's priority 0 iFC sorts after the profile's priority 0 one;
		// set 10's priority 2 between the profile's 1 and 3; set 20's 9 last.
		{"as the profile names them", []uint32{10, 20}, []string{"sip:mmtel.example.com", "sip:presence.example.com", "sip:presence.example.com;lr", "sip:ipsmgw.example.com", "sips:video-as.example.com", "sip:vm.example.com:5060;transport=tcp", "sip:mmtel.example.com", "sip:audit.example.com"}, nil},
		{"empty set", []uint32{30}, []string{"sip:mmtel.example.com", "sip:presence.example.com;lr", "sips:video-as.example.com", "sip:vm.example.com:5060;transport=tcp", "sip:mmtel.example.com"}, nil},
		{"unknown set", []uint32{99, 10}, []string{"sip:mmtel.example.com", "sip:presence.example.com;lr", "sip:ipsmgw.example.com", "sips:video-as.example.com", "sip:vm.example.com:5060;transport=tcp", "sip:mmtel.example.com"}, []string{"shared iFC set 99 is not configured (shared_ifcs.xml)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := profile
			p.SharedIFCSetIDs = tt.ids
			got, errs := cfg.IFCs(p)
			if !slices.Equal(servers(got), tt.want) {
				t.Errorf("got %q\nwant %q", servers(got), tt.want)
			}
			if !slices.Equal(errorStrings(errs), tt.wantErrs) {
				t.Errorf("errors %q, want %q", errorStrings(errs), tt.wantErrs)
			}
		})
	}
	// The profile's own slice is left alone.
	if got := servers(profile.IFCs); len(got) != 5 {
		t.Errorf("profile changed: %q", got)
	}
}

func TestConfigNext(t *testing.T) {
	fallback, errs := ParseSet(readTestdata(t, "fallback_ifcs.xml"))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	inviteOnly := func(as string, prio string) string {
		return "<InitialFilterCriteria><Priority>" + prio + "</Priority><TriggerPoint>" + dnf(spt("0", false, method("INVITE"))) +
			"</TriggerPoint><ApplicationServer><ServerName>" + as + "</ServerName></ApplicationServer></InitialFilterCriteria>"
	}
	messageOnly := "<InitialFilterCriteria><TriggerPoint>" + dnf(spt("0", false, method("MESSAGE"))) + "</TriggerPoint>" +
		"<ApplicationServer><ServerName>sip:ipsmgw.example.com</ServerName></ApplicationServer></InitialFilterCriteria>"
	const dummy = "sip:dummy.invalid"
	profile := func(ifcs ...string) []IFC {
		return mustParse(t, "<ServiceProfile>"+strings.Join(ifcs, "")+"</ServiceProfile>")
	}
	tests := []struct {
		name       string
		ifcs       []IFC
		cfg        Config
		req        string
		want       []string
		wantReject bool
	}{
		{"chain in priority order", profile(inviteOnly("sip:b.example.com", "2"), inviteOnly("sip:a.example.com", "1"), messageOnly),
			Config{}, invite, []string{"sip:a.example.com", "sip:b.example.com"}, false},
		{"no match, no fallback", profile(messageOnly), Config{Fallback: fallback.Fallback}, invite, nil, false},
		{"no match, rejected", profile(messageOnly), Config{RejectIfNoMatch: true}, invite, nil, true},
		{"no match, fallback applies", profile(messageOnly), Config{Fallback: fallback.Fallback, ApplyFallback: true, RejectIfNoMatch: true},
			invite, []string{"sip:mmtel.example.com"}, false},
		{"no iFCs at all, fallback applies", nil, Config{Fallback: fallback.Fallback, ApplyFallback: true}, invite, []string{"sip:mmtel.example.com"}, false},
		{"a match, fallback does not apply", profile(inviteOnly("sip:a.example.com", "0")), Config{Fallback: fallback.Fallback, ApplyFallback: true},
			invite, []string{"sip:a.example.com"}, false},
		{"fallback matches nothing either, rejected", profile(), Config{Fallback: fallback.Fallback, ApplyFallback: true, RejectIfNoMatch: true},
			messageReq, nil, true},
		{"dummy AS matches, invokes nothing, suppresses fallback and reject", profile(inviteOnly(dummy, "0")),
			Config{Fallback: fallback.Fallback, ApplyFallback: true, RejectIfNoMatch: true, DummyAppServer: dummy}, invite, nil, false},
		{"dummy AS passed over in a chain", profile(inviteOnly("sip:a.example.com", "0"), inviteOnly(" SIP:DUMMY.invalid ", "1"), inviteOnly("sip:b.example.com", "2")),
			Config{DummyAppServer: dummy}, invite, []string{"sip:a.example.com", "sip:b.example.com"}, false},
		{"dummy AS unset invokes it", profile(inviteOnly(dummy, "0")), Config{}, invite, []string{dummy}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := parseRequest(t, tt.req)
			var got []string
			var pos Position
			for range len(tt.ifcs) + len(tt.cfg.Fallback) + 1 {
				f, next, ok := tt.cfg.Next(tt.ifcs, pos, req, origReg)
				if next.Next < pos.Next && next.Fallback == pos.Fallback {
					t.Fatalf("position went back from %+v to %+v", pos, next)
				}
				pos = next
				if !ok {
					break
				}
				got = append(got, f.AS.ServerName)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("invoked %q, want %q", got, tt.want)
			}
			if r := tt.cfg.Reject(pos); r != tt.wantReject {
				t.Errorf("Reject = %v, want %v (at %+v)", r, tt.wantReject, pos)
			}
			// Invocations walks the same way in one call.
			all, matched := tt.cfg.Invocations(tt.ifcs, req, origReg)
			if !slices.Equal(servers(all), tt.want) {
				t.Errorf("Invocations %q, want %q", servers(all), tt.want)
			}
			if matched != pos.Matched {
				t.Errorf("Invocations matched %v, Next %v", matched, pos.Matched)
			}
		})
	}
}

// An AS may change the request; evaluation resumes after the iFC that sent
// it there, against the request as it came back (TS 24.229 §5.4.3.2 step 4).
func TestConfigNextRequestChangedByAS(t *testing.T) {
	ifcs := mustParse(t, "<ServiceProfile>"+
		"<InitialFilterCriteria><Priority>0</Priority><TriggerPoint>"+dnf(spt("0", false, method("INVITE")))+"</TriggerPoint>"+
		"<ApplicationServer><ServerName>sip:a.example.com</ServerName></ApplicationServer></InitialFilterCriteria>"+
		"<InitialFilterCriteria><Priority>1</Priority><TriggerPoint>"+dnf(spt("0", false, header("P-Tag", "^set-by-a$")))+"</TriggerPoint>"+
		"<ApplicationServer><ServerName>sip:b.example.com</ServerName></ApplicationServer></InitialFilterCriteria>"+
		"</ServiceProfile>")
	cfg := &Config{}
	first, pos, ok := cfg.Next(ifcs, Position{}, parseRequest(t, invite), origReg)
	if !ok || first.AS.ServerName != "sip:a.example.com" {
		t.Fatalf("first = %q, %v", first.AS.ServerName, ok)
	}
	returned := parseRequest(t, strings.Replace(invite, "Max-Forwards: 70\n", "Max-Forwards: 69\nP-Tag: set-by-a\n", 1))
	second, pos, ok := cfg.Next(ifcs, pos, returned, origReg)
	if !ok || second.AS.ServerName != "sip:b.example.com" {
		t.Fatalf("second = %q, %v", second.AS.ServerName, ok)
	}
	if _, _, ok := cfg.Next(ifcs, pos, returned, origReg); ok {
		t.Error("third iFC found")
	}
}
