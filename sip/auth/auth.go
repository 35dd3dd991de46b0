package auth

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"stillwater/consensus"
	"stillwater/diameter/hss"
	"stillwater/kv"
	"stillwater/sip/header"
)

// Defaults of Options.
const (
	// DefaultChallengeTTL is how long a challenge may be answered; Sprout
	// keeps REGISTER challenges for about 40 seconds.
	DefaultChallengeTTL = 40 * time.Second
	// DefaultNonceReuseTTL is how long an answered nonce stays usable when
	// nonce counts are supported: Clearwater's default maximum registration
	// period (reg_max_expires), so that re-REGISTERs can reuse it.
	DefaultNonceReuseTTL = 300 * time.Second
)

// tableChallenges is the kv table of outstanding challenges.
const tableChallenges = "auth.chal"

// casAttempts bounds the retries of a nonce-count update that loses races.
const casAttempts = 5

// Scheme is an authentication scheme, named by its algorithm parameter.
type Scheme int

// Schemes.
const (
	SchemeNone   Scheme = iota // no check was made (integrity-protected)
	SchemeDigest               // SIP digest, algorithm=MD5
	SchemeAKAv1                // IMS AKA, RFC 3310, algorithm=AKAv1-MD5
	SchemeAKAv2                // IMS AKA, RFC 4169, algorithm=AKAv2-MD5
)

// String returns the algorithm parameter of s.
func (s Scheme) String() string {
	switch s {
	case SchemeDigest:
		return "MD5"
	case SchemeAKAv1:
		return "AKAv1-MD5"
	case SchemeAKAv2:
		return "AKAv2-MD5"
	}
	return "none"
}

