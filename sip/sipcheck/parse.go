package sipcheck

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Headers whose values sipgo parses structurally and that therefore get
// their separator whitespace removed; keys are lower-case full and compact
// names.
var structured = map[string]bool{
	"via": true, "v": true, "to": true, "t": true, "from": true, "f": true,
	"contact": true, "m": true, "route": true, "record-route": true,
}

// Headers holding name-addr / addr-spec values whose raw syntax is checked.
var nameAddr = map[string]string{
	"to": "To", "t": "To", "from": "From", "f": "From", "contact": "Contact", "m": "Contact",
}

// requestLine matches a request line whose parts are separated by single
// spaces; the URI is checked separately.
var requestLine = regexp.MustCompile(`^([!%*+\-.0-9A-Z_` + "`" + `a-z'~]+) (\S+) (SIP/\S+)$`)

// uriScheme is RFC 3986's scheme followed by a colon.
var uriScheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+\-.]*:`)

// Parse parses one SIP message received as a datagram (extra octets after a
// Content-Length-delimited body are ignored, RFC 4475 dblreq). It never
// panics. On failure the error is an *Error: 400, 416 for a Request-URI with
// an unsupported scheme, 505 never (that is CheckRequest's). When the
// failing message is a request whose headers could be read, the request is
// returned with the error so the caller can answer it (Error.Response); its
// Request-URI is then a placeholder.
func Parse(data []byte) (msg sip.Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			msg, err = nil, &Error{Code: 400, Reason: "Bad Request (unparseable message)", Err: fmt.Errorf("sip parser panic: %v", r)}
		}
	}()
	head, body, ok := splitHead(data)
	if !ok {
		return nil, &Error{Code: 400, Reason: "Bad Request (no end of header section)", Err: sip.ErrParseEOF}
	}
	lines, err := unfold(head)
	if err != nil {
		return nil, err
	}
	synErr := checkSyntax(lines[1:])
	norm := rebuild(lines, body)

	msg, perr := sip.ParseMessage(norm)
	if perr != nil {
		msg, err := salvage(lines, body, msg, perr)
		if e, ok := err.(*Error); ok && synErr != nil && e.Code == 400 {
			// Our reason names the header; keep sipgo's error as the cause.
			synErr.Err = perr
			return msg, synErr
		}
		return msg, err
	}
	if req, ok := msg.(*sip.Request); ok {
		// sipgo upper-cases the method; methods are case-sensitive
		// (RFC 3261 §7.1) and must match CSeq exactly.
		if m := requestLine.FindStringSubmatch(lines[0]); m != nil {
			req.Method = sip.RequestMethod(m[1])
		}
	}
	if synErr != nil {
		return msg, synErr
	}
	return msg, nil
}

// splitHead splits data at the empty line ending the header section.
func splitHead(data []byte) (head, body []byte, ok bool) {
	i := bytes.Index(data, []byte("\r\n\r\n"))
	if i < 0 {
		return nil, nil, false
	}
	return data[:i], data[i+4:], true
}

// unfold splits the header section into the start line and one line per
// header, joining continuation lines with a single space.
func unfold(head []byte) ([]string, error) {
	raw := strings.Split(string(head), "\r\n")
	lines := make([]string, 0, len(raw))
	for i, l := range raw {
		if strings.ContainsAny(l, "\r\n") {
			return nil, badRequest("bare CR or LF in header section")
		}
		if i > 0 && l != "" && (l[0] == ' ' || l[0] == '\t') {
			if len(lines) < 2 {
				return nil, badRequest("continuation line after the start line")
			}
			lines[len(lines)-1] = strings.TrimRight(lines[len(lines)-1], " \t") + " " + strings.Trim(l, " \t")
			continue
		}
		lines = append(lines, l)
	}
	return lines, nil
}

// splitHeader returns a header line's lower-cased name and trimmed value.
func splitHeader(line string) (name, value string, ok bool) {
	i := strings.IndexByte(line, ':')
	if i < 0 {
		return "", "", false
	}
	return strings.ToLower(strings.Trim(line[:i], " \t")), strings.Trim(line[i+1:], " \t"), true
}

// rebuild reassembles the message with unfolded headers and the separator
// whitespace of structured headers removed.
func rebuild(lines []string, body []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(body) + 64*len(lines))
	b.WriteString(lines[0])
	b.WriteString("\r\n")
	for _, l := range lines[1:] {
		name, value, ok := splitHeader(l)
		if ok && structured[name] {
			l = l[:strings.IndexByte(l, ':')]
			l = strings.TrimRight(l, " \t") + ": " + compactSeparators(value)
		}
		b.WriteString(l)
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes()
}

// compactSeparators removes the whitespace RFC 3261 §25.1 allows around
// ; = / , outside quoted strings and angle brackets, and collapses other
// whitespace runs there to one space.
func compactSeparators(v string) string {
	var b strings.Builder
	b.Grow(len(v))
	inQuote, inAngle, escaped, pendingSpace := false, false, false, false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case inQuote:
			b.WriteByte(c)
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inQuote = false
			}
			continue
		case inAngle:
			b.WriteByte(c)
			if c == '>' {
				inAngle = false
			}
			continue
		}
		switch c {
		case ' ', '\t':
			pendingSpace = true
			continue
		case ';', '=', '/', ',':
			pendingSpace = false
			b.WriteByte(c)
			for i+1 < len(v) && (v[i+1] == ' ' || v[i+1] == '\t') {
				i++
			}
			continue
		}
		if pendingSpace && b.Len() > 0 {
			b.WriteByte(' ')
		}
		pendingSpace = false
		b.WriteByte(c)
		switch c {
		case '"':
			inQuote = true
		case '<':
			inAngle = true
		}
	}
	return b.String()
}

// salvage classifies a parser failure. For a request whose start line is
// well formed apart from the Request-URI, it reparses with a placeholder URI
// so the caller gets the headers to answer with.
func salvage(lines []string, body []byte, partial sip.Message, perr error) (sip.Message, error) {
	e := &Error{Code: 400, Reason: "Bad Request (malformed message)", Err: perr}
	m := requestLine.FindStringSubmatch(lines[0])
	if m == nil {
		if strings.HasPrefix(lines[0], "SIP/") {
			e.Reason = "Bad Request (malformed response)"
		} else {
			e.Reason = "Bad Request (malformed start line)"
		}
		return nil, e
	}
	var u sip.Uri
	if uerr := sip.ParseUri(m[2], &u); uerr != nil {
		e.Reason = "Bad Request (malformed Request-URI)"
		if uriScheme.MatchString(m[2]) {
			scheme := strings.ToLower(m[2][:strings.IndexByte(m[2], ':')])
			if scheme != "sip" && scheme != "sips" && scheme != "tel" {
				e.Code, e.Reason = 416, "Unsupported URI Scheme"
			}
		}
		patched := append([]string{m[1] + " sip:invalid.invalid " + m[3]}, lines[1:]...)
		if msg, err := sip.ParseMessage(rebuild(patched, body)); err == nil {
			if req, ok := msg.(*sip.Request); ok {
				req.Method = sip.RequestMethod(m[1])
			}
			return msg, e
		}
		return nil, e
	}
	// The start line is fine: a header or the body failed. sipgo reports
	// which in its error text only. Its partial request holds the headers
	// before the failing one.
	e.Reason = "Bad Request (" + describe(perr) + ")"
	if name := failingHeader(lines[1:]); name != "" {
		e.Reason = "Bad Request (invalid " + name + " header)"
	}
	if req, ok := partial.(*sip.Request); ok && req != nil {
		req.Method = sip.RequestMethod(m[1])
		return req, e
	}
	return nil, e
}

// describe turns a sipgo parse error into a short reason naming the problem.
func describe(err error) string {
	s := err.Error()
	switch {
	case err == sip.ErrParseReadBodyIncomplete || strings.Contains(s, "body incomplete"):
		return "Content-Length larger than body"
	case err == sip.ErrMessageTooLarge:
		return "message too large"
	case strings.Contains(s, "CSeq"):
		return "invalid CSeq header"
	case strings.Contains(s, "Via"):
		return "invalid Via header"
	case strings.Contains(s, "ParseUint"):
		return "invalid numeric header value"
	case strings.Contains(s, "uri"), strings.Contains(s, "URI"):
		return "invalid URI in header"
	}
	return "malformed header"
}

// failingHeader names the first header sipgo's header parsers reject, or "".
func failingHeader(headers []string) string {
	parsers := sip.HeadersParser(sip.DefaultHeadersParser())
	for _, l := range headers {
		name, value, ok := splitHeader(l)
		if !ok {
			return strings.Trim(l, " \t")
		}
		if _, err := parsers.ParseHeader(nil, []byte(l[:strings.IndexByte(l, ':')]+": "+compactSeparators(value))); err != nil {
			return canonicalName(name, l)
		}
	}
	return ""
}

var compactNames = map[string]string{
	"v": "Via", "t": "To", "f": "From", "m": "Contact", "i": "Call-ID", "l": "Content-Length", "c": "Content-Type",
}

// canonicalName is the display name of a header for error reasons.
func canonicalName(lower, line string) string {
	if n, ok := compactNames[lower]; ok {
		return n
	}
	return strings.Trim(line[:strings.IndexByte(line, ':')], " \t")
}
