package ellis

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestSignup(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client()
	body := map[string]string{"email": "Alice@Example.com", "password": "secret123", "full_name": "Alice Example"}

	r := c.json("POST", "/accounts", body, "NGV-Signup-Code", testSignup).want(t, http.StatusCreated)
	if r.str("username") != "Alice@Example.com" || r.str("full_name") != "Alice Example" {
		t.Fatalf("signup answered %s", r.body)
	}
	// Addresses are compared without regard to case.
	dup := map[string]string{"email": "alice@example.com", "password": "secret123", "full_name": "Other"}
	c.json("POST", "/accounts", dup, "NGV-Signup-Code", testSignup).want(t, http.StatusConflict)

	// The code may come as a form field; the body may be form-encoded.
	e.client().form("POST", "/accounts/", url.Values{"email": {"bob@example.com"}, "password": {"secret123"},
		"full_name": {"Bob"}, "signup_code": {testSignup}}).want(t, http.StatusCreated)

	for _, tc := range []struct {
		name   string
		ctype  string
		body   string
		code   string
		status int
		reason string
	}{
		{"no code", "application/json", `{"email":"c@example.com","password":"secret123","full_name":"C"}`, "", http.StatusForbidden, "signup code"},
		{"wrong code", "application/json", `{"email":"c@example.com","password":"secret123","full_name":"C"}`, "nope", http.StatusForbidden, "signup code"},
		{"malformed JSON", "application/json", `{"email":"c@example.com",`, testSignup, http.StatusBadRequest, "malformed JSON"},
		{"JSON not an object", "application/json", `["c@example.com"]`, testSignup, http.StatusBadRequest, "malformed JSON"},
		{"missing field", "application/json", `{"email":"c@example.com","password":"secret123"}`, testSignup, http.StatusBadRequest, `"full_name"`},
		{"bad email", "application/json", `{"email":"not-an-address","password":"secret123","full_name":"C"}`, testSignup, http.StatusBadRequest, "email"},
		{"short password", "application/json", `{"email":"c@example.com","password":"abc","full_name":"C"}`, testSignup, http.StatusBadRequest, "password"},
		{"unsupported body", "application/xml", `<x/>`, testSignup, http.StatusUnsupportedMediaType, "unsupported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.code != "" {
				hdr = []string{"NGV-Signup-Code", tc.code}
			}
			r := e.client().do("POST", "/accounts", tc.ctype, []byte(tc.body), hdr...).want(t, tc.status)
			if !strings.Contains(r.str("reason"), tc.reason) || r.json["error"] != true {
				t.Fatalf("error document %s does not name %q", r.body, tc.reason)
			}
		})
	}
	// Nothing was created by the refused requests.
	if _, _, err := e.s.getAccount(context.Background(), "c@example.com"); err == nil {
		t.Fatal("a refused signup created an account")
	}
}

func TestSession(t *testing.T) {
	e := newEnv(t, nil)
	e.signup("alice@example.com")

	c := e.client()
	c.json("POST", "/session", map[string]string{"email": "alice@example.com", "password": "wrong-one"}).want(t, http.StatusForbidden)
	c.json("POST", "/session", map[string]string{"email": "nobody@example.com", "password": "secret123"}).want(t, http.StatusForbidden)
	c.json("POST", "/session", map[string]string{"email": "alice@example.com"}).want(t, http.StatusBadRequest)
	c.json("GET", numbersPath("alice@example.com"), nil).want(t, http.StatusForbidden)

	r := c.form("POST", "/session/", url.Values{"username": {"ALICE@example.com"}, "password": {"secret123"}}).want(t, http.StatusCreated)
	if r.str("username") != "alice@example.com" || !strings.Contains(r.header.Get("Set-Cookie"), sessionCookie+"=") {
		t.Fatalf("login answered %s, %v", r.body, r.header)
	}
	c.json("GET", numbersPath("alice@example.com"), nil).want(t, http.StatusOK)

	c.json("DELETE", "/session", nil).want(t, http.StatusNoContent)
	c.json("GET", numbersPath("alice@example.com"), nil).want(t, http.StatusForbidden)

	// A forged cookie is refused.
	f := e.client()
	u, _ := url.Parse(e.srv.URL)
	f.http.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: "eyJrIjoiYWxpY2VAZXhhbXBsZS5jb20ifQ.AAAA"}})
	f.json("GET", numbersPath("alice@example.com"), nil).want(t, http.StatusForbidden)
}

