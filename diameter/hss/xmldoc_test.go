package hss

import (
	"errors"
	"strings"
	"testing"
)

func TestParseServiceProfile(t *testing.T) {
	ifc := func(body string) string {
		return "<ServiceProfile><InitialFilterCriteria>" + body + "</InitialFilterCriteria></ServiceProfile>"
	}
	as := "<ApplicationServer><ServerName>sip:as.example.com</ServerName><DefaultHandling>0</DefaultHandling></ApplicationServer>"
	for _, tc := range []struct {
		name    string
		doc     string
		ifcs    int
		wantErr string // substring of the error; "" means valid
	}{
		{"Clearwater app-servers.json style (empty CNF)", ifc("<Priority>0</Priority><TriggerPoint><ConditionTypeCNF></ConditionTypeCNF><SPT><ConditionNegated>0</ConditionNegated><Group>0</Group><Method>INVITE</Method><Extension></Extension></SPT></TriggerPoint>" + as), 1, ""},
		{"default MMTEL iFC", DefaultIFC("sip:mmtel.example.com"), 2, ""},
		{"no trigger point", ifc(as), 1, ""},
		{"empty profile", "<ServiceProfile/>", 0, ""},
		{"shared iFC set ids", "<ServiceProfile><SharedIFCSetID>3</SharedIFCSetID></ServiceProfile>", 0, ""},
		{"SIP header and session description", ifc("<TriggerPoint><ConditionTypeCNF>1</ConditionTypeCNF><SPT><Group>0</Group><SIPHeader><Header>Accept-Contact</Header><Content>.*video.*</Content></SIPHeader></SPT><SPT><Group>1</Group><SessionDescription><Line>m</Line><Content>audio</Content></SessionDescription></SPT></TriggerPoint>" + as), 1, ""},
		{"foreign namespace extension", `<ServiceProfile xmlns:x="urn:x"><x:Thing/><InitialFilterCriteria>` + as + `</InitialFilterCriteria></ServiceProfile>`, 1, ""},
		{"malformed", "<ServiceProfile><InitialFilterCriteria>", 0, "malformed XML"},
		{"empty", "  ", 0, "empty document"},
		{"wrong root", "<IMSSubscription/>", 0, "root element must be <ServiceProfile>"},
		{"namespaced root", `<ServiceProfile xmlns="urn:x"/>`, 0, "must not be in a namespace"},
		{"doctype", `<!DOCTYPE x [<!ENTITY a "b">]><ServiceProfile/>`, 0, "DOCTYPE"},
		{"public identity inside", "<ServiceProfile><PublicIdentity><Identity>sip:a@b</Identity></PublicIdentity></ServiceProfile>", 0, "public_ids"},
		{"missing application server", ifc("<Priority>0</Priority>"), 1, "missing <ApplicationServer>"},
		{"server name not SIP", ifc("<ApplicationServer><ServerName>http://as</ServerName></ApplicationServer>"), 1, "is not a SIP URI"},
		{"negative priority", ifc("<Priority>-1</Priority>" + as), 1, "Priority"},
		{"two conditions in one SPT", ifc("<TriggerPoint><ConditionTypeCNF>0</ConditionTypeCNF><SPT><Group>0</Group><Method>INVITE</Method><SessionCase>0</SessionCase></SPT></TriggerPoint>" + as), 1, "exactly one of"},
		{"no group", ifc("<TriggerPoint><ConditionTypeCNF>0</ConditionTypeCNF><SPT><Method>INVITE</Method></SPT></TriggerPoint>" + as), 1, "missing <Group>"},
		{"bad session case", ifc("<TriggerPoint><ConditionTypeCNF>0</ConditionTypeCNF><SPT><Group>0</Group><SessionCase>7</SessionCase></SPT></TriggerPoint>" + as), 1, "SessionCase"},
		{"bad method", ifc("<TriggerPoint><ConditionTypeCNF>0</ConditionTypeCNF><SPT><Group>0</Group><Method>IN VITE</Method></SPT></TriggerPoint>" + as), 1, "not a SIP method"},
		{"bad regex", ifc("<TriggerPoint><ConditionTypeCNF>0</ConditionTypeCNF><SPT><Group>0</Group><RequestURI>sip:(</RequestURI></SPT></TriggerPoint>" + as), 1, "regular expression"},
		{"unknown element", ifc("<Colour>blue</Colour>" + as), 1, "unexpected element <Colour>"},
		{"bad CNF", ifc("<TriggerPoint><ConditionTypeCNF>maybe</ConditionTypeCNF><SPT><Group>0</Group><Method>INVITE</Method></SPT></TriggerPoint>" + as), 1, "ConditionTypeCNF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := ParseServiceProfile([]byte(tc.doc))
			if tc.wantErr == "" {
				if err != nil || n != tc.ifcs {
					t.Fatalf("ParseServiceProfile = %d, %v; want %d, nil", n, err, tc.ifcs)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want ErrInvalid mentioning %q", err, tc.wantErr)
			}
		})
	}
}

