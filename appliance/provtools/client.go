package provtools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client reaches a node's Homestead-prov API.
type Client struct {
	// BaseURL is the API's root, e.g. http://127.0.0.1:8889.
	BaseURL string
	// HTTP defaults to a client with a 60 s timeout.
	HTTP *http.Client
}

// NewClient returns a client for the Homestead-prov API at addr: a URL, or
// host:port (http is assumed).
func NewClient(addr string) *Client {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return &Client{BaseURL: strings.TrimSuffix(addr, "/")}
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Timeout: 60 * time.Second}
}

// response is an API answer.
type response struct {
	status   int
	location string
	body     []byte
}

// apiError is an answer with an unexpected status; its message is the
// API's reason.
type apiError struct {
	method, path string
	status       int
	reason       string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s %s: %d %s: %s", e.method, e.path, e.status, http.StatusText(e.status), e.reason)
}

// isStatus reports whether err is an API answer with status code.
func isStatus(err error, code int) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.status == code
}

// do sends a request; any status outside want is an *apiError.
func (c *Client) do(ctx context.Context, method, path string, body []byte, want ...int) (response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, rd)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	hc := *c.http()
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	r := response{status: resp.StatusCode, location: resp.Header.Get("Location"), body: b}
	for _, w := range want {
		if r.status == w {
			return r, nil
		}
	}
	reason := strings.TrimSpace(string(b))
	var eb struct {
		Reason string `json:"reason"`
	}
	if json.Unmarshal(b, &eb) == nil && eb.Reason != "" {
		reason = eb.Reason
	}
	return r, &apiError{method: method, path: path, status: r.status, reason: reason}
}

func (c *Client) getJSON(ctx context.Context, path string, v any) error {
	r, err := c.do(ctx, http.MethodGet, path, nil, http.StatusOK)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		return fmt.Errorf("GET %s: bad answer: %w", path, err)
	}
	return nil
}

// esc escapes one path segment (an identity); ':' '@' and '+' stay as
// they are, as Clearwater's tools sent them.
func esc(s string) string { return url.PathEscape(s) }