// Options configure an Authenticator.
type Options struct {
	KV  *kv.Service
	HSS *hss.Store
	// Realm is the home domain: the realm of AKA challenges when the UE
	// names none. Digest challenges use the realm of the subscriber's HA1.
	Realm string
	// ChallengeTTL is how long a challenge may be answered (0:
	// DefaultChallengeTTL).
	ChallengeTTL time.Duration
	// NonceCountSupported is Clearwater's nonce_count_supported: a nonce may
	// be reused with a strictly increasing nc. Otherwise each is single-use.
	NonceCountSupported bool
	// NonceReuseTTL is how long a nonce stays usable after a successful
	// response when NonceCountSupported (0: DefaultNonceReuseTTL).
	NonceReuseTTL time.Duration
	// Clock decides challenge expiry (nil: kv.SystemClock()).
	Clock kv.Clock
	// Rand is the source of nonces and opaque values (nil: crypto/rand).
	Rand io.Reader
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Result is the outcome of Authenticate.
type Result struct {
	// OK means the request is authenticated; otherwise Response must be sent.
	OK bool
	// IMPI is the private identity authenticated or challenged ("" when the
	// request named none).
	IMPI string
	// Scheme is the scheme used; SchemeNone when the P-CSCF vouched for the
	// request with integrity-protected.
	Scheme Scheme
	// Protected means the request was accepted on the P-CSCF's word
	// (integrity-protected tls-yes, ip-assoc-yes, auth-done, or yes without
	// a response) rather than by checking a response. TS 24.229 expects the
	// registrar to accept that only for a registered subscriber.
	Protected bool
	// Response is the challenge (401/407) or error response when !OK.
	Response *sip.Response
	// Err says why the request was not authenticated, for logs.
	Err error
	// CK and IK are the AKA session keys of the answered challenge.
	CK, IK []byte
	// Nonce is set by Register when the response checked out against a
	// single-use nonce that is still to be consumed: the caller consumes it
	// in the write that registers, or through Consume.
	Nonce *Nonce
}

// Nonce is a single-use nonce a response was checked against and that is
// not consumed yet.
type Nonce struct {
	// Key names the challenge; it is unique among live challenges.
	Key string
	// Expires is when the challenge stops being answerable (Unix ms): a
	// record of its use need not outlive it.
	Expires int64

	consume func(context.Context) error
}

// Consume deletes the challenge if no one has consumed it yet; it returns
// ErrNonceUsed if someone has.
func (n *Nonce) Consume(ctx context.Context) error { return n.consume(ctx) }

// ErrNonceUsed means a single-use nonce was consumed already: the request
// is a replay or raced another response to the same challenge, and must be
// challenged again (Stale).
var ErrNonceUsed = errors.New("auth: nonce already used")

// challenge is an outstanding challenge (auth.chal/<impi>/<nonce>).
type challenge struct {
	Scheme Scheme `json:"s"`
	Realm  string `json:"r"`
	Opaque string `json:"o"`
	// HA1 is hex MD5(impi:realm:password); for AKA the password is derived
	// from XRES.
	HA1   string `json:"h"`
	Proxy bool   `json:"p,omitempty"`
	// IMPU is the public identity challenged: a response counts only for
	// it, so a single-use nonce consumed in one registration record cannot
	// be replayed against another.
	IMPU string `json:"u,omitempty"`
	// NC is the highest nonce-count accepted so far.
	NC uint32 `json:"nc,omitempty"`
	// Expires is when the challenge stops being answerable, Unix ns by
	// Options.Clock; the kv TTL only collects the record.
	Expires int64  `json:"e"`
	CK      []byte `json:"ck,omitempty"`
	IK      []byte `json:"ik,omitempty"`
}

// Authenticator challenges and verifies SIP requests. Its methods are safe
// for concurrent use.
type Authenticator struct {
	opts  Options
	log   *slog.Logger
	chals *kv.Table[challenge]
}

// New returns an Authenticator over opts.KV and opts.HSS.
func New(opts Options) *Authenticator {
	if opts.ChallengeTTL <= 0 {
		opts.ChallengeTTL = DefaultChallengeTTL
	}
	if opts.NonceReuseTTL <= 0 {
		opts.NonceReuseTTL = DefaultNonceReuseTTL
	}
	if opts.Clock == nil {
		opts.Clock = kv.SystemClock()
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Authenticator{
		opts: opts,
		log:  opts.Logger.With("component", "auth"),
		// A challenge is written, then read back once by the response,
		// usually on this node: caching it spares decoding it.
		chals: kv.NewTable[challenge](opts.KV, tableChallenges, nil).WithCache(4<<20, func(c challenge) challenge {
			c.CK, c.IK = slices.Clone(c.CK), slices.Clone(c.IK)
			return c
		}),
	}
}

// Authenticate checks req's credentials for the public identity impu. With
// proxy false it is a registrar's check (Authorization, 401
// WWW-Authenticate); with proxy true a proxy's (Proxy-Authorization, 407
// Proxy-Authenticate). A request without credentials, or with credentials
// without a response, is challenged for the private identity the header
// names, else the one derived from impu.
func (a *Authenticator) Authenticate(ctx context.Context, req *sip.Request, impu string, proxy bool) Result {
	return a.authenticate(ctx, req, impu, proxy, false)
}

// Register is Authenticate for a REGISTER at the registrar, except that a
// single-use nonce is not consumed here: Result.Nonce names it, and the
// registrar consumes it in the same replicated write that records the
// registration, so a registration costs one write rather than two. A
// caller that finds the nonce used answers with Stale.
func (a *Authenticator) Register(ctx context.Context, req *sip.Request, impu string) Result {
	return a.authenticate(ctx, req, impu, false, true)
}

// Stale challenges req again with stale=true, for a response whose nonce
// turned out to be used.
func (a *Authenticator) Stale(ctx context.Context, req *sip.Request, impu string, proxy bool) Result {
	c, err := a.credentials(req, proxy)
	if err != nil {
		return a.reject(req, 400, "", fmt.Errorf("malformed %s: %w", credentialsHeader(proxy), err))
	}
	return a.challenge(ctx, req, impu, proxy, c, true, nil)
}

func (a *Authenticator) authenticate(ctx context.Context, req *sip.Request, impu string, proxy, deferUse bool) Result {
	// A local kv leader may commit without looking at ctx, so a request
	// whose caller has given up must not go on to consume a challenge.
	if err := ctx.Err(); err != nil {
		return a.storeFailure(req, "", fmt.Errorf("authenticate: %w", err))
	}
	c, err := a.credentials(req, proxy)
	if err != nil {
		return a.reject(req, 400, "", fmt.Errorf("malformed %s: %w", credentialsHeader(proxy), err))
	}
	if c == nil {
		return a.challenge(ctx, req, impu, proxy, nil, false, nil)
	}
	if !proxy {
		switch c.integrity {
		case "tls-yes", "ip-assoc-yes", "auth-done":
			return Result{OK: true, IMPI: a.impiOf(c, impu), Protected: true}
		case "yes":
			if c.response == "" {
				return Result{OK: true, IMPI: a.impiOf(c, impu), Protected: true}
			}
		}
	}
	if c.auts != "" {
		return a.resync(ctx, req, impu, proxy, c)
	}
	if c.response == "" {
		return a.challenge(ctx, req, impu, proxy, c, false, nil)
	}
	if err := c.checkResponse(); err != nil {
		return a.reject(req, 400, c.username, fmt.Errorf("malformed %s: %w", credentialsHeader(proxy), err))
	}
	return a.verify(ctx, req, impu, proxy, c, deferUse)
}

func credentialsHeader(proxy bool) string {
	if proxy {
		return "Proxy-Authorization"
	}
	return "Authorization"
}

// credentials returns the Digest credentials of req meant for this realm:
// the header whose realm is Options.Realm, else the first Digest one.
func (a *Authenticator) credentials(req *sip.Request, proxy bool) (*credentials, error) {
	var first *credentials
	for _, h := range header.Get(req, credentialsHeader(proxy)) {
		c, err := parseCredentials(h.Value())
		if errors.Is(err, errNotDigest) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if a.opts.Realm != "" && strings.EqualFold(c.realm, a.opts.Realm) {
			return c, nil
		}
		if first == nil {
			first = c
		}
	}
	return first, nil
}

// impiOf is the private identity c names, else the one derived from impu.
func (a *Authenticator) impiOf(c *credentials, impu string) string {
	if c != nil && c.username != "" {
		return c.username
	}
	if impu == "" {
		return ""
	}
	return hss.DefaultPrivateID(impu)
}

func challengeKey(impi, nonce string) string { return impi + "/" + nonce }

// challenge fetches a vector for the request's private identity, stores a
// challenge and returns it as a 401 or 407. resync is RAND‖AUTS for an AKA
// resynchronisation.
func (a *Authenticator) challenge(ctx context.Context, req *sip.Request, impu string, proxy bool, c *credentials, stale bool, resync []byte) Result {
	impi := a.impiOf(c, impu)
	if impi == "" {
		return a.reject(req, 403, "", errors.New("no private identity to authenticate"))
	}
	want := hss.SchemeAny
	akaVersion := SchemeAKAv1
	if c != nil {
		switch {
		case strings.EqualFold(c.algorithm, SchemeAKAv1.String()):
			want = hss.SchemeAKA
		case strings.EqualFold(c.algorithm, SchemeAKAv2.String()):
			want, akaVersion = hss.SchemeAKA, SchemeAKAv2
		}
	}
	if resync != nil {
		want = hss.SchemeAKA
	}
	av, err := a.opts.HSS.AuthVector(ctx, hss.AVRequest{IMPI: impi, IMPU: impu, Scheme: want, Resync: resync})
	if err != nil {
		return a.hssFailure(req, impi, fmt.Errorf("authentication vector for %q: %w", impi, err))
	}
	var (
		ch    challenge
		nonce string
	)
	switch {
	case av.Digest != nil:
		nonce, err = a.random(16)
		if err != nil {
			return a.reject(req, 500, impi, err)
		}
		ch = challenge{Scheme: SchemeDigest, Realm: av.Digest.Realm, HA1: strings.ToLower(av.Digest.HA1)}
	case av.AKA != nil:
		realm := a.opts.Realm
		if c != nil && c.realm != "" {
			realm = c.realm
		} else if realm == "" {
			if i := strings.LastIndexByte(impi, '@'); i >= 0 {
				realm = impi[i+1:]
			}
		}
		nonce = av.AKA.Challenge()
		ch = challenge{Scheme: akaVersion, Realm: realm, HA1: akaHA1(akaVersion, impi, realm, av.AKA),
			CK: av.AKA.CK, IK: av.AKA.IK}
	default:
		return a.reject(req, 500, impi, fmt.Errorf("authentication vector for %q is empty", impi))
	}
	if ch.Opaque, err = a.random(8); err != nil {
		return a.reject(req, 500, impi, err)
	}
	ch.Proxy, ch.IMPU = proxy, impu
	ch.Expires = a.opts.Clock.Now().Add(a.opts.ChallengeTTL).UnixNano()
	// Most answers come back to this node: keep the challenge at hand.
	if _, err := a.chals.CAS(ctx, challengeKey(impi, nonce), ch, a.opts.ChallengeTTL, 0, kv.KeepCached()); err != nil {
		return a.storeFailure(req, impi, fmt.Errorf("store challenge for %q: %w", impi, err))
	}
	hdr := digest.Challenge{Realm: ch.Realm, Nonce: nonce, Opaque: ch.Opaque, Stale: stale,
		Algorithm: ch.Scheme.String(), QOP: []string{"auth"}}
	code, name := 401, "WWW-Authenticate"
	if proxy {
		code, name = 407, "Proxy-Authenticate"
	}
	res := sip.NewResponseFromRequest(req, code, reasonPhrase(code), nil)
	res.AppendHeader(sip.NewHeader(name, hdr.String()))
	a.log.DebugContext(ctx, "challenge", "impi", impi, "scheme", ch.Scheme, "stale", stale, "proxy", proxy)
	return Result{IMPI: impi, Scheme: ch.Scheme, Response: res, Err: errChallenged(stale)}
}

// errChallenged is the Err of a challenge: not a failure, but not OK yet.
func errChallenged(stale bool) error {
	if stale {
		return errors.New("challenged again: nonce unknown, expired or used")
	}
	return errors.New("challenged: no credentials")
}

// akaHA1 is the HA1 of an AKA challenge: RFC 3310 uses the binary RES as
// the password, RFC 4169 base64(HMAC-MD5(RES‖IK‖CK, "http-digest-akav2-password")).
func akaHA1(s Scheme, impi, realm string, av *hss.AKAAV) string {
	password := string(av.XRES)
	if s == SchemeAKAv2 {
		key := append(append(append([]byte{}, av.XRES...), av.IK...), av.CK...)
		m := hmac.New(md5.New, key)
		m.Write([]byte("http-digest-akav2-password"))
		password = base64.StdEncoding.EncodeToString(m.Sum(nil))
	}
	h := md5.Sum([]byte(impi + ":" + realm + ":" + password))
	return hex.EncodeToString(h[:])
}

// resync handles an AKA response carrying auts (RFC 3310 §3.4): the HSS
// checks AUTS against the challenge's RAND, adopts the USIM's sequence
// number, and a new challenge goes out.
func (a *Authenticator) resync(ctx context.Context, req *sip.Request, impu string, proxy bool, c *credentials) Result {
	bad := func(err error) Result {
		return a.reject(req, 400, c.username, fmt.Errorf("malformed %s: %w", credentialsHeader(proxy), err))
	}
	if c.username == "" || c.nonce == "" {
		return bad(errors.New("auts without username or nonce"))
	}
	auts, err := base64.StdEncoding.DecodeString(c.auts)
	if err != nil || len(auts) != 14 {
		return bad(fmt.Errorf("auts %q is not 14 base64-encoded bytes", c.auts))
	}
	nonce, err := base64.StdEncoding.DecodeString(c.nonce)
	if err != nil || len(nonce) < 32 {
		return bad(fmt.Errorf("auts with nonce %q, which is not an AKA nonce", c.nonce))
	}
	if err := a.chals.Delete(ctx, challengeKey(c.username, c.nonce)); err != nil {
		return a.storeFailure(req, c.username, fmt.Errorf("drop challenge of %q: %w", c.username, err))
	}
	a.log.InfoContext(ctx, "AKA resynchronisation", "impi", c.username)
	return a.challenge(ctx, req, impu, proxy, c, false, append(nonce[:16:16], auts...))
}

// verify checks a challenge response.
func (a *Authenticator) verify(ctx context.Context, req *sip.Request, impu string, proxy bool, c *credentials, deferUse bool) Result {
	key := challengeKey(c.username, c.nonce)
	// A cached copy is safe: every acceptance below is confirmed by a
	// compare-and-set, here or in the registration that consumes the nonce.
	ch, ver, err := a.chals.Get(ctx, key, kv.Cached())
	if errors.Is(err, kv.ErrNotFound) {
		return a.challenge(ctx, req, impu, proxy, c, true, nil)
	}
	if err != nil {
		return a.storeFailure(req, c.username, fmt.Errorf("challenge of %q: %w", c.username, err))
	}
	if a.opts.Clock.Now().UnixNano() >= ch.Expires || ch.Proxy != proxy || (ch.IMPU != "" && ch.IMPU != impu) {
		return a.challenge(ctx, req, impu, proxy, c, true, nil)
	}
	forbid := func(err error) Result {
		if derr := a.chals.Delete(ctx, key); derr != nil {
			a.log.WarnContext(ctx, "could not drop a failed challenge", "impi", c.username, "err", derr)
		}
		a.log.InfoContext(ctx, "authentication failed", "impi", c.username, "scheme", ch.Scheme, "err", err)
		return a.reject(req, 403, c.username, err)
	}
	switch {
	case c.realm != ch.Realm:
		return forbid(fmt.Errorf("realm %q is not the challenge's %q", c.realm, ch.Realm))
	case c.opaque != ch.Opaque:
		return forbid(errors.New("opaque does not match the challenge"))
	case c.algorithm != "" && !strings.EqualFold(c.algorithm, ch.Scheme.String()):
		return forbid(fmt.Errorf("algorithm %q is not the challenge's %s", c.algorithm, ch.Scheme))
	}
	if err := matchURI(c.uri, req.Recipient); err != nil {
		return a.reject(req, 400, c.username, fmt.Errorf("malformed %s: %w", credentialsHeader(proxy), err))
	}
	nc := max(c.nc, 1) // without qop a response counts as the first use
	if nc <= ch.NC || (!a.opts.NonceCountSupported && nc > 1) {
		return a.challenge(ctx, req, impu, proxy, c, true, nil)
	}
	want, err := expectedResponse(ch, req.Method.String(), c)
	if err != nil {
		return a.reject(req, 500, c.username, err)
	}
	if subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(c.response))) != 1 {
		return forbid(errors.New("wrong response"))
	}
	consume := func(ctx context.Context) error {
		// Single use: of two concurrent responses only one may delete it.
		err := a.chals.DeleteIf(ctx, key, ver)
		if errors.Is(err, kv.ErrConflict) || errors.Is(err, kv.ErrNotFound) {
			return ErrNonceUsed
		}
		if err != nil {
			return fmt.Errorf("consume challenge of %q: %w", c.username, err)
		}
		return nil
	}
	var nonce *Nonce
	switch {
	case a.opts.NonceCountSupported:
		if res, ok := a.advanceNC(ctx, req, impu, proxy, c, key, ch, ver, nc); !ok {
			return res
		}
	case deferUse:
		nonce = &Nonce{Key: key, Expires: ch.Expires / int64(time.Millisecond), consume: consume}
	default:
		err := consume(ctx)
		if errors.Is(err, ErrNonceUsed) {
			return a.challenge(ctx, req, impu, proxy, c, true, nil)
		}
		if err != nil {
			return a.storeFailure(req, c.username, err)
		}
	}
	a.log.DebugContext(ctx, "authenticated", "impi", c.username, "scheme", ch.Scheme, "nc", nc)
	return Result{OK: true, IMPI: c.username, Scheme: ch.Scheme, CK: ch.CK, IK: ch.IK, Nonce: nonce}
}

