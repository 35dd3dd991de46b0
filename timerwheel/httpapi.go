package timerwheel

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// HTTPHandler returns Chronos's timer API:
//
//	POST   /timers       create a timer      200, Location: /timers/<16 hex>-<rf>
//	PUT    /timers/<id>  create or replace   200, Location
//	DELETE /timers/<id>  delete              200, also when already gone
//
// The body is Chronos's JSON: timing.interval (seconds, required),
// timing.repeat-for (seconds; absent: one pop), callback.http.uri (required)
// and .opaque (text posted as the callback's body), reliability.
// replication-factor (default 2), statistics.tag-info [{type, count}].
// A bad body or id is answered 400 with the reason as text, a wrong method
// 405, and a failure to store (no quorum, say) 503.
func (s *Service) HTTPHandler() http.Handler { return chronosAPI{s} }

type chronosAPI struct{ s *Service }

// maxBody bounds a request body: the opaque data plus room for the rest.
const maxBody = MaxOpaque + 16<<10

func (a chronosAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/timers" || p == "/timers/":
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "method not allowed: create timers with POST /timers", http.StatusMethodNotAllowed)
			return
		}
		a.set(w, r, 0, 0)
	case strings.HasPrefix(p, "/timers/"):
		if r.Method != http.MethodPut && r.Method != http.MethodDelete {
			w.Header().Set("Allow", "PUT, DELETE")
			http.Error(w, "method not allowed: use PUT or DELETE on /timers/<id>", http.StatusMethodNotAllowed)
			return
		}
		id, rf, err := ParseID(p[len("/timers/"):])
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if r.Method == http.MethodPut {
			a.set(w, r, id, rf)
		} else {
			a.delete(w, r, id)
		}
	default:
		http.NotFound(w, r)
	}
}

func (a chronosAPI) set(w http.ResponseWriter, r *http.Request, id ID, urlRF int) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, fmt.Sprintf("body longer than %d bytes", maxBody), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
		return
	}
	t, bodyRF, err := parseChronosTimer(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if urlRF != 0 && bodyRF != 0 && urlRF != bodyRF {
		http.Error(w, fmt.Sprintf("replication factor on the timer id (%d) does not match the body (%d)", urlRF, bodyRF), http.StatusBadRequest)
		return
	}
	rf := cmpOr(bodyRF, urlRF, defaultRF)
	t.ID, t.ReplicationFactor = id, rf
	id, err = a.s.Set(r.Context(), t)
	switch {
	case errors.Is(err, ErrInvalid):
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	case err != nil:
		a.s.log.Warn("cannot store timer", "err", err)
		http.Error(w, "cannot store the timer: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Location", "/timers/"+FormatID(id, rf))
	w.WriteHeader(http.StatusOK)
}

func (a chronosAPI) delete(w http.ResponseWriter, r *http.Request, id ID) {
	if err := a.s.Delete(r.Context(), id); err != nil {
		a.s.log.Warn("cannot delete timer", "timer", id, "err", err)
		http.Error(w, "cannot delete the timer: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func cmpOr(vs ...int) int {
	for _, v := range vs {
		if v != 0 {
			return v
		}
	}
	return 0
}

type jsonObject map[string]json.RawMessage

// parseChronosTimer reads Chronos's timer JSON. rf is 0 when the body gives
// no replication factor.
func parseChronosTimer(body []byte) (t Timer, rf int, err error) {
	var doc jsonObject
	if err := json.Unmarshal(body, &doc); err != nil || doc == nil {
		return t, 0, fmt.Errorf("body is not a JSON object: %v", errOr(err, "null"))
	}
	timing, err := doc.object("timing", true)
	if err != nil {
		return t, 0, err
	}
	interval, err := timing.integer("interval", "timing.interval", true, math.MaxInt32)
	if err != nil {
		return t, 0, err
	}
	repeat, err := timing.integer("repeat-for", "timing.repeat-for", false, math.MaxInt32)
	if err != nil {
		return t, 0, err
	}
	t.Interval, t.RepeatFor = time.Duration(interval)*time.Second, time.Duration(repeat)*time.Second

	callback, err := doc.object("callback", true)
	if err != nil {
		return t, 0, err
	}
	if _, ok := callback["http"]; !ok {
		return t, 0, errors.New("callback: only \"http\" callbacks are supported")
	}
	httpCB, err := callback.object("http", true)
	if err != nil {
		return t, 0, err
	}
	if t.Callback.URI, err = httpCB.str("uri", "callback.http.uri", true); err != nil {
		return t, 0, err
	}
	if t.Callback.URI == "" {
		return t, 0, errors.New("callback.http.uri is empty")
	}
	opaque, err := httpCB.str("opaque", "callback.http.opaque", false)
	if err != nil {
		return t, 0, err
	}
	t.Callback.Opaque = []byte(opaque)

	reliability, err := doc.object("reliability", false)
	if err != nil {
		return t, 0, err
	}
	r, err := reliability.integer("replication-factor", "reliability.replication-factor", false, math.MaxUint8)
	if err != nil {
		return t, 0, err
	}
	if _, given := reliability["replication-factor"]; given && r == 0 {
		return t, 0, errors.New("reliability.replication-factor must be at least 1")
	}
	t.Tags = parseTags(doc["statistics"])
	return t, int(r), nil
}

// parseTags reads statistics.tag-info leniently, as Chronos did: a malformed
// tag is dropped, not refused; a count defaults to 1.
func parseTags(raw json.RawMessage) []Tag {
	var stats struct {
		TagInfo []json.RawMessage `json:"tag-info"`
	}
	if raw == nil || json.Unmarshal(raw, &stats) != nil {
		return nil
	}
	var tags []Tag
	for _, item := range stats.TagInfo {
		var o jsonObject
		if json.Unmarshal(item, &o) != nil || o == nil {
			continue
		}
		typ, err := o.str("type", "type", true)
		if err != nil || typ == "" {
			continue
		}
		count := int64(1)
		if _, ok := o["count"]; ok {
			if count, err = o.integer("count", "count", true, math.MaxUint32); err != nil || count == 0 {
				continue
			}
		}
		tags = append(tags, Tag{Type: typ, Count: uint32(count)})
	}
	return tags
}

func errOr(err error, s string) string {
	if err != nil {
		return err.Error()
	}
	return s
}

func (o jsonObject) object(key string, required bool) (jsonObject, error) {
	raw, ok := o[key]
	if !ok {
		if required {
			return nil, fmt.Errorf("missing %q", key)
		}
		return jsonObject{}, nil
	}
	var v jsonObject
	if err := json.Unmarshal(raw, &v); err != nil || v == nil {
		return nil, fmt.Errorf("%q should be an object", key)
	}
	return v, nil
}

func (o jsonObject) integer(key, name string, required bool, limit int64) (int64, error) {
	raw, ok := o[key]
	if !ok {
		if required {
			return 0, fmt.Errorf("missing %s", name)
		}
		return 0, nil
	}
	raw = bytes.TrimSpace(raw)
	v, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || len(raw) == 0 || raw[0] == '+' {
		return 0, fmt.Errorf("%s should be an integer", name)
	}
	if v < 0 || v > limit {
		return 0, fmt.Errorf("%s should be from 0 to %d", name, limit)
	}
	return v, nil
}

func (o jsonObject) str(key, name string, required bool) (string, error) {
	raw, ok := o[key]
	if !ok {
		if required {
			return "", fmt.Errorf("missing %s", name)
		}
		return "", nil
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", fmt.Errorf("%s should be a string", name)
	}
	return v, nil
}
