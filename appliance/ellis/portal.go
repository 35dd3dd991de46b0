package ellis

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

//go:embed web
var webFS embed.FS

func parsePages() (map[string]*template.Template, error) {
	pages := map[string]*template.Template{}
	for _, name := range []string{"login", "signup", "forgot", "reset", "lines", "services", "notice"} {
		t, err := template.New("layout.html").ParseFS(webFS, "web/layout.html", "web/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("ellis: page %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// view is what every page template is given.
type view struct {
	Title   string
	Account *account
	CSRF    string
	Error   string
	Notice  string
	// Form echoes what was typed into a form that failed.
	Form map[string]string

	SignupOpen bool

	Lines []lineView
	New   *lineView // a line whose SIP password is shown this once

	Line       *lineView
	Services   services
	Diversions []diversionView
	AppServers []appServerView
	ASError    string
}

type lineView struct {
	URI, Username, Formatted, Domain, PrivateID, Password string
	PSTN, Reset                                           bool
}

type diversionView struct {
	ID, Label, Target string
	On, NoAnswer      bool
}

type appServerView struct {
	Name string
	On   bool
}

func newLineView(n number) lineView {
	user, domain, _ := strings.Cut(strings.TrimPrefix(n.URI, "sip:"), "@")
	return lineView{URI: n.URI, Username: user, Formatted: formatNumber(user), Domain: domain, PrivateID: n.PrivateID, PSTN: n.PSTN}
}

// servePortal serves the web pages.
func (s *Server) servePortal(w http.ResponseWriter, r *http.Request, segs []string) {
	path := "/" + strings.Join(segs, "/")
	switch r.Method + " " + path {
	case "GET /":
		if _, ok := s.session(r); ok {
			http.Redirect(w, r, "/lines", http.StatusSeeOther)
		} else {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
		}
	case "GET /login.html", "GET /signup.html", "GET /forgotpassword.html", "GET /resetpassword.html":
		// Clearwater's page names, as in its documentation.
		to := strings.TrimSuffix(path, ".html")
		if r.URL.RawQuery != "" {
			to += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, to, http.StatusMovedPermanently)
	case "GET /static/style.css":
		s.serveStatic(w, r, "web/style.css", "text/css; charset=utf-8")
	case "GET /login":
		s.render(w, r, http.StatusOK, "login", &view{Title: "Sign in", Form: map[string]string{"email": r.URL.Query().Get("email")}})
	case "POST /login":
		s.postLogin(w, r)
	case "GET /signup":
		s.render(w, r, http.StatusOK, "signup", &view{Title: "Sign up", SignupOpen: s.opts.SignupKey != ""})
	case "POST /signup":
		s.postSignup(w, r)
	case "POST /logout":
		if sess, ok := s.session(r); ok && !s.formOK(w, r, &sess) {
			return
		}
		endSession(w, r)
		http.Redirect(w, r, "/login", http.StatusSeeOther)
	case "GET /forgotpassword":
		s.render(w, r, http.StatusOK, "forgot", &view{Title: "Forgotten password"})
	case "POST /forgotpassword":
		s.postForgot(w, r)
	case "GET /resetpassword":
		q := r.URL.Query()
		s.render(w, r, http.StatusOK, "reset", &view{Title: "Choose a new password", Form: map[string]string{"email": q.Get("email"), "token": q.Get("token")}})
	case "POST /resetpassword":
		s.postReset(w, r)
	case "GET /lines":
		s.withSession(w, r, s.getLines)
	case "POST /lines/add":
		s.withSession(w, r, s.postAddLine)
	case "POST /lines/delete":
		s.withSession(w, r, s.postDeleteLine)
	case "POST /lines/password":
		s.withSession(w, r, s.postLinePassword)
	case "GET /lines/services":
		s.withSession(w, r, s.getServices)
	case "POST /lines/services":
		s.withSession(w, r, s.postServices)
	default:
		s.render(w, r, http.StatusNotFound, "notice", &view{Title: "Not found", Error: "There is no page here."})
	}
}

func (s *Server) serveStatic(w http.ResponseWriter, r *http.Request, name, ctype string) {
	b, err := fs.ReadFile(webFS, name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Write(b)
}

// render writes a page; the form token in v is filled in here.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, page string, v *view) {
	if v.CSRF == "" {
		if sess, ok := s.session(r); ok {
			v.CSRF = s.csrfToken("session", sess.nonce)
			if v.Account == nil {
				v.Account = &sess.acct
			}
		} else {
			v.CSRF = s.csrfToken("form", formNonce(w, r))
		}
	}
	var buf bytes.Buffer
	if err := s.pages[page].Execute(&buf, v); err != nil {
		s.log.Error("page failed", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store") // pages may show a SIP password
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'self'; form-action 'self'; frame-ancestors 'none'")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// renderFor renders a page of a logged-in user, with the session's token.
func (s *Server) renderFor(w http.ResponseWriter, r *http.Request, sess session, status int, page string, v *view) {
	v.Account = &sess.acct
	v.CSRF = s.csrfToken("session", sess.nonce)
	s.render(w, r, status, page, v)
}

// formOK parses a posted form and checks its token, answering 403 if it
// fails.
func (s *Server) formOK(w http.ResponseWriter, r *http.Request, sess *session) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		s.render(w, r, http.StatusBadRequest, "notice", &view{Title: "Bad request", Error: "The form could not be read."})
		return false
	}
	if !s.checkCSRF(r, sess) {
		s.log.Warn("form rejected: missing or wrong token", "path", r.URL.Path)
		s.render(w, r, http.StatusForbidden, "notice", &view{Title: "Form expired",
			Error: "This form has expired or did not come from this site. Go back, reload the page and try again."})
		return false
	}
	return true
}

// withSession runs a page handler for a logged-in user; others are sent to
// the login page, and their posts are checked for the session's token.
func (s *Server) withSession(w http.ResponseWriter, r *http.Request, h func(http.ResponseWriter, *http.Request, session)) {
	sess, ok := s.session(r)
	if !ok {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	if r.Method == http.MethodPost && !s.formOK(w, r, &sess) {
		return
	}
	h(w, r, sess)
}

func (s *Server) postLogin(w http.ResponseWriter, r *http.Request) {
	if !s.formOK(w, r, nil) {
		return
	}
	email := strings.TrimSpace(r.PostFormValue("email"))
	acct, err := s.authenticate(r.Context(), email, r.PostFormValue("password"))
	if err != nil {
		status, reason := statusOf(err)
		s.render(w, r, status, "login", &view{Title: "Sign in", Error: reason, Form: map[string]string{"email": email}})
		return
	}
	s.startSession(w, r, acct)
	http.Redirect(w, r, "/lines", http.StatusSeeOther)
}

// postSignup creates the account and, as Clearwater's portal did, its first
// line, whose password is shown on the page that follows.
func (s *Server) postSignup(w http.ResponseWriter, r *http.Request) {
	if !s.formOK(w, r, nil) {
		return
	}
	f := r.PostForm
	form := map[string]string{"email": strings.TrimSpace(f.Get("email")), "full_name": f.Get("full_name")}
	fail := func(err error) {
		status, reason := statusOf(err)
		s.render(w, r, status, "signup", &view{Title: "Sign up", Error: reason, Form: form, SignupOpen: s.opts.SignupKey != ""})
	}
	if s.opts.SignupKey == "" || f.Get("signup_code") != s.opts.SignupKey {
		fail(errf(http.StatusForbidden, "The signup code is not right."))
		return
	}
	if f.Get("password") != f.Get("password2") {
		fail(errf(http.StatusBadRequest, "The two passwords differ."))
		return
	}
	acct, err := s.signup(r.Context(), form["email"], f.Get("password"), form["full_name"])
	if err != nil {
		fail(err)
		return
	}
	sess := s.startSession(w, r, acct)
	n, pw, err := s.allocate(r.Context(), acct, false, "", "", false, false)
	if err != nil {
		_, reason := statusOf(err)
		s.showLines(w, r, sess, http.StatusOK, nil, "Your account is ready, but it has no line yet: "+reason)
		return
	}
	sess.acct.Lines = append(sess.acct.Lines, n.URI)
	nl := newLineView(n)
	nl.Password = pw
	s.showLines(w, r, sess, http.StatusOK, &nl, "")
}

// showLines renders the lines page, re-reading the account so that the
// page shows what is stored.
func (s *Server) showLines(w http.ResponseWriter, r *http.Request, sess session, status int, fresh *lineView, errText string) {
	v := &view{Title: "Your lines", New: fresh, Error: errText}
	if a, _, err := s.getAccount(r.Context(), sess.acct.Email); err == nil {
		sess.acct = a
	}
	owned, err := s.lines(r.Context(), sess.acct)
	if err != nil {
		s.log.Error("could not list lines", "email", sess.acct.Email, "err", err)
		v.Error = "Your lines could not be read; try again shortly."
		status = http.StatusServiceUnavailable
	}
	for _, n := range owned {
		v.Lines = append(v.Lines, newLineView(n))
	}
	switch r.URL.Query().Get("done") {
	case "deleted":
		v.Notice = "The line was deleted and its number returned to the pool."
	case "saved":
		v.Notice = "Your settings were saved."
	}
	s.renderFor(w, r, sess, status, "lines", v)
}

func (s *Server) getLines(w http.ResponseWriter, r *http.Request, sess session) {
	s.showLines(w, r, sess, http.StatusOK, nil, "")
}

func (s *Server) postAddLine(w http.ResponseWriter, r *http.Request, sess session) {
	n, pw, err := s.allocate(r.Context(), sess.acct, r.PostFormValue("pstn") == "true", "", "", false, false)
	if err != nil {
		status, reason := statusOf(err)
		s.showLines(w, r, sess, status, nil, "No line was added: "+reason)
		return
	}
	nl := newLineView(n)
	nl.Password = pw
	s.showLines(w, r, sess, http.StatusOK, &nl, "")
}

func (s *Server) postDeleteLine(w http.ResponseWriter, r *http.Request, sess session) {
	if err := s.release(r.Context(), sess.acct, r.PostFormValue("line")); err != nil {
		status, reason := statusOf(err)
		s.showLines(w, r, sess, status, nil, "The line was not deleted: "+reason)
		return
	}
	http.Redirect(w, r, "/lines?done=deleted", http.StatusSeeOther)
}

func (s *Server) postLinePassword(w http.ResponseWriter, r *http.Request, sess session) {
	uri := r.PostFormValue("line")
	pw, err := s.resetSIPPassword(r.Context(), sess.acct, uri)
	if err != nil {
		status, reason := statusOf(err)
		s.showLines(w, r, sess, status, nil, "The password was not reset: "+reason)
		return
	}
	n, _, err := s.ownedNumber(r.Context(), sess.acct, uri)
	if err != nil {
		n = number{URI: uri}
	}
	nl := newLineView(n)
	nl.Password, nl.Reset = pw, true
	s.showLines(w, r, sess, http.StatusOK, &nl, "")
}

func (s *Server) postForgot(w http.ResponseWriter, r *http.Request) {
	if !s.formOK(w, r, nil) {
		return
	}
	email := strings.TrimSpace(r.PostFormValue("email"))
	if err := s.requestRecovery(r, email); err != nil {
		status, reason := statusOf(err)
		s.render(w, r, status, "forgot", &view{Title: "Forgotten password", Error: reason, Form: map[string]string{"email": email}})
		return
	}
	s.render(w, r, http.StatusOK, "notice", &view{Title: "Check your mail",
		Notice: "If an account uses " + email + ", a link to choose a new password is on its way there. It is valid for one hour."})
}

func (s *Server) postReset(w http.ResponseWriter, r *http.Request) {
	if !s.formOK(w, r, nil) {
		return
	}
	f := r.PostForm
	form := map[string]string{"email": f.Get("email"), "token": f.Get("token")}
	var err error = errf(http.StatusBadRequest, "The two passwords differ.")
	if f.Get("password") == f.Get("password2") {
		err = nil
		if e := s.completeRecovery(r, form["email"], form["token"], f.Get("password")); e != nil {
			err = e
		}
	}
	if err != nil {
		status, reason := statusOf(err)
		s.render(w, r, status, "reset", &view{Title: "Choose a new password", Error: reason, Form: form})
		return
	}
	s.render(w, r, http.StatusOK, "notice", &view{Title: "Password changed", Notice: "Your password was changed. Sign in with it now."})
}

// serviceForm fills the services page's view from settings.
func (s *Server) serviceForm(v *view, sv services) {
	v.Services = sv
	v.Diversions = nil
	for _, d := range diversionConditions {
		t, on := sv.Diversions[d.Cond]
		v.Diversions = append(v.Diversions, diversionView{ID: d.ID, Label: d.Label, Target: t, On: on, NoAnswer: d.Cond == "no-answer"})
	}
}

// lineDocs reads a line's simservs document (the default if it has none)
// and its iFC document.
func (s *Server) lineDocs(r *http.Request, uri string) (ss, ifc *elem, err error) {
	doc, err := s.simservs.Get(r.Context(), uri)
	if errors.Is(err, ErrNotFound) {
		doc, err = s.simservs.Default(), nil
	}
	if err != nil {
		return nil, nil, storeError("simservs of "+uri, err)
	}
	if ss, err = parseXML(doc); err != nil {
		return nil, nil, errf(http.StatusBadGateway, "the stored simservs document of %s is not XML: %v", uri, err)
	}
	x, err := s.subs.IFC(r.Context(), uri)
	if errors.Is(err, ErrNotFound) || (err == nil && strings.TrimSpace(x) == "") {
		x, err = "<ServiceProfile/>", nil
	}
	if err != nil {
		return nil, nil, storeError("iFCs of "+uri, err)
	}
	if ifc, err = parseXML([]byte(x)); err != nil {
		return nil, nil, errf(http.StatusBadGateway, "the stored iFC document of %s is not XML: %v", uri, err)
	}
	return ss, ifc, nil
}

func (s *Server) servicesView(sess session, n number, ifc *elem) *view {
	lv := newLineView(n)
	v := &view{Title: "Services of " + lv.Formatted, Line: &lv}
	as, err := s.appServers()
	if err != nil {
		s.log.Error("could not read application servers", "err", err)
		v.ASError = "The list of application servers could not be read."
	}
	for _, a := range as {
		v.AppServers = append(v.AppServers, appServerView{Name: a.Name, On: a.invokes(ifc)})
	}
	return v
}

func (s *Server) getServices(w http.ResponseWriter, r *http.Request, sess session) {
	uri := r.URL.Query().Get("line")
	n, _, err := s.ownedNumber(r.Context(), sess.acct, uri)
	if err != nil {
		status, reason := statusOf(err)
		s.showLines(w, r, sess, status, nil, reason)
		return
	}
	ss, ifc, err := s.lineDocs(r, uri)
	if err != nil {
		status, reason := statusOf(err)
		s.showLines(w, r, sess, status, nil, reason)
		return
	}
	v := s.servicesView(sess, n, ifc)
	s.serviceForm(v, readServices(ss))
	if r.URL.Query().Get("done") == "saved" {
		v.Notice = "Your settings were saved."
	}
	s.renderFor(w, r, sess, http.StatusOK, "services", v)
}

// postServices saves the services form into the line's simservs document
// and its iFCs.
func (s *Server) postServices(w http.ResponseWriter, r *http.Request, sess session) {
	ctx := r.Context()
	f := r.PostForm
	uri := f.Get("line")
	n, _, err := s.ownedNumber(ctx, sess.acct, uri)
	if err != nil {
		status, reason := statusOf(err)
		s.showLines(w, r, sess, status, nil, reason)
		return
	}
	ss, ifc, err := s.lineDocs(r, uri)
	if err != nil {
		status, reason := statusOf(err)
		s.showLines(w, r, sess, status, nil, reason)
		return
	}
	sv := services{
		Restricted:      f.Get("privacy") == "on",
		BarIncoming:     f.Get("icb") == "all",
		BarOutgoing:     f.Get("ocb"),
		DiversionActive: f.Get("cdiv") == "on",
		Diversions:      map[string]string{},
	}
	if sv.BarOutgoing == "none" {
		sv.BarOutgoing = ""
	}
	typed := map[string]string{} // as entered, to show again if refused
	for _, d := range diversionConditions {
		if f.Get("div_"+d.ID) == "on" {
			sv.Diversions[d.Cond] = f.Get("target_" + d.ID)
			typed[d.Cond] = f.Get("target_" + d.ID)
		}
	}
	v := s.servicesView(sess, n, ifc)
	timer, err := strconv.Atoi(strings.TrimSpace(f.Get("noreply")))
	if err != nil {
		err = errf(http.StatusBadRequest, "the no-answer timer must be a number of seconds")
	} else {
		sv.NoReplyTimer = timer
		err = sv.validate(v.Line.Domain)
	}
	if err == nil {
		applyServices(ss, sv)
		err = storeError("store simservs of "+uri, s.simservs.Put(ctx, uri, renderSimservs(ss)))
	}
	if err == nil && v.ASError == "" {
		err = s.saveAppServers(r, uri, ifc, f["as"])
	}
	if err != nil {
		status, reason := statusOf(err)
		sv.Diversions = typed
		for i := range v.AppServers {
			v.AppServers[i].On = slices.Contains(f["as"], v.AppServers[i].Name)
		}
		if sv.NoReplyTimer == 0 {
			sv.NoReplyTimer = defaultNoReplyTimer
		}
		s.serviceForm(v, sv)
		v.Error = reason
		s.renderFor(w, r, sess, status, "services", v)
		return
	}
	s.log.Info("services saved", "email", sess.acct.Email, "number", uri)
	http.Redirect(w, r, "/lines/services?"+url.Values{"line": {uri}, "done": {"saved"}}.Encode(), http.StatusSeeOther)
}

// saveAppServers applies the application server checkboxes to the iFCs,
// writing them only if they changed.
func (s *Server) saveAppServers(r *http.Request, uri string, ifc *elem, checked []string) error {
	as, err := s.appServers()
	if err != nil || len(as) == 0 {
		return nil
	}
	before := ifc.canonical()
	for _, a := range as {
		on := false
		for _, c := range checked {
			on = on || c == a.Name
		}
		a.set(ifc, on)
	}
	if ifc.canonical() == before {
		return nil
	}
	return storeError("store iFCs of "+uri, s.subs.SetIFC(r.Context(), uri, string(render(ifc, "", nil, true))))
}
