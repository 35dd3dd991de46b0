package ellis

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var tokenRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// page GETs a portal page and returns its body and form token.
func (c *client) page(t *testing.T, path string) (string, string) {
	t.Helper()
	r := c.do("GET", path, "", nil).want(t, http.StatusOK)
	m := tokenRE.FindSubmatch(r.body)
	if m == nil {
		t.Fatalf("%s has no form token", path)
	}
	return string(r.body), string(m[1])
}

func (c *client) post(t *testing.T, path string, vals url.Values) resp {
	t.Helper()
	return c.form("POST", path, vals)
}

func TestPortalCSRF(t *testing.T) {
	e := newEnv(t, nil)
	e.numbers(6505550000, 3, false)

	// Pre-login forms: the token must match this browser's form cookie.
	c := e.client()
	_, tok := c.page(t, "/signup")
	signup := url.Values{"full_name": {"Alice"}, "email": {"alice@example.com"}, "password": {"secret123"},
		"password2": {"secret123"}, "signup_code": {testSignup}}
	c.post(t, "/signup", signup).want(t, http.StatusForbidden)
	other := e.client()
	_, otherTok := other.page(t, "/signup")
	signup.Set(csrfField, otherTok)
	c.post(t, "/signup", signup).want(t, http.StatusForbidden)
	if _, _, err := e.s.getAccount(context.Background(), "alice@example.com"); err == nil {
		t.Fatal("a forged sign-up created an account")
	}
	signup.Set(csrfField, tok)
	body := string(c.post(t, "/signup", signup).want(t, http.StatusOK).body)
	if !strings.Contains(body, `id="sip-password"`) {
		t.Fatalf("sign-up page shows no password:\n%s", body)
	}

	// Logged-in forms: the token is bound to the session.
	_, tok = c.page(t, "/lines")
	c.post(t, "/lines/add", url.Values{"pstn": {"false"}}).want(t, http.StatusForbidden)
	c.post(t, "/lines/add", url.Values{"pstn": {"false"}, csrfField: {"forged"}}).want(t, http.StatusForbidden)
	c.post(t, "/lines/add", url.Values{"pstn": {"false"}, csrfField: {otherTok}}).want(t, http.StatusForbidden)
	c.form("POST", "/lines/add", url.Values{"pstn": {"false"}, csrfField: {tok}}, "Sec-Fetch-Site", "cross-site").want(t, http.StatusForbidden)
	a, _, _ := e.s.getAccount(context.Background(), "alice@example.com")
	if len(a.Lines) != 1 {
		t.Fatalf("forged posts changed the lines: %v", a.Lines)
	}
	c.post(t, "/lines/add", url.Values{"pstn": {"false"}, csrfField: {tok}}).want(t, http.StatusOK)

	// A new session (after signing in again) gets a new token.
	c.post(t, "/logout", url.Values{csrfField: {tok}}).want(t, http.StatusSeeOther)
	_, loginTok := c.page(t, "/login")
	c.post(t, "/login", url.Values{"email": {"alice@example.com"}, "password": {"secret123"}, csrfField: {loginTok}}).want(t, http.StatusSeeOther)
	c.post(t, "/lines/add", url.Values{"pstn": {"false"}, csrfField: {tok}}).want(t, http.StatusForbidden)
}

func TestPortalPages(t *testing.T) {
	e := newEnv(t, nil)
	e.numbers(6505550000, 2, false)
	e.numbers(5108580271, 1, true)
	c := e.client()

	c.do("GET", "/", "", nil).want(t, http.StatusSeeOther)
	c.do("GET", "/lines", "", nil).want(t, http.StatusSeeOther)
	if r := c.do("GET", "/signup.html", "", nil).want(t, http.StatusMovedPermanently); r.header.Get("Location") != "/signup" {
		t.Fatalf("signup.html → %s", r.header.Get("Location"))
	}
	if r := c.do("GET", "/static/style.css", "", nil).want(t, http.StatusOK); !strings.Contains(r.header.Get("Content-Type"), "text/css") {
		t.Fatal("no stylesheet")
	}

	_, tok := c.page(t, "/signup")
	vals := url.Values{"full_name": {"Alice"}, "email": {"alice@example.com"}, "password": {"secret123"}, "password2": {"secret123"}, csrfField: {tok}}
	vals.Set("signup_code", "wrong")
	if r := c.post(t, "/signup", vals).want(t, http.StatusForbidden); !strings.Contains(string(r.body), "signup code") {
		t.Fatalf("wrong code page:\n%s", r.body)
	}
	vals.Set("signup_code", testSignup)
	c.post(t, "/signup", vals).want(t, http.StatusOK)
	a, _, _ := e.s.getAccount(context.Background(), "alice@example.com")
	if len(a.Lines) != 1 {
		t.Fatalf("sign-up gave lines %v", a.Lines)
	}
	first := a.Lines[0]

	_, tok = c.page(t, "/lines")
	r := c.post(t, "/lines/add", url.Values{"pstn": {"true"}, csrfField: {tok}}).want(t, http.StatusOK)
	if !strings.Contains(string(r.body), "1 (510) 858-0271") || !strings.Contains(string(r.body), `id="sip-password"`) {
		t.Fatalf("PSTN line page:\n%s", r.body)
	}
	r = c.post(t, "/lines/add", url.Values{"pstn": {"true"}, csrfField: {tok}}).want(t, http.StatusServiceUnavailable)
	if !strings.Contains(string(r.body), "No available numbers") {
		t.Fatalf("empty pool page:\n%s", r.body)
	}
	r = c.post(t, "/lines/password", url.Values{"line": {first}, csrfField: {tok}}).want(t, http.StatusOK)
	if pw := e.subs.password(privateFromPublic(first)); pw == "" || !strings.Contains(string(r.body), pw) {
		t.Fatalf("reset page does not show the stored password %q", pw)
	}
	c.post(t, "/lines/delete", url.Values{"line": {first}, csrfField: {tok}}).want(t, http.StatusSeeOther)
	if e.subs.has(first) {
		t.Fatal("deleted line still provisioned")
	}
	c.post(t, "/lines/delete", url.Values{"line": {first}, csrfField: {tok}}).want(t, http.StatusNotFound)
	c.do("GET", "/lines/services?line="+url.QueryEscape(first), "", nil).want(t, http.StatusNotFound)

	// Forgotten password and reset pages answer without revealing anything.
	anon := e.client()
	_, ftok := anon.page(t, "/forgotpassword")
	anon.post(t, "/forgotpassword", url.Values{"email": {"nobody@example.com"}, csrfField: {ftok}}).want(t, http.StatusOK)
	_, rtok := anon.page(t, "/resetpassword?email=alice@example.com&token=bad")
	anon.post(t, "/resetpassword", url.Values{"email": {"alice@example.com"}, "token": {"bad"}, "password": {"abcdefg"},
		"password2": {"abcdefg"}, csrfField: {rtok}}).want(t, http.StatusBadRequest)
}

