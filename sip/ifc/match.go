package ifc

import (
	"bytes"
	"cmp"
	"io"
	"iter"
	"mime"
	"mime/multipart"
	"slices"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"

	sipheader "stillwater/sip/header"
)

// Case is how the S-CSCF serves a request: what the iFCs are evaluated
// against besides the request itself.
type Case struct {
	// Session is the session case (TS 24.229 §5.4.3.2, §5.4.3.3).
	Session SessionCase
	// Registered is whether the served user is registered. The first four
	// session cases imply it; it is read only for OriginatingCDIV.
	Registered bool
	// Registration is the kind of REGISTER (see RegistrationTypeOf); it is
	// read only for REGISTER requests.
	Registration RegistrationType
}

func (c Case) registered() bool {
	switch c.Session {
	case OriginatingRegistered, TerminatingRegistered:
		return true
	case TerminatingUnregistered, OriginatingUnregistered:
		return false
	}
	return c.Registered
}

// RegistrationTypeOf classifies a REGISTER: a de-registration when every
// binding it names expires at once (RFC 3261 §10.2.2: Contact expires
// parameters, else the Expires header), otherwise an initial registration
// or a re-registration as initial says (whether the S-CSCF already holds a
// registration for the public identity).
func RegistrationTypeOf(req *sip.Request, initial bool) RegistrationType {
	def := -1
	if h := sipheader.First(req, "Expires"); h != nil {
		if v, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil {
			def = v
		}
	}
	longest, contacts := -1, 0
	for _, h := range sipheader.Get(req, "Contact") {
		contacts++
		exp := def
		if ch, ok := h.(*sip.ContactHeader); ok {
			if v, ok := ch.Params.Get("expires"); ok {
				if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
					exp = n
				}
			}
		}
		if exp < 0 {
			exp = 3600 // the registrar's default, never zero
		}
		longest = max(longest, exp)
	}
	switch {
	case contacts > 0 && longest == 0:
		return DeRegistration
	case initial:
		return InitialRegistration
	}
	return ReRegistration
}

// Match returns the iFCs req triggers in case c, in evaluation order
// (Priority ascending, then the order given). It neither resolves shared
// sets nor applies fallback iFCs or dummy_app_server; Config does.
func Match(ifcs []IFC, req *sip.Request, c Case) []IFC {
	var out []IFC
	for _, f := range Matching(ifcs, req, c) {
		out = append(out, f)
	}
	return out
}

// Matching yields, in evaluation order, each iFC req triggers in case c
// with its index in ifcs. Each iFC is evaluated only when the iteration
// reaches it.
func Matching(ifcs []IFC, req *sip.Request, c Case) iter.Seq2[int, IFC] {
	return func(yield func(int, IFC) bool) {
		order := evaluationOrder(ifcs)
		m := message{req: req}
		for k := range ifcs {
			i := k
			if order != nil {
				i = order[k]
			}
			if ifcs[i].matches(&m, c) && !yield(i, ifcs[i]) {
				return
			}
		}
	}
}

// evaluationOrder returns the indexes of ifcs in evaluation order, or nil
// when they are in it already (as Parse returns them).
func evaluationOrder(ifcs []IFC) []int {
	byPriority := func(a, b IFC) int { return cmp.Compare(a.Priority, b.Priority) }
	if slices.IsSortedFunc(ifcs, byPriority) {
		return nil
	}
	order := make([]int, len(ifcs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return byPriority(ifcs[a], ifcs[b]) })
	return order
}

// Matches reports whether req triggers the iFC in case c.
func (f *IFC) Matches(req *sip.Request, c Case) bool {
	m := message{req: req}
	return f.matches(&m, c)
}

func (f *IFC) matches(m *message, c Case) bool {
	switch f.ProfilePart {
	case PartRegistered:
		if !c.registered() {
			return false
		}
	case PartUnregistered:
		if c.registered() {
			return false
		}
	}
	if f.Trigger == nil {
		return true
	}
	return f.Trigger.eval(m, c)
}

// eval computes the trigger point per TS 29.228 Annex F: each SPT's
// result (negated if so marked) is ORed (CNF) or ANDed (DNF) into each of
// its groups, and the groups are then ANDed (CNF) or ORed (DNF).
func (t *TriggerPoint) eval(m *message, c Case) bool {
	var vbuf, sbuf [8]bool
	vals, seen := vbuf[:], sbuf[:]
	if t.groups > len(vbuf) {
		vals, seen = make([]bool, t.groups), make([]bool, t.groups)
	}
	for i := range t.SPTs {
		s := &t.SPTs[i]
		// A CNF group once true, or a DNF group once false, stays so:
		// skip SPTs that cannot change any of their groups.
		settled := true
		for _, g := range s.slots {
			if !seen[g] || vals[g] != t.CNF {
				settled = false
				break
			}
		}
		if settled {
			continue
		}
		v := s.matches(m, c) != s.Negated
		for _, g := range s.slots {
			switch {
			case !seen[g]:
				vals[g], seen[g] = v, true
			case t.CNF:
				vals[g] = vals[g] || v
			default:
				vals[g] = vals[g] && v
			}
		}
	}
	for g := range t.groups {
		if vals[g] != t.CNF {
			return !t.CNF
		}
	}
	return t.CNF
}