func TestParsePublicIdentity(t *testing.T) {
	for _, tc := range []struct {
		name     string
		doc      string
		identity string
		barred   bool
		wantErr  string
	}{
		{"plain", "<PublicIdentity><Identity>sip:a@example.com</Identity></PublicIdentity>", "sip:a@example.com", false, ""},
		{"barred with declaration", `<?xml version="1.0"?><PublicIdentity><BarringIndication>1</BarringIndication><Identity>tel:+1</Identity></PublicIdentity>`, "tel:+1", true, ""},
		{"extension", "<PublicIdentity><Identity>sip:a@b</Identity><Extension><IdentityType>3</IdentityType><Extension><WildcardedIMPU>sip:!.*!@b</WildcardedIMPU></Extension></Extension></PublicIdentity>", "sip:a@b", false, ""},
		{"no identity", "<PublicIdentity/>", "", false, "missing <Identity>"},
		{"two identities", "<PublicIdentity><Identity>sip:a@b</Identity><Identity>sip:c@b</Identity></PublicIdentity>", "", false, "more than 1 <Identity>"},
		{"bad barring", "<PublicIdentity><BarringIndication>yes</BarringIndication><Identity>sip:a@b</Identity></PublicIdentity>", "", false, "BarringIndication"},
		{"malformed", "<PublicIdentity><Identity>sip:a@b</PublicIdentity>", "", false, "malformed XML"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pd, err := parsePublicIdentity([]byte(tc.doc))
			if tc.wantErr == "" {
				if err != nil || pd.identity != tc.identity || pd.barred != tc.barred || strings.HasPrefix(pd.element, "<?xml") {
					t.Fatalf("got %+v, %v", pd, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
			}
		})
	}
}

func TestIdentities(t *testing.T) {
	for _, tc := range []struct {
		impu  string
		ok    bool
		host  string
		impi  string
		realm string
	}{
		{"sip:alice@example.com", true, "example.com", "alice@example.com", "example.com"},
		{"sip:alice@Example.COM:5060;transport=tcp", true, "example.com", "alice@Example.COM:5060", "example.com"},
		{"sips:bob@[2001:db8::1]:5061", true, "[2001:db8::1]", "sips:bob@[2001:db8::1]:5061", "[2001:db8::1]"},
		{"tel:+16505550000", true, "tel", "tel:+16505550000", "home.net"},
		{"sip:650555!.*!@example.com", true, "example.com", "650555!.*!@example.com", "example.com"},
		{"sip:650555!(!@example.com", false, "", "", ""},
		{"sip:a!b@example.com", false, "", "", ""},
		{"http://example.com", false, "", "", ""},
		{"sip:", false, "", "", ""},
		{"sip:a b@example.com", false, "", "", ""},
	} {
		err := CheckPublicID(tc.impu)
		if (err == nil) != tc.ok {
			t.Errorf("CheckPublicID(%q) = %v, want ok=%v", tc.impu, err, tc.ok)
			continue
		}
		if !tc.ok {
			continue
		}
		if h := hostOf(tc.impu); h != tc.host {
			t.Errorf("hostOf(%q) = %q, want %q", tc.impu, h, tc.host)
		}
		if i := DefaultPrivateID(tc.impu); i != tc.impi {
			t.Errorf("DefaultPrivateID(%q) = %q, want %q", tc.impu, i, tc.impi)
		}
		if r := DefaultRealm(tc.impu, "home.net"); r != tc.realm {
			t.Errorf("DefaultRealm(%q) = %q, want %q", tc.impu, r, tc.realm)
		}
	}
	re, err := wildcardRegexp("sip:650555!.*!@example.com")
	if err != nil {
		t.Fatal(err)
	}
	for s, want := range map[string]bool{
		"sip:6505551234@example.com": true, "sip:650555@example.com": true,
		"sip:7505551234@example.com": false, "sip:6505551234@exampleXcom": false,
	} {
		if re.MatchString(s) != want {
			t.Errorf("wildcard match %q = %v, want %v", s, !want, want)
		}
	}
}
