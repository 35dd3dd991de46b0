package homestead_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/wmnsk/milenage"

	"stillwater/diameter/homestead"
	"stillwater/diameter/hss"
	"stillwater/kv/kvtest"
)

type lockedRand struct {
	mu sync.Mutex
	r  *rand.ChaCha8
}

func (l *lockedRand) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(p)
}

// servers runs Homestead-prov and Homestead over one store on a real
// single-node site; the random source is seeded so that ids, challenges and
// so the golden bodies are the same on every run.
type servers struct {
	prov, hs *httptest.Server
	client   *http.Client
	vars     map[string]string
}

type simservs struct {
	mu    sync.Mutex
	impus []string
}

func (s *simservs) PutDefault(_ context.Context, impus []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.impus = append(s.impus, impus...)
	return nil
}

func newServers(t testing.TB, ss hss.SimservsWriter) *servers {
	t.Helper()
	site := kvtest.New(t, 4)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store := hss.New(site.KV, hss.Options{
		HomeDomain: "example.com",
		SCSCF:      "sip:scscf.sprout.example.com:5054;transport=tcp",
		Rand:       &lockedRand{r: rand.NewChaCha8([32]byte{7})},
		ShardOf:    func(k string) int { return site.Node.ShardOf([]byte(k)) },
		Simservs:   ss,
		Logger:     log,
	})
	s := &servers{
		prov:   httptest.NewServer(homestead.NewProvHandler(store, homestead.WithLogger(log))),
		hs:     httptest.NewServer(homestead.NewHandler(store, homestead.WithLogger(log))),
		client: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		vars:   map[string]string{},
	}
	t.Cleanup(s.prov.Close)
	t.Cleanup(s.hs.Close)
	return s
}

// step is one request and what must come back.
type step struct {
	name   string
	api    string // "prov" (default) or "hs"
	method string
	path   string // ${VAR} is replaced by a captured value
	body   string
	status int
	// golden names testdata/<golden>, the expected body with captured
	// values written as ${VAR}.
	golden string
	// contains must be in the body, when there is no golden.
	contains string
	// location is the expected Location header (after substitution).
	location string
	// capture stores the last path segment of Location under this name.
	capture string
}

func (s *servers) expand(v string) string {
	for k, val := range s.vars {
		v = strings.ReplaceAll(v, "${"+k+"}", val)
	}
	return v
}

func (s *servers) run(t *testing.T, steps []step) {
	t.Helper()
	for _, st := range steps {
		base := s.prov.URL
		if st.api == "hs" {
			base = s.hs.URL
		}
		req, err := http.NewRequest(st.method, base+s.expand(st.path), strings.NewReader(s.expand(st.body)))
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		resp, err := s.client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != st.status {
			t.Fatalf("%s: %s %s: status %d, want %d; body %s", st.name, st.method, st.path, resp.StatusCode, st.status, body)
		}
		loc := resp.Header.Get("Location")
		if st.capture != "" {
			if loc == "" {
				t.Fatalf("%s: no Location to capture", st.name)
			}
			s.vars[st.capture] = loc[strings.LastIndexByte(loc, '/')+1:]
		}
		if st.location != "" && loc != s.expand(st.location) {
			t.Fatalf("%s: Location %q, want %q", st.name, loc, s.expand(st.location))
		}
		if st.contains != "" && !bytes.Contains(body, []byte(s.expand(st.contains))) {
			t.Fatalf("%s: body %q does not contain %q", st.name, body, s.expand(st.contains))
		}
		if st.golden != "" {
			s.checkGolden(t, st.name, st.golden, string(body))
		}
	}
}

// checkGolden compares a body with testdata/name (UPDATE_GOLDEN=1 rewrites
// it), with captured values replaced by their names.
func (s *servers) checkGolden(t *testing.T, step, name, body string) {
	t.Helper()
	for k, v := range s.vars {
		if v != "" {
			body = strings.ReplaceAll(body, v, "${"+k+"}")
		}
	}
	path := filepath.Join("testdata", name)
	if os.Getenv("UPDATE_GOLDEN") != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%s: %v (run with UPDATE_GOLDEN=1 to create it)", step, err)
	}
	if body != string(want) {
		t.Fatalf("%s: body differs from %s:\n--- got ---\n%s\n--- want ---\n%s", step, name, body, want)
	}
}