func TestRoutingErrors(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client()
	r := c.json("GET", "/accounts/a@example.com/nothing", nil).want(t, http.StatusNotFound)
	if r.json["status"] != float64(404) || r.str("message") != "Not Found" {
		t.Fatalf("404 document %s", r.body)
	}
	r = c.json("GET", "/accounts", nil).want(t, http.StatusMethodNotAllowed)
	if r.header.Get("Allow") != "POST" {
		t.Fatalf("Allow %q", r.header.Get("Allow"))
	}
	if r := c.do("GET", "/ping", "", nil).want(t, http.StatusOK); string(r.body) != "OK" {
		t.Fatalf("ping %q", r.body)
	}
	e.client().do("GET", "/no/such/page", "", nil).want(t, http.StatusNotFound)
}

func TestNumbers(t *testing.T) {
	e := newEnv(t, nil)
	e.numbers(6505550000, 3, false)
	e.numbers(5108580271, 1, true)
	alice := e.signup("alice@example.com")
	bob := e.signup("bob@example.com")
	ap := numbersPath("alice@example.com")

	// Authorization: a session of the account, or the API key.
	e.client().json("POST", ap, nil).want(t, http.StatusForbidden)
	bob.json("POST", ap, nil).want(t, http.StatusForbidden)
	e.client().json("GET", ap, nil, "NGV-API-Key", "wrong").want(t, http.StatusForbidden)
	e.admin().json("GET", numbersPath("nobody@example.com"), nil).want(t, http.StatusNotFound)

	r := alice.json("POST", ap, nil).want(t, http.StatusOK)
	uri, pw, priv := r.str("sip_uri"), r.str("sip_password"), r.str("private_id")
	if !strings.HasPrefix(uri, "sip:650555000") || !strings.HasSuffix(uri, "@example.com") || pw == "" ||
		priv != strings.TrimPrefix(uri, "sip:") || r.json["pstn"] != false || r.str("sip_username") != r.str("number") {
		t.Fatalf("allocation answered %s", r.body)
	}
	if got := e.subs.password(priv); got != pw {
		t.Fatalf("subscriber store has password %q, the answer %q", got, pw)
	}
	if ifc, _ := e.subs.IFC(context.Background(), uri); !strings.Contains(ifc, "sip:mmtel.example.com") {
		t.Fatalf("new line's iFC %s", ifc)
	}
	if string(e.ss.doc(uri)) != string(defaultSimservs()) {
		t.Fatalf("new line's simservs %s", e.ss.doc(uri))
	}

	// PSTN numbers come from their own part of the pool.
	r = e.admin().form("POST", ap+"/", url.Values{"pstn": {"true"}}).want(t, http.StatusOK)
	if r.str("sip_uri") != "sip:+15108580271@example.com" || r.json["pstn"] != true || r.str("formatted_number") != "+1 (510) 858-0271" {
		t.Fatalf("PSTN allocation answered %s", r.body)
	}
	alice.json("POST", ap+"?pstn=true", nil).want(t, http.StatusServiceUnavailable)
	alice.json("POST", ap, map[string]any{"pstn": "maybe"}).want(t, http.StatusBadRequest)

	// A second public identity on the first line's private identity.
	r = alice.json("POST", ap, map[string]any{"private_id": priv}).want(t, http.StatusOK)
	shared := r.str("sip_uri")
	if r.str("private_id") != priv || r.json["sip_password"] != nil {
		t.Fatalf("shared allocation answered %s", r.body)
	}
	bob.json("POST", numbersPath("bob@example.com"), map[string]any{"private_id": priv}).want(t, http.StatusNotFound)

	// The list shows every line, without passwords.
	r = alice.json("GET", ap, nil).want(t, http.StatusOK)
	list, _ := r.json["numbers"].([]any)
	if len(list) != 3 {
		t.Fatalf("list %s", r.body)
	}
	for _, n := range list {
		if _, ok := n.(map[string]any)["sip_password"]; ok {
			t.Fatalf("list shows a password: %s", r.body)
		}
	}

	// The line that names the shared private identity cannot go first.
	alice.json("DELETE", numberPath("alice@example.com", uri), nil).want(t, http.StatusConflict)
	bob.json("DELETE", numberPath("alice@example.com", shared), nil).want(t, http.StatusForbidden)
	bob.json("DELETE", numberPath("bob@example.com", shared), nil).want(t, http.StatusNotFound)
	alice.json("DELETE", numberPath("alice@example.com", shared)+"/", nil).want(t, http.StatusOK)
	if e.subs.has(shared) || e.ss.doc(shared) != nil {
		t.Fatal("a deleted line is still provisioned")
	}
	alice.json("DELETE", numberPath("alice@example.com", uri), nil).want(t, http.StatusOK)
	alice.json("DELETE", numberPath("alice@example.com", uri), nil).want(t, http.StatusNotFound)
	if e.subs.password(priv) != "" {
		t.Fatal("the private identity outlived its last line")
	}

	// Released numbers are allocated again: three on-net numbers in all.
	got := map[string]bool{}
	for range 3 {
		got[bob.json("POST", numbersPath("bob@example.com"), nil).want(t, http.StatusOK).str("sip_uri")] = true
	}
	bob.json("POST", numbersPath("bob@example.com"), nil).want(t, http.StatusServiceUnavailable)
	if len(got) != 3 || !got[uri] || !got[shared] {
		t.Fatalf("bob got %v; %s and %s should have been returned to the pool", got, uri, shared)
	}
}

