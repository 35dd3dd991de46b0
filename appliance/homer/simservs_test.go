package homer

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGoodDocumentsValidate(t *testing.T) {
	files, err := filepath.Glob("testdata/good/*.xml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no good documents: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if err := Validate(readFile(t, f)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// badDocuments are the documents under testdata/bad and the exact error
// each must be refused with.
var badDocuments = []struct{ file, want string }{
	// Not well-formed XML.
	{"empty.xml", "simservs.xml: malformed XML: document is empty"},
	{"not-xml.xml", "simservs.xml: malformed XML: line 1: text outside the root element"},
	{"mismatched-tags.xml", "simservs.xml: malformed XML: line 6: element <rule> closed by </ruleset>"},
	{"unclosed.xml", "simservs.xml: malformed XML: line 4: unexpected EOF"},
	{"two-roots.xml", "simservs.xml: malformed XML: line 3: element <simservs> after the root element"},
	{"doctype.xml", "simservs.xml: malformed XML: line 2: DOCTYPE and other directives are not allowed"},
	{"latin1.xml", `simservs.xml: malformed XML: encoding "ISO-8859-1" declared, but XCAP documents are UTF-8`},
	{"not-utf8.xml", "simservs.xml: malformed XML: document is not UTF-8"},

	// Namespaces and structure.
	{"wrong-root.xml", "simservs.xml: root element is <services> in namespace http://uri.etsi.org/ngn/params/xml/simservs/xcap; want <simservs> in namespace http://uri.etsi.org/ngn/params/xml/simservs/xcap"},
	{"no-namespace.xml", "simservs.xml: root element is <simservs> in no namespace; want <simservs> in namespace http://uri.etsi.org/ngn/params/xml/simservs/xcap"},
	{"unknown-service.xml", "simservs.xml: unknown element <andy-is-cool> in the simservs namespace"},
	{"misplaced-element.xml", "simservs.xml: element <busy> is not allowed here"},
	{"duplicate-service.xml", "simservs.xml: service communication-diversion appears more than once"},
	{"service-after-extensions.xml", "simservs.xml: <originating-identity-presentation> must come before <extensions>"},
	{"ruleset-wrong-namespace.xml", "simservs.xml: incoming-communication-barring: unknown element <ruleset> in the simservs namespace (ruleset belongs to the common-policy namespace urn:ietf:params:xml:ns:common-policy)"},
	{"undeclared-prefix.xml", `simservs.xml: communication-diversion: namespace prefix "cp" of <cp:ruleset> is not declared`},
	{"foreign-in-service.xml", "simservs.xml: communication-diversion: element <priority> in namespace urn:example is not allowed here"},
	{"text-in-service.xml", `simservs.xml: originating-identity-presentation: contains text "on" where only elements are allowed`},

	// Service settings.
	{"bad-active.xml", `simservs.xml: originating-identity-presentation: attribute active "yes" is not a boolean (true, false, 1 or 0)`},
	{"bad-default-behaviour.xml", `simservs.xml: originating-identity-presentation-restriction: default-behaviour "restricted" is neither presentation-restricted nor presentation-not-restricted`},
	{"timer-out-of-range.xml", "simservs.xml: communication-diversion: NoReplyTimer 3 is out of range 5..180 seconds"},
	{"timer-huge.xml", "simservs.xml: communication-diversion: NoReplyTimer 99999999999999999999999 is out of range 5..180 seconds"},
	{"timer-not-integer.xml", `simservs.xml: communication-diversion: NoReplyTimer "twenty" is not an integer`},
	{"timer-after-ruleset.xml", "simservs.xml: communication-diversion: <NoReplyTimer> must come before <ruleset>"},

	// Rules.
	{"rule-without-id.xml", "simservs.xml: incoming-communication-barring: rule 1 has no id"},
	{"rule-id-not-ncname.xml", `simservs.xml: communication-diversion: rule "1st": id is not an XML name without colons (xs:ID)`},
	{"duplicate-rule-id.xml", `simservs.xml: communication-diversion: rule "cfb": another rule of the ruleset has the same id`},
	{"rule-unexpected-attribute.xml", `simservs.xml: incoming-communication-barring: rule "r1": <rule> has unexpected attribute priority`},
	{"rule-children-out-of-order.xml", `simservs.xml: incoming-communication-barring: rule "r1": <conditions> must come before <actions>`},
	{"transformation-in-simservs-namespace.xml", `simservs.xml: incoming-communication-barring: rule "r1": element <allow> is not allowed here`},

	// Diversion actions.
	{"no-target.xml", `simservs.xml: communication-diversion: rule "cfb": forward-to has no target`},
	{"empty-target.xml", `simservs.xml: communication-diversion: rule "cfb": forward-to target is empty (allowed only in a rule with <rule-deactivated/>)`},
	{"target-mailto.xml", `simservs.xml: communication-diversion: rule "cfb": forward-to target "mailto:bob@example.com" is not a sip, sips or tel URI`},
	{"target-no-scheme.xml", `simservs.xml: communication-diversion: rule "cfu": forward-to target "6505550001" is not a URI (want sip:, sips: or tel:)`},
	{"target-bad-tel.xml", `simservs.xml: communication-diversion: rule "cfu": forward-to target "tel:+1650x555" has a malformed telephone number`},
	{"target-local-tel.xml", `simservs.xml: communication-diversion: rule "cfu": forward-to target "tel:5550123" is a local number without phone-context`},
	{"target-no-host.xml", `simservs.xml: communication-diversion: rule "cfu": forward-to target "sip:bob@" has no host`},
	{"target-space.xml", `simservs.xml: communication-diversion: rule "cfu": forward-to target "sip:bob smith@example.com" contains characters not allowed in a URI`},
	{"forward-to-out-of-order.xml", `simservs.xml: communication-diversion: rule "cfb": <target> must come before <notify-caller>`},
	{"forward-to-bad-boolean.xml", `simservs.xml: communication-diversion: rule "cfb": notify-caller "yes" is not a boolean (true, false, 1 or 0)`},
	{"no-forward-to.xml", `simservs.xml: communication-diversion: rule "cfu": actions have no forward-to`},
	{"two-forward-tos.xml", `simservs.xml: communication-diversion: rule "cfu": <forward-to> appears more than once`},
	{"allow-in-diversion.xml", `simservs.xml: communication-diversion: rule "cfu": <allow> is a barring action and does not apply to communication-diversion`},
	{"rule-timer-out-of-range.xml", `simservs.xml: communication-diversion: rule "cfnr": NoReplyTimer 181 is out of range 5..180 seconds`},

	// Conditions.
	{"busy-not-empty.xml", `simservs.xml: communication-diversion: rule "cfb": <busy> must be empty`},
	{"empty-media.xml", `simservs.xml: communication-diversion: rule "cfb": condition <media> is empty`},
	{"unknown-condition.xml", `simservs.xml: communication-diversion: rule "cfh": unknown element <holiday> in the simservs namespace`},
	{"unknown-policy-element.xml", `simservs.xml: communication-diversion: rule "cfh": unknown element <cp:whenever> in the common-policy namespace`},
	{"busy-in-barring.xml", `simservs.xml: incoming-communication-barring: rule "r1": condition <busy> does not apply to incoming-communication-barring`},
	{"international-incoming.xml", `simservs.xml: incoming-communication-barring: rule "r1": condition <international> does not apply to incoming-communication-barring`},
	{"anonymous-outgoing.xml", `simservs.xml: outgoing-communication-barring: rule "r1": condition <anonymous> does not apply to outgoing-communication-barring`},
	{"empty-identity.xml", `simservs.xml: incoming-communication-barring: rule "r1": <identity> is empty (it needs <one> or <many>)`},
	{"one-without-id.xml", `simservs.xml: incoming-communication-barring: rule "r1": <one> needs an id that is a URI, not ""`},
	{"validity-bad-date.xml", `simservs.xml: incoming-communication-barring: rule "r1": <from> "tomorrow" is not a date and time (xs:dateTime, e.g. 2025-01-31T09:00:00Z)`},
	{"validity-reversed.xml", `simservs.xml: incoming-communication-barring: rule "r1": <validity> period ends (2025-01-01T00:00:00Z) before it starts (2025-01-02T00:00:00Z)`},
	{"validity-unpaired.xml", `simservs.xml: incoming-communication-barring: rule "r1": <validity> has a <from> without an <until>`},

	// Barring actions.
	{"no-allow.xml", `simservs.xml: incoming-communication-barring: rule "r1": actions have no allow`},
	{"bad-allow.xml", `simservs.xml: incoming-communication-barring: rule "r1": allow "maybe" is not a boolean (true, false, 1 or 0)`},
	{"forward-to-in-barring.xml", `simservs.xml: outgoing-communication-barring: rule "r1": <forward-to> is a diversion action and does not apply to outgoing-communication-barring`},
}

func TestBadDocumentsAreRefused(t *testing.T) {
	listed := map[string]bool{}
	for _, tc := range badDocuments {
		listed[tc.file] = true
		t.Run(tc.file, func(t *testing.T) {
			_, err := Parse(readFile(t, filepath.Join("testdata/bad", tc.file)))
			if err == nil {
				t.Fatal("accepted")
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("error\n got: %s\nwant: %s", got, tc.want)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) {
				t.Errorf("error %T is not a *ValidationError matching ErrInvalid", err)
			}
		})
	}
	files, _ := filepath.Glob("testdata/bad/*.xml")
	for _, f := range files {
		if !listed[filepath.Base(f)] {
			t.Errorf("%s has no expected error in badDocuments", f)
		}
	}
}

func TestByteOrderMark(t *testing.T) {
	if err := Validate(append([]byte("\xef\xbb\xbf"), DefaultDocument()...)); err != nil {
		t.Error(err)
	}
}

func TestParseLimits(t *testing.T) {
	big := []byte(`<simservs xmlns="` + NamespaceSimservs + `"><!--` + strings.Repeat("x", MaxDocumentSize) + `--></simservs>`)
	if err := Validate(big); err == nil || err.Error() != "simservs.xml: document is larger than 131072 bytes" {
		t.Errorf("oversized document: %v", err)
	}
	deep := `<simservs xmlns="` + NamespaceSimservs + `"><extensions>` + strings.Repeat(`<x:a xmlns:x="urn:x">`, 40) +
		strings.Repeat(`</x:a>`, 40) + `</extensions></simservs>`
	if err := Validate([]byte(deep)); err == nil || !strings.Contains(err.Error(), "nested more than 32 deep") {
		t.Errorf("deep document: %v", err)
	}
}

func date(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

// forward returns a forward-to action with the schema's defaults.
func forward(target string) ForwardTo {
	return ForwardTo{Target: target, NotifyCaller: true, RevealIdentityToCaller: true,
		RevealServedUserIdentityToCaller: true, RevealIdentityToTarget: true}
}

func TestTypedView(t *testing.T) {
	cases := []struct {
		file string
		want *Simservs
	}{
		{"diversion.xml", &Simservs{Diversion: &Diversion{Active: true, NoReplyTimer: 25, Rules: []DiversionRule{
			{ID: "cfu", Conditions: Conditions{RuleDeactivated: true}, ForwardTo: forward("tel:+16505550199")},
			{ID: "cfb", Conditions: Conditions{Busy: true}, ForwardTo: ForwardTo{Target: "sip:voicemail@example.com;user=phone",
				RevealIdentityToCaller: true, RevealServedUserIdentityToCaller: true, RevealIdentityToTarget: true}},
			{ID: "cfnr", Conditions: Conditions{NoAnswer: true}, NoReplyTimer: 40, ForwardTo: ForwardTo{
				Target: "sips:bob@[2001:db8::1]:5061", NotifyCaller: true, NotifyServedUser: true, NotifyServedUserOnOutboundCall: true}},
			{ID: "cfnrc", Conditions: Conditions{NotReachable: true, Media: []string{"audio"}},
				ForwardTo: forward("tel:5550123;phone-context=example.com")},
			{ID: "cfnl", Conditions: Conditions{NotRegistered: true,
				Identity: &Identity{One: []string{"sip:carol@example.com"},
					Many: []Many{{Domain: "example.net", Except: []Except{{ID: "sip:mallory@example.net"}}}}},
				Validity: []Interval{{From: date("2025-01-01T08:00:00Z"), Until: date("2025-01-01T17:00:00Z")}}},
				ForwardTo: forward("sip:6505550100@example.com")},
		}}}},
		{"barring.xml", &Simservs{
			IncomingBarring: &Barring{Active: true, Rules: []BarringRule{
				{ID: "acr", Conditions: Conditions{Anonymous: true}},
				{ID: "blocklist", Conditions: Conditions{Roaming: true, CommunicationDiverted: true,
					Identity: &Identity{One: []string{"tel:+447700900123"}, Many: []Many{{}}}}},
			}},
			OutgoingBarring: &Barring{Rules: []BarringRule{
				{ID: "boic", Conditions: Conditions{International: true}},
				{ID: "boic-exhc", Conditions: Conditions{InternationalExHC: true, Roaming: true}},
			}},
		}},
		{"prefixed.xml", &Simservs{
			OIP:                  &Service{Active: true},
			OIR:                  &Restriction{Active: true, Restricted: true},
			TIP:                  &Service{Active: false},
			TIR:                  &Restriction{Active: true, Restricted: true},
			CommunicationWaiting: &Service{Active: true},
			Diversion: &Diversion{Active: true, NoReplyTimer: 20, Rules: []DiversionRule{
				{ID: "call-diversion-unconditional", Conditions: Conditions{RuleDeactivated: true}, ForwardTo: forward("")},
				{ID: "call-diversion-busy", Conditions: Conditions{Busy: true, Media: []string{"video"}}, ForwardTo: forward("tel:+1234567890")},
			}},
		}},
		{"extensions.xml", &Simservs{
			OIP: &Service{Active: true},
			IncomingBarring: &Barring{Active: true, Rules: []BarringRule{{ID: "external", Conditions: Conditions{
				Sphere:      []string{"work"},
				Unsupported: []string{"{urn:oma:xml:xdm:common-policy}external-list"},
			}}}},
		}},
		{"minimal.xml", &Simservs{}},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			got, err := Parse(readFile(t, filepath.Join("testdata/good", tc.file)))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("view\n got: %+v\nwant: %+v", got, tc.want)
				compareRules(t, got, tc.want)
			}
		})
	}
}