const ifcDoc = `<?xml version="1.0" encoding="UTF-8"?><ServiceProfile><InitialFilterCriteria><Priority>0</Priority><TriggerPoint><ConditionTypeCNF></ConditionTypeCNF><SPT><ConditionNegated>0</ConditionNegated><Group>0</Group><Method>INVITE</Method><Extension></Extension></SPT></TriggerPoint><ApplicationServer><ServerName>sip:mmtel.example.com</ServerName><DefaultHandling>0</DefaultHandling></ApplicationServer></InitialFilterCriteria></ServiceProfile>`

func pubXML(id string) string {
	return "<PublicIdentity><Identity>" + id + "</Identity></PublicIdentity>"
}

// provisioning creates alice (IMPI alice@example.com, IMPU
// sip:alice@example.com) through the API, leaving ${IRS} and ${SP}.
var provisioning = []step{
	{name: "ping", method: "GET", path: "/ping", status: 200, contains: "OK"},
	{name: "put private (plaintext)", method: "PUT", path: "/private/alice@example.com", body: `{"plaintext_password": "secret", "realm": "example.com"}`, status: 200},
	{name: "get private (plaintext)", method: "GET", path: "/private/alice@example.com", status: 200, golden: "prov/private_plaintext.json"},
	{name: "put private (digest, default realm)", method: "PUT", path: "/private/alice@example.com", body: `{"digest_ha1": "` + hss.DigestHA1("alice@example.com", "example.com", "secret") + `"}`, status: 200},
	{name: "get private (digest)", method: "GET", path: "/private/alice@example.com", status: 200, golden: "prov/private_digest.json"},
	{name: "create IRS", method: "POST", path: "/irs", status: 201, capture: "IRS"},
	{name: "create service profile", method: "POST", path: "/irs/${IRS}/service_profiles", status: 201, location: "/irs/${IRS}/service_profiles/${SP}", capture: "SP"},
	{name: "associate", method: "PUT", path: "/private/alice@example.com/associated_implicit_registration_sets/${IRS}", status: 200},
	{name: "put iFC", method: "PUT", path: "/irs/${IRS}/service_profiles/${SP}/filter_criteria", body: ifcDoc, status: 200},
	{name: "put public id", method: "PUT", path: "/irs/${IRS}/service_profiles/${SP}/public_ids/sip:alice@example.com", body: pubXML("sip:alice@example.com"), status: 200},
}