// advanceNC records nc as the highest nonce-count of the challenge and
// extends its life, so that a later response must use a higher one.
func (a *Authenticator) advanceNC(ctx context.Context, req *sip.Request, impu string, proxy bool, c *credentials,
	key string, ch challenge, ver kv.Version, nc uint32) (Result, bool) {
	for attempt := 1; ; attempt++ {
		ch.NC = nc
		ch.Expires = a.opts.Clock.Now().Add(a.opts.NonceReuseTTL).UnixNano()
		_, err := a.chals.CAS(ctx, key, ch, a.opts.NonceReuseTTL, ver)
		if err == nil {
			return Result{}, true
		}
		if !errors.Is(err, kv.ErrConflict) || attempt == casAttempts {
			return a.storeFailure(req, c.username, fmt.Errorf("record nonce-count of %q: %w", c.username, err)), false
		}
		ch, ver, err = a.chals.Get(ctx, key)
		if errors.Is(err, kv.ErrNotFound) {
			return a.challenge(ctx, req, impu, proxy, c, true, nil), false
		}
		if err != nil {
			return a.storeFailure(req, c.username, fmt.Errorf("challenge of %q: %w", c.username, err)), false
		}
		if nc <= ch.NC {
			return a.challenge(ctx, req, impu, proxy, c, true, nil), false
		}
	}
}