// compareRules narrows a mismatch down to the rule.
func compareRules(t *testing.T, got, want *Simservs) {
	if got.Diversion != nil && want.Diversion != nil {
		for i := range min(len(got.Diversion.Rules), len(want.Diversion.Rules)) {
			if !reflect.DeepEqual(got.Diversion.Rules[i], want.Diversion.Rules[i]) {
				t.Errorf("diversion rule %d\n got: %+v\nwant: %+v", i, got.Diversion.Rules[i], want.Diversion.Rules[i])
			}
		}
	}
}

func TestRuleActiveAndTimers(t *testing.T) {
	s, err := Parse(readFile(t, "testdata/good/diversion.xml"))
	if err != nil {
		t.Fatal(err)
	}
	d := s.Diversion
	if d.Rules[0].Active() || !d.Rules[1].Active() {
		t.Error("cfu should be inactive and cfb active")
	}
	if got := d.NoReplyTimeout(&d.Rules[2]); got != 40*time.Second {
		t.Errorf("rule timer: %v", got)
	}
	if got := d.NoReplyTimeout(&d.Rules[1]); got != 25*time.Second {
		t.Errorf("service timer: %v", got)
	}
	if got := (&Diversion{}).NoReplyTimeout(nil); got != DefaultNoReplyTimer {
		t.Errorf("default timer: %v", got)
	}
}

