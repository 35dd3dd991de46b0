package ellis

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

const (
	sessionCookie = "ellis_session"
	formCookie    = "ellis_form" // nonce binding the forms shown before login
	sessionTTL    = 7 * 24 * time.Hour
	csrfField     = "csrf_token"
)

// claims is what a session cookie asserts.
type claims struct {
	Key    string `json:"k"` // account key
	Epoch  uint64 `json:"g"` // the account's epoch when issued
	Expiry int64  `json:"x"` // Unix seconds
	Nonce  string `json:"n"` // binds the session's form tokens
}

// session is a verified session.
type session struct {
	acct  account
	nonce string
}

var b64 = base64.RawURLEncoding

func (s *Server) sign(payload string) string {
	m := hmac.New(sha256.New, s.sessionKey)
	m.Write([]byte(payload))
	return b64.EncodeToString(m.Sum(nil))
}

// startSession sets a new session cookie for the account.
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, a account) session {
	c := claims{Key: accountKey(a.Email), Epoch: a.Epoch, Expiry: s.clock.Now().Add(sessionTTL).Unix(), Nonce: rand.Text()}
	body, _ := json.Marshal(c)
	payload := b64.EncodeToString(body)
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: payload + "." + s.sign(payload), Path: "/",
		MaxAge: int(sessionTTL / time.Second), HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode,
	})
	return session{acct: a, nonce: c.Nonce}
}

func endSession(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
}

// session returns the request's session if its cookie is authentic, not
// expired, and issued since the account's password last changed.
func (s *Server) session(r *http.Request) (session, bool) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return session{}, false
	}
	payload, mac, ok := strings.Cut(ck.Value, ".")
	if !ok || !hmac.Equal([]byte(mac), []byte(s.sign(payload))) {
		return session{}, false
	}
	body, err := b64.DecodeString(payload)
	if err != nil {
		return session{}, false
	}
	var c claims
	if json.Unmarshal(body, &c) != nil || s.clock.Now().Unix() >= c.Expiry {
		return session{}, false
	}
	a, _, err := s.getAccount(r.Context(), c.Key)
	if err != nil {
		if !isNotFound(err) {
			s.log.Warn("could not read a session's account", "account", c.Key, "err", err)
		}
		return session{}, false
	}
	if a.Epoch != c.Epoch {
		return session{}, false
	}
	return session{acct: a, nonce: c.Nonce}, true
}

func isNotFound(err error) bool {
	st, _ := statusOf(err)
	return st == http.StatusNotFound
}

// csrfToken is the form token bound to a nonce: only this server can derive
// it, and only a browser holding the nonce's cookie can use it.
func (s *Server) csrfToken(scope, nonce string) string {
	m := hmac.New(sha256.New, s.csrfKey)
	m.Write([]byte(scope + "\x00" + nonce))
	return b64.EncodeToString(m.Sum(nil))
}

// formNonce returns the pre-login form nonce, setting its cookie if the
// browser has none yet.
func formNonce(w http.ResponseWriter, r *http.Request) string {
	if ck, err := r.Cookie(formCookie); err == nil && len(ck.Value) >= 16 {
		return ck.Value
	}
	n := rand.Text()
	http.SetCookie(w, &http.Cookie{Name: formCookie, Value: n, Path: "/", HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
	return n
}

// checkCSRF verifies a form's token: bound to the session when there is
// one, else to the pre-login form cookie.
func (s *Server) checkCSRF(r *http.Request, sess *session) bool {
	got := r.PostFormValue(csrfField)
	if got == "" {
		return false
	}
	var want string
	if sess != nil {
		want = s.csrfToken("session", sess.nonce)
	} else {
		ck, err := r.Cookie(formCookie)
		if err != nil || ck.Value == "" {
			return false
		}
		want = s.csrfToken("form", ck.Value)
	}
	return hmac.Equal([]byte(got), []byte(want))
}
