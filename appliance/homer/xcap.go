package homer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"stillwater/kv"
)

// Path pieces of a document's URL: the application usage (Clearwater's
// AUID), the users tree, and the document name.
const (
	usersPrefix  = "/org.etsi.ngn.simservs/users/"
	documentName = "/simservs.xml"
)

// NewHandler returns the XCAP interface over s, to be served on port 7888.
func NewHandler(s *Store) http.Handler { return &xcap{s: s} }

type xcap struct{ s *Store }

func (x *xcap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	impu, status, msg := documentIMPU(r.URL)
	if status != 0 {
		http.Error(w, msg, status)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), x.s.timeout)
	defer cancel()
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		x.get(ctx, w, r, impu)
	case http.MethodPut:
		x.put(ctx, w, r, impu)
	case http.MethodDelete:
		x.delete(ctx, w, r, impu)
	default:
		w.Header().Set("Allow", "GET, HEAD, PUT, DELETE")
		http.Error(w, "method not allowed: use GET, PUT or DELETE on simservs.xml", http.StatusMethodNotAllowed)
	}
}

// documentIMPU extracts the IMPU from a document URL, or gives the status
// and message to answer with.
func documentIMPU(u *url.URL) (impu string, status int, msg string) {
	const notFound = "not found: documents are at " + usersPrefix + "<impu>" + documentName
	rest, ok := strings.CutPrefix(u.EscapedPath(), usersPrefix)
	if !ok {
		return "", http.StatusNotFound, notFound
	}
	// The IMPU is one path segment (escaped or not: ':', '@' and '+' are
	// legal in a segment); the first "/simservs.xml" ending the path or
	// followed by a node selector ends it.
	i := -1
	for off := 0; ; {
		j := strings.Index(rest[off:], documentName)
		if j < 0 {
			break
		}
		j += off
		if end := j + len(documentName); end == len(rest) || rest[end] == '/' {
			i = j
			break
		}
		off = j + 1
	}
	if i <= 0 {
		return "", http.StatusNotFound, notFound
	}
	if tail := rest[i+len(documentName):]; tail != "" {
		if strings.HasPrefix(tail, "/~~") {
			return "", http.StatusNotImplemented, "node selectors are not supported: GET or PUT the whole simservs.xml document"
		}
		return "", http.StatusNotFound, notFound
	}
	impu, err := url.PathUnescape(rest[:i])
	if err != nil {
		return "", http.StatusBadRequest, fmt.Sprintf("bad identity in URL: %v", err)
	}
	if err := checkIMPU(impu); err != nil {
		return "", http.StatusBadRequest, "bad identity in URL: " + err.Error()
	}
	return impu, 0, ""
}

func (x *xcap) get(ctx context.Context, w http.ResponseWriter, r *http.Request, impu string) {
	doc, err := x.s.Get(ctx, impu)
	if err != nil {
		x.fail(w, r, impu, err)
		return
	}
	tag := etag(doc.Version)
	w.Header().Set("ETag", tag)
	if im := r.Header.Get("If-Match"); im != "" && !matches(im, doc.Version, false) {
		http.Error(w, "precondition failed: the document has entity tag "+tag, http.StatusPreconditionFailed)
		return
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" && matches(inm, doc.Version, true) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(doc.XML)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(doc.XML)
	}
}

func (x *xcap) put(ctx context.Context, w http.ResponseWriter, r *http.Request, impu string) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != ContentType && mt != "application/xml" && mt != "text/xml") {
			http.Error(w, "unsupported content type "+strconv.Quote(ct)+": send "+ContentType, http.StatusUnsupportedMediaType)
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxDocumentSize))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			http.Error(w, fmt.Sprintf("simservs.xml: document is larger than %d bytes", MaxDocumentSize), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "reading the document: "+err.Error(), http.StatusBadRequest)
		return
	}
	res, err := x.s.PutIf(ctx, impu, body, condition(r.Header))
	if err != nil {
		x.fail(w, r, impu, err)
		return
	}
	w.Header().Set("ETag", etag(res.Version))
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
	}
	x.s.log.Debug("simservs document stored", "impu", impu, "version", uint64(res.Version), "created", res.Created)
	w.WriteHeader(status)
}

