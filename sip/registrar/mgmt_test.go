package registrar

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"stillwater/diameter/hss"
)

func TestManagementAPI(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewServer(e.reg.ManagementHandler())
	t.Cleanup(srv.Close)
	if res := e.reg.Register(e.ctx, registerReq(t, alice, "m1", 1, c1+";+g.3gpp.smsip", "Path: <sip:pcscf.example.com:5058;lr>"), aliceI); res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	if res := e.reg.Subscribe(e.ctx, subscribeReq(t, alice, "ms", "ft", "", 1, "Event: reg")); res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	e.notify()

	do := func(method, path string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(e.ctx, method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	// Expiry times are Unix seconds; make them relative to the test's start.
	start := strconv.FormatInt(e.site.clock.Now().Unix(), 10)
	relative := func(body string) string {
		var v map[string]map[string]map[string]any
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatalf("bad JSON %v: %s", err, body)
		}
		for _, objs := range v {
			for _, o := range objs {
				exp := int64(o["expires"].(float64))
				base, _ := strconv.ParseInt(start, 10, 64)
				o["expires"] = "start+" + strconv.FormatInt(exp-base, 10)
			}
		}
		var b strings.Builder
		enc := json.NewEncoder(&b)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}

	code, body := do("GET", "/impu/"+alice2+"/bindings")
	if code != 200 {
		t.Fatalf("GET bindings: %d %s", code, body)
	}
	golden(t, "mgmt_bindings.golden", relative(body))
	code, body = do("GET", "/impu/"+alice+"/subscriptions")
	if code != 200 {
		t.Fatalf("GET subscriptions: %d %s", code, body)
	}
	golden(t, "mgmt_subscriptions.golden", relative(body))

	errs := []struct {
		method, path string
		code         int
	}{
		{"GET", "/impu/" + bob + "/bindings", 404},
		{"GET", "/impu/sip:nobody@example.com/bindings", 404},
		{"GET", "/impu/" + alice + "/other", 404},
		{"GET", "/other", 404},
		{"POST", "/impu/" + alice + "/bindings", 405},
		{"GET", "/impu/" + alice, 405},
		{"DELETE", "/impu/" + bob, 404},
	}
	for _, c := range errs {
		if code, body := do(c.method, c.path); code != c.code {
			t.Errorf("%s %s: %d %s, want %d", c.method, c.path, code, body, c.code)
		}
	}

	// Administrative de-registration.
	if code, body := do("DELETE", "/impu/"+alice); code != 200 {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	n := e.notify()
	d := parseReginfo(t, n.Body())
	if ev := contactEvents(d); ev["sip:6505550001@192.0.2.1:5060;transport=tcp"] != "terminated/deactivated" {
		t.Errorf("de-registration events %v", ev)
	}
	if st := headers(n, "Subscription-State"); !strings.HasPrefix(st[0], "terminated;reason=noresource") {
		t.Errorf("Subscription-State %v", st)
	}
	if e.regState(alice) != hss.NotRegistered {
		t.Errorf("HSS state %v", e.regState(alice))
	}
	if code, _ := do("GET", "/impu/"+alice+"/bindings"); code != 404 {
		t.Errorf("GET after DELETE: %d", code)
	}
	if code, _ := do("DELETE", "/impu/"+alice); code != 404 {
		t.Errorf("second DELETE: %d", code)
	}
}
