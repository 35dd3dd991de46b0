package ifc

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// parseRequest reads a request written with \n line ends.
func parseRequest(t testing.TB, raw string) *sip.Request {
	t.Helper()
	raw = strings.ReplaceAll(raw, "\n", "\r\n")
	if head, body, ok := strings.Cut(raw, "\r\n\r\n"); ok {
		raw = fmt.Sprintf("%s\r\nContent-Length: %d\r\n\r\n%s", head, len(body), body)
	}
	msg, err := sip.ParseMessage([]byte(raw))
	if err != nil {
		t.Fatalf("parse request: %v", err)
	}
	req, ok := msg.(*sip.Request)
	if !ok {
		t.Fatalf("not a request: %T", msg)
	}
	return req
}

const invite = `INVITE sip:6505550002@example.com:5060;transport=tcp SIP/2.0
Via: SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bK776asdhds
Max-Forwards: 70
To: <sip:6505550002@example.com>
f: "Alice" <sip:6505550001@example.com>;tag=1928301774
Call-ID: a84b4c76e66710@pc33.example.com
CSeq: 314159 INVITE
Contact: <sip:6505550001@10.0.0.1:5060;transport=tcp>
k: timer, 100rel
P-Asserted-Identity: <sip:6505550001@example.com>, <tel:+16505550001>
Accept-Contact: *;+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel"
Content-Type: application/sdp

v=0
o=alice 2890844526 2890844526 IN IP4 10.0.0.1
s=-
c=IN IP4 10.0.0.1
t=0 0
m=audio 49170 RTP/AVP 0
m=video 51372 RTP/AVP 31
a=rtpmap:31 H261/90000
`

const messageReq = `MESSAGE tel:+16505550002;phone-context=example.com SIP/2.0
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhdt
Max-Forwards: 70
To: <tel:+16505550002>
From: <sip:6505550001@example.com>;tag=49583
Call-ID: asd88asd77a@10.0.0.1
CSeq: 1 MESSAGE
Content-Type: text/plain

hello
`

const multipartInvite = `INVITE sip:conf.example.com SIP/2.0
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhdu
Max-Forwards: 70
To: <sip:conf.example.com>
From: <sip:6505550001@example.com>;tag=49584
Call-ID: mp1@10.0.0.1
CSeq: 1 INVITE
Supported: timer
Content-Type: multipart/mixed;boundary=boundary1

--boundary1
Content-Type: application/resource-lists+xml

<resource-lists/>
--boundary1
Content-Type: application/sdp

v=0
m=video 51372 RTP/AVP 31
--boundary1--
`

func register(expires string) string {
	return `REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKnashds7
Max-Forwards: 70
To: <sip:6505550001@example.com>
From: <sip:6505550001@example.com>;tag=456248
Call-ID: 843817637684230@998sdasdh09
CSeq: 1826 REGISTER
Contact: <sip:6505550001@10.0.0.1:5060>` + expires + "\n\n"
}

// oneIFC parses a single iFC with the given TriggerPoint content (without
// the element itself; "" for none) and other elements.
func oneIFC(t testing.TB, trigger, extra string) IFC {
	t.Helper()
	inner := okAS + extra
	if trigger != "" {
		inner = "<TriggerPoint>" + trigger + "</TriggerPoint>" + inner
	}
	p, errs := Parse([]byte(wrap(inner)))
	if len(errs) > 0 || len(p.IFCs) != 1 {
		t.Fatalf("parse %q: %d iFCs, errors %v", inner, len(p.IFCs), errs)
	}
	return p.IFCs[0]
}

// spt writes an SPT in the given groups ("0" or "0,1"), negated if neg.
func spt(groups string, neg bool, cond string) string {
	var b strings.Builder
	b.WriteString("<SPT>")
	if neg {
		b.WriteString("<ConditionNegated>1</ConditionNegated>")
	}
	for g := range strings.SplitSeq(groups, ",") {
		b.WriteString("<Group>" + g + "</Group>")
	}
	b.WriteString(cond + "</SPT>")
	return b.String()
}

