package sitetest

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"stillwater/appliance/homer"
)

// The IMS tests give the site a known signup code (otherwise it is random,
// generated at site creation) and the home domain of Ellis's seeded pool.
const (
	imsSignupCode = "let-me-in-42"
	imsShared     = "home_domain=example.com\nsignup_key=" + imsSignupCode + "\n"
	imsRealm      = "example.com"
)

// imsPort names one of a node's subscriber-facing HTTP interfaces.
type imsPort int

const (
	portHSProv imsPort = iota // Homestead-prov
	portHS                    // Homestead
	portHomer                 // Homer
	portEllis                 // Ellis
)

func (p imsPort) String() string {
	return [...]string{"homestead-prov", "homestead", "homer", "ellis"}[p]
}

// imsURL is the URL of path on one of n's IMS interfaces.
func imsURL(n *node, p imsPort, path string) string {
	port := [...]int{n.site.ports.homesteadProv, n.site.ports.homestead, n.site.ports.homer, n.site.ports.ellis}[p]
	return "http://" + net.JoinHostPort(n.ip, strconv.Itoa(port)) + path
}

// newIMSClient opens a connection per request (nodes get killed), keeps
// Ellis's session cookie, and does not follow redirects: Homestead-prov's
// 303s are part of what is checked.
func newIMSClient() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{
		Timeout:       30 * time.Second,
		Transport:     &http.Transport{DisableKeepAlives: true, Proxy: nil},
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// imsDo sends one request; hdr are header name/value pairs.
func imsDo(c *http.Client, method, url string, body []byte, hdr ...string) (reply, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return reply{}, err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	return reply{code: resp.StatusCode, body: string(b), header: resp.Header}, nil
}

// imsSettled sends a request until the site answers it with something other
// than a transport error or a 5xx, and returns that answer: after a node
// loss the survivors elect leaders first.
func imsSettled(t *testing.T, c *http.Client, method, url string, body []byte, hdr ...string) reply {
	t.Helper()
	var r reply
	waitFor(t, time.Minute, method+" "+url+" to be answered", func() error {
		var err error
		r, err = imsDo(c, method, url, body, hdr...)
		if err != nil {
			return err
		}
		if r.code >= 500 {
			return fmt.Errorf("%v", r)
		}
		return nil
	})
	return r
}

// imsReason is the reason of a Homestead or Ellis JSON error document, or
// the whole body for anything else (Homer answers in plain text).
func imsReason(body string) string {
	var e struct {
		Reason string `json:"reason"`
	}
	if json.Unmarshal([]byte(body), &e) == nil && e.Reason != "" {
		return e.Reason
	}
	return body
}

// imsStep is one request of a table-driven check and what it must answer.
type imsStep struct {
	name   string
	method string
	at     imsPort
	path   string
	body   string
	hdr    []string
	code   int
	want   []string // substrings of the body, or of the error's reason
	same   string   // if set, the body must be exactly this
	loc    string   // wanted Location; ending in "/", a prefix of it
	anon   bool     // sent without Ellis's session cookie
	then   func(t *testing.T, r reply)
}

// runIMSSteps runs steps in order against n, each as a subtest.
func runIMSSteps(t *testing.T, n *node, c *http.Client, steps []imsStep) {
	t.Helper()
	anon := newIMSClient()
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			var body []byte
			if s.body != "" {
				body = []byte(s.body)
			}
			client := c
			if s.anon {
				client = anon
			}
			r, err := imsDo(client, s.method, imsURL(n, s.at, s.path), body, s.hdr...)
			if err != nil {
				t.Fatalf("%s %s %s: %v", s.at, s.method, s.path, err)
			}
			if r.code != s.code {
				t.Fatalf("%s %s %s: got %v, want %d", s.at, s.method, s.path, r, s.code)
			}
			text := r.body
			if r.code >= 400 {
				text = imsReason(r.body)
				if strings.TrimSpace(text) == "" {
					t.Errorf("%s %s %s: %d without a reason", s.at, s.method, s.path, r.code)
				}
			}
			for _, w := range s.want {
				if !strings.Contains(text, w) {
					t.Errorf("%s %s %s: %q does not contain %q", s.at, s.method, s.path, text, w)
				}
			}
			if s.same != "" && r.body != s.same {
				t.Errorf("%s %s %s: body\n%s\nwant exactly\n%s", s.at, s.method, s.path, r.body, s.same)
			}
			if s.loc != "" {
				loc := r.header.Get("Location")
				if strings.HasSuffix(s.loc, "/") && !strings.HasPrefix(loc, s.loc) || !strings.HasSuffix(s.loc, "/") && loc != s.loc {
					t.Errorf("%s %s %s: Location %q, want %q", s.at, s.method, s.path, loc, s.loc)
				}
			}
			if s.then != nil {
				s.then(t, r)
			}
		})
	}
}

func imsHA1(impi, realm, password string) string {
	h := md5.Sum([]byte(impi + ":" + realm + ":" + password))
	return hex.EncodeToString(h[:])
}

func imsPublicID(impu string) string {
	return "<PublicIdentity><BarringIndication>0</BarringIndication><Identity>" + impu + "</Identity></PublicIdentity>"
}

func imsSimservsPath(impu string) string {
	return "/org.etsi.ngn.simservs/users/" + url.PathEscape(impu) + "/simservs.xml"
}

func ellisNumbersPath(email string) string { return "/accounts/" + url.PathEscape(email) + "/numbers" }

func ellisLinePath(email, uri, what string) string {
	p := ellisNumbersPath(email) + "/" + url.PathEscape(uri)
	if what != "" {
		p += "/" + what
	}
	return p
}

