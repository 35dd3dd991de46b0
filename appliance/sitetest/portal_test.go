package sitetest

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"image/png"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"stillwater/bench/chromium"
)

// portalSimservsNS is the simservs document's namespace (ETSI TS 129 364).
const portalSimservsNS = "http://uri.etsi.org/ngn/params/xml/simservs/xcap"

// portalDiversion is an independent reading, through encoding/xml's
// namespace handling, of the diversion part of a simservs document as Homer
// serves it.
type portalDiversion struct {
	XMLName xml.Name `xml:"http://uri.etsi.org/ngn/params/xml/simservs/xcap simservs"`
	CDIV    struct {
		Active       string `xml:"active,attr"`
		NoReplyTimer int    `xml:"http://uri.etsi.org/ngn/params/xml/simservs/xcap NoReplyTimer"`
		Rules        []struct {
			ID         string `xml:"id,attr"`
			Conditions struct {
				Any []struct{ XMLName xml.Name } `xml:",any"`
			} `xml:"urn:ietf:params:xml:ns:common-policy conditions"`
			Actions struct {
				ForwardTo struct {
					Target string `xml:"http://uri.etsi.org/ngn/params/xml/simservs/xcap target"`
				} `xml:"http://uri.etsi.org/ngn/params/xml/simservs/xcap forward-to"`
			} `xml:"urn:ietf:params:xml:ns:common-policy actions"`
		} `xml:"urn:ietf:params:xml:ns:common-policy ruleset>rule"`
	} `xml:"http://uri.etsi.org/ngn/params/xml/simservs/xcap communication-diversion"`
}