func (x *xcap) delete(ctx context.Context, w http.ResponseWriter, r *http.Request, impu string) {
	if err := x.s.DeleteIf(ctx, impu, condition(r.Header)); err != nil {
		x.fail(w, r, impu, err)
		return
	}
	x.s.log.Debug("simservs document deleted", "impu", impu)
	w.WriteHeader(http.StatusOK)
}

// fail answers with the status err calls for.
func (x *xcap) fail(w http.ResponseWriter, r *http.Request, impu string, err error) {
	var ve *ValidationError
	switch {
	case errors.As(err, &ve):
		// The reason alone, without the store's wrapping: it is what the
		// client must fix.
		x.s.log.Debug("simservs document refused", "impu", impu, "err", ve)
		http.Error(w, ve.Error(), http.StatusBadRequest)
	case errors.Is(err, ErrNotFound):
		http.Error(w, "simservs.xml: no document for "+impu, http.StatusNotFound)
	case errors.Is(err, ErrUnknownIdentity):
		http.Error(w, "simservs.xml: "+impu+" is not a provisioned identity", http.StatusNotFound)
	case errors.Is(err, ErrPreconditionFailed):
		http.Error(w, "precondition failed: the document's entity tag does not match If-Match or If-None-Match", http.StatusPreconditionFailed)
	case errors.Is(err, ErrBadIdentity):
		http.Error(w, "bad identity in URL: "+err.Error(), http.StatusBadRequest)
	case errors.Is(err, kv.ErrConflict):
		x.s.log.Warn("simservs write kept losing to concurrent writes", "impu", impu, "err", err)
		http.Error(w, "the document is being changed concurrently; retry", http.StatusConflict)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		x.s.log.Warn("simservs request timed out", "method", r.Method, "impu", impu, "err", err)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "storage did not answer in time; retry", http.StatusServiceUnavailable)
	default:
		x.s.log.Error("simservs request failed", "method", r.Method, "impu", impu, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
	}
}

// etag formats a version as a strong entity tag.
func etag(v kv.Version) string { return `"` + strconv.FormatUint(uint64(v), 10) + `"` }

// parseETags reads an If-Match or If-None-Match value: "*" or a list of
// entity tags. Tags this server did not issue parse as version 0, which
// matches nothing; weak tags are kept apart because If-Match compares
// strongly (RFC 9110 section 13.1).
func parseETags(h string) (star bool, strong, weak []kv.Version) {
	for _, t := range strings.Split(h, ",") {
		t = strings.TrimSpace(t)
		if t == "*" {
			star = true
			continue
		}
		isWeak := strings.HasPrefix(t, "W/")
		t = strings.TrimPrefix(t, "W/")
		var v kv.Version
		if len(t) >= 2 && t[0] == '"' && t[len(t)-1] == '"' {
			if n, err := strconv.ParseUint(t[1:len(t)-1], 10, 64); err == nil {
				v = kv.Version(n)
			}
		}
		if isWeak {
			weak = append(weak, v)
		} else {
			strong = append(strong, v)
		}
	}
	return star, strong, weak
}

// matches evaluates an If-Match (weakOK false) or If-None-Match (weakOK
// true) header against an existing document's version.
func matches(h string, v kv.Version, weakOK bool) bool {
	star, strong, weak := parseETags(h)
	if star {
		return true
	}
	for _, s := range strong {
		if s == v {
			return true
		}
	}
	if weakOK {
		for _, w := range weak {
			if w == v {
				return true
			}
		}
	}
	return false
}

// condition turns a write's If-Match and If-None-Match headers into a Cond.
func condition(h http.Header) Cond {
	var c Cond
	if im := h.Get("If-Match"); im != "" {
		star, strong, weak := parseETags(im)
		if star {
			c.Exists = true
		} else {
			c.Versions = strong
			if len(c.Versions) == 0 && len(weak) > 0 {
				c.Versions = []kv.Version{0} // only weak tags: nothing matches
			}
		}
	}
	if inm := h.Get("If-None-Match"); inm != "" {
		star, strong, weak := parseETags(inm)
		if star {
			c.Absent = true
		}
		c.NotVersions = append(strong, weak...)
	}
	return c
}