// Documents provisioned by the tests, with their own layout so that a
// byte-exact read back means they were stored verbatim.
const (
	imsIFC = `<?xml version="1.0" encoding="UTF-8"?>
<ServiceProfile>
  <InitialFilterCriteria>
    <Priority>1</Priority>
    <TriggerPoint>
      <ConditionTypeCNF>0</ConditionTypeCNF>
      <SPT><ConditionNegated>0</ConditionNegated><Group>0</Group><Method>INVITE</Method><Extension></Extension></SPT>
    </TriggerPoint>
    <ApplicationServer>
      <ServerName>sip:as.example.com:5060</ServerName>
      <DefaultHandling>0</DefaultHandling>
    </ApplicationServer>
  </InitialFilterCriteria>
</ServiceProfile>
`
	imsSimservs = `<?xml version="1.0" encoding="UTF-8"?>
<simservs xmlns="http://uri.etsi.org/ngn/params/xml/simservs/xcap" xmlns:cp="urn:ietf:params:xml:ns:common-policy">
  <originating-identity-presentation active="true"/>
  <communication-diversion active="true">
    <NoReplyTimer>25</NoReplyTimer>
    <cp:ruleset>
      <cp:rule id="cfb">
        <cp:conditions><busy/></cp:conditions>
        <cp:actions><forward-to><target>sip:voicemail@example.com</target></forward-to></cp:actions>
      </cp:rule>
    </cp:ruleset>
  </communication-diversion>
</simservs>
`
	// A diversion rule that forwards nowhere: well-formed, but refused by
	// the schema checks.
	imsBadSimservs = `<?xml version="1.0" encoding="UTF-8"?>
<simservs xmlns="http://uri.etsi.org/ngn/params/xml/simservs/xcap" xmlns:cp="urn:ietf:params:xml:ns:common-policy">
  <communication-diversion active="true">
    <cp:ruleset>
      <cp:rule id="cfu">
        <cp:conditions></cp:conditions>
        <cp:actions></cp:actions>
      </cp:rule>
    </cp:ruleset>
  </communication-diversion>
</simservs>
`
)

// imsOIROn is doc with originating identity presentation restricted by
// default: what a portal or script writes to switch OIR on.
func imsOIROn(t *testing.T, doc string) string {
	t.Helper()
	const off = "<default-behaviour>presentation-not-restricted</default-behaviour>"
	if !strings.Contains(doc, off) {
		t.Fatalf("simservs document has no OIR default behaviour to change:\n%s", doc)
	}
	return strings.Replace(doc, off, "<default-behaviour>presentation-restricted</default-behaviour>", 1)
}

// ellisLineJSON is a number as Ellis's API shows it.
type ellisLineJSON struct {
	URI       string `json:"sip_uri"`
	Password  string `json:"sip_password"`
	PrivateID string `json:"private_id"`
	PSTN      bool   `json:"pstn"`
}

func decodeEllisLine(t *testing.T, r reply) ellisLineJSON {
	t.Helper()
	var l ellisLineJSON
	if err := json.Unmarshal([]byte(r.body), &l); err != nil || l.URI == "" || l.PrivateID == "" {
		t.Fatalf("allocation answered %v (%v)", r, err)
	}
	return l
}

// ellisListed decodes GET /accounts/<email>/numbers, failing the test if a
// listed line shows its SIP password: Ellis shows it once, at allocation.
func ellisListed(t *testing.T, r reply) []string {
	t.Helper()
	var doc struct {
		Numbers []map[string]any `json:"numbers"`
	}
	if r.code != http.StatusOK || json.Unmarshal([]byte(r.body), &doc) != nil || doc.Numbers == nil {
		t.Fatalf("numbers list: %v", r)
	}
	var uris []string
	for _, n := range doc.Numbers {
		if _, ok := n["sip_password"]; ok {
			t.Errorf("numbers list shows a SIP password: %v", n)
		}
		uri, _ := n["sip_uri"].(string)
		uris = append(uris, uri)
	}
	return uris
}

