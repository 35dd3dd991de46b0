package homestead

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"stillwater/consensus"
	"stillwater/diameter/hss"
)

// Option adjusts a handler.
type Option func(*options)

type options struct {
	log *slog.Logger
}

// WithLogger sets the handler's logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

func newOptions(opts []Option) options {
	o := options{log: slog.Default()}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Body limits: provisioning documents are small; bulk requests carry up to
// hss.MaxBulk subscribers.
const (
	maxBody     = 1 << 20
	maxBulkBody = 64 << 20
)

// errorBody is the JSON body of every error response, as Homestead-prov's.
type errorBody struct {
	Status  int    `json:"status"`
	Message string `json:"message"`
	Reason  string `json:"reason"`
	Error   bool   `json:"error"`
}

func writeError(w http.ResponseWriter, code int, reason string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // reasons quote XML elements
	enc.Encode(errorBody{Status: code, Message: http.StatusText(code), Reason: reason, Error: true})
}

// fail answers err with the status its kind calls for.
func fail(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	code := statusOf(err)
	if code >= 500 {
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeError(w, code, reason(err))
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, hss.ErrInvalid), errors.Is(err, hss.ErrNotRegistered):
		return http.StatusBadRequest
	case errors.Is(err, hss.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, hss.ErrMismatch), errors.Is(err, hss.ErrAuthFailed):
		return http.StatusForbidden
	case errors.Is(err, hss.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, consensus.ErrNoQuorum), errors.Is(err, consensus.ErrStopped),
		errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// reason is err's message without the package prefixes of the sentinel
// errors, which say nothing to an HTTP client the status does not.
func reason(err error) string {
	msg := err.Error()
	for _, p := range []string{"hss: not found: ", "hss: invalid input: ", "hss: identity mismatch: ", "hss: conflict: ", "hss: "} {
		msg = strings.ReplaceAll(msg, p, "")
	}
	return msg
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		writeError(w, http.StatusInternalServerError, "encoding the response: "+err.Error())
		return
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	w.Write(b)
}

func writeXML(w http.ResponseWriter, code int, doc []byte) {
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("Content-Length", strconv.Itoa(len(doc)))
	w.WriteHeader(code)
	w.Write(doc)
}

// readBody reads a request body of at most limit bytes.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, fmt.Errorf("%w: body larger than %d bytes", hss.ErrInvalid, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: reading the body: %v", hss.ErrInvalid, err)
	}
	return b, nil
}

// decodeJSON decodes a JSON object body strictly, naming what is wrong.
func decodeJSON(body []byte, v any) error {
	if len(strings.TrimSpace(string(body))) == 0 {
		return fmt.Errorf("%w: empty body (want a JSON object)", hss.ErrInvalid)
	}
	d := json.NewDecoder(strings.NewReader(string(body)))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return fmt.Errorf("%w: invalid JSON at byte %d: %v", hss.ErrInvalid, se.Offset, err)
		case errors.As(err, &te):
			return fmt.Errorf("%w: invalid JSON: field %q must be %s, not %s", hss.ErrInvalid, te.Field, te.Type, te.Value)
		}
		return fmt.Errorf("%w: invalid JSON: %v", hss.ErrInvalid, err)
	}
	if d.More() {
		return fmt.Errorf("%w: invalid JSON: data after the object", hss.ErrInvalid)
	}
	return nil
}

// requireEmpty refuses a body on requests that take none, as Homestead-prov
// does.
func requireEmpty(w http.ResponseWriter, r *http.Request) error {
	b, err := readBody(w, r, maxBody)
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(b))) != 0 {
		return fmt.Errorf("%w: this request takes no body", hss.ErrInvalid)
	}
	return nil
}

// AKA is the JSON form of AKA credentials: hex K, OPc (or OP, from which OPc
// is derived), AMF (4 digits, default 8000) and SQN (12 digits, default 0).
// Reads return only AMF and SQN.
type AKA struct {
	K   string `json:"k,omitempty"`
	OPc string `json:"opc,omitempty"`
	OP  string `json:"op,omitempty"`
	AMF string `json:"amf,omitempty"`
	SQN string `json:"sqn,omitempty"`
}

// Credentials turns the JSON form into hss credentials.
func (a *AKA) Credentials() (*hss.AKACredentials, error) {
	if a == nil {
		return nil, nil
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: aka: %s", hss.ErrInvalid, fmt.Sprintf(format, args...))
	}
	k, err := hex.DecodeString(a.K)
	if err != nil || len(k) != 16 {
		return nil, bad("k must be 32 hexadecimal digits")
	}
	var opc []byte
	switch {
	case a.OPc != "" && a.OP != "":
		return nil, bad("give opc or op, not both")
	case a.OPc != "":
		if opc, err = hex.DecodeString(a.OPc); err != nil || len(opc) != 16 {
			return nil, bad("opc must be 32 hexadecimal digits")
		}
	case a.OP != "":
		op, err := hex.DecodeString(a.OP)
		if err != nil || len(op) != 16 {
			return nil, bad("op must be 32 hexadecimal digits")
		}
		if opc, err = hss.ComputeOPc(k, op); err != nil {
			return nil, err
		}
	default:
		return nil, bad("missing opc (or op)")
	}
	c := &hss.AKACredentials{K: k, OPc: opc, AMF: 0x8000}
	if a.AMF != "" {
		v, err := strconv.ParseUint(a.AMF, 16, 16)
		if err != nil || len(a.AMF) != 4 {
			return nil, bad("amf must be 4 hexadecimal digits")
		}
		c.AMF = uint16(v)
	}
	if a.SQN != "" {
		v, err := strconv.ParseUint(a.SQN, 16, 48)
		if err != nil || len(a.SQN) != 12 {
			return nil, bad("sqn must be 12 hexadecimal digits")
		}
		c.SQN = v
	}
	return c, nil
}