func TestDefaultDocument(t *testing.T) {
	s, err := Parse(DefaultDocument())
	if err != nil {
		t.Fatal(err)
	}
	want := &Simservs{
		OIP:             &Service{Active: true},
		OIR:             &Restriction{Active: true, Restricted: false},
		Diversion:       &Diversion{Active: true, NoReplyTimer: 20},
		IncomingBarring: &Barring{Active: true},
		OutgoingBarring: &Barring{Active: true},
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("default view %+v, want %+v", s, want)
	}
	d := DefaultDocument()
	d[0] = 'X'
	if DefaultDocument()[0] != '<' {
		t.Error("DefaultDocument shares its bytes between callers")
	}
}

func TestRoundTrip(t *testing.T) {
	files, _ := filepath.Glob("testdata/good/*.xml")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			s, err := Parse(readFile(t, f))
			if err != nil {
				t.Fatal(err)
			}
			doc, err := s.Marshal()
			if filepath.Base(f) == "extensions.xml" {
				// Its rule has a condition the view cannot write back.
				if err == nil || !strings.Contains(err.Error(), `rule "external" has conditions that cannot be written: {urn:oma:xml:xdm:common-policy}external-list`) {
					t.Fatalf("marshal: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			again, err := Parse(doc)
			if err != nil {
				t.Fatalf("%v\n%s", err, doc)
			}
			if !reflect.DeepEqual(s, again) {
				t.Errorf("round trip changed the view\nbefore: %+v\n after: %+v\n%s", s, again, doc)
			}
		})
	}
}