// TestProvisioningSurvivesNodeLoss: everything provisioned through one
// node's Homestead-prov, Homer and Ellis reads back unchanged through
// another node after the first is killed with kill -9.
func TestProvisioningSurvivesNodeLoss(t *testing.T) {
	s := newSite(t, siteOpts{nodes: 3, shared: imsShared})
	n1, n2 := s.node(1), s.node(2)
	c := newIMSClient()

	const (
		impi  = "dana@example.com"
		impu1 = "sip:dana@example.com"
		impu2 = "tel:+16505557777"
		email = "dana@example.org"
		scscf = "sip:scscf.example.com:5054;transport=tcp"
	)
	ha1 := imsHA1(impi, imsRealm, "dana's secret")
	must := func(what string, r reply, err error, code int) reply {
		t.Helper()
		if err != nil || r.code != code {
			t.Fatalf("%s: %v %v, want %d", what, r, err, code)
		}
		return r
	}
	prov := func(method, path, body string, code int) reply {
		t.Helper()
		var b []byte
		if body != "" {
			b = []byte(body)
		}
		r, err := imsDo(c, method, imsURL(n1, portHSProv, path), b)
		return must("homestead-prov "+method+" "+path+" via node 1", r, err, code)
	}

	prov(http.MethodPut, "/private/"+impi, `{"digest_ha1":"`+ha1+`","realm":"`+imsRealm+`"}`, http.StatusOK)
	irsPath := prov(http.MethodPost, "/irs", "", http.StatusCreated).header.Get("Location")
	irs := strings.TrimPrefix(irsPath, "/irs/")
	prov(http.MethodPut, "/private/"+impi+"/associated_implicit_registration_sets/"+irs, "", http.StatusOK)
	spPath := prov(http.MethodPost, irsPath+"/service_profiles", "", http.StatusCreated).header.Get("Location")
	sp := spPath[strings.LastIndexByte(spPath, '/')+1:]
	prov(http.MethodPut, spPath+"/filter_criteria", imsIFC, http.StatusOK)
	for _, impu := range []string{impu1, impu2} {
		prov(http.MethodPut, spPath+"/public_ids/"+url.PathEscape(impu), imsPublicID(impu), http.StatusOK)
	}
	// A registration, so that the state read back is more than the default.
	r, err := imsDo(c, http.MethodPut, imsURL(n1, portHS, "/impu/"+impu1+"/reg-data?private_id="+impi), []byte(`{"reqtype":"reg","server_name":"`+scscf+`"}`))
	must("registering "+impu1+" via node 1", r, err, http.StatusOK)

	r, err = imsDo(c, http.MethodPut, imsURL(n1, portHomer, imsSimservsPath(impu1)), []byte(imsSimservs), "Content-Type", "application/simservs+xml")
	must("Homer PUT via node 1", r, err, http.StatusCreated)

	r, err = imsDo(c, http.MethodPost, imsURL(n1, portEllis, "/accounts"),
		[]byte(`{"email":"`+email+`","password":"dana-portal","full_name":"Dana"}`),
		"Content-Type", "application/json", "NGV-Signup-Code", imsSignupCode)
	must("Ellis signup via node 1", r, err, http.StatusCreated)
	r, err = imsDo(c, http.MethodPost, imsURL(n1, portEllis, ellisNumbersPath(email)), nil)
	ln := decodeEllisLine(t, must("Ellis number via node 1", r, err, http.StatusOK))
	r, err = imsDo(c, http.MethodGet, imsURL(n1, portEllis, ellisLinePath(email, ln.URI, "simservs")), nil)
	lineSimservs := must("Ellis simservs via node 1", r, err, http.StatusOK).body

	n1.kill()
	waitFor(t, time.Minute, "nodes 2 and 3 to lead every group", func() error {
		st, err := n2.status()
		if err != nil {
			return err
		}
		return leadersAmong(st, []int{2, 3})
	})
	// Provisioning goes on with a node down: every write through a survivor
	// is acknowledged (the site must not keep steering work to the dead one).
	for i := range 40 {
		r, err := imsDo(c, http.MethodPut, imsURL(n2, portHSProv, fmt.Sprintf("/private/after%d@example.com", i)),
			[]byte(`{"digest_ha1":"`+ha1+`","realm":"`+imsRealm+`"}`))
		must(fmt.Sprintf("write %d after node 1 died", i), r, err, http.StatusOK)
	}

	read := func(p imsPort, path string, code int, hdr ...string) reply {
		t.Helper()
		r := imsSettled(t, c, http.MethodGet, imsURL(n2, p, path), nil, hdr...)
		if r.code != code {
			t.Fatalf("%s GET %s via node 2 after node 1 died: %v, want %d", p, path, r, code)
		}
		return r
	}
	exact := func(p imsPort, path, want string) {
		t.Helper()
		if got := read(p, path, http.StatusOK).body; got != want {
			t.Errorf("%s GET %s via node 2: got\n%s\nwant exactly what was provisioned\n%s", p, path, got, want)
		}
	}

	t.Run("homestead-prov", func(t *testing.T) {
		var priv struct {
			HA1   string `json:"digest_ha1"`
			Realm string `json:"realm"`
		}
		if json.Unmarshal([]byte(read(portHSProv, "/private/"+impi, http.StatusOK).body), &priv); priv.HA1 != ha1 || priv.Realm != imsRealm {
			t.Errorf("private identity reads back as %+v, want HA1 %s in %s", priv, ha1, imsRealm)
		}
		var set struct {
			ServiceProfiles []struct {
				ID        string   `json:"id"`
				PublicIDs []string `json:"public_ids"`
				HasIFC    bool     `json:"filter_criteria"`
			} `json:"service_profiles"`
			PrivateIDs []string `json:"private_ids"`
		}
		body := read(portHSProv, irsPath, http.StatusOK).body
		json.Unmarshal([]byte(body), &set)
		if len(set.ServiceProfiles) != 1 || set.ServiceProfiles[0].ID != sp || !set.ServiceProfiles[0].HasIFC ||
			!slices.Equal(slices.Sorted(slices.Values(set.ServiceProfiles[0].PublicIDs)), []string{impu1, impu2}) ||
			!slices.Equal(set.PrivateIDs, []string{impi}) {
			t.Errorf("IRS reads back as %s", body)
		}
		for _, impu := range []string{impu1, impu2} {
			exact(portHSProv, spPath+"/public_ids/"+url.PathEscape(impu), imsPublicID(impu))
			if loc := read(portHSProv, "/public/"+url.PathEscape(impu)+"/service_profile", http.StatusSeeOther).header.Get("Location"); loc != spPath {
				t.Errorf("%s's service profile redirects to %q, want %q", impu, loc, spPath)
			}
		}
		exact(portHSProv, spPath+"/filter_criteria", imsIFC)
		if body := read(portHSProv, "/private/"+impi+"/associated_public_ids", http.StatusOK).body; !strings.Contains(body, impu1) || !strings.Contains(body, impu2) {
			t.Errorf("associated public ids: %s", body)
		}
	})

	t.Run("homestead", func(t *testing.T) {
		var av struct {
			Digest struct{ HA1, Realm, QoP string } `json:"digest"`
		}
		body := read(portHS, "/impi/"+impi+"/av?impu="+impu1, http.StatusOK).body
		if json.Unmarshal([]byte(body), &av); av.Digest.HA1 != ha1 || av.Digest.Realm != imsRealm || av.Digest.QoP != "auth" {
			t.Errorf("digest vector %s, want HA1 %s", body, ha1)
		}
		// The registration data embeds the provisioned XML verbatim.
		ifcElem := imsIFC[strings.Index(imsIFC, "<InitialFilterCriteria>") : strings.Index(imsIFC, "</InitialFilterCriteria>")+len("</InitialFilterCriteria>")]
		rd := read(portHS, "/impu/"+impu2+"/reg-data", http.StatusOK).body
		for _, w := range []string{"<RegistrationState>REGISTERED</RegistrationState>", "<PrivateID>" + impi + "</PrivateID>",
			imsPublicID(impu1), imsPublicID(impu2), ifcElem} {
			if !strings.Contains(rd, w) {
				t.Errorf("reg-data of %s lacks %q:\n%s", impu2, w, rd)
			}
		}
		loc := read(portHS, "/impu/"+impu1+"/location", http.StatusOK).body
		if !strings.Contains(loc, `"scscf":"`+scscf+`"`) {
			t.Errorf("location of %s: %s, want S-CSCF %s", impu1, loc, scscf)
		}
	})

	t.Run("homer", func(t *testing.T) {
		exact(portHomer, imsSimservsPath(impu1), imsSimservs)
	})

	t.Run("ellis", func(t *testing.T) {
		// The session node 1 issued is good on node 2: the site shares
		// the cookie key.
		u1, _ := url.Parse(imsURL(n1, portEllis, "/"))
		u2, _ := url.Parse(imsURL(n2, portEllis, "/"))
		moved := newIMSClient()
		moved.Jar.SetCookies(u2, c.Jar.Cookies(u1))
		if r := imsSettled(t, moved, http.MethodGet, imsURL(n2, portEllis, ellisNumbersPath(email)), nil); r.code != http.StatusOK {
			t.Errorf("node 1's session cookie on node 2: %v, want 200", r)
		}
		// Node 2's Ellis knows the account: a login there works.
		r := imsSettled(t, c, http.MethodPost, imsURL(n2, portEllis, "/session"),
			[]byte(`{"email":"`+email+`","password":"dana-portal"}`), "Content-Type", "application/json")
		if r.code != http.StatusCreated {
			t.Fatalf("login via node 2: %v", r)
		}
		if got := ellisListed(t, read(portEllis, ellisNumbersPath(email), http.StatusOK)); !slices.Equal(got, []string{ln.URI}) {
			t.Errorf("numbers via node 2: %v, want [%s]", got, ln.URI)
		}
		exact(portEllis, ellisLinePath(email, ln.URI, "simservs"), lineSimservs)
		exact(portHomer, imsSimservsPath(ln.URI), lineSimservs)
		// The line's credentials are the password Ellis showed.
		var av struct {
			Digest struct{ HA1 string } `json:"digest"`
		}
		json.Unmarshal([]byte(read(portHS, "/impi/"+ln.PrivateID+"/av?impu="+ln.URI, http.StatusOK).body), &av)
		if want := imsHA1(ln.PrivateID, imsRealm, ln.Password); av.Digest.HA1 != want {
			t.Errorf("line %s has HA1 %q, want %q from the password Ellis showed", ln.URI, av.Digest.HA1, want)
		}
	})
}