// expectedResponse computes the response RFC 2617 §3.2.2.1 expects for c
// from the challenge's HA1.
func expectedResponse(ch challenge, method string, c *credentials) (string, error) {
	chal := &digest.Challenge{Realm: ch.Realm, Algorithm: "MD5"}
	if c.qop != "" {
		chal.QOP = []string{"auth"}
	}
	// Nonce and opaque come from the credentials: they were matched against
	// the challenge already.
	chal.Nonce = c.nonce
	cred, err := digest.Digest(chal, digest.Options{
		Method: method, URI: c.uri, Username: c.username, A1: ch.HA1,
		Cnonce: c.cnonce, Count: int(c.nc),
	})
	if err != nil {
		return "", fmt.Errorf("compute digest response: %w", err)
	}
	return cred.Response, nil
}

// matchURI checks that the digest-uri is a URI. RFC 2617 §3.2.2.5 says a
// server should also check that it names the Request-URI, but common UAs
// (SIPp among them) put the next hop's address there for REGISTER, and the
// response is computed over the uri as sent, with single-use nonces, so a
// mismatch is accepted as Sprout accepts it.
func matchURI(uri string, _ sip.Uri) error {
	var u sip.Uri
	if err := sip.ParseUri(uri, &u); err != nil {
		return fmt.Errorf("uri %q: %w", uri, err)
	}
	return nil
}

