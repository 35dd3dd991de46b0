package ellis

import (
	"bytes"
	"crypto/hmac"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

const maxBody = 1 << 20

// serveAPI serves Ellis's JSON API; segs is the unescaped path.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request, segs []string) {
	switch {
	case len(segs) == 1 && segs[0] == "ping":
		if s.allow(w, r, http.MethodGet) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			io.WriteString(w, "OK")
		}
	case len(segs) == 1 && segs[0] == "session":
		if s.allow(w, r, http.MethodPost, http.MethodDelete) {
			s.apiSession(w, r)
		}
	case len(segs) == 1 && segs[0] == "accounts":
		if s.allow(w, r, http.MethodPost) {
			s.apiSignup(w, r)
		}
	case len(segs) == 2 && segs[0] == "accounts":
		if s.allow(w, r, http.MethodDelete) {
			s.apiDeleteAccount(w, r, segs[1])
		}
	case len(segs) == 3 && segs[0] == "accounts" && segs[2] == "password":
		if s.allow(w, r, http.MethodPost) {
			s.apiAccountPassword(w, r, segs[1])
		}
	case len(segs) == 3 && segs[0] == "accounts" && segs[2] == "numbers":
		if s.allow(w, r, http.MethodGet, http.MethodPost) {
			s.apiNumbers(w, r, segs[1])
		}
	case len(segs) == 4 && segs[0] == "accounts" && segs[2] == "numbers":
		if s.allow(w, r, http.MethodPost, http.MethodDelete) {
			s.apiNumber(w, r, segs[1], segs[3])
		}
	case len(segs) == 5 && segs[0] == "accounts" && segs[2] == "numbers" && segs[4] == "password":
		if s.allow(w, r, http.MethodPost) {
			s.apiSIPPassword(w, r, segs[1], segs[3])
		}
	case len(segs) == 5 && segs[0] == "accounts" && segs[2] == "numbers" && (segs[4] == "simservs" || segs[4] == "ifcs"):
		if s.allow(w, r, http.MethodGet, http.MethodPut) {
			s.apiDocument(w, r, segs[1], segs[3], segs[4])
		}
	default:
		s.apiError(w, r, errf(http.StatusNotFound, "no such resource: %s", r.URL.Path))
	}
}

// allow answers 405 unless the request's method is one of methods.
func (s *Server) allow(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	s.apiError(w, r, errf(http.StatusMethodNotAllowed, "%s is not allowed here", r.Method))
	return false
}

// args are a request's parameters: the URL's, overridden by the body's
// (JSON object or form encoding), as Ellis's handlers read them.
type args map[string]string

func readArgs(r *http.Request) (args, error) {
	a := args{}
	for k, v := range r.URL.Query() {
		a[k] = v[0]
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		return nil, errf(http.StatusRequestEntityTooLarge, "request body: %v", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return a, nil
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		// No usable type: guess as Ellis did.
		mt = "application/x-www-form-urlencoded"
		if t := bytes.TrimSpace(body); t[0] == '{' || t[0] == '[' {
			mt = "application/json"
		}
	}
	switch {
	case strings.Contains(mt, "json"):
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			return nil, errf(http.StatusBadRequest, "malformed JSON body: %v", err)
		}
		if dec.More() {
			return nil, errf(http.StatusBadRequest, "malformed JSON body: data after the object")
		}
		for k, v := range m {
			switch v := v.(type) {
			case string:
				a[k] = v
			case bool:
				a[k] = strconv.FormatBool(v)
			case json.Number:
				a[k] = v.String()
			case nil:
			default:
				return nil, errf(http.StatusBadRequest, "malformed JSON body: field %q must be a string, number or boolean", k)
			}
		}
	case mt == "application/x-www-form-urlencoded":
		vals, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, errf(http.StatusBadRequest, "malformed form body: %v", err)
		}
		for k, v := range vals {
			a[k] = v[0]
		}
	default:
		return nil, errf(http.StatusUnsupportedMediaType, "unsupported body type %s (use JSON or form encoding)", mt)
	}
	return a, nil
}