// TestEndpointsAgainstRunningNode checks the success and error answers of
// each IMS interface of a running node, in request order (later requests
// build on earlier ones).
func TestEndpointsAgainstRunningNode(t *testing.T) {
	s := newSite(t, siteOpts{nodes: 1, shared: imsShared})
	n := s.node(1)
	c := newIMSClient()

	const (
		impi  = "alice@example.com"
		impu  = "sip:alice@example.com"
		scscf = "sip:scscf.example.com"
	)
	ha1 := imsHA1(impi, imsRealm, "alice-pw")
	privBody := `{"digest_ha1":"` + ha1 + `","realm":"` + imsRealm + `"}`
	location := func(dst *string) func(*testing.T, reply) {
		return func(_ *testing.T, r reply) { *dst = r.header.Get("Location") }
	}

	var irs, irs2 string
	t.Run("homestead-prov", func(t *testing.T) {
		runIMSSteps(t, n, c, []imsStep{
			{name: "ping", method: "GET", at: portHSProv, path: "/ping", code: 200, same: "OK"},
			{name: "put private", method: "PUT", at: portHSProv, path: "/private/" + impi, body: privBody, code: 200},
			{name: "get private", method: "GET", at: portHSProv, path: "/private/" + impi, code: 200, want: []string{`"digest_ha1":"` + ha1 + `"`, `"realm":"example.com"`}},
			{name: "malformed JSON", method: "PUT", at: portHSProv, path: "/private/" + impi, body: `{"digest_ha1":`, code: 400, want: []string{"invalid JSON"}},
			{name: "unknown field", method: "PUT", at: portHSProv, path: "/private/" + impi, body: `{"password":"x"}`, code: 400, want: []string{"password"}},
			{name: "bad HA1", method: "PUT", at: portHSProv, path: "/private/" + impi, body: `{"digest_ha1":"xyz"}`, code: 400, want: []string{"digest_ha1"}},
			{name: "no credentials", method: "PUT", at: portHSProv, path: "/private/" + impi, body: `{}`, code: 400, want: []string{"missing"}},
			{name: "refused puts changed nothing", method: "GET", at: portHSProv, path: "/private/" + impi, code: 200, want: []string{ha1}},
			{name: "unknown private", method: "GET", at: portHSProv, path: "/private/nobody@example.com", code: 404, want: []string{"nobody@example.com"}},
			{name: "delete absent private", method: "DELETE", at: portHSProv, path: "/private/nobody@example.com", code: 204},
			{name: "put second private", method: "PUT", at: portHSProv, path: "/private/bob@example.com", body: `{"plaintext_password":"bob-pw"}`, code: 200},
			{name: "plaintext kept with its HA1", method: "GET", at: portHSProv, path: "/private/bob@example.com", code: 200,
				want: []string{`"plaintext_password":"bob-pw"`, imsHA1("bob@example.com", imsRealm, "bob-pw")}},
			{name: "delete private", method: "DELETE", at: portHSProv, path: "/private/bob@example.com", code: 200},
			{name: "deleted private", method: "GET", at: portHSProv, path: "/private/bob@example.com", code: 404},
			{name: "create IRS", method: "POST", at: portHSProv, path: "/irs", code: 201, loc: "/irs/", then: location(&irs)},
			{name: "create another IRS", method: "POST", at: portHSProv, path: "/irs/", code: 201, loc: "/irs/", then: location(&irs2)},
			{name: "create IRS with a body", method: "POST", at: portHSProv, path: "/irs", body: "{}", code: 400, want: []string{"no body"}},
			{name: "unknown IRS", method: "GET", at: portHSProv, path: "/irs/no-such-irs", code: 404, want: []string{"no-such-irs"}},
			{name: "delete absent IRS", method: "DELETE", at: portHSProv, path: "/irs/no-such-irs", code: 204},
		})
	})
	if irs == "" || irs2 == "" {
		t.Fatal("no IRS created; the rest builds on them")
	}

	var sp, sp2 string
	t.Run("homestead-prov profiles", func(t *testing.T) {
		runIMSSteps(t, n, c, []imsStep{
			{name: "associate", method: "PUT", at: portHSProv, path: "/private/" + impi + "/associated_implicit_registration_sets/" + strings.TrimPrefix(irs, "/irs/"), code: 200},
			{name: "associate unknown IRS", method: "PUT", at: portHSProv, path: "/private/" + impi + "/associated_implicit_registration_sets/no-such-irs", code: 404},
			{name: "create service profile", method: "POST", at: portHSProv, path: irs + "/service_profiles", code: 201, loc: irs + "/service_profiles/", then: location(&sp)},
			{name: "service profile of another IRS", method: "POST", at: portHSProv, path: irs2 + "/service_profiles", code: 201, loc: irs2 + "/service_profiles/", then: location(&sp2)},
			{name: "service profile of unknown IRS", method: "POST", at: portHSProv, path: "/irs/no-such-irs/service_profiles", code: 404},
		})
	})
	if sp == "" || sp2 == "" {
		t.Fatal("no service profiles created; the rest builds on them")
	}

	t.Run("homestead-prov identities", func(t *testing.T) {
		runIMSSteps(t, n, c, []imsStep{
			{name: "put public id", method: "PUT", at: portHSProv, path: sp + "/public_ids/" + impu, body: imsPublicID(impu), code: 200},
			{name: "get public id", method: "GET", at: portHSProv, path: sp + "/public_ids/" + impu, code: 200, same: imsPublicID(impu)},
			{name: "identity mismatch", method: "PUT", at: portHSProv, path: sp + "/public_ids/sip:carol@example.com", body: imsPublicID("sip:dave@example.com"), code: 403, want: []string{"sip:dave@example.com"}},
			{name: "conflicting create", method: "PUT", at: portHSProv, path: sp2 + "/public_ids/" + impu, body: imsPublicID(impu), code: 409, want: []string{impu}},
			{name: "conflict left the identity alone", method: "GET", at: portHSProv, path: sp + "/public_ids/" + impu, code: 200, same: imsPublicID(impu)},
			{name: "malformed public identity XML", method: "PUT", at: portHSProv, path: sp + "/public_ids/sip:erin@example.com", body: "<PublicIdentity><Identity>", code: 400, want: []string{"malformed XML"}},
			{name: "malformed iFC", method: "PUT", at: portHSProv, path: sp + "/filter_criteria", body: "<ServiceProfile>", code: 400, want: []string{"malformed XML"}},
			{name: "iFC without an application server", method: "PUT", at: portHSProv, path: sp + "/filter_criteria", body: "<ServiceProfile><InitialFilterCriteria/></ServiceProfile>", code: 400, want: []string{"ApplicationServer"}},
			{name: "no iFC yet", method: "GET", at: portHSProv, path: sp + "/filter_criteria", code: 404},
			{name: "put iFC", method: "PUT", at: portHSProv, path: sp + "/filter_criteria", body: imsIFC, code: 200},
			{name: "get iFC", method: "GET", at: portHSProv, path: sp + "/filter_criteria", code: 200, same: imsIFC},
			{name: "service profile redirect", method: "GET", at: portHSProv, path: "/public/" + impu + "/service_profile", code: 303, loc: sp},
			{name: "IRS redirect", method: "GET", at: portHSProv, path: "/public/" + impu + "/irs/", code: 303, loc: irs},
			{name: "redirect of unknown identity", method: "GET", at: portHSProv, path: "/public/sip:nobody@example.com/service_profile", code: 404},
			{name: "IRS", method: "GET", at: portHSProv, path: irs, code: 200, want: []string{impu, impi}},
			{name: "associated private ids", method: "GET", at: portHSProv, path: "/public/" + impu + "/associated_private_ids", code: 200, want: []string{impi}},
			{name: "delete IRS", method: "DELETE", at: portHSProv, path: irs2, code: 200},
			{name: "deleted IRS", method: "GET", at: portHSProv, path: irs2, code: 404},
			{name: "delete IRS again", method: "DELETE", at: portHSProv, path: irs2, code: 204},
		})
	})

	t.Run("homestead", func(t *testing.T) {
		rd := "/impu/" + impu + "/reg-data"
		runIMSSteps(t, n, c, []imsStep{
			{name: "ping", method: "GET", at: portHS, path: "/ping", code: 200, same: "OK"},
			{name: "av", method: "GET", at: portHS, path: "/impi/" + impi + "/av?impu=" + impu, code: 200, want: []string{`"ha1":"` + ha1 + `"`, `"realm":"example.com"`, `"qop":"auth"`}},
			{name: "av digest", method: "GET", at: portHS, path: "/impi/" + impi + "/av/digest", code: 200, want: []string{ha1}},
			{name: "av unknown private", method: "GET", at: portHS, path: "/impi/nobody@example.com/av", code: 404},
			{name: "av for an identity it does not authenticate", method: "GET", at: portHS, path: "/impi/" + impi + "/av?impu=sip:nobody@example.com", code: 404},
			{name: "av AKA without AKA credentials", method: "GET", at: portHS, path: "/impi/" + impi + "/av/aka", code: 404, want: []string{"AKA"}},
			{name: "av unknown scheme", method: "GET", at: portHS, path: "/impi/" + impi + "/av/ntlm", code: 404, want: []string{"ntlm"}},
			{name: "registration-status", method: "GET", at: portHS, path: "/impi/" + impi + "/registration-status?impu=" + impu, code: 200, want: []string{`"result-code":2001`}},
			{name: "registration-status without impu", method: "GET", at: portHS, path: "/impi/" + impi + "/registration-status", code: 400, want: []string{"impu"}},
			{name: "registration-status of a stranger", method: "GET", at: portHS, path: "/impi/nobody@example.com/registration-status?impu=" + impu, code: 404},
			{name: "reg-data before registering", method: "GET", at: portHS, path: rd, code: 200, want: []string{"<RegistrationState>NOT_REGISTERED</RegistrationState>"}},
			{name: "reg-data reg", method: "PUT", at: portHS, path: rd, body: `{"reqtype":"reg","server_name":"` + scscf + `"}`, code: 200,
				want: []string{"<RegistrationState>REGISTERED</RegistrationState>", "<PrivateID>" + impi + "</PrivateID>", imsPublicID(impu), "<ServerName>sip:as.example.com:5060</ServerName>"}},
			{name: "reg-data after registering", method: "GET", at: portHS, path: rd, code: 200, want: []string{"<RegistrationState>REGISTERED</RegistrationState>"}},
			{name: "registration-status when registered", method: "GET", at: portHS, path: "/impi/" + impi + "/registration-status?impu=" + impu, code: 200, want: []string{`"result-code":2002`, `"scscf":"` + scscf + `"`}},
			{name: "location", method: "GET", at: portHS, path: "/impu/" + impu + "/location", code: 200, want: []string{`"result-code":2001`, `"scscf":"` + scscf + `"`}},
			{name: "reg-data unknown reqtype", method: "PUT", at: portHS, path: rd, body: `{"reqtype":"bogus"}`, code: 400, want: []string{"bogus"}},
			{name: "reg-data without reqtype", method: "PUT", at: portHS, path: rd, body: `{}`, code: 400, want: []string{"reqtype"}},
			{name: "reg-data malformed JSON", method: "PUT", at: portHS, path: rd, body: `{"reqtype":`, code: 400, want: []string{"invalid JSON"}},
			{name: "reg-data of unknown identity", method: "GET", at: portHS, path: "/impu/sip:nobody@example.com/reg-data", code: 404},
			{name: "dereg", method: "PUT", at: portHS, path: rd, body: `{"reqtype":"dereg-user"}`, code: 200, want: []string{"<RegistrationState>NOT_REGISTERED</RegistrationState>"}},
			{name: "dereg when not registered", method: "PUT", at: portHS, path: rd, body: `{"reqtype":"dereg-user"}`, code: 400, want: []string{"NOT_REGISTERED"}},
		})
	})

	t.Run("homer", func(t *testing.T) {
		doc := imsSimservsPath(impu)
		ct := []string{"Content-Type", "application/simservs+xml"}
		replaced := strings.Replace(imsSimservs, "<NoReplyTimer>25</NoReplyTimer>", "<NoReplyTimer>40</NoReplyTimer>", 1)
		runIMSSteps(t, n, c, []imsStep{
			{name: "no document yet", method: "GET", at: portHomer, path: doc, code: 404},
			{name: "put valid", method: "PUT", at: portHomer, path: doc, body: imsSimservs, hdr: ct, code: 201},
			{name: "get", method: "GET", at: portHomer, path: doc, code: 200, same: imsSimservs},
			{name: "replace", method: "PUT", at: portHomer, path: doc, body: replaced, hdr: ct, code: 200},
			{name: "get replaced", method: "GET", at: portHomer, path: doc, code: 200, same: replaced},
			{name: "put invalid", method: "PUT", at: portHomer, path: doc, body: imsBadSimservs, hdr: ct, code: 400, want: []string{"cfu", "forward-to"}},
			{name: "put not XML", method: "PUT", at: portHomer, path: doc, body: "hello", hdr: ct, code: 400},
			{name: "put wrong content type", method: "PUT", at: portHomer, path: doc, body: imsSimservs, hdr: []string{"Content-Type", "text/plain"}, code: 415},
			{name: "refused puts changed nothing", method: "GET", at: portHomer, path: doc, code: 200, same: replaced},
			{name: "node selector", method: "GET", at: portHomer, path: doc + "/~~/simservs", code: 501},
			{name: "not an identity", method: "GET", at: portHomer, path: imsSimservsPath("alice"), code: 400},
			{name: "delete", method: "DELETE", at: portHomer, path: doc, code: 200},
			{name: "deleted", method: "GET", at: portHomer, path: doc, code: 404},
			{name: "delete absent", method: "DELETE", at: portHomer, path: doc, code: 404},
		})
	})

	t.Run("ellis", func(t *testing.T) {
		const email = "carol@example.org"
		acct := `{"email":"` + email + `","password":"carol-portal","full_name":"Carol"}`
		code := func(c string) []string { return []string{"Content-Type", "application/json", "NGV-Signup-Code", c} }
		jsonCT := []string{"Content-Type", "application/json"}
		var ln ellisLineJSON
		runIMSSteps(t, n, c, []imsStep{
			{name: "ping", method: "GET", at: portEllis, path: "/ping", code: 200, same: "OK"},
			{name: "signup with wrong code", method: "POST", at: portEllis, path: "/accounts", body: acct, hdr: code("wrong"), code: 403, want: []string{"signup code"}, anon: true},
			{name: "signup without code", method: "POST", at: portEllis, path: "/accounts", body: acct, hdr: jsonCT, code: 403, want: []string{"signup code"}, anon: true},
			{name: "numbers without a session", method: "GET", at: portEllis, path: ellisNumbersPath(email), code: 403, anon: true},
			{name: "signup", method: "POST", at: portEllis, path: "/accounts", body: acct, hdr: code(imsSignupCode), code: 201, want: []string{`"username":"` + email + `"`}, anon: true},
			{name: "signup again", method: "POST", at: portEllis, path: "/accounts", body: acct, hdr: code(imsSignupCode), code: 409, anon: true},
			{name: "login with wrong password", method: "POST", at: portEllis, path: "/session", body: `{"email":"` + email + `","password":"not-it!"}`, hdr: jsonCT, code: 403},
			{name: "still no session", method: "GET", at: portEllis, path: ellisNumbersPath(email), code: 403},
			{name: "login", method: "POST", at: portEllis, path: "/session", body: `{"email":"` + email + `","password":"carol-portal"}`, hdr: jsonCT, code: 201},
			{name: "no numbers yet", method: "GET", at: portEllis, path: ellisNumbersPath(email), code: 200, same: "{\"numbers\":[]}\n"},
			{name: "another account's numbers", method: "GET", at: portEllis, path: ellisNumbersPath("someone@example.org"), code: 403},
			{name: "allocate", method: "POST", at: portEllis, path: ellisNumbersPath(email), code: 200, then: func(t *testing.T, r reply) {
				ln = decodeEllisLine(t, r)
				if !regexp.MustCompile(`^sip:6505550\d{3}@example\.com$`).MatchString(ln.URI) || ln.Password == "" || ln.PSTN {
					t.Fatalf("allocation answered %s, want a seeded number with its password", r.body)
				}
			}},
		})
		if ln.URI == "" {
			t.Fatal("no number allocated; the rest builds on it")
		}
		oir := ""
		runIMSSteps(t, n, c, []imsStep{
			{name: "listed without its password", method: "GET", at: portEllis, path: ellisNumbersPath(email), code: 200, then: func(t *testing.T, r reply) {
				if got := ellisListed(t, r); !slices.Equal(got, []string{ln.URI}) {
					t.Errorf("numbers %v, want [%s]", got, ln.URI)
				}
				if strings.Contains(r.body, ln.Password) {
					t.Errorf("numbers list shows the SIP password: %s", r.body)
				}
			}},
			{name: "credentials are the password shown", method: "GET", at: portHSProv, path: "/private/" + ln.PrivateID, code: 200, want: []string{imsHA1(ln.PrivateID, imsRealm, ln.Password)}},
			{name: "ifcs", method: "GET", at: portEllis, path: ellisLinePath(email, ln.URI, "ifcs"), code: 200, want: []string{"sip:mmtel.example.com"}},
			{name: "simservs", method: "GET", at: portEllis, path: ellisLinePath(email, ln.URI, "simservs"), code: 200, then: func(t *testing.T, r reply) {
				oir = imsOIROn(t, r.body)
			}},
			{name: "simservs of a number not owned", method: "GET", at: portEllis, path: ellisLinePath(email, "sip:6505559999@example.com", "simservs"), code: 404},
			{name: "simservs wrong root", method: "PUT", at: portEllis, path: ellisLinePath(email, ln.URI, "simservs"), body: "<foo/>", code: 400, want: []string{"root element"}},
			{name: "simservs invalid", method: "PUT", at: portEllis, path: ellisLinePath(email, ln.URI, "simservs"), body: imsBadSimservs, code: 400, want: []string{"forward-to"}},
		})
		runIMSSteps(t, n, c, []imsStep{
			{name: "simservs OIR on", method: "PUT", at: portEllis, path: ellisLinePath(email, ln.URI, "simservs"), body: oir, code: 200},
			{name: "simservs read back", method: "GET", at: portEllis, path: ellisLinePath(email, ln.URI, "simservs"), code: 200, same: oir},
			{name: "homer has it", method: "GET", at: portHomer, path: imsSimservsPath(ln.URI), code: 200, same: oir},
			{name: "delete number", method: "DELETE", at: portEllis, path: ellisLinePath(email, ln.URI, ""), code: 200},
			{name: "no numbers after delete", method: "GET", at: portEllis, path: ellisNumbersPath(email), code: 200, same: "{\"numbers\":[]}\n"},
			{name: "subscriber removed", method: "GET", at: portHSProv, path: "/public/" + ln.URI + "/service_profile", code: 404},
			{name: "simservs removed", method: "GET", at: portHomer, path: imsSimservsPath(ln.URI), code: 404},
			{name: "delete number again", method: "DELETE", at: portEllis, path: ellisLinePath(email, ln.URI, ""), code: 404},
		})
		checkEllisPoolReturn(t, n, c, email, 5108580271)
	})
}

