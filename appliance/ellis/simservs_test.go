package ellis

import (
	"encoding/xml"
	"maps"
	"strings"
	"testing"
)

// xmlSimservs is an independent reading of the parts of a simservs
// document the portal writes, through encoding/xml's namespace handling.
type xmlSimservs struct {
	XMLName xml.Name `xml:"http://uri.etsi.org/ngn/params/xml/simservs/xcap simservs"`
	OIP     *struct {
		Active string `xml:"active,attr"`
	} `xml:"http://uri.etsi.org/ngn/params/xml/simservs/xcap originating-identity-presentation"`
	OIR struct {
		Active  string `xml:"active,attr"`
		Default string `xml:"http://uri.etsi.org/ngn/params/xml/simservs/xcap default-behaviour"`
	} `xml:"http://uri.etsi.org/ngn/params/xml/simservs/xcap originating-identity-presentation-restriction"`
	CDIV struct {
		Active       string    `xml:"active,attr"`
		NoReplyTimer int       `xml:"http://uri.etsi.org/ngn/params/xml/simservs/xcap NoReplyTimer"`
		Rules        []xmlRule `xml:"urn:ietf:params:xml:ns:common-policy ruleset>rule"`
	} `xml:"http://uri.etsi.org/ngn/params/xml/simservs/xcap communication-diversion"`
	ICB struct {
		Active string    `xml:"active,attr"`
		Rules  []xmlRule `xml:"urn:ietf:params:xml:ns:common-policy ruleset>rule"`
	} `xml:"http://uri.etsi.org/ngn/params/xml/simservs/xcap incoming-communication-barring"`
	OCB struct {
		Active string    `xml:"active,attr"`
		Rules  []xmlRule `xml:"urn:ietf:params:xml:ns:common-policy ruleset>rule"`
	} `xml:"http://uri.etsi.org/ngn/params/xml/simservs/xcap outgoing-communication-barring"`
}

type xmlRule struct {
	ID         string `xml:"id,attr"`
	Conditions struct {
		Any []struct{ XMLName xml.Name } `xml:",any"`
	} `xml:"urn:ietf:params:xml:ns:common-policy conditions"`
	Actions struct {
		ForwardTo struct {
			Target string `xml:"http://uri.etsi.org/ngn/params/xml/simservs/xcap target"`
		} `xml:"http://uri.etsi.org/ngn/params/xml/simservs/xcap forward-to"`
		Allow string `xml:"http://uri.etsi.org/ngn/params/xml/simservs/xcap allow"`
	} `xml:"urn:ietf:params:xml:ns:common-policy actions"`
}

func decodeSimservs(t *testing.T, doc []byte) xmlSimservs {
	t.Helper()
	var x xmlSimservs
	if err := xml.Unmarshal(doc, &x); err != nil {
		t.Fatalf("not a simservs document (%v):\n%s", err, doc)
	}
	return x
}

func TestDefaultSimservs(t *testing.T) {
	doc := defaultSimservs()
	x := decodeSimservs(t, doc)
	if x.OIP == nil || x.OIP.Active != "true" || x.OIR.Active != "true" || x.OIR.Default != "presentation-not-restricted" ||
		x.CDIV.Active != "false" || len(x.CDIV.Rules) != 0 || x.ICB.Active != "false" || x.OCB.Active != "false" {
		t.Fatalf("default document:\n%s", doc)
	}
	if !strings.Contains(string(doc), `<simservs xmlns="http://uri.etsi.org/ngn/params/xml/simservs/xcap" xmlns:cp="urn:ietf:params:xml:ns:common-policy">`) {
		t.Fatalf("namespaces:\n%s", doc)
	}
}

func TestServicesRoundTrip(t *testing.T) {
	for _, sv := range []services{
		{NoReplyTimer: 20, Diversions: map[string]string{}},
		{Restricted: true, BarIncoming: true, BarOutgoing: "all", DiversionActive: true, NoReplyTimer: 45,
			Diversions: map[string]string{"": "sip:a@example.com", "busy": "sip:b@example.com", "no-answer": "tel:+15551234",
				"not-registered": "sip:c@example.com", "not-reachable": "sip:d@example.com"}},
		{BarOutgoing: "international", NoReplyTimer: 5, Diversions: map[string]string{"busy": "sip:x@example.com"}},
	} {
		root, err := parseXML(defaultSimservs())
		if err != nil {
			t.Fatal(err)
		}
		applyServices(root, sv)
		doc := renderSimservs(root)
		got := readServicesOf(t, doc)
		if got.Restricted != sv.Restricted || got.BarIncoming != sv.BarIncoming || got.BarOutgoing != sv.BarOutgoing ||
			got.DiversionActive != sv.DiversionActive || got.NoReplyTimer != sv.NoReplyTimer || !maps.Equal(got.Diversions, sv.Diversions) || got.Dropped != nil {
			t.Fatalf("wrote %+v, read %+v from\n%s", sv, got, doc)
		}
		x := decodeSimservs(t, doc)
		if x.OIP == nil {
			t.Fatalf("OIP lost:\n%s", doc)
		}
		for _, r := range x.CDIV.Rules {
			if r.Actions.ForwardTo.Target == "" {
				t.Fatalf("rule %s has no target:\n%s", r.ID, doc)
			}
		}
	}
}