func dnf(spts ...string) string {
	return "<ConditionTypeCNF>0</ConditionTypeCNF>" + strings.Join(spts, "")
}
func cnf(spts ...string) string {
	return "<ConditionTypeCNF>1</ConditionTypeCNF>" + strings.Join(spts, "")
}

func method(m string) string { return "<Method>" + m + "</Method>" }
func ruri(re string) string  { return "<RequestURI>" + re + "</RequestURI>" }
func sessCase(c int) string  { return fmt.Sprintf("<SessionCase>%d</SessionCase>", c) }
func header(h, content string) string {
	if content == "" {
		return "<SIPHeader><Header>" + h + "</Header></SIPHeader>"
	}
	return "<SIPHeader><Header>" + h + "</Header><Content>" + content + "</Content></SIPHeader>"
}
func sdp(line, content string) string {
	if content == "" {
		return "<SessionDescription><Line>" + line + "</Line></SessionDescription>"
	}
	return "<SessionDescription><Line>" + line + "</Line><Content>" + content + "</Content></SessionDescription>"
}
func regMethod(types ...int) string {
	var b strings.Builder
	b.WriteString("<Method>REGISTER</Method><Extension>")
	for _, t := range types {
		fmt.Fprintf(&b, "<RegistrationType>%d</RegistrationType>", t)
	}
	b.WriteString("</Extension>")
	return b.String()
}

var (
	origReg   = Case{Session: OriginatingRegistered}
	termReg   = Case{Session: TerminatingRegistered}
	termUnreg = Case{Session: TerminatingUnregistered}
	origUnreg = Case{Session: OriginatingUnregistered}
)