// TestMarshalBuiltView is the portal's path: build settings in Go, write
// them, read them back.
func TestMarshalBuiltView(t *testing.T) {
	s := &Simservs{
		OIR: &Restriction{Active: true, Restricted: true},
		Diversion: &Diversion{Active: true, NoReplyTimer: 36, Rules: []DiversionRule{
			{ID: "cfnr", Conditions: Conditions{NoAnswer: true}, ForwardTo: forward("sip:6505550111@example.com")},
			{ID: "cfu", Conditions: Conditions{RuleDeactivated: true}, ForwardTo: forward("")},
		}},
		OutgoingBarring: &Barring{Active: true, Rules: []BarringRule{
			{ID: "boic", Conditions: Conditions{International: true}, Allow: false},
		}},
		IncomingBarring: &Barring{Active: true, Rules: []BarringRule{
			{ID: "in-hours", Conditions: Conditions{Validity: []Interval{{From: date("2025-03-01T09:00:00Z"), Until: date("2025-03-01T17:30:00Z")}},
				Identity: &Identity{Many: []Many{{Domain: "example.org", Except: []Except{{Domain: "sales.example.org"}}}}}}, Allow: true},
		}},
	}
	doc, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Errorf("got %+v\nwant %+v\n%s", got, s, doc)
	}

	// A view Parse would refuse is not written.
	s.Diversion.Rules[0].ForwardTo.Target = "voicemail"
	if _, err := s.Marshal(); err == nil || !strings.Contains(err.Error(), `rule "cfnr": forward-to target "voicemail" is not a URI`) {
		t.Errorf("marshal of a bad target: %v", err)
	}
}

