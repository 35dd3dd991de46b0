package ellis

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"stillwater/kv/kvtest"
)

// memSubscribers is an in-memory subscriber store.
type memSubscribers struct {
	mu       sync.Mutex
	privates map[string]*memPrivate // private id → credentials and public ids
	publics  map[string]string      // public id → private id
	ifcs     map[string]string      // public id → iFC XML
	failNext error                  // returned by the next Create
}

type memPrivate struct {
	realm, password string
	publics         []string
}

func newMemSubscribers() *memSubscribers {
	return &memSubscribers{privates: map[string]*memPrivate{}, publics: map[string]string{}, ifcs: map[string]string{}}
}

func (m *memSubscribers) Create(_ context.Context, l Line) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.failNext; err != nil {
		m.failNext = nil
		return err
	}
	p := m.privates[l.PrivateID]
	if l.Password == "" && p == nil {
		return fmt.Errorf("private identity %s: %w", l.PrivateID, ErrNotFound)
	}
	for _, pub := range l.PublicIDs {
		if _, ok := m.publics[pub]; ok {
			return fmt.Errorf("public identity %s: %w", pub, ErrConflict)
		}
	}
	if p == nil {
		p = &memPrivate{}
		m.privates[l.PrivateID] = p
	}
	if l.Password != "" {
		p.realm, p.password = l.Realm, l.Password
	}
	for _, pub := range l.PublicIDs {
		p.publics = append(p.publics, pub)
		m.publics[pub] = l.PrivateID
		m.ifcs[pub] = l.IFC
	}
	return nil
}

func (m *memSubscribers) Delete(_ context.Context, pub string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	priv, ok := m.publics[pub]
	if !ok {
		return nil
	}
	delete(m.publics, pub)
	delete(m.ifcs, pub)
	p := m.privates[priv]
	p.publics = slices.DeleteFunc(p.publics, func(x string) bool { return x == pub })
	if len(p.publics) == 0 {
		delete(m.privates, priv)
	}
	return nil
}

func (m *memSubscribers) SetPassword(_ context.Context, priv, realm, pw string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.privates[priv]
	if p == nil {
		return fmt.Errorf("private identity %s: %w", priv, ErrNotFound)
	}
	p.realm, p.password = realm, pw
	return nil
}

func (m *memSubscribers) IFC(_ context.Context, pub string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	x, ok := m.ifcs[pub]
	if !ok {
		return "", fmt.Errorf("public identity %s: %w", pub, ErrNotFound)
	}
	return x, nil
}

func (m *memSubscribers) SetIFC(_ context.Context, pub, x string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.publics[pub]; !ok {
		return fmt.Errorf("public identity %s: %w", pub, ErrNotFound)
	}
	m.ifcs[pub] = x
	return nil
}

func (m *memSubscribers) password(priv string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p := m.privates[priv]; p != nil {
		return p.password
	}
	return ""
}

func (m *memSubscribers) has(pub string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.publics[pub]
	return ok
}

// memSimservs is an in-memory simservs store that, like Homer, refuses
// documents that are not simservs documents.
type memSimservs struct {
	mu   sync.Mutex
	docs map[string][]byte
}

func newMemSimservs() *memSimservs { return &memSimservs{docs: map[string][]byte{}} }

func (m *memSimservs) Get(_ context.Context, impu string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.docs[impu]
	if !ok {
		return nil, fmt.Errorf("simservs of %s: %w", impu, ErrNotFound)
	}
	return d, nil
}