// TestReadForeignSimservs reads a document written with other prefixes and
// rules the portal does not manage, and keeps what it does not edit.
func TestReadForeignSimservs(t *testing.T) {
	doc := `<?xml version="1.0"?>
<ss:simservs xmlns:ss="http://uri.etsi.org/ngn/params/xml/simservs/xcap" xmlns:pol="urn:ietf:params:xml:ns:common-policy" xmlns:x="urn:example:ext">
  <ss:communication-waiting active="true"/>
  <ss:originating-identity-presentation-restriction>
    <ss:default-behaviour>presentation-restricted</ss:default-behaviour>
  </ss:originating-identity-presentation-restriction>
  <ss:communication-diversion active="true">
    <ss:NoReplyTimer>25</ss:NoReplyTimer>
    <pol:ruleset>
      <pol:rule id="r1"><pol:conditions><ss:busy/></pol:conditions><pol:actions><ss:forward-to><ss:target>sip:b@example.com</ss:target></ss:forward-to></pol:actions></pol:rule>
      <pol:rule id="r2"><pol:conditions><ss:media><ss:media>video</ss:media></ss:media></pol:conditions><pol:actions><ss:forward-to><ss:target>sip:v@example.com</ss:target></ss:forward-to></pol:actions></pol:rule>
    </pol:ruleset>
  </ss:communication-diversion>
  <ss:outgoing-communication-barring active="true">
    <pol:ruleset><pol:rule id="o"><pol:conditions><ss:international/></pol:conditions><pol:actions><ss:allow>false</ss:allow></pol:actions></pol:rule></pol:ruleset>
  </ss:outgoing-communication-barring>
  <x:extension x:level="3">kept</x:extension>
</ss:simservs>`
	root, err := parseXML([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	sv := readServices(root)
	if !sv.Restricted || !sv.DiversionActive || sv.NoReplyTimer != 25 || sv.Diversions["busy"] != "sip:b@example.com" ||
		len(sv.Diversions) != 1 || sv.BarOutgoing != "international" || len(sv.Dropped) != 1 || !strings.Contains(sv.Dropped[0], "media") {
		t.Fatalf("read %+v", sv)
	}
	sv.BarIncoming = true
	applyServices(root, sv)
	out := renderSimservs(root)
	again, err := parseXML(out)
	if err != nil {
		t.Fatalf("rewritten document is not XML (%v):\n%s", err, out)
	}
	if cw := again.child(simservsNS, "communication-waiting"); cw == nil || cw.attr("active") != "true" {
		t.Fatalf("communication-waiting lost:\n%s", out)
	}
	ext := again.child("urn:example:ext", "extension")
	if ext == nil || ext.Text != "kept" || len(ext.Attrs) != 1 || ext.Attrs[0].Name.Space != "urn:example:ext" {
		t.Fatalf("extension lost:\n%s", out)
	}
	if got := readServices(again); !got.BarIncoming || got.Diversions["busy"] != "sip:b@example.com" || got.Dropped != nil {
		t.Fatalf("re-read %+v from\n%s", got, out)
	}
	// The first child keeps its place.
	if again.Children[0].Name.Local != "communication-waiting" {
		t.Fatalf("order changed:\n%s", out)
	}
}

func TestDefaultIFC(t *testing.T) {
	x := defaultIFC("example.net")
	var sp struct {
		IFCs []struct {
			Priority int
			TP       struct {
				CNF  int `xml:"ConditionTypeCNF"`
				SPTs []struct {
					Group       int
					Method      string
					SessionCase *int
				} `xml:"SPT"`
			} `xml:"TriggerPoint"`
			AS struct {
				ServerName      string
				DefaultHandling int
			} `xml:"ApplicationServer"`
		} `xml:"InitialFilterCriteria"`
	}
	if err := xml.Unmarshal([]byte(x), &sp); err != nil || len(sp.IFCs) != 2 {
		t.Fatalf("default iFC (%v):\n%s", err, x)
	}
	cases := map[int]bool{}
	for _, ifc := range sp.IFCs {
		if ifc.AS.ServerName != "sip:mmtel.example.net" || ifc.TP.CNF != 1 || ifc.TP.SPTs[0].Method != "INVITE" || ifc.TP.SPTs[0].Group != 0 {
			t.Fatalf("iFC:\n%s", x)
		}
		for _, spt := range ifc.TP.SPTs[1:] {
			if spt.SessionCase == nil || spt.Group != 1 {
				t.Fatalf("iFC:\n%s", x)
			}
			cases[*spt.SessionCase] = true
		}
	}
	if len(cases) != 4 {
		t.Fatalf("session cases %v, want originating and terminating, registered or not", cases)
	}
}

func TestDiversionTarget(t *testing.T) {
	for in, want := range map[string]string{
		"6505550001":           "sip:6505550001@example.com",
		" bob@example.org ":    "sip:bob@example.org",
		"sip:x@example.org":    "sip:x@example.org",
		"tel:+15551234567":     "tel:+15551234567",
		"SIPS:y@example.org":   "SIPS:y@example.org",
		"":                     "",
		"sip:":                 "",
		"a b":                  "",
		"<sip:x@example.org>":  "",
		"sip:x@example.org\"/": "",
	} {
		got, err := diversionTarget(in, "example.com")
		if (err != nil) != (want == "") || got != want {
			t.Errorf("diversionTarget(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestFormatNumber(t *testing.T) {
	for in, want := range map[string]string{"6505550000": "(650) 555-0000", "+15108580271": "+1 (510) 858-0271", "1234": "1234", "+4420": "+4420", "alice": "alice"} {
		if got := formatNumber(in); got != want {
			t.Errorf("formatNumber(%q) = %q, want %q", in, got, want)
		}
	}
}