func TestAllocationBacksOutOnStoreFailure(t *testing.T) {
	e := newEnv(t, nil)
	e.numbers(6505550000, 1, false)
	alice := e.signup("alice@example.com")
	e.subs.mu.Lock()
	e.subs.failNext = context.DeadlineExceeded
	e.subs.mu.Unlock()
	alice.json("POST", numbersPath("alice@example.com"), nil).want(t, http.StatusBadGateway)
	r := alice.json("GET", numbersPath("alice@example.com"), nil).want(t, http.StatusOK)
	if list, _ := r.json["numbers"].([]any); len(list) != 0 {
		t.Fatalf("a failed allocation left a line: %s", r.body)
	}
	// The number went back to the pool.
	alice.json("POST", numbersPath("alice@example.com"), nil).want(t, http.StatusOK)
}

func TestSpecificNumber(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.signup("alice@example.com")
	p := numberPath("alice@example.com", "sip:7005550000@example.com")

	alice.form("POST", p, url.Values{"private_id": {"7005550000@example.com"}, "new_private_id": {"true"}}).want(t, http.StatusForbidden)
	e.admin().form("POST", p, url.Values{}).want(t, http.StatusBadRequest)
	e.admin().form("POST", numberPath("alice@example.com", "tel:+1555"), url.Values{"private_id": {"x@example.com"}, "new_private_id": {"true"}}).want(t, http.StatusBadRequest)

	r := e.admin().form("POST", p, url.Values{"private_id": {"7005550000@example.com"}, "new_private_id": {"true"}}).want(t, http.StatusOK)
	if r.str("sip_uri") != "sip:7005550000@example.com" || r.str("sip_password") == "" || r.str("private_id") != "7005550000@example.com" {
		t.Fatalf("specific number answered %s", r.body)
	}
	e.admin().form("POST", p, url.Values{"private_id": {"7005550000@example.com"}, "new_private_id": {"true"}}).want(t, http.StatusConflict)

	// An existing private identity of the subscriber store, not Ellis's.
	p2 := numberPath("alice@example.com", "sip:7005550001@example.com")
	e.admin().form("POST", p2+"?private_id=nobody@example.com", nil).want(t, http.StatusNotFound)
	r = e.admin().form("POST", p2+"?private_id=7005550000@example.com", nil).want(t, http.StatusOK)
	if r.json["sip_password"] != nil {
		t.Fatalf("a shared private identity's password was shown: %s", r.body)
	}
}