// checkEllisPoolReturn shows that a deleted number goes back to the pool. The
// seeded pool hands out one of many numbers at random, so this uses a PSTN
// pool of exactly one number: allocated, the pool is empty; deleted, the
// next allocation gets it again.
func checkEllisPoolReturn(t *testing.T, n *node, c *http.Client, email string, number int64) {
	t.Helper()
	out, errOut, err := n.cli("numbers", "create", "--pstn", "--start", fmt.Sprint(number), "--count", "1")
	if err != nil || out != "Created 1 numbers, 0 already present\n" {
		t.Fatalf("numbers create --pstn: %q %v %s", out, err, errOut)
	}
	uri := fmt.Sprintf("sip:+1%d@example.com", number)
	pstn := `{"pstn":true}`
	jsonCT := []string{"Content-Type", "application/json"}
	isPool := func(t *testing.T, r reply) {
		if l := decodeEllisLine(t, r); l.URI != uri || !l.PSTN || l.Password == "" {
			t.Errorf("PSTN allocation answered %s, want %s", r.body, uri)
		}
	}
	runIMSSteps(t, n, c, []imsStep{
		{name: "allocate the pool's only PSTN number", method: "POST", at: portEllis, path: ellisNumbersPath(email), body: pstn, hdr: jsonCT, code: 200, then: isPool},
		{name: "PSTN pool empty", method: "POST", at: portEllis, path: ellisNumbersPath(email), body: pstn, hdr: jsonCT, code: 503, want: []string{"No available numbers"}},
		{name: "delete the PSTN number", method: "DELETE", at: portEllis, path: ellisLinePath(email, uri, ""), code: 200},
		{name: "allocate it again", method: "POST", at: portEllis, path: ellisNumbersPath(email), body: pstn, hdr: jsonCT, code: 200, then: isPool},
	})
}

