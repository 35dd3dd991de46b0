package timerwheel

import (
	"context"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

const validBody = `{"timing":{"interval":30,"repeat-for":90},
 "callback":{"http":{"uri":"http://sprout:9888/timers","opaque":"{\"aor\":\"sip:a@example.com\"}"}},
 "reliability":{"replication-factor":2},
 "statistics":{"tag-info":[{"type":"REG","count":1},{"type":"BIND","count":2}]}}`

func TestHTTPAPI(t *testing.T) {
	located := regexp.MustCompile(`^/timers/[0-9a-f]{16}-2$`)
	tests := []struct {
		name     string
		method   string
		path     string
		body     string
		noQuorum bool
		code     int
		location string // exact, or "new" for a fresh id with rf 2
		reason   string // in the body
	}{
		{name: "create", method: "POST", path: "/timers", body: validBody, code: 200, location: "new"},
		{name: "create trailing slash", method: "POST", path: "/timers/", body: validBody, code: 200, location: "new"},
		{name: "create minimal", method: "POST", path: "/timers", code: 200, location: "new",
			body: `{"timing":{"interval":0},"callback":{"http":{"uri":"http://x/"}}}`},
		{name: "create rf 3", method: "POST", path: "/timers", code: 200,
			body: `{"timing":{"interval":5},"callback":{"http":{"uri":"http://x/","opaque":""}},"reliability":{"replication-factor":3}}`},
		{name: "put new id", method: "PUT", path: "/timers/00000000000000ab-2", body: validBody, code: 200, location: "/timers/00000000000000ab-2"},
		{name: "put rf from id", method: "PUT", path: "/timers/00000000000000ac-3", code: 200, location: "/timers/00000000000000ac-3",
			body: `{"timing":{"interval":5},"callback":{"http":{"uri":"http://x/","opaque":"o"}}}`},
		{name: "put replica-hash id", method: "PUT", path: "/timers/00000000000000ad0000000000000003", body: validBody, code: 200, location: "/timers/00000000000000ad-2"},
		{name: "put rf mismatch", method: "PUT", path: "/timers/00000000000000ab-3", body: validBody, code: 400, reason: "does not match"},
		{name: "delete", method: "DELETE", path: "/timers/00000000000000ab-2", code: 200},
		{name: "delete again", method: "DELETE", path: "/timers/00000000000000ab-2", code: 200},
		{name: "malformed JSON", method: "POST", path: "/timers", body: `{"timing":`, code: 400, reason: "not a JSON object"},
		{name: "not an object", method: "POST", path: "/timers", body: `[1]`, code: 400, reason: "not a JSON object"},
		{name: "no timing", method: "POST", path: "/timers", body: `{"callback":{"http":{"uri":"http://x/"}}}`, code: 400, reason: `missing "timing"`},
		{name: "no interval", method: "POST", path: "/timers", body: `{"timing":{},"callback":{"http":{"uri":"http://x/"}}}`, code: 400, reason: "missing timing.interval"},
		{name: "interval not integer", method: "POST", path: "/timers", body: `{"timing":{"interval":1.5},"callback":{"http":{"uri":"http://x/"}}}`, code: 400, reason: "timing.interval should be an integer"},
		{name: "interval string", method: "POST", path: "/timers", body: `{"timing":{"interval":"10"},"callback":{"http":{"uri":"http://x/"}}}`, code: 400, reason: "should be an integer"},
		{name: "interval negative", method: "POST", path: "/timers", body: `{"timing":{"interval":-1},"callback":{"http":{"uri":"http://x/"}}}`, code: 400, reason: "from 0 to"},
		{name: "zero interval repeating", method: "POST", path: "/timers", body: `{"timing":{"interval":0,"repeat-for":10},"callback":{"http":{"uri":"http://x/"}}}`, code: 400, reason: "zero interval"},
		{name: "repeat shorter than interval", method: "POST", path: "/timers", body: `{"timing":{"interval":10,"repeat-for":5},"callback":{"http":{"uri":"http://x/"}}}`, code: 400, reason: "never pop"},
		{name: "no callback", method: "POST", path: "/timers", body: `{"timing":{"interval":1}}`, code: 400, reason: `missing "callback"`},
		{name: "not http callback", method: "POST", path: "/timers", body: `{"timing":{"interval":1},"callback":{"sip":{}}}`, code: 400, reason: "only \"http\""},
		{name: "no uri", method: "POST", path: "/timers", body: `{"timing":{"interval":1},"callback":{"http":{"opaque":"x"}}}`, code: 400, reason: "missing callback.http.uri"},
		{name: "empty uri", method: "POST", path: "/timers", body: `{"timing":{"interval":1},"callback":{"http":{"uri":""}}}`, code: 400, reason: "uri is empty"},
		{name: "opaque not string", method: "POST", path: "/timers", body: `{"timing":{"interval":1},"callback":{"http":{"uri":"http://x/","opaque":{}}}}`, code: 400, reason: "opaque should be a string"},
		{name: "rf zero", method: "POST", path: "/timers", body: `{"timing":{"interval":1},"callback":{"http":{"uri":"http://x/"}},"reliability":{"replication-factor":0}}`, code: 400, reason: "at least 1"},
		{name: "bad id", method: "PUT", path: "/timers/xyz", body: validBody, code: 400, reason: "timer id"},
		{name: "zero id", method: "DELETE", path: "/timers/0000000000000000-2", code: 400, reason: "reserved"},
		{name: "body too large", method: "POST", path: "/timers", body: strings.Repeat(" ", maxBody+1), code: 413},
		{name: "GET timers", method: "GET", path: "/timers", code: 405},
		{name: "GET timer", method: "GET", path: "/timers/00000000000000ab-2", code: 405},
		{name: "POST to id", method: "POST", path: "/timers/00000000000000ab-2", body: validBody, code: 405},
		{name: "unknown path", method: "GET", path: "/other", code: 404},
		{name: "create without quorum", method: "POST", path: "/timers", body: validBody, noQuorum: true, code: 503, reason: "no quorum"},
		{name: "delete without quorum", method: "DELETE", path: "/timers/00000000000000ab-2", noQuorum: true, code: 503, reason: "no quorum"},
	}
	h := newHarness(t, 4)
	api := h.svc.HTTPHandler()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h.fc.noQuorum.Store(tc.noQuorum)
			defer h.fc.noQuorum.Store(false)
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			w := httptest.NewRecorder()
			api.ServeHTTP(w, req)
			if w.Code != tc.code {
				t.Fatalf("status %d, want %d (body %q)", w.Code, tc.code, w.Body.String())
			}
			if tc.reason != "" && !strings.Contains(w.Body.String(), tc.reason) {
				t.Fatalf("body %q, want it to say %q", w.Body.String(), tc.reason)
			}
			loc := w.Header().Get("Location")
			switch {
			case tc.location == "new" && !located.MatchString(loc):
				t.Fatalf("Location %q", loc)
			case tc.location != "new" && tc.location != "" && loc != tc.location:
				t.Fatalf("Location %q, want %q", loc, tc.location)
			case tc.code == 405 && w.Header().Get("Allow") == "":
				t.Fatal("405 without Allow")
			}
			if tc.code != 200 || tc.method == "DELETE" {
				return
			}
			// The stored timer echoes the request.
			id, rf, err := ParseID(strings.TrimPrefix(loc, "/timers/"))
			if err != nil {
				t.Fatal(err)
			}
			rec := h.record(id)
			if rec == nil || int(rec.rf) != rf || rec.kind != cbHTTP {
				t.Fatalf("stored %+v for Location %q", rec, loc)
			}
		})
	}
}