// Matches reports whether the SPT's condition holds, before negation.
func (s *SPT) Matches(req *sip.Request, c Case) bool {
	m := message{req: req}
	return s.matches(&m, c)
}

func (s *SPT) matches(m *message, c Case) bool {
	switch s.Kind {
	case CondRequestURI:
		return s.RequestURI.MatchString(m.requestURI())
	case CondMethod:
		if string(m.req.Method) != s.Method {
			return false
		}
		return s.Method != "REGISTER" || len(s.RegistrationTypes) == 0 || slices.Contains(s.RegistrationTypes, c.Registration)
	case CondSessionCase:
		return s.SessionCase == c.Session
	case CondSIPHeader:
		return s.Header.matches(m.req)
	case CondSessionDescription:
		for _, l := range m.sdp() {
			if s.SessionDesc.Line.MatchString(l[:1]) && (s.SessionDesc.Content == nil || s.SessionDesc.Content.MatchString(l[2:])) {
				return true
			}
		}
	}
	return false
}

func (h *HeaderCondition) nameMatches(name string) bool {
	if h.nameRE != nil {
		long, compact := headerNames(name)
		return h.nameRE.MatchString(long) || (compact != "" && h.nameRE.MatchString(compact))
	}
	return strings.EqualFold(name, h.long) || (h.compact != "" && strings.EqualFold(name, h.compact))
}

func (h *HeaderCondition) matches(req *sip.Request) bool {
	for _, hdr := range req.Headers() {
		if !h.nameMatches(hdr.Name()) {
			continue
		}
		if h.Content == nil {
			return true
		}
		v := hdr.Value()
		if h.Content.MatchString(v) {
			return true
		}
		// A header line may carry several comma-separated values; the
		// content is tested against each (sipgo splits only the headers
		// it parses).
		if !listHeader(hdr.Name()) {
			continue
		}
		for part := range values(v) {
			if len(part) < len(v) && h.Content.MatchString(part) {
				return true
			}
		}
	}
	return false
}

// listHeader reports whether a header's commas may separate values, which
// is so for every header but those whose single value may hold commas.
func listHeader(name string) bool {
	switch strings.ToLower(name) {
	case "date", "authorization", "proxy-authorization", "www-authenticate", "proxy-authenticate",
		"authentication-info", "subject", "s", "user-agent", "server", "organization", "retry-after",
		"timestamp", "call-id", "i":
		return false
	}
	return true
}

// values yields the comma-separated values of a header, ignoring commas
// in quoted strings and <...> URIs.
func values(v string) iter.Seq[string] {
	return func(yield func(string) bool) {
		start, quoted, angle := 0, false, false
		for i := 0; i < len(v); i++ {
			switch ch := v[i]; {
			case quoted && ch == '\\':
				i++
			case ch == '"':
				quoted = !quoted
			case quoted:
			case ch == '<':
				angle = true
			case ch == '>':
				angle = false
			case ch == ',' && !angle:
				if !yield(strings.TrimSpace(v[start:i])) {
					return
				}
				start = i + 1
			}
		}
		yield(strings.TrimSpace(v[start:]))
	}
}

// message caches what several SPTs may need from one request.
type message struct {
	req      *sip.Request
	ruri     string
	ruriDone bool
	lines    []string
	sdpDone  bool
}

// requestURI is what a RequestURI SPT is matched against: per TS 29.228
// Annex F (table F.1) the hostport of a SIP or SIPS URI, as Clearwater
// did; for any other scheme (tel, urn, ...) the whole URI.
func (m *message) requestURI() string {
	if !m.ruriDone {
		u := &m.req.Recipient
		switch u.Scheme {
		case "", "sip", "sips":
			host := u.Host
			if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
				host = "[" + host + "]"
			}
			if u.Port > 0 {
				host += ":" + strconv.Itoa(u.Port)
			}
			m.ruri = host
		default:
			m.ruri = u.String()
		}
		m.ruriDone = true
	}
	return m.ruri
}

// sdp returns the well-formed lines ("x=...") of the request's session
// descriptions: an application/sdp body, or the application/sdp parts of a
// multipart body.
func (m *message) sdp() []string {
	if m.sdpDone {
		return m.lines
	}
	m.sdpDone = true
	body := m.req.Body()
	ct := m.req.ContentType()
	if len(body) == 0 || ct == nil {
		return nil
	}
	m.lines = appendSDP(m.lines, ct.Value(), body, 0)
	return m.lines
}

// maxMultipartDepth bounds nested multipart bodies.
const maxMultipartDepth = 4

func appendSDP(lines []string, contentType string, body []byte, depth int) []string {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return lines
	}
	switch {
	case mt == "application/sdp":
		for line := range strings.SplitSeq(string(body), "\n") {
			line = strings.TrimSuffix(line, "\r")
			if len(line) >= 2 && line[1] == '=' {
				lines = append(lines, line)
			}
		}
	case strings.HasPrefix(mt, "multipart/") && params["boundary"] != "" && depth < maxMultipartDepth:
		r := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		for {
			p, err := r.NextRawPart()
			if err != nil {
				break
			}
			data, err := io.ReadAll(p)
			if err != nil {
				break
			}
			lines = appendSDP(lines, p.Header.Get("Content-Type"), data, depth+1)
		}
	}
	return lines
}