func TestSIPPassword(t *testing.T) {
	e := newEnv(t, nil)
	e.numbers(6505550000, 1, false)
	alice := e.signup("alice@example.com")
	bob := e.signup("bob@example.com")
	r := alice.json("POST", numbersPath("alice@example.com"), nil).want(t, http.StatusOK)
	uri, old := r.str("sip_uri"), r.str("sip_password")

	r = alice.json("POST", numberPath("alice@example.com", uri)+"/password", nil).want(t, http.StatusOK)
	pw := r.str("sip_password")
	if pw == "" || pw == old || e.subs.password(privateFromPublic(uri)) != pw {
		t.Fatalf("reset answered %s; store has %q", r.body, e.subs.password(privateFromPublic(uri)))
	}
	bob.json("POST", numberPath("bob@example.com", uri)+"/password", nil).want(t, http.StatusNotFound)
	e.admin().json("POST", numberPath("alice@example.com", "sip:1@example.com")+"/password", nil).want(t, http.StatusNotFound)
}

func TestSimservsAndIFCs(t *testing.T) {
	e := newEnv(t, nil)
	e.numbers(6505550000, 1, false)
	alice := e.signup("alice@example.com")
	bob := e.signup("bob@example.com")
	uri := alice.json("POST", numbersPath("alice@example.com"), nil).want(t, http.StatusOK).str("sip_uri")
	sp := numberPath("alice@example.com", uri) + "/simservs"
	ip := numberPath("alice@example.com", uri) + "/ifcs"

	r := alice.do("GET", sp, "", nil).want(t, http.StatusOK)
	if string(r.body) != string(defaultSimservs()) {
		t.Fatalf("simservs GET %s", r.body)
	}
	doc := `<simservs xmlns="http://uri.etsi.org/ngn/params/xml/simservs/xcap"><originating-identity-presentation-restriction active="true"><default-behaviour>presentation-restricted</default-behaviour></originating-identity-presentation-restriction></simservs>`
	alice.do("PUT", sp, "application/xml", []byte(doc)).want(t, http.StatusOK)
	if string(e.ss.doc(uri)) != doc {
		t.Fatalf("stored %s", e.ss.doc(uri))
	}
	for _, tc := range []struct{ body, reason string }{
		{`<simservs xmlns="http://uri.etsi.org/ngn/params/xml/simservs/xcap">`, "malformed XML"},
		{`<other/>`, "root element is other"},
		{`<simservs xmlns="http://uri.etsi.org/ngn/params/xml/simservs/xcap" xmlns:cp="urn:ietf:params:xml:ns:common-policy"><communication-diversion><cp:ruleset><cp:rule id="r"><cp:actions/></cp:rule></cp:ruleset></communication-diversion></simservs>`, "has no target"},
	} {
		r := alice.do("PUT", sp, "application/xml", []byte(tc.body)).want(t, http.StatusBadRequest)
		if !strings.Contains(r.str("reason"), tc.reason) {
			t.Fatalf("PUT %s: reason %q, want %q", tc.body, r.str("reason"), tc.reason)
		}
	}
	if string(e.ss.doc(uri)) != doc {
		t.Fatal("a refused PUT changed the document")
	}
	bob.do("GET", numberPath("bob@example.com", uri)+"/simservs", "", nil).want(t, http.StatusNotFound)
	bob.do("GET", sp, "", nil).want(t, http.StatusForbidden)
	alice.do("POST", sp, "", nil).want(t, http.StatusMethodNotAllowed)

	r = alice.do("GET", ip, "", nil).want(t, http.StatusOK)
	root, err := parseXML(r.body)
	if err != nil || root.Name.Local != "ServiceProfile" || len(root.Children) != 2 {
		t.Fatalf("iFC GET %s (%v)", r.body, err)
	}
	ifc := `<ServiceProfile><InitialFilterCriteria><Priority>0</Priority></InitialFilterCriteria></ServiceProfile>`
	e.admin().do("PUT", ip, "application/xml", []byte(ifc)).want(t, http.StatusOK)
	if x, _ := e.subs.IFC(context.Background(), uri); x != ifc {
		t.Fatalf("stored iFC %s", x)
	}
	alice.do("PUT", ip, "application/xml", []byte("<ServiceProfile><x></ServiceProfile>")).want(t, http.StatusBadRequest)
	alice.do("PUT", ip, "application/xml", []byte("<simservs/>")).want(t, http.StatusBadRequest)
}

