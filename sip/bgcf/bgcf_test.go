package bgcf

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

func load(t *testing.T, name string) Routes {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseBGCFJSON(data)
	if err != nil {
		t.Fatalf("ParseBGCFJSON(%s): %v", name, err)
	}
	return r
}

func uriStrings(us []sip.Uri) []string {
	out := make([]string, len(us))
	for i := range us {
		out[i] = us[i].String()
	}
	return out
}

func TestLookup(t *testing.T) {
	routes := load(t, "bgcf.json")
	noDefault := load(t, "bgcf-no-default.json")
	const dflt = "sip:default-ibcf.example.com;lr"
	for _, tc := range []struct {
		name   string
		routes Routes
		uri    string
		rn     string
		want   []string // nil: no route
	}{
		{"exact domain", routes, "sip:+16505551234@trunk1.example.net", "", []string{"sip:ibcf1.example.com;lr"}},
		{"domain case-insensitive, first entry wins", routes, "sip:bob@TRUNK1.example.net", "", []string{"sip:ibcf1.example.com;lr"}},
		{"IP domain, two hops", routes, "sip:bob@10.1.2.3:5060", "", []string{"sip:ibcf2.example.com:5058;lr", "sip:10.1.2.3;transport=tcp;lr"}},
		{"IPv6 domain", routes, "sip:bob@[2001:db8::1]", "", []string{"sip:[2001:db8::2]:5060;lr"}},
		{"unknown domain gets default", routes, "sip:bob@elsewhere.example.org", "", []string{dflt}},
		{"subdomain is not the domain", routes, "sip:bob@a.trunk1.example.net", "", []string{dflt}},
		{"rn longest prefix", routes, "sip:+16505551234@trunk1.example.net", "+16505550000", []string{"sip:pa-ibcf.example.com;lr", "sip:pa-gw.example.com;lr"}},
		{"rn shorter prefix", routes, "sip:+16505551234@trunk1.example.net", "+12125550000", []string{"sip:nanp-ibcf.example.com;lr"}},
		{"rn with visual separators", routes, "sip:x@trunk1.example.net", "+242-123-4567", []string{"sips:bs-ibcf.example.com;lr"}},
		{"rn unmatched falls to default, not domain", routes, "sip:+44@trunk1.example.net", "+44123", []string{dflt}},
		{"rn from tel URI", routes, "tel:+2421234567;npdi;rn=+16505550000", "", []string{"sip:pa-ibcf.example.com;lr", "sip:pa-gw.example.com;lr"}},
		{"rn from SIP user part", routes, "sip:+4411;npdi;rn=+1212@trunk1.example.net;user=phone", "", []string{"sip:nanp-ibcf.example.com;lr"}},
		{"rn argument wins over URI", routes, "tel:+4411;rn=+1212", "+242123", []string{"sips:bs-ibcf.example.com;lr"}},
		{"tel number prefix", routes, "tel:+1-650-555-1234", "", []string{"sip:pa-ibcf.example.com;lr", "sip:pa-gw.example.com;lr"}},
		{"tel unmatched gets default", routes, "tel:+4420", "", []string{dflt}},
		{"user=phone number prefix", routes, "sip:+12125551234@trunk1.example.net;user=phone", "", []string{"sip:nanp-ibcf.example.com;lr"}},
		{"user=phone unmatched gets default, not domain", routes, "sip:+4420@trunk1.example.net;user=phone", "", []string{dflt}},
		{"numeric user without user=phone routes by domain", routes, "sip:+16505551234@trunk1.example.net", "", []string{"sip:ibcf1.example.com;lr"}},
		{"no default: domain", noDefault, "sip:bob@trunk.example.net", "", []string{"sip:ibcf.example.com;lr"}},
		{"no default: unknown domain", noDefault, "sip:bob@other.example.net", "", nil},
		{"no default: number", noDefault, "tel:+4420", "", []string{"sip:uk-ibcf.example.com;lr"}},
		{"no default: unmatched number", noDefault, "tel:+1650", "", nil},
		{"no default: unmatched rn", noDefault, "sip:bob@trunk.example.net", "+1650", nil},
		{"zero Routes", Routes{}, "sip:bob@trunk.example.net", "+1", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var u sip.Uri
			if err := sip.ParseUri(tc.uri, &u); err != nil {
				t.Fatal(err)
			}
			got, ok := tc.routes.Lookup(&u, tc.rn)
			if ok != (tc.want != nil) || !slices.Equal(uriStrings(got), tc.want) {
				t.Fatalf("Lookup(%s, %q) = %v, %v; want %v", tc.uri, tc.rn, uriStrings(got), ok, tc.want)
			}
		})
	}
	if got, ok := routes.Lookup(nil, ""); ok || got != nil {
		t.Fatalf("Lookup(nil, \"\") = %v, %v; want nothing", got, ok)
	}
	if got, ok := routes.Lookup(nil, "+1650"); !ok || got[0].Host != "pa-ibcf.example.com" {
		t.Fatalf("Lookup(nil, rn) = %v, %v; want the +1650 route", uriStrings(got), ok)
	}
}

