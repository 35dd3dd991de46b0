package ellis

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/mail"
	"net/smtp"
	"net/url"
	"strings"
	"time"
)

// retryError is a throttled request, answered 503 with Retry-After.
type retryError struct {
	err     *statusError
	seconds int
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

func (s *Server) throttle(b *bucket) error {
	ok, wait := b.take(s.clock.Now())
	if ok {
		return nil
	}
	return &retryError{err: errf(http.StatusServiceUnavailable, "Request throttled"), seconds: int(wait/time.Second) + 1}
}

// requestRecovery mails a recovery link if the account exists; the caller
// learns nothing either way.
func (s *Server) requestRecovery(r *http.Request, email string) error {
	if err := s.throttle(s.mailLimit); err != nil {
		s.log.Warn("password recovery mail throttled")
		return err
	}
	a, token, err := s.startRecovery(r.Context(), email)
	if err != nil {
		return err
	}
	if token == "" {
		s.log.Info("password recovery for an unknown address ignored")
		return nil
	}
	link := (&url.URL{Scheme: "http", Host: s.opts.Hostname, Path: "/resetpassword",
		RawQuery: url.Values{"email": {a.Email}, "token": {token}}.Encode()}).String()
	msg := s.recoveryMessage(a, link)
	s.mailWG.Go(func() {
		// The request does not wait for the smarthost: its answer must not
		// depend on whether the address is known.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.sendMail(ctx, a.Email, msg); err != nil {
			s.log.Error("could not send password recovery mail", "email", a.Email, "err", err)
			return
		}
		s.log.Info("password recovery mail sent", "email", a.Email)
	})
	return nil
}

func (s *Server) completeRecovery(r *http.Request, email, token, password string) error {
	if err := s.throttle(s.recoverLimit); err != nil {
		s.log.Warn("password recovery attempts throttled")
		return err
	}
	return s.finishRecovery(r.Context(), email, token, password)
}

// recoveryMessage is the mail: plain text, as a link is all it carries.
func (s *Server) recoveryMessage(a account, link string) []byte {
	var b bytes.Buffer
	to := mail.Address{Name: a.FullName, Address: a.Email}
	from := mail.Address{Name: "Stillwater", Address: s.opts.MailFrom}
	fmt.Fprintf(&b, "From: %s\r\n", from.String())
	fmt.Fprintf(&b, "To: %s\r\n", to.String())
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", "Password recovery"))
	fmt.Fprintf(&b, "Date: %s\r\n", s.clock.Now().Format(time.RFC1123Z))
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	name := a.FullName
	if name == "" {
		name = a.Email
	}
	fmt.Fprintf(&b, "Hi %s,\r\n\r\n", name)
	b.WriteString("We were told that you forgot your password. To choose a new one,\r\n")
	b.WriteString("open the link below. It is valid for one hour.\r\n\r\n")
	b.WriteString(link + "\r\n\r\n")
	b.WriteString("If you did not ask for this, ignore this mail: your password is unchanged.\r\n")
	return b.Bytes()
}

// sendMail delivers msg through the smarthost with net/smtp, using STARTTLS
// when offered and authenticating when a user name is configured.
func (s *Server) sendMail(ctx context.Context, to string, msg []byte) error {
	host := s.opts.SMTPSmarthost
	if host == "" {
		s.log.Warn("no smtp_smarthost: password recovery mail dropped", "email", to)
		return nil
	}
	if _, _, err := net.SplitHostPort(host); err != nil {
		host = net.JoinHostPort(host, "25")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return fmt.Errorf("smtp %s: %w", host, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	name, _, _ := net.SplitHostPort(host)
	c, err := smtp.NewClient(conn, name)
	if err != nil {
		return fmt.Errorf("smtp %s: %w", host, err)
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(&tls.Config{ServerName: name}); err != nil {
			return fmt.Errorf("smtp %s: starttls: %w", host, err)
		}
	}
	if s.opts.SMTPUsername != "" {
		if err := c.Auth(smtp.PlainAuth("", s.opts.SMTPUsername, s.opts.SMTPPassword, name)); err != nil {
			return fmt.Errorf("smtp %s: auth: %w", host, err)
		}
	}
	if err := c.Mail(s.opts.MailFrom); err != nil {
		return fmt.Errorf("smtp %s: MAIL FROM: %w", host, err)
	}
	if err := c.Rcpt(to); err != nil {
		return fmt.Errorf("smtp %s: RCPT TO: %w", host, err)
	}
	wc, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp %s: DATA: %w", host, err)
	}
	if _, err := wc.Write(msg); err != nil {
		return fmt.Errorf("smtp %s: DATA: %w", host, err)
	}
	if err := wc.Close(); err != nil {
		return fmt.Errorf("smtp %s: DATA: %w", host, err)
	}
	if err := c.Quit(); err != nil && !strings.Contains(err.Error(), "closed") {
		return fmt.Errorf("smtp %s: QUIT: %w", host, err)
	}
	return nil
}