func TestDeleteAccount(t *testing.T) {
	e := newEnv(t, nil)
	e.numbers(6505550000, 2, false)
	alice := e.signup("alice@example.com")
	r := alice.json("POST", numbersPath("alice@example.com"), nil).want(t, http.StatusOK)
	alice.json("POST", numbersPath("alice@example.com"), map[string]string{"private_id": r.str("private_id")}).want(t, http.StatusOK)
	e.signup("bob@example.com").json("DELETE", "/accounts/alice@example.com", nil).want(t, http.StatusForbidden)
	alice.json("DELETE", "/accounts/alice@example.com/", nil).want(t, http.StatusNoContent)
	e.admin().json("DELETE", "/accounts/alice@example.com", nil).want(t, http.StatusNotFound)
	alice.json("GET", numbersPath("alice@example.com"), nil).want(t, http.StatusForbidden)
	// Both numbers are back in the pool.
	carol := e.signup("carol@example.com")
	for range 2 {
		carol.json("POST", numbersPath("carol@example.com"), nil).want(t, http.StatusOK)
	}
}

// TestScriptFlow is what an operator's script does with the JSON API.
func TestScriptFlow(t *testing.T) {
	e := newEnv(t, nil)
	e.numbers(6505550000, 1, false)
	c := e.client()
	c.json("POST", "/accounts", map[string]string{"email": "script@example.com", "password": "secret123", "full_name": "Script"},
		"NGV-Signup-Code", testSignup).want(t, http.StatusCreated)
	c.json("POST", "/session", map[string]string{"email": "script@example.com", "password": "secret123"}).want(t, http.StatusCreated)
	r := c.form("POST", numbersPath("script@example.com"), url.Values{"pstn": {"false"}}).want(t, http.StatusOK)
	uri := r.str("sip_uri")
	if uri != "sip:6505550000@example.com" {
		t.Fatalf("got %s", r.body)
	}
	sp := numberPath("script@example.com", uri) + "/simservs"
	root, err := parseXML(c.do("GET", sp, "", nil).want(t, http.StatusOK).body)
	if err != nil {
		t.Fatal(err)
	}
	applyServices(root, services{DiversionActive: true, NoReplyTimer: 20, Diversions: map[string]string{"": "sip:voicemail@example.com"}})
	c.do("PUT", sp, "application/vnd.etsi.simservs+xml", renderSimservs(root)).want(t, http.StatusOK)
	if sv := readServicesOf(t, e.ss.doc(uri)); !sv.DiversionActive || sv.Diversions[""] != "sip:voicemail@example.com" {
		t.Fatalf("stored %s", e.ss.doc(uri))
	}
	// The pool is empty until the number is deleted.
	e.admin().json("POST", numbersPath("script@example.com"), nil).want(t, http.StatusServiceUnavailable)
	c.json("DELETE", numberPath("script@example.com", uri), nil).want(t, http.StatusOK)
	r = e.admin().json("POST", numbersPath("script@example.com"), nil).want(t, http.StatusOK)
	if r.str("sip_uri") != uri {
		t.Fatalf("the deleted number did not return to the pool: got %s", r.body)
	}
}