// TestPortalInChromium drives the Ellis portal of a three-node site in
// headless Chromium as a subscriber would: sign up with the signup code on
// node 1, sign in on node 2, add a line and note its SIP password (shown
// once), set busy and no-answer diversion, then check through node 3's Homer
// (XCAP) and Homestead-prov that the site stores what the pages said. Using
// a different node for each step checks that the portal's state is the
// site's, not the node's. Set SITETEST_SCREENSHOTS to a directory to keep the
// screenshots.
func TestPortalInChromium(t *testing.T) {
	if _, err := os.Stat(chromium.Path); err != nil {
		t.Skipf("%s is absent (Debian package chromium): %v", chromium.Path, err)
	}
	const (
		signupCode = "open-sesame"
		email      = "carol@example.com"
		password   = "carol-secret-1"
		busyTarget = "6505550099"            // a bare number: the portal adds the domain
		naTarget   = "voicemail@example.com" // no scheme: the portal adds sip:
		naTimer    = "30"
	)
	start := time.Now()
	s := newSite(t, siteOpts{nodes: 3, shared: "signup_key=" + signupCode + "\nhome_domain=example.com\n"})
	t.Logf("site of 3 nodes settled in %v", time.Since(start).Round(time.Millisecond))
	at := func(i, port int, path string) string {
		return "http://" + net.JoinHostPort(nodeIP(i), strconv.Itoa(port)) + path
	}
	portal := func(i int, path string) string { return at(i, s.ports.ellis, path) }

	shots := os.Getenv("SITETEST_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	// One deadline for the whole browser session: every chromedp wait below
	// ends with it rather than hanging the test.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	bctx, stop, err := chromium.Start(ctx, t.TempDir(), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			b, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(shots, name+".png"), b, 0o644)
		})
	}
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(bctx, chromedp.Text(css(sel)))
		if err != nil {
			t.Fatalf("browser: text of %s: %v", sel, err)
		}
		return strings.TrimSpace(v)
	}
	pageHTML := func() string {
		t.Helper()
		v, err := chromedp.Run(bctx, chromedp.OuterHTML(css("html")))
		if err != nil {
			t.Fatalf("browser: page source: %v", err)
		}
		return v
	}

	// Sign up on node 1: the account comes with its first line.
	err = chromedp.Do(bctx,
		chromedp.Navigate(portal(1, "/signup")),
		chromedp.WaitVisible(css(`input[name=signup_code]`)),
		chromedp.SendKeys(css(`input[name=full_name]`), "Carol Example"),
		chromedp.SendKeys(css(`input[name=email]`), email),
		chromedp.SendKeys(css(`input[name=password]`), password),
		chromedp.SendKeys(css(`input[name=password2]`), password),
		chromedp.SendKeys(css(`input[name=signup_code]`), signupCode),
		chromedp.Click(css(`button[type=submit].primary`)),
		chromedp.WaitVisible(css(`#sip-password`)),
	)
	if err != nil {
		t.Fatalf("browser: sign-up on node 1: %v", err)
	}
	firstUser := text(`#new-line dl.creds dd:nth-of-type(1) code`)

	// Sign in on node 2, another origin to the browser, so a new session.
	// The account and its line must be there, without the line's password.
	err = chromedp.Do(bctx,
		chromedp.Navigate(portal(2, "/login")),
		chromedp.WaitVisible(css(`input[name=email]`)),
		chromedp.SendKeys(css(`input[name=email]`), email),
		chromedp.SendKeys(css(`input[name=password]`), password),
		chromedp.Click(css(`button[type=submit].primary`)),
		chromedp.WaitVisible(css(`table.lines`)),
	)
	if err != nil {
		t.Fatalf("browser: sign-in on node 2: %v", err)
	}
	if h := pageHTML(); !strings.Contains(h, "sip:"+firstUser+"@example.com") || strings.Contains(h, `id="sip-password"`) {
		t.Fatalf("lines page on node 2 after sign-in: want line %s listed and no password shown:\n%s", firstUser, h)
	}

	// Add a line: its credentials are shown this once.
	err = chromedp.Do(bctx,
		chromedp.Click(css(`form.add button[name=pstn][value=false]`)),
		chromedp.WaitVisible(css(`#sip-password`)),
		shot("lines"),
	)
	if err != nil {
		t.Fatalf("browser: adding a line on node 2: %v", err)
	}
	user := text(`#new-line dl.creds dd:nth-of-type(1) code`)
	impi := text(`#new-line dl.creds dd:nth-of-type(2) code`)
	domain := text(`#new-line dl.creds dd:nth-of-type(3) code`)
	sipPassword := text(`#sip-password`)
	impu := "sip:" + user + "@" + domain
	t.Logf("new line %s, private identity %s; screenshot %s", impu, impi, filepath.Join(shots, "lines.png"))
	if n, err := strconv.Atoi(user); err != nil || n < 6505550000 || n > 6505550999 || user == firstUser || domain != "example.com" {
		t.Fatalf("new line %q (first line %q): want another number of the seeded pool in example.com", impu, firstUser)
	}
	if impi == "" || len(sipPassword) < 8 {
		t.Fatalf("new line's private identity %q, password %q: want both shown", impi, sipPassword)
	}
	checkPortalScreenshot(t, filepath.Join(shots, "lines.png"))

	// Shown once: the lines page, reloaded, lists both lines and no
	// password at all.
	err = chromedp.Do(bctx, chromedp.Navigate(portal(2, "/lines")), chromedp.WaitVisible(css(`table.lines`)))
	if err != nil {
		t.Fatalf("browser: reloading the lines page: %v", err)
	}
	if h := pageHTML(); strings.Contains(h, sipPassword) || !strings.Contains(h, impu) || !strings.Contains(h, "sip:"+firstUser+"@") {
		t.Fatalf("reloaded lines page: want lines %s and %s listed and the SIP password gone:\n%s", firstUser, impu, h)
	}

	// Divert the new line when busy and when not answered after 30 s.
	err = chromedp.Do(bctx,
		chromedp.Click(css(`a.button[href^="/lines/services"][href*="`+user+`"]`)),
		chromedp.WaitVisible(css(`#div_cfb`)),
	)
	if err != nil {
		t.Fatalf("browser: opening the services page: %v", err)
	}
	// Tick the boxes that are not ticked yet, whatever a new line's default.
	for _, box := range []string{"#cdiv", "#div_cfb", "#div_cfnr"} {
		on, err := chromedp.Run(bctx, chromedp.JavascriptAttribute[bool](css(box), "checked"))
		if err != nil {
			t.Fatalf("browser: state of %s: %v", box, err)
		}
		if !on {
			if err := chromedp.Do(bctx, chromedp.Click(css(box))); err != nil {
				t.Fatalf("browser: ticking %s: %v", box, err)
			}
		}
	}
	err = chromedp.Do(bctx,
		chromedp.SendKeys(css(`#target_cfb`), busyTarget),
		chromedp.SendKeys(css(`#target_cfnr`), naTarget),
		chromedp.Clear(css(`#noreply`)),
		chromedp.SendKeys(css(`#noreply`), naTimer),
		chromedp.Click(css(`#save`)),
		chromedp.WaitVisible(css(`.alert.ok`)),
		shot("services"),
	)
	if err != nil {
		t.Fatalf("browser: saving diversion: %v", err)
	}
	// The page after saving shows the settings as stored, the targets
	// completed into URIs.
	for sel, want := range map[string]string{
		"#target_cfb":  "sip:" + busyTarget + "@example.com",
		"#target_cfnr": "sip:" + naTarget,
		"#noreply":     naTimer,
	} {
		got, err := chromedp.Run(bctx, chromedp.Value(css(sel)))
		if err != nil || got != want {
			t.Errorf("services page after saving: %s is %q (%v), want %q", sel, got, err, want)
		}
	}

	// Homer on node 3 serves the document, its diversion rules as set.
	r, err := do(http.MethodGet, at(3, s.ports.homer, "/org.etsi.ngn.simservs/users/"+url.QueryEscape(impu)+"/simservs.xml"), "", nil)
	if err != nil || r.code != http.StatusOK {
		t.Fatalf("XCAP GET of %s's simservs.xml via node 3: %v %v", impu, r, err)
	}
	var doc portalDiversion
	if err := xml.Unmarshal([]byte(r.body), &doc); err != nil {
		t.Fatalf("XCAP document of %s is not a simservs document (%v):\n%s", impu, err, r.body)
	}
	if doc.CDIV.Active != "true" || strconv.Itoa(doc.CDIV.NoReplyTimer) != naTimer {
		t.Errorf("communication-diversion active=%q NoReplyTimer=%d, want active and %s s:\n%s", doc.CDIV.Active, doc.CDIV.NoReplyTimer, naTimer, r.body)
	}
	targets := map[string]string{} // condition → target, of single-condition rules
	for _, rule := range doc.CDIV.Rules {
		if c := rule.Conditions.Any; len(c) == 1 && c[0].XMLName.Space == portalSimservsNS {
			targets[c[0].XMLName.Local] = rule.Actions.ForwardTo.Target
		} else {
			t.Errorf("unexpected diversion rule %q with conditions %v", rule.ID, c)
		}
	}
	want := map[string]string{"busy": "sip:" + busyTarget + "@example.com", "no-answer": "sip:" + naTarget}
	if len(targets) != len(want) || targets["busy"] != want["busy"] || targets["no-answer"] != want["no-answer"] {
		t.Errorf("diversion rules %v, want %v:\n%s", targets, want, r.body)
	}

	// Homestead-prov on node 3 has the private identity, its digest made
	// from the password the page showed, and the password itself nowhere.
	r, err = do(http.MethodGet, at(3, s.ports.homesteadProv, "/private/"+url.PathEscape(impi)), "", nil)
	if err != nil || r.code != http.StatusOK {
		t.Fatalf("Homestead-prov GET /private/%s via node 3: %v %v", impi, r, err)
	}
	var priv struct {
		DigestHA1 string `json:"digest_ha1"`
		Plaintext string `json:"plaintext_password"`
		Realm     string `json:"realm"`
	}
	if err := json.Unmarshal([]byte(r.body), &priv); err != nil {
		t.Fatalf("Homestead-prov /private/%s: %v: %s", impi, err, r.body)
	}
	realm := priv.Realm
	if realm == "" {
		realm = "example.com"
	}
	ha1 := md5.Sum([]byte(impi + ":" + realm + ":" + sipPassword))
	if priv.DigestHA1 != hex.EncodeToString(ha1[:]) || priv.Plaintext != "" {
		t.Errorf("private identity %s: %s; want the digest of the password shown, and no plaintext", impi, r.body)
	}
	r, err = do(http.MethodGet, at(3, s.ports.homesteadProv, "/private/"+url.PathEscape(impi)+"/associated_public_ids"), "", nil)
	var pubs struct {
		IDs []string `json:"associated_public_ids"`
	}
	if err != nil || r.code != http.StatusOK || json.Unmarshal([]byte(r.body), &pubs) != nil || !slices.Contains(pubs.IDs, impu) {
		t.Errorf("public identities of %s via node 3: %v %v, want %s among them", impi, r, err, impu)
	}
	t.Logf("portal walk-through done in %v", time.Since(start).Round(time.Millisecond))
}

// checkPortalScreenshot fails the test unless the file is a PNG of a rendered page:
// window-sized, and not a blank canvas (a page that failed to render or lost
// its style sheet would be nearly one colour).
func checkPortalScreenshot(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot %s: %v", path, err)
	}
	bounds := img.Bounds()
	colours := map[[4]uint32]bool{}
	for y := bounds.Min.Y; y < bounds.Max.Y; y += 4 {
		for x := bounds.Min.X; x < bounds.Max.X; x += 4 {
			r, g, b, a := img.At(x, y).RGBA()
			colours[[4]uint32{r, g, b, a}] = true
		}
	}
	if bounds.Dx() < 1000 || bounds.Dy() < 600 || len(colours) < 16 {
		t.Fatalf("screenshot %s is %v with %d colours: not a rendered page", path, bounds, len(colours))
	}
}