func TestLookupReturnsCopies(t *testing.T) {
	routes := load(t, "bgcf.json")
	u := sip.Uri{Scheme: "sip", Host: "trunk1.example.net"}
	first, _ := routes.Lookup(&u, "")
	first[0].Host = "changed"
	first[0].UriParams.Add("lr", "x")
	again, _ := routes.Lookup(&u, "")
	if got := again[0].String(); got != "sip:ibcf1.example.com;lr" {
		t.Fatalf("route changed by a caller's edit: %s", got)
	}
}

func TestParseBGCFJSONErrors(t *testing.T) {
	for _, tc := range []struct{ name, json, wantErr string }{
		{"not json", `{"routes":[`, "bgcf.json: unexpected EOF"},
		{"trailing", `{"routes":[]}{}`, "trailing data"},
		{"no routes", `{}`, `missing "routes"`},
		{"routes not array", `{"routes":{}}`, "cannot unmarshal"},
		{"neither", `{"routes":[{"name":"a","route":["sip:x"]}]}`, `routes[0] ("a"): needs "domain" or "number"`},
		{"both", `{"routes":[{"name":"b","domain":"d","number":"1","route":["sip:x"]}]}`, `routes[0] ("b"): has both "domain" and "number"`},
		{"empty domain", `{"routes":[{"domain":" ","route":["sip:x"]}]}`, `routes[0]: "domain" is empty`},
		{"bad number", `{"routes":[{"name":"c","number":"+1-800-FLOWERS","route":["sip:x"]}]}`, `("c"): "number" "+1-800-FLOWERS" is not digits`},
		{"empty number", `{"routes":[{"number":"","route":["sip:x"]}]}`, `"number" "" is not digits`},
		{"missing route", `{"routes":[{"name":"d","domain":"x"}]}`, `routes[0] ("d"): missing "route"`},
		{"empty route", `{"routes":[{"domain":"x","route":[]}]}`, `"route" is empty`},
		{"route not list", `{"routes":[{"domain":"x","route":"sip:a"}]}`, `"route" must be an array`},
		{"route not SIP", `{"routes":[{"domain":"ok","route":["sip:a"]},{"name":"e","domain":"x","route":["sip:a;lr","tel:+1"]}]}`, `routes[1] ("e"): "route"[1] "tel:+1" is not a SIP URI`},
		{"route unparsable", `{"routes":[{"domain":"x","route":["sip:a:port"]}]}`, `"route"[0] "sip:a:port"`},
		{"route without host", `{"routes":[{"domain":"x","route":["sip:bob@"]}]}`, `"route"[0] "sip:bob@" has no host`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseBGCFJSON([]byte(tc.json))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("ParseBGCFJSON(%s) error %v; want %q", tc.json, err, tc.wantErr)
			}
		})
	}
}
