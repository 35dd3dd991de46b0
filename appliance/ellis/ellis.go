package ellis

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"stillwater/kv"
)

// Line is one line as the subscriber store sees it: a private identity and
// the public identities Ellis gives it.
type Line struct {
	PrivateID string
	PublicIDs []string
	// Realm is the digest realm of the private identity's credentials.
	Realm string
	// Password is the plaintext SIP password, which the store hashes to HA1.
	// Empty means the private identity already exists and keeps its
	// credentials: the public identities are added to it.
	Password string
	// IFC is the service profile's iFC XML (a ServiceProfile document).
	IFC string
}

// Subscribers is the subscriber store (Homestead's) as Ellis uses it.
// Errors that wrap ErrNotFound, ErrConflict or ErrInvalid are answered with
// 404, 409 and 400; any other error with 502, as Ellis did for a failed
// upstream request.
type Subscribers interface {
	// Create provisions a line (see Line.Password for a shared private id).
	Create(ctx context.Context, l Line) error
	// Delete removes a public identity; the store removes the private
	// identity with its last public identity. Deleting an absent identity
	// succeeds.
	Delete(ctx context.Context, publicID string) error
	// SetPassword replaces a private identity's digest credentials.
	SetPassword(ctx context.Context, privateID, realm, password string) error
	// IFC returns the iFC XML of a public identity's service profile.
	IFC(ctx context.Context, publicID string) (string, error)
	// SetIFC replaces it.
	SetIFC(ctx context.Context, publicID, xml string) error
}

// Simservs is the MMTEL settings document store (Homer's). Errors map to
// status codes as for Subscribers; Put should reject a document that fails
// the simservs schema with an error wrapping ErrInvalid that says why.
type Simservs interface {
	Get(ctx context.Context, impu string) ([]byte, error)
	Put(ctx context.Context, impu string, doc []byte) error
	// Delete removes the document; deleting an absent one succeeds.
	Delete(ctx context.Context, impu string) error
	// Default is the document a new line starts with (OIR off).
	Default() []byte
}

// Errors the stores return (wrapped) to choose Ellis's answer.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	ErrInvalid  = errors.New("invalid")
)

// Clock is Ellis's time source; tests inject a fake one.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Options configure a Server. The option names of shared_config that feed
// each field are given in brackets.
type Options struct {
	// HomeDomain [home_domain] is the domain of numbers created without a
	// realm and names the built-in MMTEL AS (sip:mmtel.<home_domain>) in the
	// default iFC. Required.
	HomeDomain string
	// Hostname [ellis_hostname] is the portal's host name used in password
	// recovery links; default ellis.<home_domain>.
	Hostname string
	// SignupKey [signup_key] is the signup code; empty disables sign-up.
	SignupKey string
	// APIKey [ellis_api_key] authenticates automation via NGV-API-Key;
	// empty disables key access.
	APIKey string
	// CookieKey [ellis_cookie_key] signs session cookies. Every node of a
	// site must share it; empty means a random key for this process only.
	CookieKey string
	// SMTPSmarthost [smtp_smarthost] is the host:port recovery mail goes to;
	// empty means recovery mail is logged and dropped.
	SMTPSmarthost string
	// SMTPUsername and SMTPPassword [smtp_username, smtp_password]
	// authenticate to the smarthost (PLAIN, only over TLS or to localhost).
	SMTPUsername, SMTPPassword string
	// MailFrom [email_recovery_sender] is the sender of recovery mail;
	// default ellis@<home_domain>.
	MailFrom string
	// AppServersPath names the app-servers.json file mapping application
	// server names to iFC XML; read on every use, so edits apply at once.
	AppServersPath string
	// PasswordCost is the bcrypt cost of account passwords; 0 means
	// bcrypt.DefaultCost.
	PasswordCost int

	Subscribers Subscribers // required
	Simservs    Simservs    // required
	KV          *kv.Service // required
	Logger      *slog.Logger
	Clock       Clock
}

// Server is Ellis: an http.Handler serving the JSON API and the portal, and
// the number pool's owner. Its methods are safe for concurrent use.
type Server struct {
	opts     Options
	log      *slog.Logger
	clock    Clock
	accounts *kv.Table[account]
	numbers  *kv.Table[number]
	free     *kv.Table[struct{}]
	subs     Subscribers
	simservs Simservs

	sessionKey []byte // HMAC key of session cookies
	csrfKey    []byte // HMAC key of form tokens
	dummyHash  []byte // compared against for unknown accounts, so timing tells nothing

	pages   map[string]*template.Template
	handler http.Handler

	mailLimit    *bucket // recovery mail sent
	recoverLimit *bucket // recovery token attempts

	mailWG sync.WaitGroup
}