func TestTargets(t *testing.T) {
	good := []string{"sip:bob@example.com", "SIP:bob@example.com:5060;transport=tcp", "sip:example.com",
		"sips:+16505550100@10.0.0.1;user=phone", "sip:bob@[::1]", "tel:+1-650-555-0100", "tel:+44(0)20.7946.0000",
		"tel:*21#;phone-context=+1650", "sip:alice%40home@example.com?subject=x"}
	for _, v := range good {
		if why := checkTarget(v); why != "" {
			t.Errorf("%s: %s", v, why)
		}
	}
	bad := []string{"sip:", "sip:@example.com", "sip:bob@exa_mple.com", "sip:bob@example.com:0", "sip:bob@example.com:http",
		"sip:bob@[::1", "tel:+", "tel:", "tel:+1 650", "http://example.com", "sip:bob@example.com>"}
	for _, v := range bad {
		if checkTarget(v) == "" {
			t.Errorf("%s accepted", v)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, dir := range []string{"testdata/good", "testdata/bad"} {
		files, _ := filepath.Glob(dir + "/*.xml")
		for _, file := range files {
			f.Add(readFile(f, file))
		}
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		s, err := Parse(doc)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not match ErrInvalid", err)
			}
			return
		}
		out, err := s.Marshal()
		if err != nil {
			if s.writable() == nil {
				t.Fatalf("valid document's view does not marshal: %v", err)
			}
			return
		}
		again, err := Parse(out)
		if err != nil || !reflect.DeepEqual(s, again) {
			t.Fatalf("round trip: %v\n%s", err, out)
		}
	})
}