func TestProvAPI(t *testing.T) {
	ss := &simservs{}
	s := newServers(t, ss)
	s.run(t, provisioning)
	s.run(t, []step{
		// Private identities.
		{name: "get unknown private", method: "GET", path: "/private/nobody@example.com", status: 404, golden: "prov/err_private_not_found.json"},
		{name: "malformed JSON", method: "PUT", path: "/private/bob@example.com", body: `{"digest_ha1": `, status: 400, golden: "prov/err_bad_json.json"},
		{name: "empty body", method: "PUT", path: "/private/bob@example.com", status: 400, contains: "empty body"},
		{name: "digest and password", method: "PUT", path: "/private/bob@example.com", body: `{"digest_ha1": "0123456789abcdef0123456789abcdef", "plaintext_password": "x"}`, status: 400, contains: "not both"},
		{name: "no credentials", method: "PUT", path: "/private/bob@example.com", body: `{"realm": "example.com"}`, status: 400, contains: "missing digest_ha1"},
		{name: "unknown field", method: "PUT", path: "/private/bob@example.com", body: `{"password": "x"}`, status: 400, contains: `unknown field \"password\"`},
		{name: "wrong type", method: "PUT", path: "/private/bob@example.com", body: `{"realm": 7}`, status: 400, contains: "realm"},
		{name: "bad HA1", method: "PUT", path: "/private/bob@example.com", body: `{"digest_ha1": "xyz"}`, status: 400, contains: "32 hexadecimal digits"},
		{name: "AKA credentials", method: "PUT", path: "/private/bob@example.com", body: `{"plaintext_password": "pw", "aka": {"k": "465b5ce8b199b49faa5f0a2ee238a6bc", "op": "cdc202d5123e20f62b6d676ac72cb318", "amf": "b9b9"}}`, status: 200},
		{name: "get AKA private", method: "GET", path: "/private/bob@example.com", status: 200, golden: "prov/private_aka.json"},
		{name: "bad AKA key", method: "PUT", path: "/private/bob@example.com", body: `{"aka": {"k": "00", "opc": "00"}}`, status: 400, contains: "aka: k must be 32 hexadecimal digits"},
		{name: "method not allowed", method: "PATCH", path: "/private/bob@example.com", status: 405},

		// IRSs and associations.
		{name: "create IRS with a body", method: "POST", path: "/irs", body: "{}", status: 400, contains: "takes no body"},
		{name: "service profile of unknown IRS", method: "POST", path: "/irs/nope/service_profiles", status: 404},
		{name: "associate unknown private", method: "PUT", path: "/private/nobody@example.com/associated_implicit_registration_sets/${IRS}", status: 404},
		{name: "associate unknown IRS", method: "PUT", path: "/private/alice@example.com/associated_implicit_registration_sets/nope", status: 404},
		{name: "associate bob through the IRS", method: "PUT", path: "/irs/${IRS}/private_ids/bob@example.com", status: 200},
		{name: "private IRSs", method: "GET", path: "/private/alice@example.com/associated_implicit_registration_sets", status: 200, golden: "prov/private_irss.json"},
		{name: "private IRSs, trailing slash", method: "GET", path: "/private/alice@example.com/associated_implicit_registration_sets/", status: 200, golden: "prov/private_irss.json"},
		{name: "private IRSs of unknown", method: "GET", path: "/private/nobody@example.com/associated_implicit_registration_sets", status: 404},
		{name: "IRS private ids", method: "GET", path: "/irs/${IRS}/private_ids", status: 200, golden: "prov/irs_private_ids.json"},
		{name: "dissociate bob", method: "DELETE", path: "/private/bob@example.com/associated_implicit_registration_sets/${IRS}", status: 200},
		{name: "dissociate unknown private", method: "DELETE", path: "/irs/${IRS}/private_ids/nobody@example.com", status: 204},

		// Public identities and iFCs.
		{name: "get iFC", method: "GET", path: "/irs/${IRS}/service_profiles/${SP}/filter_criteria", status: 200, contains: "<ServerName>sip:mmtel.example.com</ServerName>"},
		{name: "malformed iFC", method: "PUT", path: "/irs/${IRS}/service_profiles/${SP}/filter_criteria", body: "<ServiceProfile><InitialFilterCriteria>", status: 400, golden: "prov/err_bad_ifc.json"},
		{name: "iFC without application server", method: "PUT", path: "/irs/${IRS}/service_profiles/${SP}/filter_criteria", body: "<ServiceProfile><InitialFilterCriteria><Priority>1</Priority></InitialFilterCriteria></ServiceProfile>", status: 400, contains: "missing <ApplicationServer>"},
		{name: "iFC of unknown profile", method: "GET", path: "/irs/${IRS}/service_profiles/nope/filter_criteria", status: 404},
		{name: "identity mismatch", method: "PUT", path: "/irs/${IRS}/service_profiles/${SP}/public_ids/sip:alice@example.com", body: pubXML("sip:bob@example.com"), status: 403, golden: "prov/err_identity_mismatch.json"},
		{name: "malformed public identity", method: "PUT", path: "/irs/${IRS}/service_profiles/${SP}/public_ids/sip:x@example.com", body: "<PublicIdentity>", status: 400, contains: "malformed XML"},
		{name: "public id in unknown profile", method: "PUT", path: "/irs/${IRS}/service_profiles/nope/public_ids/sip:x@example.com", body: pubXML("sip:x@example.com"), status: 404},
		{name: "tel URI, percent-encoded", method: "PUT", path: "/irs/${IRS}/service_profiles/${SP}/public_ids/tel:%2B16505550001", body: pubXML("tel:+16505550001"), status: 200},
		{name: "get public id", method: "GET", path: "/irs/${IRS}/service_profiles/${SP}/public_ids/sip:alice@example.com", status: 200, golden: "prov/public_identity.xml"},
		{name: "profile public ids", method: "GET", path: "/irs/${IRS}/service_profiles/${SP}/public_ids", status: 200, golden: "prov/sp_public_ids.json"},
		{name: "IRS public ids", method: "GET", path: "/irs/${IRS}/public_ids", status: 200, golden: "prov/sp_public_ids.json"},
		{name: "get IRS", method: "GET", path: "/irs/${IRS}", status: 200, golden: "prov/irs.json"},
		{name: "second IRS", method: "POST", path: "/irs/", status: 201, capture: "IRS2"},
		{name: "second profile (singular path)", method: "POST", path: "/irs/${IRS2}/service_profile", status: 201, capture: "SP2"},
		{name: "conflicting create", method: "PUT", path: "/irs/${IRS2}/service_profiles/${SP2}/public_ids/sip:alice@example.com", body: pubXML("sip:alice@example.com"), status: 409, golden: "prov/err_conflict.json"},
		{name: "public → service profile", method: "GET", path: "/public/sip:alice@example.com/service_profile", status: 303, location: "/irs/${IRS}/service_profiles/${SP}"},
		{name: "public → IRS", method: "GET", path: "/public/sip:alice@example.com/irs/", status: 303, location: "/irs/${IRS}"},
		{name: "public → IRS, encoded", method: "GET", path: "/public/sip%3Aalice%40example.com/irs", status: 303, location: "/irs/${IRS}"},
		{name: "unknown public → IRS", method: "GET", path: "/public/sip:nobody@example.com/irs/", status: 404, golden: "prov/err_public_not_found.json"},
		{name: "public private ids", method: "GET", path: "/public/sip:alice@example.com/associated_private_ids", status: 200, golden: "prov/public_private_ids.json"},
		{name: "unknown public private ids", method: "GET", path: "/public/sip:nobody@example.com/associated_private_ids", status: 404},
		{name: "private public ids", method: "GET", path: "/private/alice@example.com/associated_public_ids", status: 200, golden: "prov/private_public_ids.json"},
		{name: "list public ids", method: "GET", path: "/public/", status: 200, contains: `"sip:alice@example.com"`},

		// Bulk.
		{name: "bulk", method: "POST", path: "/bulk/subscribers", body: `{"subscribers": [
			{"public_id": "sip:2010000000@example.com", "password": "7kkzTyGW"},
			{"public_id": "sip:2010000001@example.com", "private_id": "2010000001", "realm": "example.com", "password": "7kkzTyGW", "plaintext": true},
			{"public_id": "sip:alice@example.com", "password": "x"},
			{"public_id": "bad", "password": "x"}]}`, status: 200, golden: "prov/bulk_first.json"},
		{name: "bulk again", method: "POST", path: "/bulk/subscribers", body: `{"subscribers": [{"public_id": "sip:2010000000@example.com", "password": "7kkzTyGW"}]}`, status: 200, golden: "prov/bulk_again.json"},
		{name: "bulk malformed", method: "POST", path: "/bulk/subscribers", body: `{"subscribers": {}}`, status: 400, contains: "subscribers"},
		{name: "bulk subscriber visible", method: "GET", path: "/private/2010000001", status: 200, contains: `"plaintext_password":"7kkzTyGW"`},

		// Deletes.
		{name: "delete public id from wrong profile", method: "DELETE", path: "/irs/${IRS2}/service_profiles/${SP2}/public_ids/tel:+16505550001", status: 404},
		{name: "delete public id", method: "DELETE", path: "/irs/${IRS}/service_profiles/${SP}/public_ids/tel:+16505550001", status: 200},
		{name: "delete public id again", method: "DELETE", path: "/irs/${IRS}/service_profiles/${SP}/public_ids/tel:+16505550001", status: 404},
		{name: "delete profile", method: "DELETE", path: "/irs/${IRS}/service_profiles/${SP}", status: 200},
		{name: "public gone with its profile", method: "GET", path: "/public/sip:alice@example.com/irs/", status: 404},
		{name: "delete profile again", method: "DELETE", path: "/irs/${IRS}/service_profiles/${SP}", status: 204},
		{name: "delete IRS", method: "DELETE", path: "/irs/${IRS}", status: 200},
		{name: "delete IRS again", method: "DELETE", path: "/irs/${IRS}", status: 204},
		{name: "IRS public ids after delete", method: "GET", path: "/irs/${IRS}/public_ids", status: 404},
		{name: "delete private", method: "DELETE", path: "/private/alice@example.com", status: 200},
		{name: "delete private again", method: "DELETE", path: "/private/alice@example.com", status: 204},
	})
	if len(ss.impus) != 2 {
		t.Fatalf("simservs written for %q, want the two bulk subscribers", ss.impus)
	}
}

