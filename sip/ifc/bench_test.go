package ifc

import (
	"fmt"
	"strings"
	"testing"
)

// benchProfile is a realistic 10-iFC profile: MMTEL, voicemail,
// third-party registration, messaging, presence, video, header and SDP
// triggers, with the INVITE matching four of them.
func benchProfile(b *testing.B) []IFC {
	var sb strings.Builder
	sb.WriteString("<ServiceProfile>")
	add := func(prio int, trigger, as string) {
		fmt.Fprintf(&sb, "<InitialFilterCriteria><Priority>%d</Priority><TriggerPoint>%s</TriggerPoint>"+
			"<ApplicationServer><ServerName>%s</ServerName><DefaultHandling>0</DefaultHandling></ApplicationServer></InitialFilterCriteria>", prio, trigger, as)
	}
	add(0, dnf(spt("0", false, method("INVITE")), spt("0", false, sessCase(0))), "sip:mmtel.example.com")
	add(1, dnf(spt("0", false, method("INVITE")), spt("0", false, sessCase(1))), "sip:mmtel.example.com")
	add(2, dnf(spt("0", false, regMethod(0, 2))), "sip:presence.example.com")
	add(3, dnf(spt("0", false, method("MESSAGE"))), "sip:ipsmgw.example.com")
	add(4, cnf(spt("0", false, method("SUBSCRIBE")), spt("1", false, header("Event", "^presence"))), "sip:presence.example.com")
	add(5, cnf(spt("0", false, method("INVITE")), spt("1", false, sessCase(2))), "sip:vm.example.com")
	add(6, cnf(spt("0", false, method("INVITE")), spt("1", false, sdp("m", "^video"))), "sip:video.example.com")
	add(7, cnf(spt("0", false, header("Accept-Contact", `icsi\.mmtel`)), spt("1", true, ruri(`^conf\.`))), "sip:icsi.example.com")
	add(8, dnf(spt("0", false, method("OPTIONS"))), "sip:options.example.com")
	add(9, dnf(spt("0", false, header("P-Asserted-Identity", `^&lt;tel:\+1650`)), spt("1", false, sessCase(4))), "sip:cdiv.example.com")
	sb.WriteString("</ServiceProfile>")
	p, errs := Parse([]byte(sb.String()))
	if len(errs) > 0 || len(p.IFCs) != 10 {
		b.Fatalf("bench profile: %d iFCs, %v", len(p.IFCs), errs)
	}
	return p.IFCs
}

func BenchmarkMatch(b *testing.B) {
	ifcs := benchProfile(b)
	req := parseRequest(b, invite)
	if got := len(Match(ifcs, req, origReg)); got != 4 {
		b.Fatalf("%d iFCs match, want 4", got)
	}
	b.ReportAllocs()
	for b.Loop() {
		Match(ifcs, req, origReg)
	}
}

func BenchmarkParse(b *testing.B) {
	doc := readTestdata(b, "service_profile.xml")
	b.ReportAllocs()
	for b.Loop() {
		Parse(doc)
	}
}