// random returns n bytes from Options.Rand, hex-encoded.
func (a *Authenticator) random(n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(a.opts.Rand, b); err != nil {
		return "", fmt.Errorf("auth: random source: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// hssFailure maps a subscriber store error: identities that do not exist or
// may not authenticate and failed resynchronisations are 403, bad
// identities 400, anything else a server failure.
func (a *Authenticator) hssFailure(req *sip.Request, impi string, err error) Result {
	switch {
	case errors.Is(err, hss.ErrNotFound), errors.Is(err, hss.ErrMismatch), errors.Is(err, hss.ErrAuthFailed):
		a.log.Info("authentication refused", "impi", impi, "err", err)
		return a.reject(req, 403, impi, err)
	case errors.Is(err, hss.ErrInvalid):
		return a.reject(req, 400, impi, err)
	}
	return a.storeFailure(req, impi, err)
}

// storeFailure is 504 when the store did not answer in time (or found no
// leader to answer) and 500 otherwise: the subscriber is not at fault, so
// never 403.
func (a *Authenticator) storeFailure(req *sip.Request, impi string, err error) Result {
	a.log.Warn("authentication store failure", "impi", impi, "err", err)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, consensus.ErrNoQuorum) {
		return a.reject(req, 504, impi, err)
	}
	return a.reject(req, 500, impi, err)
}

func (a *Authenticator) reject(req *sip.Request, code int, impi string, err error) Result {
	return Result{IMPI: impi, Response: sip.NewResponseFromRequest(req, code, reasonPhrase(code), nil), Err: err}
}

func reasonPhrase(code int) string {
	switch code {
	case 400:
		return "Bad Request"
	case 401:
		return "Unauthorized"
	case 403:
		return "Forbidden"
	case 407:
		return "Proxy Authentication Required"
	case 504:
		return "Server Time-out"
	}
	return "Server Internal Error"
}