func TestHomesteadAPI(t *testing.T) {
	s := newServers(t, nil)
	s.run(t, provisioning)
	k, opc := "465b5ce8b199b49faa5f0a2ee238a6bc", "cd63cb71954a9f4e48a5994e37a02baf"
	s.run(t, []step{
		{name: "AKA subscriber", method: "PUT", path: "/private/ue@example.com", body: `{"aka": {"k": "` + k + `", "opc": "` + opc + `"}}`, status: 200},
		{name: "associate AKA subscriber", method: "PUT", path: "/irs/${IRS}/private_ids/ue@example.com", status: 200},
		{name: "barred-only IRS", method: "POST", path: "/irs", status: 201, capture: "IRS3"},
		{name: "barred profile", method: "POST", path: "/irs/${IRS3}/service_profiles", status: 201, capture: "SP3"},
		{name: "barred identity", method: "PUT", path: "/irs/${IRS3}/service_profiles/${SP3}/public_ids/sip:barred@example.com", body: "<PublicIdentity><BarringIndication>1</BarringIndication><Identity>sip:barred@example.com</Identity></PublicIdentity>", status: 200},
		{name: "barred private", method: "PUT", path: "/irs/${IRS3}/private_ids/alice@example.com", status: 200},
	})
	s.run(t, []step{
		{name: "ping", api: "hs", method: "GET", path: "/ping", status: 200, contains: "OK"},
		{name: "digest AV", api: "hs", method: "GET", path: "/impi/alice@example.com/av?impu=sip:alice@example.com", status: 200, golden: "hs/av_digest.json"},
		{name: "digest AV, explicit", api: "hs", method: "GET", path: "/impi/alice@example.com/av/digest", status: 200, golden: "hs/av_digest.json"},
		{name: "old digest API", api: "hs", method: "GET", path: "/impi/alice@example.com/digest?public_id=sip:alice@example.com", status: 200, golden: "hs/digest.json"},
		{name: "AKA AV", api: "hs", method: "GET", path: "/impi/ue@example.com/av/aka?impu=sip:alice@example.com", status: 200, golden: "hs/av_aka.json"},
		{name: "AKA AV chosen by the HSS", api: "hs", method: "GET", path: "/impi/ue@example.com/av", status: 200, contains: `"aka":{"challenge":`},
		{name: "AKA of a digest subscriber", api: "hs", method: "GET", path: "/impi/alice@example.com/av/aka", status: 404},
		{name: "AKAv2", api: "hs", method: "GET", path: "/impi/ue@example.com/av/aka2", status: 404, contains: "unsupported authentication scheme"},
		{name: "AV for an unrelated IMPU", api: "hs", method: "GET", path: "/impi/alice@example.com/av?impu=sip:2010000000@example.com", status: 404},
		{name: "AV for an unknown IMPI", api: "hs", method: "GET", path: "/impi/nobody@example.com/av", status: 404},
		{name: "resync-auth not base64", api: "hs", method: "GET", path: "/impi/ue@example.com/av/aka?resync-auth=!!!", status: 400},
		{name: "resync-auth that does not verify", api: "hs", method: "GET", path: "/impi/ue@example.com/av/aka?resync-auth=" + base64.StdEncoding.EncodeToString(make([]byte, 30)), status: 403, contains: "MAC-S"},
		{name: "resync-auth", api: "hs", method: "GET", path: "/impi/ue@example.com/av/aka?resync-auth=" + resyncToken(t, k, opc, 500<<5), status: 200, contains: `"aka"`},

		{name: "registration status", api: "hs", method: "GET", path: "/impi/alice@example.com/registration-status?impu=sip:alice@example.com", status: 200, golden: "hs/regstatus_first.json"},
		{name: "registration status CAPAB", api: "hs", method: "GET", path: "/impi/alice@example.com/registration-status?impu=sip:alice@example.com&auth-type=CAPAB", status: 200, golden: "hs/regstatus_capab.json"},
		{name: "registration status without impu", api: "hs", method: "GET", path: "/impi/alice@example.com/registration-status", status: 400},
		{name: "registration status, identities do not match", api: "hs", method: "GET", path: "/impi/bob@example.com/registration-status?impu=sip:alice@example.com", status: 404},
		{name: "registration status of a barred identity", api: "hs", method: "GET", path: "/impi/alice@example.com/registration-status?impu=sip:barred@example.com", status: 403},
		{name: "location, not registered", api: "hs", method: "GET", path: "/impu/sip:alice@example.com/location", status: 200, golden: "hs/location_unregistered.json"},
		{name: "location of unknown", api: "hs", method: "GET", path: "/impu/sip:nobody@example.com/location", status: 404},

		{name: "reg-data", api: "hs", method: "GET", path: "/impu/sip:alice@example.com/reg-data", status: 200, golden: "hs/regdata_not_registered.xml"},
		{name: "reg-data of unknown", api: "hs", method: "GET", path: "/impu/sip:nobody@example.com/reg-data", status: 404},
		{name: "dereg when not registered", api: "hs", method: "PUT", path: "/impu/sip:alice@example.com/reg-data", body: `{"reqtype": "dereg-user"}`, status: 400, contains: "not registered"},
		{name: "reg-data malformed", api: "hs", method: "PUT", path: "/impu/sip:alice@example.com/reg-data", body: `{"reqtype": `, status: 400, contains: "invalid JSON"},
		{name: "reg-data missing reqtype", api: "hs", method: "PUT", path: "/impu/sip:alice@example.com/reg-data", body: `{}`, status: 400, contains: "missing reqtype"},
		{name: "reg-data unknown reqtype", api: "hs", method: "PUT", path: "/impu/sip:alice@example.com/reg-data", body: `{"reqtype": "dance"}`, status: 400, contains: "unknown reqtype"},
		{name: "reg-data unknown IMPU", api: "hs", method: "PUT", path: "/impu/sip:nobody@example.com/reg-data", body: `{"reqtype": "reg"}`, status: 404},
		{name: "reg-data private id mismatch", api: "hs", method: "PUT", path: "/impu/sip:alice@example.com/reg-data?private_id=bob@example.com", body: `{"reqtype": "reg"}`, status: 403},
		{name: "register", api: "hs", method: "PUT", path: "/impu/sip:alice@example.com/reg-data?private_id=alice@example.com", body: `{"reqtype": "reg", "server_name": "sip:scscf.node2.example.com:5054;transport=tcp"}`, status: 200, golden: "hs/regdata_registered.xml"},
		{name: "registration status, registered", api: "hs", method: "GET", path: "/impi/alice@example.com/registration-status?impu=sip:alice@example.com", status: 200, golden: "hs/regstatus_subsequent.json"},
		{name: "location, registered", api: "hs", method: "GET", path: "/impu/sip:alice@example.com/location?originating=true", status: 200, golden: "hs/location_registered.json"},
		{name: "auth failure keeps the registration", api: "hs", method: "PUT", path: "/impu/sip:alice@example.com/reg-data", body: `{"reqtype": "dereg-auth-failed"}`, status: 200, contains: "<RegistrationState>REGISTERED</RegistrationState>"},
		{name: "deregister", api: "hs", method: "PUT", path: "/impu/sip:alice@example.com/reg-data", body: `{"reqtype": "dereg-timeout"}`, status: 200, contains: "<RegistrationState>NOT_REGISTERED</RegistrationState>"},
		{name: "call gives unregistered service", api: "hs", method: "PUT", path: "/impu/sip:alice@example.com/reg-data", body: `{"reqtype": "call"}`, status: 200, contains: "<RegistrationState>UNREGISTERED</RegistrationState>"},
		{name: "method not allowed", api: "hs", method: "DELETE", path: "/impu/sip:alice@example.com/reg-data", status: 405},
	})
}

// resyncToken is RAND‖AUTS, base64, from a USIM at sequence number sqn.
func resyncToken(t *testing.T, k, opc string, sqn uint64) string {
	t.Helper()
	kb, opcb := mustHex(t, k), mustHex(t, opc)
	rnd := bytes.Repeat([]byte{9}, 16)
	auts, err := milenage.NewWithOPc(kb, opcb, rnd, sqn, 0).GenerateAUTS()
	if err != nil {
		t.Fatal(err)
	}
	return strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(base64.StdEncoding.EncodeToString(append(rnd, auts...)))
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	var b []byte
	if _, err := fmt.Sscanf(s, "%x", &b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestErrorBodies checks that every error is JSON naming the problem.
func TestErrorBodies(t *testing.T) {
	s := newServers(t, nil)
	resp, err := http.Get(s.prov.URL + "/private/nobody")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.Header.Get("Content-Type") != "application/json" ||
		!regexp.MustCompile(`^\{"status":404,"message":"Not Found","reason":"private identity \\"nobody\\"","error":true\}\n$`).Match(body) {
		t.Fatalf("error body %q (%s)", body, resp.Header.Get("Content-Type"))
	}
}
