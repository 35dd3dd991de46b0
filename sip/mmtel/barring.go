package mmtel

import (
	"slices"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// callState is what rule conditions are evaluated against.
type callState struct {
	busy, noAnswer, notReachable, notRegistered bool
	media                                       []string
	anonymous                                   bool
	international                               bool
}

// holds reports whether every condition of c holds in s.
func (c *Conditions) holds(s callState) bool {
	if c.Deactivated || c.Unsupported {
		return false
	}
	for _, need := range []struct{ want, have bool }{
		{c.Busy, s.busy}, {c.NoAnswer, s.noAnswer}, {c.NotReachable, s.notReachable},
		{c.NotRegistered, s.notRegistered}, {c.Anonymous, s.anonymous}, {c.International, s.international},
	} {
		if need.want && !need.have {
			return false
		}
	}
	for _, m := range c.Media {
		if !slices.Contains(s.media, strings.ToLower(m)) {
			return false
		}
	}
	return true
}

// barred applies a barring ruleset to a request (TS 24.611 §4.5.2.6.1):
// when a rule that holds allows the communication it goes ahead, else a
// rule that holds bars it; with none holding it goes ahead.
func (m *MMTEL) barred(b *Barring, req *sip.Request, p privacy) bool {
	if b == nil {
		return false
	}
	s := callState{anonymous: restricted(req, p), international: m.international(&req.Recipient)}
	matched := false
	for i := range b.Rules {
		r := &b.Rules[i]
		if !r.Conditions.holds(s) {
			continue
		}
		if r.Allow {
			return false
		}
		matched = true
	}
	return matched
}

// international reports whether a Request-URI dials a number abroad: it
// begins with "+" and another country code than NationalPrefix's, or with
// an international access code not followed by the home country code.
// Like Clearwater, every SIP URI's user part is considered, user=phone or
// not, since common clients never set it.
func (m *MMTEL) international(u *sip.Uri) bool {
	num := strings.Map(func(r rune) rune {
		switch r {
		case '-', '.', '(', ')', ' ':
			return -1
		}
		return r
	}, dialled(u))
	if num == "" {
		return false
	}
	cc := strings.TrimPrefix(m.o.NationalPrefix, "+")
	if rest, ok := strings.CutPrefix(num, "+"); ok {
		return !strings.HasPrefix(rest, cc)
	}
	for _, p := range m.o.InternationalPrefixes {
		p = strings.TrimSpace(p)
		if rest, ok := strings.CutPrefix(num, p); ok && p != "" {
			return !strings.HasPrefix(rest, cc)
		}
	}
	return false
}

// dialled is the number or user part a URI names; a tel URI keeps its
// number outside the parsed fields.
func dialled(u *sip.Uri) string {
	if !strings.EqualFold(u.Scheme, "tel") {
		return u.User
	}
	_, num, _ := strings.Cut(u.String(), ":")
	num, _, _ = strings.Cut(num, ";")
	return num
}
