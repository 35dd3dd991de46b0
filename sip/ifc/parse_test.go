package ifc

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseDocuments(t *testing.T) {
	tests := []struct {
		file       string
		wantIFCs   []string
		wantShared []uint32
		wantErrs   []string
	}{
		{
			file: "service_profile.xml",
			wantIFCs: []string{
				"p=0 as=sip:mmtel.example.com dh=0 DNF [0]:Method=INVITE [0]:SessionCase=0",
				`p=1 as=sip:presence.example.com;lr dh=0 info="<presence-rules/>" +req +resp part=0 DNF [0]:Method=REGISTER[INITIAL_REGISTRATION DE-REGISTRATION]`,
				`p=3 as=sips:video-as.example.com dh=0 CNF [0]:SDP=m~^video [1]:SIPHeader=k~timer ![2]:RequestURI=^conf\.example\.com$`,
				`p=5 as=sip:vm.example.com:5060;transport=tcp dh=1 info="voicemail-box=6505550001" part=1 CNF [0]:Method=INVITE [1]:SessionCase=2`,
				"p=5 as=sip:mmtel.example.com dh=0 DNF [0]:Method=INVITE [0]:SessionCase=1",
			},
			wantShared: []uint32{10, 20},
		},
		{
			file:     "ellis_ifc.xml",
			wantIFCs: []string{"p=0 as=sip:mmtel.example.com dh=0 DNF [0]:Method=INVITE"},
		},
		{
			file: "bare_list.xml",
			wantIFCs: []string{
				"p=1 as=sip:mmtel.example.com dh=0 DNF [0]:Method=INVITE",
				"p=2 as=sip:ipsmgw.example.com dh=0 DNF [0]:Method=MESSAGE",
			},
		},
		{
			file:     "fallback_ifcs.xml",
			wantIFCs: []string{"p=0 as=sip:mmtel.example.com dh=0 DNF [0]:Method=INVITE"},
		},
		{
			file:     "malformed_profile.xml",
			wantIFCs: []string{"p=4 as=sip:good.example.com dh=0 DNF [0]:Method=INVITE"},
			wantErrs: []string{
				`line 4: ServiceProfile/InitialFilterCriteria[1]/Priority: "high" is not an integer from 0 to 2147483647`,
				"line 11: ServiceProfile/InitialFilterCriteria[2]/TriggerPoint/SPT[1]: must hold exactly one of <RequestURI>, <Method>, <SIPHeader>, <SessionCase>, <SessionDescription>",
				`line 19: ServiceProfile/InitialFilterCriteria[3]/TriggerPoint/SPT[1]/RequestURI: "([a-z" is not a valid regular expression: missing closing ]: [a-z`,
				`line 25: ServiceProfile/InitialFilterCriteria[4]/ApplicationServer/ServerName: "http://d.example.com/" is not a SIP URI`,
				`line 35: ServiceProfile/SharedIFCSetID[1]: "seven" is not a set ID (an integer from 0 to 4294967295)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			p, errs := Parse(readTestdata(t, tt.file))
			if got := describeAll(p.IFCs); !slices.Equal(got, tt.wantIFCs) {
				t.Errorf("iFCs:\n got %q\nwant %q", got, tt.wantIFCs)
			}
			if !slices.Equal(p.SharedIFCSetIDs, tt.wantShared) {
				t.Errorf("SharedIFCSetIDs = %v, want %v", p.SharedIFCSetIDs, tt.wantShared)
			}
			if got := errorStrings(errs); !slices.Equal(got, tt.wantErrs) {
				t.Errorf("errors:\n got %q\nwant %q", got, tt.wantErrs)
			}
			for _, err := range errs {
				var e *Error
				if !errors.As(err, &e) || e.Line == 0 {
					t.Errorf("error %v carries no line", err)
				}
			}
		})
	}
}

// wrap puts one iFC's inner XML in a ServiceProfile.
func wrap(inner string) string {
	return "<ServiceProfile><InitialFilterCriteria>" + inner + "</InitialFilterCriteria></ServiceProfile>"
}

const okAS = "<ApplicationServer><ServerName>sip:as.example.com</ServerName></ApplicationServer>"

func TestParseMalformedIFC(t *testing.T) {
	tp := func(spts string) string {
		return "<TriggerPoint><ConditionTypeCNF>0</ConditionTypeCNF>" + spts + "</TriggerPoint>" + okAS
	}
	tests := []struct {
		name, inner, wantErr string
	}{
		{"no application server", "<Priority>1</Priority>", "InitialFilterCriteria[2]: missing <ApplicationServer>"},
		{"two application servers", okAS + okAS, "more than 1 <ApplicationServer>"},
		{"unknown element", okAS + "<Colour>red</Colour>", "unexpected element <Colour>"},
		{"negative priority", "<Priority>-1</Priority>" + okAS, `Priority: "-1" is not an integer`},
		{"profile part out of range", "<ProfilePartIndicator>2</ProfilePartIndicator>" + okAS, `ProfilePartIndicator: "2" is not an integer from 0 to 1`},
		{"no ConditionTypeCNF", "<TriggerPoint><SPT><Group>0</Group><Method>INVITE</Method></SPT></TriggerPoint>" + okAS, "TriggerPoint: missing <ConditionTypeCNF>"},
		{"bad ConditionTypeCNF", "<TriggerPoint><ConditionTypeCNF>yes</ConditionTypeCNF><SPT><Group>0</Group><Method>INVITE</Method></SPT></TriggerPoint>" + okAS, `"yes" is not true, false, 1 or 0`},
		{"no SPT", "<TriggerPoint><ConditionTypeCNF>0</ConditionTypeCNF></TriggerPoint>" + okAS, "TriggerPoint: missing <SPT>"},
		{"SPT without group", tp("<SPT><Method>INVITE</Method></SPT>"), "SPT[1]: missing <Group>"},
		{"SPT group twice", tp("<SPT><Group>1</Group><Group>1</Group><Method>INVITE</Method></SPT>"), "SPT[1]/Group[2]: group 1 is named twice"},
		{"SPT without condition", tp("<SPT><Group>0</Group></SPT>"), "must hold exactly one of"},
		{"bad method", tp("<SPT><Group>0</Group><Method>IN VITE</Method></SPT>"), `Method: "IN VITE" is not a SIP method`},
		{"bad session case", tp("<SPT><Group>0</Group><SessionCase>5</SessionCase></SPT>"), `SessionCase: "5" is not an integer from 0 to 4`},
		{"bad registration type", tp("<SPT><Group>0</Group><Method>REGISTER</Method><Extension><RegistrationType>3</RegistrationType></Extension></SPT>"), `RegistrationType[1]: "3" is not an integer from 0 to 2`},
		{"bad negation", tp("<SPT><ConditionNegated>maybe</ConditionNegated><Group>0</Group><Method>INVITE</Method></SPT>"), `ConditionNegated: "maybe" is not true, false, 1 or 0`},
		{"header without name", tp("<SPT><Group>0</Group><SIPHeader><Content>x</Content></SIPHeader></SPT>"), "SIPHeader: missing <Header>"},
		{"bad header pattern", tp("<SPT><Group>0</Group><SIPHeader><Header>P-(</Header></SIPHeader></SPT>"), `"P-(" is neither a SIP header name nor a valid regular expression`},
		{"bad header content", tp("<SPT><Group>0</Group><SIPHeader><Header>To</Header><Content>a**</Content></SIPHeader></SPT>"), `SIPHeader/Content: "a**" is not a valid regular expression`},
		{"SDP without line", tp("<SPT><Group>0</Group><SessionDescription><Content>x</Content></SessionDescription></SPT>"), "SessionDescription: missing <Line>"},
		{"bad SDP content", tp("<SPT><Group>0</Group><SessionDescription><Line>m</Line><Content>(</Content></SessionDescription></SPT>"), `SessionDescription/Content: "(" is not a valid regular expression`},
		{"bad default handling", "<ApplicationServer><ServerName>sip:as.example.com</ServerName><DefaultHandling>2</DefaultHandling></ApplicationServer>", `DefaultHandling: "2" is not an integer from 0 to 1`},
		{"empty server name", "<ApplicationServer><ServerName></ServerName></ApplicationServer>", `ServerName: "" is not a SIP URI`},
		{"tel server name", "<ApplicationServer><ServerName>tel:+16505550000</ServerName></ApplicationServer>", `"tel:+16505550000" is not a SIP URI`},
		{"text in trigger point", "<TriggerPoint>junk<ConditionTypeCNF>0</ConditionTypeCNF><SPT><Group>0</Group><Method>INVITE</Method></SPT></TriggerPoint>" + okAS, `TriggerPoint: unexpected text "junk"`},
		{"child in leaf", "<Priority><x/>1</Priority>" + okAS, "Priority: unexpected element <x>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The malformed iFC sits between two good ones, which survive.
			doc := "<ServiceProfile>" +
				"<InitialFilterCriteria><Priority>0</Priority>" + okAS + "</InitialFilterCriteria>\n" +
				"<InitialFilterCriteria>" + tt.inner + "</InitialFilterCriteria>\n" +
				"<InitialFilterCriteria><Priority>7</Priority>" + okAS + "</InitialFilterCriteria></ServiceProfile>"
			p, errs := Parse([]byte(doc))
			if len(p.IFCs) != 2 || p.IFCs[0].Priority != 0 || p.IFCs[1].Priority != 7 {
				t.Errorf("iFCs = %q, want the two good ones", describeAll(p.IFCs))
			}
			if len(errs) == 0 {
				t.Fatalf("no error, want one containing %q", tt.wantErr)
			}
			joined := strings.Join(errorStrings(errs), "\n")
			if !strings.Contains(joined, tt.wantErr) {
				t.Errorf("errors %q do not mention %q", joined, tt.wantErr)
			}
			if !strings.Contains(joined, "line 2: ") || !strings.Contains(joined, "InitialFilterCriteria[2]") {
				t.Errorf("errors %q do not locate the iFC (line 2, InitialFilterCriteria[2])", joined)
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"no trigger point is unconditional", wrap(okAS), "p=0 as=sip:as.example.com dh=0"},
		{"empty default handling", wrap("<ApplicationServer><ServerName>sip:as.example.com</ServerName><DefaultHandling/></ApplicationServer>"), "p=0 as=sip:as.example.com dh=0"},
		{"true/false booleans", wrap("<TriggerPoint><ConditionTypeCNF>true</ConditionTypeCNF><SPT><ConditionNegated>false</ConditionNegated><Group>3</Group><Group>4</Group><Method>BYE</Method></SPT></TriggerPoint>" + okAS),
			"p=0 as=sip:as.example.com dh=0 CNF [3 4]:Method=BYE"},
		{"registration type directly in SPT", wrap("<TriggerPoint><ConditionTypeCNF>0</ConditionTypeCNF><SPT><Group>0</Group><Method>REGISTER</Method><RegistrationType>1</RegistrationType></SPT></TriggerPoint>" + okAS),
			"p=0 as=sip:as.example.com dh=0 DNF [0]:Method=REGISTER[RE-REGISTRATION]"},
		{"include register flags directly in AS", wrap("<ApplicationServer><ServerName>sip:as.example.com</ServerName><IncludeRegisterResponse/></ApplicationServer>"),
			"p=0 as=sip:as.example.com dh=0 +resp"},
		{"header name as pattern", wrap("<TriggerPoint><ConditionTypeCNF>0</ConditionTypeCNF><SPT><Group>0</Group><SIPHeader><Header>P-.*-Identity</Header></SIPHeader></SPT></TriggerPoint>" + okAS),
			"p=0 as=sip:as.example.com dh=0 DNF [0]:SIPHeader=P-.*-Identity"},
		{"namespaced extension skipped", wrap(`<TriggerPoint><ConditionTypeCNF>0</ConditionTypeCNF><SPT><Group>0</Group><Method>INVITE</Method><v:x xmlns:v="urn:v"/></SPT></TriggerPoint>` + okAS),
			"p=0 as=sip:as.example.com dh=0 DNF [0]:Method=INVITE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, errs := Parse([]byte(tt.doc))
			if len(errs) > 0 {
				t.Fatalf("errors: %v", errs)
			}
			if got := describeAll(p.IFCs); len(got) != 1 || got[0] != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseDocumentErrors(t *testing.T) {
	tests := []struct {
		name, doc, wantErr string
	}{
		{"empty", "  \n", "empty document"},
		{"not XML", "<ServiceProfile><Priority>", "line 1: malformed XML"},
		{"doctype", `<!DOCTYPE x [<!ENTITY a "b">]><ServiceProfile/>`, "DOCTYPE and other declarations are not allowed"},
		{"wrong root", "<IMSSubscription/>", "the root element must be <ServiceProfile>, <FallbackIFCsSet> or <InitialFilterCriteria>, not <IMSSubscription>"},
		{"namespaced root", `<ServiceProfile xmlns="urn:x"/>`, "must not be in a namespace"},
		{"two roots", "<ServiceProfile/><ServiceProfile/>", "more than one root element"},
		{"text outside", "<ServiceProfile/>junk", "text outside the root element"},
		{"duplicate set id", "<ServiceProfile><SharedIFCSetID>1</SharedIFCSetID><SharedIFCSetID>1</SharedIFCSetID></ServiceProfile>", "SharedIFCSetID[2]: set 1 is named twice"},
		{"deep nesting", "<ServiceProfile>" + strings.Repeat("<Extension>", 70) + strings.Repeat("</Extension>", 70) + "</ServiceProfile>", "nested deeper than 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, errs := Parse([]byte(tt.doc))
			if len(p.IFCs) != 0 {
				t.Errorf("iFCs = %q, want none", describeAll(p.IFCs))
			}
			if joined := strings.Join(errorStrings(errs), "\n"); !strings.Contains(joined, tt.wantErr) {
				t.Errorf("errors %q do not mention %q", joined, tt.wantErr)
			}
		})
	}
}

func TestParseSet(t *testing.T) {
	t.Run("shared", func(t *testing.T) {
		s, errs := ParseSet(readTestdata(t, "shared_ifcs.xml"))
		if len(errs) > 0 {
			t.Fatalf("errors: %v", errs)
		}
		if s.Root != "SharedIFCsSets" || s.Fallback != nil {
			t.Errorf("Root = %q, Fallback = %v", s.Root, s.Fallback)
		}
		want := map[uint32][]string{
			10: {"p=2 as=sip:ipsmgw.example.com dh=0 DNF [0]:Method=MESSAGE"},
			20: {"p=0 as=sip:presence.example.com dh=1 DNF [0]:Method=SUBSCRIBE [0]:SIPHeader=Event~^presence", "p=9 as=sip:audit.example.com dh=0"},
			30: nil,
		}
		if len(s.Shared) != len(want) {
			t.Errorf("sets %v, want %d", s.Shared, len(want))
		}
		for id, w := range want {
			got, ok := s.Shared[id]
			if !ok || !slices.Equal(describeAll(got), w) {
				t.Errorf("set %d = %q (present %v), want %q", id, describeAll(got), ok, w)
			}
		}
	})
	t.Run("fallback", func(t *testing.T) {
		s, errs := ParseSet(readTestdata(t, "fallback_ifcs.xml"))
		if len(errs) > 0 {
			t.Fatalf("errors: %v", errs)
		}
		if s.Root != "FallbackIFCsSet" || len(s.Shared) != 0 || len(s.Fallback) != 1 {
			t.Errorf("got %+v", s)
		}
	})
	errCases := []struct {
		name, doc string
		wantSets  []uint32
		wantErrs  []string
	}{
		{"duplicate SetID", "<SharedIFCsSets>\n<SharedIFCsSet><SetID>1</SetID></SharedIFCsSet>\n<SharedIFCsSet><SetID>1</SetID></SharedIFCsSet>\n</SharedIFCsSets>",
			[]uint32{1}, []string{"line 3: SharedIFCsSet[2]/SetID: set 1 is already defined by SharedIFCsSet[1]"}},
		{"missing SetID", "<SharedIFCsSets>\n<SharedIFCsSet></SharedIFCsSet>\n<SharedIFCsSet><SetID>2</SetID></SharedIFCsSet>\n</SharedIFCsSets>",
			[]uint32{2}, []string{"line 2: SharedIFCsSet[1]: missing <SetID>"}},
		{"bad SetID", "<SharedIFCsSets>\n<SharedIFCsSet><SetID>-4</SetID></SharedIFCsSet>\n</SharedIFCsSets>",
			nil, []string{`line 2: SharedIFCsSet[1]/SetID: "-4" is not a set ID (an integer from 0 to 4294967295)`}},
		{"bad iFC in a set", "<SharedIFCsSets>\n<SharedIFCsSet><SetID>5</SetID>\n<InitialFilterCriteria><Priority>x</Priority>" + okAS + "</InitialFilterCriteria>\n<InitialFilterCriteria>" + okAS + "</InitialFilterCriteria></SharedIFCsSet>\n</SharedIFCsSets>",
			[]uint32{5}, []string{`line 3: SharedIFCsSet[1]/InitialFilterCriteria[1]/Priority: "x" is not an integer from 0 to 2147483647`}},
		{"unknown element", "<SharedIFCsSets>\n<Set/>\n</SharedIFCsSets>", nil, []string{"line 2: unexpected element <Set>"}},
		{"wrong root", "<ServiceProfile/>", nil, []string{"line 1: the root element must be <SharedIFCsSets> or <FallbackIFCsSet>, not <ServiceProfile>"}},
		{"bad fallback iFC", "<FallbackIFCsSet>\n<InitialFilterCriteria/>\n</FallbackIFCsSet>", nil, []string{"line 2: InitialFilterCriteria[1]: missing <ApplicationServer>"}},
	}
	for _, tt := range errCases {
		t.Run(tt.name, func(t *testing.T) {
			s, errs := ParseSet([]byte(tt.doc))
			var ids []uint32
			for id := range s.Shared {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			if !slices.Equal(ids, tt.wantSets) {
				t.Errorf("sets %v, want %v", ids, tt.wantSets)
			}
			if got := errorStrings(errs); !slices.Equal(got, tt.wantErrs) {
				t.Errorf("errors\n got %q\nwant %q", got, tt.wantErrs)
			}
		})
	}
}