func TestMatchTriggers(t *testing.T) {
	T, F := true, false
	tests := []struct {
		name    string
		trigger string // TriggerPoint content
		extra   string // more iFC elements
		req     string
		c       Case
		want    bool
	}{
		{"no trigger point matches anything", "", "", messageReq, termUnreg, T},

		{"method", dnf(spt("0", F, method("INVITE"))), "", invite, origReg, T},
		{"other method", dnf(spt("0", F, method("MESSAGE"))), "", invite, origReg, F},
		{"method is case-sensitive", dnf(spt("0", F, method("invite"))), "", invite, origReg, F},
		{"negated method", dnf(spt("0", T, method("INVITE"))), "", invite, origReg, F},
		{"negated other method", dnf(spt("0", T, method("INVITE"))), "", messageReq, origReg, T},

		{"register without registration type", dnf(spt("0", F, method("REGISTER"))), "", register(""), Case{Session: OriginatingRegistered, Registration: ReRegistration}, T},
		{"initial registration wanted, got", dnf(spt("0", F, regMethod(0))), "", register(""), Case{Session: OriginatingRegistered, Registration: InitialRegistration}, T},
		{"initial registration wanted, re-registration", dnf(spt("0", F, regMethod(0))), "", register(""), Case{Session: OriginatingRegistered, Registration: ReRegistration}, F},
		{"re-registration wanted", dnf(spt("0", F, regMethod(1))), "", register(""), Case{Session: OriginatingRegistered, Registration: ReRegistration}, T},
		{"de-registration wanted, got", dnf(spt("0", F, regMethod(0, 2))), "", register(";expires=0"), Case{Session: OriginatingRegistered, Registration: DeRegistration}, T},
		{"de-registration wanted, re-registration", dnf(spt("0", F, regMethod(2))), "", register(""), Case{Session: OriginatingRegistered, Registration: ReRegistration}, F},
		{"registration type ignored off REGISTER", dnf(spt("0", F, "<Method>INVITE</Method><Extension><RegistrationType>2</RegistrationType></Extension>")), "", invite, origReg, T},

		{"request-URI host", dnf(spt("0", F, ruri(`^example\.com:5060$`))), "", invite, termReg, T},
		{"request-URI is searched, not anchored", dnf(spt("0", F, ruri(`example`))), "", invite, termReg, T},
		{"request-URI user part is not matched", dnf(spt("0", F, ruri(`6505550002`))), "", invite, termReg, F},
		{"request-URI other host", dnf(spt("0", F, ruri(`^conf\.example\.com$`))), "", invite, termReg, F},
		{"tel request-URI matched whole", dnf(spt("0", F, ruri(`^tel:\+1650555000[0-9];phone-context`))), "", messageReq, termReg, T},

		{"header present", dnf(spt("0", F, header("P-Asserted-Identity", ""))), "", invite, origReg, T},
		{"header absent", dnf(spt("0", F, header("P-Served-User", ""))), "", invite, origReg, F},
		{"negated header absent", dnf(spt("0", T, header("P-Served-User", ""))), "", invite, origReg, T},
		{"header name case-insensitive", dnf(spt("0", F, header("p-asserted-IDENTITY", ""))), "", invite, origReg, T},
		{"long name finds compact header", dnf(spt("0", F, header("Supported", "100rel"))), "", invite, origReg, T},
		{"compact name finds long header", dnf(spt("0", F, header("t", "6505550002"))), "", invite, origReg, T},
		{"compact From parsed by sipgo", dnf(spt("0", F, header("From", `^"Alice"`))), "", invite, origReg, T},
		{"content regex", dnf(spt("0", F, header("Accept-Contact", `3gpp-service\.ims\.icsi\.mmtel`))), "", invite, origReg, T},
		{"content no match", dnf(spt("0", F, header("Accept-Contact", `icsi\.video`))), "", invite, origReg, F},
		{"content anchored on second value", dnf(spt("0", F, header("P-Asserted-Identity", `^&lt;tel:`))), "", invite, origReg, T},
		{"content anchored on first value", dnf(spt("0", F, header("P-Asserted-Identity", `^&lt;sip:6505550001@`))), "", invite, origReg, T},
		{"content anchored matches no value", dnf(spt("0", F, header("P-Asserted-Identity", `^tel:`))), "", invite, origReg, F},
		{"header name pattern", dnf(spt("0", F, header("P-.*-Identity", "tel:"))), "", invite, origReg, T},
		{"header name pattern is whole-name", dnf(spt("0", F, header("Asserted", ""))), "", invite, origReg, F},

		{"session case 0", dnf(spt("0", F, sessCase(0))), "", invite, origReg, T},
		{"session case 0 vs originating unregistered", dnf(spt("0", F, sessCase(0))), "", invite, origUnreg, F},
		{"session case 1", dnf(spt("0", F, sessCase(1))), "", invite, termReg, T},
		{"session case 1 vs terminating unregistered", dnf(spt("0", F, sessCase(1))), "", invite, termUnreg, F},
		{"session case 2", dnf(spt("0", F, sessCase(2))), "", invite, termUnreg, T},
		{"session case 3", dnf(spt("0", F, sessCase(3))), "", invite, origUnreg, T},
		{"session case 4", dnf(spt("0", F, sessCase(4))), "", invite, Case{Session: OriginatingCDIV, Registered: true}, T},
		{"session case 4 vs originating", dnf(spt("0", F, sessCase(4))), "", invite, origReg, F},
		{"negated session case", dnf(spt("0", T, sessCase(1))), "", invite, origReg, T},

		{"SDP line type", dnf(spt("0", F, sdp("m", ""))), "", invite, origReg, T},
		{"SDP line and content", dnf(spt("0", F, sdp("m", "^video"))), "", invite, origReg, T},
		{"SDP content on another line type", dnf(spt("0", F, sdp("a", "^video"))), "", invite, origReg, F},
		{"SDP line pattern", dnf(spt("0", F, sdp("[ab]", "H261"))), "", invite, origReg, T},
		{"SDP absent", dnf(spt("0", F, sdp("m", ""))), "", messageReq, origReg, F},
		{"SDP in a multipart body", dnf(spt("0", F, sdp("m", "^video"))), "", multipartInvite, origReg, T},
		{"negated SDP", dnf(spt("0", T, sdp("m", "^image"))), "", invite, origReg, T},

		// CNF: (INVITE or MESSAGE) and (terminating registered).
		{"CNF both groups", cnf(spt("0", F, method("INVITE")), spt("0", F, method("MESSAGE")), spt("1", F, sessCase(1))), "", messageReq, termReg, T},
		{"CNF one group false", cnf(spt("0", F, method("INVITE")), spt("0", F, method("MESSAGE")), spt("1", F, sessCase(1))), "", messageReq, origReg, F},
		{"CNF no SPT of a group", cnf(spt("0", F, method("BYE")), spt("0", F, method("MESSAGE")), spt("1", F, sessCase(1))), "", invite, termReg, F},
		// DNF: (INVITE and originating) or (MESSAGE and terminating).
		{"DNF first group", dnf(spt("0", F, method("INVITE")), spt("0", F, sessCase(0)), spt("1", F, method("MESSAGE")), spt("1", F, sessCase(1))), "", invite, origReg, T},
		{"DNF second group", dnf(spt("0", F, method("INVITE")), spt("0", F, sessCase(0)), spt("1", F, method("MESSAGE")), spt("1", F, sessCase(1))), "", messageReq, termReg, T},
		{"DNF neither group", dnf(spt("0", F, method("INVITE")), spt("0", F, sessCase(0)), spt("1", F, method("MESSAGE")), spt("1", F, sessCase(1))), "", invite, termReg, F},
		// An SPT in two groups counts in each.
		{"CNF SPT in two groups", cnf(spt("0,1", F, method("INVITE")), spt("1", F, sessCase(1))), "", invite, origReg, T},
		{"CNF SPT in two groups false", cnf(spt("0,1", F, method("INVITE")), spt("1", F, sessCase(1))), "", messageReq, termReg, F},
		{"DNF SPT in two groups", dnf(spt("0,1", F, method("INVITE")), spt("0", F, sessCase(0)), spt("1", F, sessCase(1))), "", invite, termReg, T},
		{"DNF SPT in two groups false", dnf(spt("0,1", F, method("INVITE")), spt("0", F, sessCase(0)), spt("1", F, sessCase(1))), "", invite, termUnreg, F},
		// Negation applies per SPT, before grouping: INVITE and not terminating.
		{"DNF with negated SPT", dnf(spt("7", F, method("INVITE")), spt("7", T, sessCase(1))), "", invite, origReg, T},
		{"DNF with negated SPT false", dnf(spt("7", F, method("INVITE")), spt("7", T, sessCase(1))), "", invite, termReg, F},
		// Ellis writes an empty ConditionTypeCNF: DNF.
		{"empty ConditionTypeCNF is DNF", "<ConditionTypeCNF></ConditionTypeCNF>" + spt("0", F, method("INVITE")) + spt("1", F, method("BYE")), "", invite, origReg, T},
		// More groups than the evaluator's inline storage.
		{"many groups CNF", cnf(spt("0,1,2,3,4,5,6,7,8,9,10", F, method("INVITE"))), "", invite, origReg, T},

		{"profile part registered, registered", dnf(spt("0", F, method("INVITE"))), "<ProfilePartIndicator>0</ProfilePartIndicator>", invite, termReg, T},
		{"profile part registered, unregistered", dnf(spt("0", F, method("INVITE"))), "<ProfilePartIndicator>0</ProfilePartIndicator>", invite, termUnreg, F},
		{"profile part unregistered, unregistered", dnf(spt("0", F, method("INVITE"))), "<ProfilePartIndicator>1</ProfilePartIndicator>", invite, origUnreg, T},
		{"profile part unregistered, registered", dnf(spt("0", F, method("INVITE"))), "<ProfilePartIndicator>1</ProfilePartIndicator>", invite, origReg, F},
		{"profile part, CDIV registered", "", "<ProfilePartIndicator>0</ProfilePartIndicator>", invite, Case{Session: OriginatingCDIV, Registered: true}, T},
		{"profile part, CDIV unregistered", "", "<ProfilePartIndicator>0</ProfilePartIndicator>", invite, Case{Session: OriginatingCDIV}, F},
		{"no profile part, unregistered", "", "", invite, termUnreg, T},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := oneIFC(t, tt.trigger, tt.extra)
			req := parseRequest(t, tt.req)
			if got := f.Matches(req, tt.c); got != tt.want {
				t.Errorf("Matches = %v, want %v (%s)", got, tt.want, describe(f))
			}
			got := Match([]IFC{f}, req, tt.c)
			if (len(got) == 1) != tt.want {
				t.Errorf("Match returned %d iFCs, want match %v", len(got), tt.want)
			}
		})
	}
}