func TestPortalServices(t *testing.T) {
	dir := t.TempDir()
	asPath := filepath.Join(dir, "app-servers.json")
	vm := `<InitialFilterCriteria><Priority>5</Priority><TriggerPoint><ConditionTypeCNF>0</ConditionTypeCNF><SPT><ConditionNegated>0</ConditionNegated><Group>0</Group><Method>INVITE</Method><Extension></Extension></SPT></TriggerPoint><ApplicationServer><ServerName>sip:vm.example.com</ServerName><DefaultHandling>0</DefaultHandling></ApplicationServer></InitialFilterCriteria>`
	if err := os.WriteFile(asPath, []byte(`{"Voicemail": "`+strings.ReplaceAll(vm, `"`, `\"`)+`"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *Options) { o.AppServersPath = asPath })
	e.numbers(6505550000, 1, false)
	c := e.client()
	_, tok := c.page(t, "/signup")
	c.post(t, "/signup", url.Values{"full_name": {"Alice"}, "email": {"alice@example.com"}, "password": {"secret123"},
		"password2": {"secret123"}, "signup_code": {testSignup}, csrfField: {tok}}).want(t, http.StatusOK)
	uri := "sip:6505550000@example.com"
	path := "/lines/services?line=" + url.QueryEscape(uri)
	body, tok := c.page(t, path)
	if !strings.Contains(body, `value="Voicemail"`) || strings.Contains(body, `value="Voicemail" checked`) {
		t.Fatalf("services page:\n%s", body)
	}

	form := url.Values{"line": {uri}, csrfField: {tok}, "privacy": {"on"}, "icb": {"none"}, "ocb": {"international"},
		"cdiv": {"on"}, "div_cfb": {"on"}, "target_cfb": {"6505550099"}, "div_cfnr": {"on"}, "target_cfnr": {"bob@example.org"},
		"noreply": {"30"}, "as": {"Voicemail"}}
	r := c.post(t, "/lines/services", form).want(t, http.StatusSeeOther)
	if !strings.Contains(r.header.Get("Location"), "done=saved") {
		t.Fatalf("saved → %s", r.header.Get("Location"))
	}
	sv := readServicesOf(t, e.ss.doc(uri))
	if !sv.Restricted || sv.BarIncoming || sv.BarOutgoing != "international" || !sv.DiversionActive || sv.NoReplyTimer != 30 ||
		sv.Diversions["busy"] != "sip:6505550099@example.com" || sv.Diversions["no-answer"] != "sip:bob@example.org" || len(sv.Diversions) != 2 {
		t.Fatalf("stored settings %+v from\n%s", sv, e.ss.doc(uri))
	}
	ifc, _ := e.subs.IFC(context.Background(), uri)
	root, err := parseXML([]byte(ifc))
	if err != nil || len(root.Children) != 3 || !strings.Contains(ifc, "sip:vm.example.com") || !strings.Contains(ifc, "sip:mmtel.example.com") {
		t.Fatalf("iFC after adding Voicemail (%v):\n%s", err, ifc)
	}
	body, tok = c.page(t, path)
	if !strings.Contains(body, `value="Voicemail" checked`) || !strings.Contains(body, `value="sip:6505550099@example.com"`) {
		t.Fatalf("services page after saving:\n%s", body)
	}

	// Unchecking removes only the AS's iFC; a bad form changes nothing.
	form.Set(csrfField, tok)
	form.Del("as")
	c.post(t, "/lines/services", form).want(t, http.StatusSeeOther)
	if ifc, _ := e.subs.IFC(context.Background(), uri); strings.Contains(ifc, "vm.example.com") || !strings.Contains(ifc, "mmtel.example.com") {
		t.Fatalf("iFC after removing Voicemail:\n%s", ifc)
	}
	before := string(e.ss.doc(uri))
	for _, bad := range []url.Values{{"noreply": {"2"}}, {"noreply": {"x"}}, {"target_cfb": {""}}, {"target_cfb": {"<script>"}}, {"ocb": {"some"}}} {
		f := url.Values{}
		for k, v := range form {
			f[k] = v
		}
		for k, v := range bad {
			f[k] = v
		}
		c.post(t, "/lines/services", f).want(t, http.StatusBadRequest)
	}
	if string(e.ss.doc(uri)) != before {
		t.Fatal("a refused form changed the document")
	}
}
