package ellis

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"stillwater/bench/chromium"
)

// TestPortalInChromium signs up in a real browser, gets a number and sees
// its password, adds a busy diversion rule, and checks that the rule reached
// the simservs store as a valid document. Set ELLIS_SCREENSHOTS to a
// directory to keep screenshots of the pages.
func TestPortalInChromium(t *testing.T) {
	if _, err := os.Stat(chromium.Path); err != nil {
		t.Skipf("%s is absent (Debian package chromium): %v", chromium.Path, err)
	}
	e := newEnv(t, nil)
	e.numbers(6505550000, 10, false)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	bctx, stop, err := chromium.Start(ctx, t.TempDir(), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	shots := os.Getenv("ELLIS_SCREENSHOTS")
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			if shots == "" {
				return nil
			}
			png, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644)
		})
	}
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }

	err = chromedp.Do(bctx,
		chromedp.Navigate(e.srv.URL+"/signup.html"),
		chromedp.WaitVisible(css(`input[name=full_name]`)),
		chromedp.SendKeys(css(`input[name=full_name]`), "Alice Example"),
		chromedp.SendKeys(css(`input[name=email]`), "alice@example.com"),
		chromedp.SendKeys(css(`input[name=password]`), "secret123"),
		chromedp.SendKeys(css(`input[name=password2]`), "secret123"),
		chromedp.SendKeys(css(`input[name=signup_code]`), testSignup),
		shot("signup"),
		chromedp.Click(css(`button[type=submit].primary`)),
		chromedp.WaitVisible(css(`#sip-password`)),
		shot("lines"),
	)
	if err != nil {
		t.Fatalf("browser: sign-up: %v", err)
	}
	password, err := chromedp.Run(bctx, chromedp.Text(css(`#sip-password`)))
	if err != nil {
		t.Fatalf("browser: password: %v", err)
	}
	line, err := chromedp.Run(bctx, chromedp.AttributeValue(css(`input[name=line]`), "value"))
	if err != nil {
		t.Fatalf("browser: line: %v", err)
	}
	lineURI := line.Value
	err = chromedp.Do(bctx,
		chromedp.Click(css(`a.button[href^="/lines/services"]`)),
		chromedp.WaitVisible(css(`#div_cfb`)),
		shot("services"),
		chromedp.Click(css(`#cdiv`)),
		chromedp.Click(css(`#div_cfb`)),
		chromedp.SendKeys(css(`#target_cfb`), "6505550099"),
		chromedp.Click(css(`#save`)),
		chromedp.WaitVisible(css(`.alert.ok`)),
		shot("saved"),
	)
	if err != nil {
		t.Fatalf("browser: services: %v", err)
	}

	password = strings.TrimSpace(password)
	if lineURI != "sip:6505550000@example.com" && !strings.HasPrefix(lineURI, "sip:650555000") {
		t.Fatalf("line %q", lineURI)
	}
	if stored := e.subs.password(privateFromPublic(lineURI)); password == "" || stored != password {
		t.Fatalf("page showed password %q, the subscriber store has %q", password, stored)
	}
	doc := e.ss.doc(lineURI)
	x := decodeSimservs(t, doc)
	if x.CDIV.Active != "true" || len(x.CDIV.Rules) != 1 {
		t.Fatalf("stored document:\n%s", doc)
	}
	r := x.CDIV.Rules[0]
	if len(r.Conditions.Any) != 1 || r.Conditions.Any[0].XMLName.Local != "busy" || r.Conditions.Any[0].XMLName.Space != simservsNS ||
		r.Actions.ForwardTo.Target != "sip:6505550099@example.com" {
		t.Fatalf("busy rule %+v in\n%s", r, doc)
	}
	if x.OIR.Default != "presentation-not-restricted" || x.ICB.Active != "false" || x.OCB.Active != "false" {
		t.Fatalf("other services changed:\n%s", doc)
	}
}