func (m *memSimservs) Put(_ context.Context, impu string, doc []byte) error {
	root, err := parseXML(doc)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if root.Name.Space != simservsNS || root.Name.Local != "simservs" {
		return fmt.Errorf("%w: root element is not simservs", ErrInvalid)
	}
	if cd := root.child(simservsNS, "communication-diversion"); cd != nil {
		for _, r := range rules(cd) {
			if r.child(policyNS, "actions").child(simservsNS, "forward-to").child(simservsNS, "target").textOf() == "" {
				return fmt.Errorf("%w: diversion rule %q has no target", ErrInvalid, r.attr("id"))
			}
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.docs[impu] = bytes.Clone(doc)
	return nil
}

func (m *memSimservs) Delete(_ context.Context, impu string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.docs, impu)
	return nil
}

func (m *memSimservs) Default() []byte { return defaultSimservs() }

func (m *memSimservs) doc(impu string) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.docs[impu]
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

const (
	testDomain = "example.com"
	testSignup = "let-me-in"
	testAPIKey = "automation-key"
)

// env is one Ellis on a fresh single-node site.
type env struct {
	t     *testing.T
	s     *Server
	srv   *httptest.Server
	subs  *memSubscribers
	ss    *memSimservs
	clock *fakeClock
}

func newEnv(t *testing.T, tweak func(*Options)) *env {
	t.Helper()
	site := kvtest.New(t, 2)
	e := &env{t: t, subs: newMemSubscribers(), ss: newMemSimservs(), clock: &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}}
	opts := Options{
		HomeDomain: testDomain, SignupKey: testSignup, APIKey: testAPIKey, CookieKey: "cookie-secret",
		PasswordCost: bcrypt.MinCost,
		Subscribers:  e.subs, Simservs: e.ss, KV: site.KV, Clock: e.clock,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if tweak != nil {
		tweak(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.s = s
	e.srv = httptest.NewServer(s)
	t.Cleanup(func() {
		e.srv.Close()
		s.Close()
	})
	return e
}

func (e *env) numbers(start, count int64, pstn bool) {
	e.t.Helper()
	if _, _, err := e.s.CreateNumbers(context.Background(), start, count, pstn, ""); err != nil {
		e.t.Fatal(err)
	}
}

// client is an HTTP client with its own cookie jar.
type client struct {
	e    *env
	http *http.Client
	hdr  http.Header
}

func (e *env) client() *client {
	jar, _ := cookiejar.New(nil)
	return &client{e: e, http: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}, hdr: http.Header{}}
}

// admin is a client presenting the API key.
func (e *env) admin() *client {
	c := e.client()
	c.hdr.Set("NGV-API-Key", testAPIKey)
	return c
}

type resp struct {
	status int
	header http.Header
	body   []byte
	json   map[string]any
}

func (c *client) do(method, path, ctype string, body []byte, hdr ...string) resp {
	c.e.t.Helper()
	req, err := http.NewRequest(method, c.e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		c.e.t.Fatal(err)
	}
	for k, v := range c.hdr {
		req.Header[k] = v
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := c.http.Do(req)
	if err != nil {
		c.e.t.Fatal(err)
	}
	defer res.Body.Close()
	r := resp{status: res.StatusCode, header: res.Header}
	r.body, _ = io.ReadAll(res.Body)
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		json.Unmarshal(r.body, &r.json)
	}
	return r
}

func (c *client) json(method, path string, v any, hdr ...string) resp {
	c.e.t.Helper()
	var body []byte
	if v != nil {
		body, _ = json.Marshal(v)
	}
	return c.do(method, path, "application/json", body, hdr...)
}

func (c *client) form(method, path string, vals url.Values, hdr ...string) resp {
	c.e.t.Helper()
	return c.do(method, path, "application/x-www-form-urlencoded", []byte(vals.Encode()), hdr...)
}

func (r resp) want(t *testing.T, status int) resp {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	return r
}

func (r resp) str(key string) string {
	s, _ := r.json[key].(string)
	return s
}

// signup creates an account and returns a client logged in to it.
func (e *env) signup(email string) *client {
	e.t.Helper()
	c := e.client()
	c.json("POST", "/accounts", map[string]string{"email": email, "password": "secret123", "full_name": "Test " + email},
		"NGV-Signup-Code", testSignup).want(e.t, http.StatusCreated)
	return c
}

func numbersPath(email string) string { return "/accounts/" + url.PathEscape(email) + "/numbers" }

func numberPath(email, uri string) string {
	return numbersPath(email) + "/" + url.PathEscape(uri)
}

// smtpCapture is a minimal SMTP server on 127.0.0.1 that keeps what it is
// sent.
type smtpCapture struct {
	ln   net.Listener
	msgs chan string
}

func newSMTPCapture(t *testing.T) *smtpCapture {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &smtpCapture{ln: ln, msgs: make(chan string, 16)}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { c.serve(conn) })
		}
	})
	return c
}

func (c *smtpCapture) serve(conn net.Conn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	fmt.Fprint(conn, "220 capture ESMTP\r\n")
	var rcpt []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			fmt.Fprint(conn, "250-capture\r\n250 8BITMIME\r\n")
		case strings.HasPrefix(cmd, "MAIL FROM"):
			fmt.Fprint(conn, "250 ok\r\n")
		case strings.HasPrefix(cmd, "RCPT TO"):
			rcpt = append(rcpt, strings.TrimSpace(line[len("RCPT TO:"):]))
			fmt.Fprint(conn, "250 ok\r\n")
		case cmd == "DATA":
			fmt.Fprint(conn, "354 go ahead\r\n")
			var msg strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				msg.WriteString(strings.TrimPrefix(l, "."))
			}
			c.msgs <- "RCPT " + strings.Join(rcpt, ",") + "\r\n" + msg.String()
			fmt.Fprint(conn, "250 queued\r\n")
		case cmd == "QUIT":
			fmt.Fprint(conn, "221 bye\r\n")
			return
		default:
			fmt.Fprint(conn, "250 ok\r\n")
		}
	}
}

func (c *smtpCapture) next(t *testing.T) string {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no mail arrived")
	}
	return ""
}