func TestMatchPriorityOrder(t *testing.T) {
	doc := "<ServiceProfile>\n"
	// Priorities out of document order, with ties.
	for i, p := range []int{5, 1, 5, 0, 1, 9} {
		doc += fmt.Sprintf("<InitialFilterCriteria><Priority>%d</Priority><ApplicationServer><ServerName>sip:as%d.example.com</ServerName></ApplicationServer></InitialFilterCriteria>\n", p, i)
	}
	// One that does not match.
	doc += "<InitialFilterCriteria><Priority>2</Priority><TriggerPoint>" + dnf(spt("0", false, method("BYE"))) + "</TriggerPoint>" + okAS + "</InitialFilterCriteria>\n</ServiceProfile>"
	p, errs := Parse([]byte(doc))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	req := parseRequest(t, invite)
	want := []string{"sip:as3.example.com", "sip:as1.example.com", "sip:as4.example.com", "sip:as0.example.com", "sip:as2.example.com", "sip:as5.example.com"}
	names := func(ifcs []IFC) []string {
		var out []string
		for _, f := range ifcs {
			out = append(out, f.AS.ServerName)
		}
		return out
	}
	if got := names(Match(p.IFCs, req, origReg)); !slices.Equal(got, want) {
		t.Errorf("sorted input: got %v, want %v", got, want)
	}
	// Unsorted input (e.g. a caller's own concatenation) is evaluated in
	// priority order too, ties in the order given.
	shuffled := slices.Clone(p.IFCs)
	slices.Reverse(shuffled)
	wantRev := []string{"sip:as3.example.com", "sip:as4.example.com", "sip:as1.example.com", "sip:as2.example.com", "sip:as0.example.com", "sip:as5.example.com"}
	if got := names(Match(shuffled, req, origReg)); !slices.Equal(got, wantRev) {
		t.Errorf("reversed input: got %v, want %v", got, wantRev)
	}
	// The iterator stops when asked, and reports indexes into its input.
	var idx []int
	for i := range Matching(shuffled, req, origReg) {
		idx = append(idx, i)
		if len(idx) == 2 {
			break
		}
	}
	if len(idx) != 2 || shuffled[idx[0]].AS.ServerName != "sip:as3.example.com" || shuffled[idx[1]].AS.ServerName != "sip:as4.example.com" {
		t.Errorf("Matching indexes %v", idx)
	}
}