// New returns Ellis over opts.
func New(opts Options) (*Server, error) {
	if opts.HomeDomain == "" {
		return nil, errors.New("ellis: no home domain")
	}
	if opts.Subscribers == nil || opts.Simservs == nil || opts.KV == nil {
		return nil, errors.New("ellis: Subscribers, Simservs and KV are required")
	}
	if opts.Hostname == "" {
		opts.Hostname = "ellis." + opts.HomeDomain
	}
	if opts.MailFrom == "" {
		opts.MailFrom = "ellis@" + opts.HomeDomain
	}
	if opts.PasswordCost == 0 {
		opts.PasswordCost = bcrypt.DefaultCost
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Clock == nil {
		opts.Clock = systemClock{}
	}
	s := &Server{
		opts:         opts,
		log:          opts.Logger.With("component", "ellis"),
		clock:        opts.Clock,
		accounts:     kv.NewTable[account](opts.KV, "ellis_account", nil),
		numbers:      kv.NewTable[number](opts.KV, "ellis_number", nil),
		free:         kv.NewTable[struct{}](opts.KV, "ellis_free", nil),
		subs:         opts.Subscribers,
		simservs:     opts.Simservs,
		mailLimit:    newBucket(10, 6*time.Second),
		recoverLimit: newBucket(20, time.Second),
	}
	secret := []byte(opts.CookieKey)
	if len(secret) == 0 {
		secret = make([]byte, 32)
		rand.Read(secret)
		s.log.Warn("no ellis_cookie_key: sessions last only as long as this process and work only on this node")
	}
	s.sessionKey = deriveKey(secret, "ellis session")
	s.csrfKey = deriveKey(secret, "ellis csrf")
	var err error
	if s.dummyHash, err = bcrypt.GenerateFromPassword([]byte("no such account"), opts.PasswordCost); err != nil {
		return nil, fmt.Errorf("ellis: password cost %d: %w", opts.PasswordCost, err)
	}
	if s.pages, err = parsePages(); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/", http.HandlerFunc(s.route))
	s.handler = http.NewCrossOriginProtection().Handler(mux)
	return s, nil
}

// ServeHTTP serves the JSON API and the portal.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}

// Close waits for recovery mail still being sent. Call it once the HTTP
// server serving s has shut down.
func (s *Server) Close() error {
	s.mailWG.Wait()
	return nil
}

// route splits the API from the portal: the API keeps Ellis's paths.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	segs, ok := splitPath(r.URL.EscapedPath())
	if !ok {
		s.apiError(w, r, errf(http.StatusBadRequest, "malformed path"))
		return
	}
	if len(segs) > 0 {
		switch segs[0] {
		case "accounts", "session", "ping":
			s.serveAPI(w, r, segs)
			return
		}
	}
	s.servePortal(w, r, segs)
}

// deriveKey separates the uses of one configured secret.
func deriveKey(secret []byte, use string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(use))
	return m.Sum(nil)
}

// statusError is a failure with the HTTP status Ellis answers it with.
type statusError struct {
	Status int
	Reason string
	err    error
}

func (e *statusError) Error() string {
	if e.err != nil {
		return e.Reason + ": " + e.err.Error()
	}
	return e.Reason
}

func (e *statusError) Unwrap() error { return e.err }

func errf(status int, format string, args ...any) *statusError {
	return &statusError{Status: status, Reason: fmt.Sprintf(format, args...)}
}

// storeError turns a store's error into the answer Ellis gives for it.
func storeError(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotFound):
		return &statusError{Status: http.StatusNotFound, Reason: what + ": not found", err: err}
	case errors.Is(err, ErrConflict):
		return &statusError{Status: http.StatusConflict, Reason: what + ": conflict", err: err}
	case errors.Is(err, ErrInvalid):
		return &statusError{Status: http.StatusBadRequest, Reason: err.Error(), err: err}
	}
	return &statusError{Status: http.StatusBadGateway, Reason: "Upstream request failed: " + what, err: err}
}

// statusOf is the HTTP status for any error of this package.
func statusOf(err error) (int, string) {
	var e *statusError
	if errors.As(err, &e) {
		return e.Status, e.Reason
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return http.StatusServiceUnavailable, "request timed out"
	}
	return http.StatusInternalServerError, "internal error"
}

// splitPath returns the unescaped segments of an escaped path, ignoring a
// trailing slash as Ellis's routes did.
func splitPath(escaped string) ([]string, bool) {
	p := strings.Trim(escaped, "/")
	if p == "" {
		return nil, true
	}
	raw := strings.Split(p, "/")
	segs := make([]string, len(raw))
	for i, r := range raw {
		u, err := url.PathUnescape(r)
		if err != nil {
			return nil, false
		}
		segs[i] = u
	}
	return segs, true
}

// bucket is a token bucket throttling what could be abused (mail sending,
// token guessing), as Ellis's throttlers did.
type bucket struct {
	mu     sync.Mutex
	burst  float64
	every  time.Duration
	tokens float64
	last   time.Time
}

func newBucket(burst int, every time.Duration) *bucket {
	return &bucket{burst: float64(burst), every: every, tokens: float64(burst)}
}

// take reports whether a token was available at now, or else how long until
// one is.
func (b *bucket) take(now time.Time) (bool, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.last.IsZero() {
		b.tokens = min(b.burst, b.tokens+float64(now.Sub(b.last))/float64(b.every))
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) * float64(b.every))
}
