package homer

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestXCAP(t *testing.T) {
	s, _ := newStore(t, Options{})
	srv := httptest.NewServer(NewHandler(s))
	defer srv.Close()

	const (
		alice    = "/org.etsi.ngn.simservs/users/sip:alice@example.com/simservs.xml"
		aliceEsc = "/org.etsi.ngn.simservs/users/sip%3Aalice%40example.com/simservs.xml"
		tel      = "/org.etsi.ngn.simservs/users/tel:+16505550100/simservs.xml"
		telEsc   = "/org.etsi.ngn.simservs/users/tel%3A%2B16505550100/simservs.xml"
	)
	cdiv := string(readFile(t, "testdata/good/diversion.xml"))
	def := string(DefaultDocument())

	// Steps run in order against one store. "$etag" in a header stands for
	// the entity tag of the last response that had one; "$old" for the one
	// before it changed.
	steps := []struct {
		name         string
		method, path string
		header       map[string]string
		body         string
		status       int
		wantBody     string // exact, when set
		wantType     string
	}{
		{name: "get absent", method: "GET", path: alice, status: 404,
			wantBody: "simservs.xml: no document for sip:alice@example.com\n"},
		{name: "delete absent", method: "DELETE", path: alice, status: 404},
		{name: "create", method: "PUT", path: alice, body: def, status: 201,
			header: map[string]string{"Content-Type": ContentType}},
		{name: "get escaped URL", method: "GET", path: aliceEsc, status: 200, wantBody: def, wantType: ContentType},
		{name: "head", method: "HEAD", path: alice, status: 200, wantBody: ""},
		{name: "not modified", method: "GET", path: alice, header: map[string]string{"If-None-Match": `W/"1", $etag`}, status: 304},
		{name: "if-match on get, stale", method: "GET", path: alice, header: map[string]string{"If-Match": `"1"`}, status: 412},
		{name: "replace", method: "PUT", path: aliceEsc, body: cdiv, status: 200,
			header: map[string]string{"Content-Type": "application/xml; charset=utf-8"}},
		{name: "get replaced", method: "GET", path: alice, status: 200, wantBody: cdiv},
		{name: "invalid document", method: "PUT", path: alice, body: string(readFile(t, "testdata/bad/no-target.xml")), status: 400,
			wantBody: "simservs.xml: communication-diversion: rule \"cfb\": forward-to has no target\n"},
		{name: "malformed XML", method: "PUT", path: alice, body: "<simservs xmlns=\"" + NamespaceSimservs + "\">", status: 400,
			wantBody: "simservs.xml: malformed XML: line 1: unexpected EOF\n"},
		{name: "empty body", method: "PUT", path: alice, body: "", status: 400,
			wantBody: "simservs.xml: malformed XML: document is empty\n"},
		{name: "unchanged by bad puts", method: "GET", path: alice, status: 200, wantBody: cdiv},
		{name: "if-match stale", method: "PUT", path: alice, body: def, header: map[string]string{"If-Match": `$old`}, status: 412},
		{name: "if-match weak never matches", method: "PUT", path: alice, body: def, header: map[string]string{"If-Match": `W/$etag`}, status: 412},
		{name: "if-none-match star on existing", method: "PUT", path: alice, body: def, header: map[string]string{"If-None-Match": "*"}, status: 412},
		{name: "if-match current", method: "PUT", path: alice, body: def, header: map[string]string{"If-Match": `"999999", $etag`}, status: 200},
		{name: "delete if-match stale", method: "DELETE", path: alice, header: map[string]string{"If-Match": `$old`}, status: 412},
		{name: "delete", method: "DELETE", path: alice, status: 200},
		{name: "gone", method: "GET", path: alice, status: 404},
		{name: "if-match star on absent", method: "PUT", path: alice, body: def, header: map[string]string{"If-Match": "*"}, status: 412},
		{name: "create if-none-match star", method: "PUT", path: tel, body: def, header: map[string]string{"If-None-Match": "*"}, status: 201},
		{name: "tel escaped", method: "GET", path: telEsc, status: 200, wantBody: def},
		{name: "wrong content type", method: "PUT", path: tel, body: def, header: map[string]string{"Content-Type": "application/json"}, status: 415},
		{name: "too large", method: "PUT", path: tel, body: strings.Repeat(" ", MaxDocumentSize+1), status: 413},
		{name: "post", method: "POST", path: tel, body: def, status: 405},
		{name: "bad identity", method: "GET", path: "/org.etsi.ngn.simservs/users/alice/simservs.xml", status: 400,
			wantBody: "bad identity in URL: not a sip, sips or tel URI: \"alice\"\n"},
		{name: "node selector", method: "GET", path: tel + "/~~/simservs/communication-diversion", status: 501},
		{name: "other document", method: "GET", path: "/org.etsi.ngn.simservs/users/tel:+16505550100/index", status: 404},
		{name: "other tree", method: "GET", path: "/org.etsi.ngn.simservs/global/simservs.xml", status: 404},
		{name: "no identity", method: "GET", path: "/org.etsi.ngn.simservs/users//simservs.xml", status: 404},
	}
	var etag, old string
	for _, st := range steps {
		req, err := http.NewRequest(st.method, srv.URL+st.path, strings.NewReader(st.body))
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		for k, v := range st.header {
			req.Header.Set(k, strings.NewReplacer("$etag", etag, "$old", old).Replace(v))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != st.status {
			t.Errorf("%s: %s %s: status %d, want %d: %s", st.name, st.method, st.path, resp.StatusCode, st.status, body)
		}
		if st.wantBody != "" || st.method == "HEAD" {
			if string(body) != st.wantBody {
				t.Errorf("%s: body %q, want %q", st.name, body, st.wantBody)
			}
		}
		if st.wantType != "" && resp.Header.Get("Content-Type") != st.wantType {
			t.Errorf("%s: content type %q", st.name, resp.Header.Get("Content-Type"))
		}
		if tag := resp.Header.Get("ETag"); tag != "" && tag != etag {
			old, etag = etag, tag
		}
		if st.status/100 == 2 && st.method != "DELETE" && resp.Header.Get("ETag") == "" {
			t.Errorf("%s: no ETag", st.name)
		}
	}
}

func TestXCAPUnknownIdentity(t *testing.T) {
	s, _ := newStore(t, Options{KnownIdentity: func(_ context.Context, impu string) (bool, error) {
		return impu == "sip:known@example.com", nil
	}})
	h := NewHandler(s)
	for impu, want := range map[string]int{"sip:known@example.com": 201, "sip:stranger@example.com": 404} {
		req := httptest.NewRequest("PUT", "/org.etsi.ngn.simservs/users/"+impu+"/simservs.xml", strings.NewReader(string(DefaultDocument())))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("%s: %d %s", impu, rec.Code, rec.Body)
		}
	}
}