func TestRegistrationTypeOf(t *testing.T) {
	tests := []struct {
		name    string
		contact string // appended to the Contact header line
		initial bool
		want    RegistrationType
	}{
		{"initial", "", true, InitialRegistration},
		{"re-registration", "", false, ReRegistration},
		{"contact expires zero", ";expires=0", false, DeRegistration},
		{"contact expires zero on initial", ";expires=0", true, DeRegistration},
		{"Expires header zero", "\nExpires: 0", false, DeRegistration},
		{"contact expires overrides header", ";expires=600\nExpires: 0", false, ReRegistration},
		{"second contact still bound", ";expires=0\nContact: <sip:6505550001@10.0.0.2>;expires=300", false, ReRegistration},
		{"both contacts removed", ";expires=0\nContact: <sip:6505550001@10.0.0.2>;expires=0", false, DeRegistration},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RegistrationTypeOf(parseRequest(t, register(tt.contact)), tt.initial); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("no contact is a query, not a de-registration", func(t *testing.T) {
		raw := strings.Replace(register("\nExpires: 0"), "Contact: <sip:6505550001@10.0.0.1:5060>\n", "", 1)
		if got := RegistrationTypeOf(parseRequest(t, raw), false); got != ReRegistration {
			t.Errorf("got %v", got)
		}
	})
}

func TestValues(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"a", []string{"a"}},
		{"a, b ,c", []string{"a", "b", "c"}},
		{`"x, y" <sip:a@b;p=1,2>, <tel:1>`, []string{`"x, y" <sip:a@b;p=1,2>`, "<tel:1>"}},
		{`"esc\"aped, still" <sip:a>, b`, []string{`"esc\"aped, still" <sip:a>`, "b"}},
	}
	for _, tt := range tests {
		if got := slices.Collect(values(tt.in)); !slices.Equal(got, tt.want) {
			t.Errorf("values(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSPTMatchesIgnoresNegation(t *testing.T) {
	f := oneIFC(t, dnf(spt("0", true, method("INVITE"))), "")
	req := parseRequest(t, invite)
	if !f.Trigger.SPTs[0].Matches(req, origReg) {
		t.Error("SPT.Matches applied the negation")
	}
	if f.Matches(req, origReg) {
		t.Error("IFC.Matches ignored the negation")
	}
}

func TestHeaderWithCommasInOneValue(t *testing.T) {
	raw := strings.Replace(invite, "Max-Forwards: 70\n", "Max-Forwards: 70\nDate: Sat, 13 Nov 2010 23:29:00 GMT\nX-List: alpha, beta\n", 1)
	req := parseRequest(t, raw)
	tests := []struct {
		header, content string
		want            bool
	}{
		{"Date", "^Sat, 13 Nov", true},
		{"Date", "^13 Nov", false}, // Date is one value, not split
		{"X-List", "^beta$", true}, // unknown headers are lists
	}
	for _, tt := range tests {
		f := oneIFC(t, dnf(spt("0", false, header(tt.header, tt.content))), "")
		if got := f.Matches(req, origReg); got != tt.want {
			t.Errorf("%s ~ %s: got %v, want %v", tt.header, tt.content, got, tt.want)
		}
	}
}

func TestEnumStrings(t *testing.T) {
	tests := []struct {
		v    fmt.Stringer
		want string
	}{
		{OriginatingRegistered, "ORIGINATING_REGISTERED"},
		{TerminatingRegistered, "TERMINATING_REGISTERED"},
		{TerminatingUnregistered, "TERMINATING_UNREGISTERED"},
		{OriginatingUnregistered, "ORIGINATING_UNREGISTERED"},
		{OriginatingCDIV, "ORIGINATING_CDIV"},
		{SessionCase(9), "SessionCase(9)"},
		{InitialRegistration, "INITIAL_REGISTRATION"},
		{RegistrationType(3), "RegistrationType(3)"},
		{SessionContinued, "SESSION_CONTINUED"},
		{SessionTerminated, "SESSION_TERMINATED"},
		{DefaultHandling(2), "DefaultHandling(2)"},
		{PartAny, "ANY"},
		{PartRegistered, "REGISTERED"},
		{PartUnregistered, "UNREGISTERED"},
		{ProfilePart(5), "ProfilePart(5)"},
		{CondRequestURI, "RequestURI"},
		{CondMethod, "Method"},
		{CondSIPHeader, "SIPHeader"},
		{CondSessionCase, "SessionCase"},
		{CondSessionDescription, "SessionDescription"},
		{Condition(0), "Condition(0)"},
	}
	for _, tt := range tests {
		if got := tt.v.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.v, got, tt.want)
		}
	}
}