// require returns the named fields, or 400 naming the first missing one.
func (a args) require(names ...string) error {
	for _, n := range names {
		if _, ok := a[n]; !ok {
			return errf(http.StatusBadRequest, "missing field %q", n)
		}
	}
	return nil
}

// flag reads a boolean parameter ("true"/"false", also 1/0).
func (a args) flag(name string) (bool, error) {
	v, ok := a[name]
	if !ok || v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errf(http.StatusBadRequest, "field %q: %q is not true or false", name, v)
	}
	return b, nil
}

// localRedirect accepts only same-site paths, so onsuccess/onfailure cannot
// send a browser elsewhere.
func localRedirect(u string) bool {
	return strings.HasPrefix(u, "/") && !strings.HasPrefix(u, "//") && !strings.HasPrefix(u, "/\\")
}

// reply sends a success. A request naming onsuccess gets a redirect there
// carrying the result, as Ellis did for browser forms.
func (s *Server) reply(w http.ResponseWriter, r *http.Request, a args, status int, v any) {
	if to := a["onsuccess"]; to != "" && localRedirect(to) {
		data, _ := json.Marshal(v)
		q := url.Values{"success": {"true"}, "status": {strconv.Itoa(status)}, "message": {http.StatusText(status)}, "data": {string(data)}}
		http.Redirect(w, r, appendQuery(to, q), http.StatusFound)
		return
	}
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func appendQuery(u string, q url.Values) string {
	if strings.Contains(u, "?") {
		return u + "&" + q.Encode()
	}
	return u + "?" + q.Encode()
}

// apiError sends Ellis's JSON error document (or the onfailure redirect).
func (s *Server) apiError(w http.ResponseWriter, r *http.Request, err error) {
	status, reason := statusOf(err)
	if status >= 500 {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	} else {
		s.log.Debug("request refused", "method", r.Method, "path", r.URL.Path, "status", status, "reason", reason)
	}
	if to := r.URL.Query().Get("onfailure"); to != "" && localRedirect(to) {
		q := url.Values{"error": {"true"}, "status": {strconv.Itoa(status)}, "message": {http.StatusText(status)}, "reason": {reason}, "detail": {"{}"}}
		http.Redirect(w, r, appendQuery(to, q), http.StatusFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{
		"error": true, "status": status, "message": http.StatusText(status), "reason": reason, "detail": map[string]any{},
	})
}

// authorize lets a request act on an account: with the API key, or with a
// session of that very account (Ellis's rules, 403 otherwise).
func (s *Server) authorize(r *http.Request, email string) (acct account, admin bool, err error) {
	if key := r.Header.Get("NGV-API-Key"); key != "" && s.opts.APIKey != "" && hmac.Equal([]byte(key), []byte(s.opts.APIKey)) {
		a, _, err := s.getAccount(r.Context(), email)
		return a, true, err
	}
	sess, ok := s.session(r)
	if !ok {
		return account{}, false, errf(http.StatusForbidden, "NGV-API-Key header or authentication cookie was missing or incorrect")
	}
	if accountKey(email) != accountKey(sess.acct.Email) {
		return account{}, false, errf(http.StatusForbidden, "Username doesn't match logged in username.")
	}
	return sess.acct, false, nil
}

func headerOrField(r *http.Request, a args, header, field string) string {
	if v := r.Header.Get(header); v != "" {
		return v
	}
	return a[field]
}

func (s *Server) apiSignup(w http.ResponseWriter, r *http.Request) {
	a, err := readArgs(r)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	code := headerOrField(r, a, "NGV-Signup-Code", "signup_code")
	if s.opts.SignupKey == "" || !hmac.Equal([]byte(code), []byte(s.opts.SignupKey)) {
		s.apiError(w, r, errf(http.StatusForbidden, "Missing or incorrect signup code"))
		return
	}
	if err := a.require("email", "password", "full_name"); err != nil {
		s.apiError(w, r, err)
		return
	}
	acct, err := s.signup(r.Context(), a["email"], a["password"], a["full_name"])
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	s.startSession(w, r, acct)
	s.reply(w, r, a, http.StatusCreated, map[string]string{"username": acct.Email, "full_name": acct.FullName})
}

func (s *Server) apiSession(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodDelete {
		endSession(w, r)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	a, err := readArgs(r)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	if _, ok := a["email"]; !ok {
		if u, ok := a["username"]; ok { // older clients name it so
			a["email"] = u
		}
	}
	if err := a.require("email", "password"); err != nil {
		s.apiError(w, r, err)
		return
	}
	acct, err := s.authenticate(r.Context(), a["email"], a["password"])
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	s.startSession(w, r, acct)
	s.reply(w, r, a, http.StatusCreated, map[string]string{"username": acct.Email, "full_name": acct.FullName})
}

func (s *Server) apiDeleteAccount(w http.ResponseWriter, r *http.Request, email string) {
	acct, _, err := s.authorize(r, email)
	if err == nil {
		err = s.deleteAccount(r.Context(), acct)
	}
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	s.reply(w, r, args{}, http.StatusNoContent, nil)
}

// apiAccountPassword starts password recovery (no token) or completes it
// (token and new password). Unknown addresses are answered like known ones.
func (s *Server) apiAccountPassword(w http.ResponseWriter, r *http.Request, email string) {
	var password string
	a := args{}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "text/plain" {
		body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
		if err != nil {
			s.apiError(w, r, errf(http.StatusRequestEntityTooLarge, "request body: %v", err))
			return
		}
		password = string(body)
		for k, v := range r.URL.Query() {
			a[k] = v[0]
		}
	} else {
		var err error
		if a, err = readArgs(r); err != nil {
			s.apiError(w, r, err)
			return
		}
		password = a["password"]
	}
	token := headerOrField(r, a, "NGV-Recovery-Token", "recovery_token")
	var err error
	if token == "" {
		err = s.requestRecovery(r, email)
	} else {
		err = s.completeRecovery(r, email, token, password)
	}
	if err != nil {
		var retry *retryError
		if errors.As(err, &retry) {
			w.Header().Set("Retry-After", strconv.Itoa(retry.seconds))
		}
		s.apiError(w, r, err)
		return
	}
	s.reply(w, r, a, http.StatusOK, map[string]any{})
}

// numberJSON is a line as Ellis's API shows it.
func numberJSON(n number, password string) map[string]any {
	user, domain, _ := strings.Cut(strings.TrimPrefix(n.URI, "sip:"), "@")
	m := map[string]any{
		"sip_uri":          n.URI,
		"sip_username":     user,
		"number":           user,
		"formatted_number": formatNumber(user),
		"domain":           domain,
		"pstn":             n.PSTN,
		"private_id":       n.PrivateID,
	}
	if password != "" {
		m["sip_password"] = password
	}
	return m
}

func (s *Server) apiNumbers(w http.ResponseWriter, r *http.Request, email string) {
	acct, admin, err := s.authorize(r, email)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	if r.Method == http.MethodGet {
		owned, err := s.lines(r.Context(), acct)
		if err != nil {
			s.apiError(w, r, err)
			return
		}
		list := make([]map[string]any, len(owned))
		for i, n := range owned {
			list[i] = numberJSON(n, "")
		}
		s.reply(w, r, args{}, http.StatusOK, map[string]any{"numbers": list})
		return
	}
	a, err := readArgs(r)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	pstn, err := a.flag("pstn")
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	n, pw, err := s.allocate(r.Context(), acct, pstn, "", a["private_id"], false, admin)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	s.reply(w, r, a, http.StatusOK, numberJSON(n, pw))
}

// apiNumber deletes a line, or (with the API key) provisions a specific
// number.
func (s *Server) apiNumber(w http.ResponseWriter, r *http.Request, email, uri string) {
	acct, admin, err := s.authorize(r, email)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	if r.Method == http.MethodDelete {
		if err := s.release(r.Context(), acct, uri); err != nil {
			s.apiError(w, r, err)
			return
		}
		s.reply(w, r, args{}, http.StatusOK, map[string]any{})
		return
	}
	if !admin {
		s.apiError(w, r, errf(http.StatusForbidden, "This is an admin-only operation."))
		return
	}
	a, err := readArgs(r)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	if err := a.require("private_id"); err != nil {
		s.apiError(w, r, err)
		return
	}
	newPrivate, err := a.flag("new_private_id")
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	n, pw, err := s.allocate(r.Context(), acct, false, uri, a["private_id"], newPrivate, true)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	s.reply(w, r, a, http.StatusOK, numberJSON(n, pw))
}

func (s *Server) apiSIPPassword(w http.ResponseWriter, r *http.Request, email, uri string) {
	acct, _, err := s.authorize(r, email)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	pw, err := s.resetSIPPassword(r.Context(), acct, uri)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	s.reply(w, r, args{}, http.StatusOK, map[string]string{"sip_password": pw})
}

// apiDocument reads or replaces a line's simservs document or iFC XML, which
// Ellis proxied to Homer and Homestead.
func (s *Server) apiDocument(w http.ResponseWriter, r *http.Request, email, uri, which string) {
	acct, _, err := s.authorize(r, email)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	ctx := r.Context()
	if _, _, err := s.ownedNumber(ctx, acct, uri); err != nil {
		s.apiError(w, r, err)
		return
	}
	if r.Method == http.MethodGet {
		var doc []byte
		if which == "simservs" {
			doc, err = s.simservs.Get(ctx, uri)
			err = storeError("simservs of "+uri, err)
		} else {
			var x string
			x, err = s.subs.IFC(ctx, uri)
			doc, err = []byte(x), storeError("iFCs of "+uri, err)
		}
		if err != nil {
			s.apiError(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/xml; charset=utf-8")
		w.Write(doc)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		s.apiError(w, r, errf(http.StatusRequestEntityTooLarge, "request body: %v", err))
		return
	}
	if which == "simservs" {
		if err = checkRoot(body, simservsNS, "simservs"); err == nil {
			err = storeError("store simservs of "+uri, s.simservs.Put(ctx, uri, body))
		}
	} else {
		if err = checkRoot(body, "", "ServiceProfile"); err == nil {
			err = storeError("store iFCs of "+uri, s.subs.SetIFC(ctx, uri, string(body)))
		}
	}
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	s.log.Info("document replaced", "email", acct.Email, "number", uri, "document", which)
	w.WriteHeader(http.StatusOK)
}

// checkRoot verifies a body is one well-formed XML document with the given
// root element, answering 400 with the parser's complaint otherwise.
func checkRoot(doc []byte, space, local string) error {
	dec := xml.NewDecoder(bytes.NewReader(doc))
	depth := 0
	var root *xml.StartElement
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return errf(http.StatusBadRequest, "malformed XML: %v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				if root != nil {
					return errf(http.StatusBadRequest, "malformed XML: more than one root element")
				}
				root = &t
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 && len(bytes.TrimSpace(t)) > 0 {
				return errf(http.StatusBadRequest, "malformed XML: text outside the root element")
			}
		}
	}
	if root == nil {
		return errf(http.StatusBadRequest, "malformed XML: no root element")
	}
	if root.Name.Local != local || root.Name.Space != space {
		want := local
		if space != "" {
			want = fmt.Sprintf("%s in namespace %s", local, space)
		}
		got := root.Name.Local
		if root.Name.Space != "" {
			got = fmt.Sprintf("%s in namespace %s", root.Name.Local, root.Name.Space)
		}
		return errf(http.StatusBadRequest, "root element is %s, want %s", got, want)
	}
	return nil
}