func TestHTTPAPIStoresChronosFields(t *testing.T) {
	h := newHarness(t, 2)
	req := httptest.NewRequest("POST", "/timers", strings.NewReader(
		`{"timing":{"interval":30,"repeat-for":90},"callback":{"http":{"uri":"http://sprout:9888/timers","opaque":"body"}},
		  "statistics":{"tag-info":[{"type":"REG"},{"type":"BIND","count":2},{"type":"BAD","count":-1},{"type":7},{"count":3},"x",{"type":"ZERO","count":0}]}}`))
	w := httptest.NewRecorder()
	h.svc.HTTPHandler().ServeHTTP(w, req)
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	id, _, err := ParseID(strings.TrimPrefix(w.Header().Get("Location"), "/timers/"))
	if err != nil {
		t.Fatal(err)
	}
	rec := h.record(id)
	if rec.interval != 30_000 || rec.repeat != 90_000 || rec.pops() != 3 || rec.target != "http://sprout:9888/timers" ||
		string(rec.opaque) != "body" || rec.rf != 2 {
		t.Fatalf("record = %+v", rec)
	}
	// Malformed tags are dropped, as Chronos did; the rest are counted.
	got, err := h.svc.Stats(context.Background())
	if want := map[string]int64{"REG": 1, "BIND": 2}; err != nil || !maps.Equal(got, want) {
		t.Fatalf("Stats = %v, %v; want %v", got, err, want)
	}

	// A timer set over HTTP pops over HTTP with X-Sequence-Number.
	srv, hits := callbackServer(t, nil)
	req = httptest.NewRequest("PUT", "/timers/"+FormatID(id, 2), strings.NewReader(
		`{"timing":{"interval":1},"callback":{"http":{"uri":"`+srv.URL+`/pop","opaque":"o"}}}`))
	w = httptest.NewRecorder()
	h.svc.HTTPHandler().ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		t.Fatalf("PUT status %d", w.Code)
	}
	h.leadAll()
	h.clock.Advance(time.Second)
	if got := recv(t, hits, "callback"); got.path != "/pop" || got.seq != "1" || got.body != "o" {
		t.Fatalf("callback %+v", got)
	}
}