// TestEllisScriptFlow is what a provisioning script does over Ellis's JSON
// API: sign up, get a number, switch OIR on (which the MMTEL AS reads from
// Homer), and give the number back.
func TestEllisScriptFlow(t *testing.T) {
	s := newSite(t, siteOpts{nodes: 1, shared: imsShared})
	n := s.node(1)
	c := newIMSClient()
	const email = "script@example.org"
	// One PSTN number of its own, so that "back in the pool" is seen as
	// the next allocation getting it again (see checkEllisPoolReturn).
	const uri = "sip:+14155550100@example.com"
	if out, errOut, err := n.cli("numbers", "create", "--pstn", "--start", "4155550100", "--count", "1"); err != nil {
		t.Fatalf("numbers create: %q %v %s", out, err, errOut)
	}
	call := func(method, path string, body []byte, code int, hdr ...string) reply {
		t.Helper()
		r, err := imsDo(c, method, imsURL(n, portEllis, path), body, hdr...)
		if err != nil || r.code != code {
			t.Fatalf("%s %s: %v %v, want %d", method, path, r, err, code)
		}
		return r
	}
	jsonBody := func(v any) []byte { b, _ := json.Marshal(v); return b }

	call(http.MethodPost, "/accounts", jsonBody(map[string]string{"email": email, "password": "script-pw", "full_name": "Script"}),
		http.StatusCreated, "Content-Type", "application/json", "NGV-Signup-Code", imsSignupCode)
	// The signup's cookie would do; a script run later logs in.
	call(http.MethodPost, "/session", jsonBody(map[string]string{"username": email, "password": "script-pw"}), http.StatusCreated,
		"Content-Type", "application/json")
	ln := decodeEllisLine(t, call(http.MethodPost, ellisNumbersPath(email), []byte(`{"pstn":true}`), http.StatusOK, "Content-Type", "application/json"))
	if ln.URI != uri || ln.Password == "" {
		t.Fatalf("allocated %+v, want %s with a password", ln, uri)
	}

	doc := call(http.MethodGet, ellisLinePath(email, uri, "simservs"), nil, http.StatusOK).body
	before, err := imsDo(c, http.MethodGet, imsURL(n, portHomer, imsSimservsPath(uri)), nil)
	if err != nil || before.code != http.StatusOK || before.body != doc {
		t.Fatalf("Homer's document of a new line: %v %v, want what Ellis shows:\n%s", before, err, doc)
	}
	restricted := imsOIROn(t, doc)
	call(http.MethodPut, ellisLinePath(email, uri, "simservs"), []byte(restricted), http.StatusOK, "Content-Type", "application/xml")
	after, err := imsDo(c, http.MethodGet, imsURL(n, portHomer, imsSimservsPath(uri)), nil)
	if err != nil || after.code != http.StatusOK || after.body != restricted {
		t.Fatalf("Homer's document after OIR was switched on: %v %v, want\n%s", after, err, restricted)
	}
	if after.header.Get("ETag") == before.header.Get("ETag") {
		t.Errorf("the document changed but its entity tag stayed %s", after.header.Get("ETag"))
	}

	call(http.MethodDelete, ellisLinePath(email, uri, ""), nil, http.StatusOK)
	if got := ellisListed(t, call(http.MethodGet, ellisNumbersPath(email), nil, http.StatusOK)); len(got) != 0 {
		t.Fatalf("numbers after delete: %v", got)
	}
	if r, err := imsDo(c, http.MethodGet, imsURL(n, portHomer, imsSimservsPath(uri)), nil); err != nil || r.code != http.StatusNotFound {
		t.Errorf("Homer after the number was deleted: %v %v, want 404", r, err)
	}
	again := decodeEllisLine(t, call(http.MethodPost, ellisNumbersPath(email), []byte(`{"pstn":true}`), http.StatusOK, "Content-Type", "application/json"))
	if again.URI != uri || again.Password == "" || again.Password == ln.Password {
		t.Fatalf("re-allocation gave %+v, want %s back with a new password", again, uri)
	}
	// It starts afresh: the old OIR setting went with the old line.
	if r := call(http.MethodGet, ellisLinePath(email, uri, "simservs"), nil, http.StatusOK); r.body != doc {
		t.Errorf("re-allocated number's simservs:\n%s\nwant the default\n%s", r.body, doc)
	}
}