func readServicesOf(t *testing.T, doc []byte) services {
	t.Helper()
	root, err := parseXML(doc)
	if err != nil {
		t.Fatal(err)
	}
	return readServices(root)
}

// TestAllocationRace has more allocators than numbers: each number goes to
// exactly one of them and the rest hear that the pool is empty.
func TestAllocationRace(t *testing.T) {
	e := newEnv(t, nil)
	const pool, accounts, each = 12, 4, 5
	e.numbers(6505550000, pool, false)
	for i := range accounts {
		e.signup("user" + string(rune('a'+i)) + "@example.com")
	}
	var (
		mu   sync.Mutex
		got  []string
		full int
		wg   sync.WaitGroup
	)
	for i := range accounts * each {
		wg.Go(func() {
			email := "user" + string(rune('a'+i%accounts)) + "@example.com"
			r := e.admin().json("POST", numbersPath(email), nil)
			mu.Lock()
			defer mu.Unlock()
			switch r.status {
			case http.StatusOK:
				got = append(got, r.str("sip_uri"))
			case http.StatusServiceUnavailable:
				full++
			default:
				t.Errorf("allocation answered %d %s", r.status, r.body)
			}
		})
	}
	wg.Wait()
	slices.Sort(got)
	if len(slices.Compact(slices.Clone(got))) != pool || len(got) != pool || full != accounts*each-pool {
		t.Fatalf("%d allocations (%d distinct), %d refused; want %d and %d", len(got), len(slices.Compact(slices.Clone(got))), full, pool, accounts*each-pool)
	}
	listed := 0
	for i := range accounts {
		r := e.admin().json("GET", numbersPath("user"+string(rune('a'+i))+"@example.com"), nil).want(t, http.StatusOK)
		list, _ := r.json["numbers"].([]any)
		listed += len(list)
	}
	if listed != pool {
		t.Fatalf("accounts list %d lines, want %d", listed, pool)
	}
}

func TestCrossOriginRejected(t *testing.T) {
	e := newEnv(t, nil)
	e.numbers(6505550000, 1, false)
	alice := e.signup("alice@example.com")
	alice.json("POST", numbersPath("alice@example.com"), nil, "Sec-Fetch-Site", "cross-site").want(t, http.StatusForbidden)
	alice.json("POST", numbersPath("alice@example.com"), nil, "Origin", "http://evil.example").want(t, http.StatusForbidden)
	r := alice.json("GET", numbersPath("alice@example.com"), nil).want(t, http.StatusOK)
	if list, _ := r.json["numbers"].([]any); len(list) != 0 {
		t.Fatal("a cross-site request allocated a number")
	}
}

// TestAllocationSkipsNumbersProvisionedElsewhere: a pool number already in
// the subscriber store is taken out of the pool, not handed out.
func TestAllocationSkipsNumbersProvisionedElsewhere(t *testing.T) {
	e := newEnv(t, nil)
	e.numbers(6505550000, 2, false)
	if err := e.subs.Create(context.Background(), Line{PrivateID: "6505550000@example.com", PublicIDs: []string{"sip:6505550000@example.com"}, Password: "x"}); err != nil {
		t.Fatal(err)
	}
	alice := e.signup("alice@example.com")
	if r := alice.json("POST", numbersPath("alice@example.com"), nil).want(t, http.StatusOK); r.str("sip_uri") != "sip:6505550001@example.com" {
		t.Fatalf("got %s", r.body)
	}
	alice.json("POST", numbersPath("alice@example.com"), nil).want(t, http.StatusServiceUnavailable)
	r := alice.json("GET", numbersPath("alice@example.com"), nil).want(t, http.StatusOK)
	if list, _ := r.json["numbers"].([]any); len(list) != 1 {
		t.Fatalf("lines %s", r.body)
	}
	if e.subs.password("6505550000@example.com") != "x" {
		t.Fatal("the number provisioned elsewhere was changed")
	}
}
