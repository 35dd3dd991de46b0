package ellis

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

var linkRE = regexp.MustCompile(`http://ellis\.example\.com/resetpassword\?\S+`)

func TestPasswordRecovery(t *testing.T) {
	smtp := newSMTPCapture(t)
	e := newEnv(t, func(o *Options) { o.SMTPSmarthost = smtp.ln.Addr().String(); o.MailFrom = "ellis@example.com" })
	alice := e.signup("alice@example.com")
	alice.json("GET", numbersPath("alice@example.com"), nil).want(t, http.StatusOK)

	// No token: a recovery mail, and the same answer for unknown addresses.
	e.client().do("POST", "/accounts/nobody@example.com/password", "", nil).want(t, http.StatusOK)
	e.client().do("POST", "/accounts/alice@example.com/password", "", nil).want(t, http.StatusOK)
	msg := smtp.next(t)
	for _, want := range []string{"RCPT <alice@example.com>", "To: \"Test alice@example.com\" <alice@example.com>", "From: \"Stillwater\" <ellis@example.com>", "Subject: Password recovery"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("mail lacks %q:\n%s", want, msg)
		}
	}
	link, err := url.Parse(linkRE.FindString(msg))
	if err != nil || link.Query().Get("token") == "" || link.Query().Get("email") != "alice@example.com" {
		t.Fatalf("no recovery link in:\n%s", msg)
	}
	token := link.Query().Get("token")
	select {
	case m := <-smtp.msgs:
		t.Fatalf("mail sent for an unknown address:\n%s", m)
	case <-time.After(100 * time.Millisecond):
	}

	p := "/accounts/alice@example.com/password"
	e.client().do("POST", p, "text/plain", []byte("new-secret"), "NGV-Recovery-Token", "wrong").want(t, http.StatusBadRequest)
	e.client().do("POST", "/accounts/nobody@example.com/password", "text/plain", []byte("new-secret"), "NGV-Recovery-Token", token).want(t, http.StatusBadRequest)
	e.client().do("POST", p, "text/plain", []byte("short"), "NGV-Recovery-Token", token).want(t, http.StatusBadRequest)
	e.client().do("POST", p, "text/plain", []byte("new-secret"), "NGV-Recovery-Token", token).want(t, http.StatusOK)
	// A token works once.
	e.client().form("POST", p, url.Values{"recovery_token": {token}, "password": {"other-secret"}}).want(t, http.StatusBadRequest)

	// The old password and the sessions it opened are gone.
	alice.json("GET", numbersPath("alice@example.com"), nil).want(t, http.StatusForbidden)
	e.client().json("POST", "/session", map[string]string{"email": "alice@example.com", "password": "secret123"}).want(t, http.StatusForbidden)
	e.client().json("POST", "/session", map[string]string{"email": "alice@example.com", "password": "new-secret"}).want(t, http.StatusCreated)

	// Tokens expire.
	e.client().do("POST", p, "", nil).want(t, http.StatusOK)
	token = linkRE.FindString(smtp.next(t))
	u, _ := url.Parse(token)
	e.clock.Add(recoveryLifetime + time.Second)
	e.client().do("POST", p, "text/plain", []byte("newer-secret"), "NGV-Recovery-Token", u.Query().Get("token")).want(t, http.StatusBadRequest)
}

func TestRecoveryThrottled(t *testing.T) {
	e := newEnv(t, nil)
	var last resp
	for range 11 {
		last = e.client().do("POST", "/accounts/nobody@example.com/password", "", nil)
	}
	last.want(t, http.StatusServiceUnavailable)
	if last.header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
	e.clock.Add(time.Minute)
	e.client().do("POST", "/accounts/nobody@example.com/password", "", nil).want(t, http.StatusOK)
}