// TestNumbersCreateIdempotent: adding numbers to Ellis's pool twice adds
// them once.
func TestNumbersCreateIdempotent(t *testing.T) {
	s := newSite(t, siteOpts{nodes: 1, shared: imsShared})
	n := s.node(1)
	for _, want := range []string{"Created 50 numbers, 0 already present\n", "Created 0 numbers, 50 already present\n"} {
		out, errOut, err := n.cli("numbers", "create", "--start", "6505551000", "--count", "50")
		if err != nil || out != want {
			t.Fatalf("numbers create --start 6505551000 --count 50: %q (err %v, stderr %q), want %q", out, err, errOut, want)
		}
	}
	// A range overlapping the seeded pool (up to 6505550999) and the range
	// above counts every number as present.
	out, errOut, err := n.cli("numbers", "create", "--start", "6505550990", "--count", "20")
	if want := "Created 0 numbers, 20 already present\n"; err != nil || out != want {
		t.Fatalf("numbers create over the seeded pool: %q (err %v, stderr %q), want %q", out, err, errOut, want)
	}
}

// TestUsersImport100k bulk-provisions 100,000 subscribers from a CSV
// through one node, spot-checks them through the others, and re-runs the
// import, which must create nothing.
func TestUsersImport100k(t *testing.T) {
	skipIfShort(t)
	const total = 100_000
	s := newSite(t, siteOpts{nodes: 3, shared: imsShared})

	type sub struct{ impu, impi, password string }
	subs := make([]sub, total)
	var csv strings.Builder
	csv.WriteString("public id,private id,realm,password\n")
	for i := range subs {
		dn := 2125500000 + i
		subs[i] = sub{fmt.Sprintf("sip:%d@example.com", dn), fmt.Sprintf("%d@example.com", dn), fmt.Sprintf("pw-%d-%x", i, i*7919)}
		fmt.Fprintf(&csv, "%s,%s,%s,%s\n", subs[i].impu, subs[i].impi, imsRealm, subs[i].password)
	}
	file := filepath.Join(t.TempDir(), "subscribers.csv")
	if err := os.WriteFile(file, []byte(csv.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	out, errOut, err := imsCLI(s.node(1), 30*time.Minute, "users", "import", file, "-q")
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("users import: %v\n%s%s", err, out, errOut)
	}
	want := fmt.Sprintf("Created %d subscribers, skipped 0 already present, 0 failed, ", total)
	if !strings.HasPrefix(out, want) {
		t.Fatalf("users import said %q, want it to start %q", out, want)
	}
	t.Logf("imported %d subscribers in %.1f s: %.0f subscribers/s (the command reports: %s)",
		total, elapsed.Seconds(), total/elapsed.Seconds(), strings.TrimSpace(imsFirstLine(out)))

	c := newIMSClient()
	n2, n3 := s.node(2), s.node(3)
	def := string(homer.DefaultDocument())
	for _, i := range rand.Perm(total)[:100] {
		u := subs[i]
		r, err := imsDo(c, http.MethodGet, imsURL(n3, portHSProv, "/private/"+u.impi), nil)
		if err != nil || r.code != http.StatusOK {
			t.Fatalf("node 3: private identity of %s: %v %v", u.impu, r, err)
		}
		var priv struct {
			DigestHA1         string `json:"digest_ha1"`
			Realm             string `json:"realm"`
			PlaintextPassword string `json:"plaintext_password"`
		}
		json.Unmarshal([]byte(r.body), &priv)
		if priv.DigestHA1 != imsHA1(u.impi, imsRealm, u.password) || priv.Realm != imsRealm || priv.PlaintextPassword != "" {
			t.Errorf("node 3: %s reads back as %s, want the HA1 of its CSV password and no plaintext", u.impi, r.body)
		}
		r, err = imsDo(c, http.MethodGet, imsURL(n3, portHSProv, "/public/"+u.impu+"/service_profile"), nil)
		loc := r.header.Get("Location")
		if err != nil || r.code != http.StatusSeeOther || loc == "" {
			t.Fatalf("node 3: service profile of %s: %v %v", u.impu, r, err)
		}
		r, err = imsDo(c, http.MethodGet, imsURL(n3, portHSProv, loc+"/public_ids/"+u.impu), nil)
		if err != nil || r.code != http.StatusOK || !strings.Contains(r.body, "<Identity>"+u.impu+"</Identity>") {
			t.Errorf("node 3: public identity %s: %v %v", u.impu, r, err)
		}
		r, err = imsDo(c, http.MethodGet, imsURL(n3, portHSProv, loc+"/filter_criteria"), nil)
		if err != nil || r.code != http.StatusOK || !strings.Contains(r.body, "sip:mmtel.example.com") {
			t.Errorf("node 3: iFCs of %s: %v %v, want the default MMTEL ones", u.impu, r, err)
		}
		r, err = imsDo(c, http.MethodGet, imsURL(n3, portHSProv, "/public/"+u.impu+"/associated_private_ids"), nil)
		if err != nil || r.code != http.StatusOK || !strings.Contains(r.body, `"`+u.impi+`"`) {
			t.Errorf("node 3: private ids of %s: %v %v", u.impu, r, err)
		}
		r, err = imsDo(c, http.MethodGet, imsURL(n2, portHomer, imsSimservsPath(u.impu)), nil)
		if err != nil || r.code != http.StatusOK || r.body != def {
			t.Errorf("node 2: simservs of %s: %v %v, want the default document", u.impu, r, err)
		}
	}

	out, errOut, err = imsCLI(s.node(1), 30*time.Minute, "users", "import", file, "-q")
	if err != nil {
		t.Fatalf("users import, again: %v\n%s%s", err, out, errOut)
	}
	want = fmt.Sprintf("Created 0 subscribers, skipped %d already present, 0 failed, ", total)
	if !strings.HasPrefix(out, want) {
		t.Fatalf("users import, again, said %q, want it to start %q", out, want)
	}
	t.Logf("re-run: %s", strings.TrimSpace(imsFirstLine(out)))
}

func imsFirstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

// imsCLI is node.cli for commands that may outlast its timeout.
func imsCLI(n *node, timeout time.Duration, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"-c", n.confDir}, args...)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}
