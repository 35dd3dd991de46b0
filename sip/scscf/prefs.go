package scscf

import (
	"strings"

	"github.com/emiago/sipgo/sip"

	"stillwater/sip/header"
	"stillwater/sip/registrar"
)

// preferred applies RFC 3841 caller preferences: Reject-Contact removes the
// bindings whose feature tags match; an Accept-Contact with `require`
// removes those that do not match, and the bindings that match an
// Accept-Contact are moved ahead of those that do not.
func preferred(req *sip.Request, bs []registrar.Binding) []registrar.Binding {
	rejects := predicates(req, "Reject-Contact")
	accepts := predicates(req, "Accept-Contact")
	if len(rejects) == 0 && len(accepts) == 0 {
		return bs
	}
	var matched, rest []registrar.Binding
outer:
	for _, b := range bs {
		for _, p := range rejects {
			if p.matches(b) {
				continue outer
			}
		}
		good := true
		for _, p := range accepts {
			if !p.matches(b) {
				if p.require {
					continue outer
				}
				good = false
			}
		}
		if good && len(accepts) > 0 {
			matched = append(matched, b)
		} else {
			rest = append(rest, b)
		}
	}
	// Preferred bindings ring first: they take the higher q.
	for i := range matched {
		matched[i].Q += 2
	}
	return append(matched, rest...)
}

// predicate is one Accept-Contact or Reject-Contact value: feature tags
// that must all be present with a matching value.
type predicate struct {
	tags    map[string]string
	require bool
}

func predicates(req *sip.Request, name string) []predicate {
	var out []predicate
	for _, h := range header.Get(req, name) {
		for _, v := range header.SplitList(h.Value()) {
			p := predicate{tags: map[string]string{}}
			parts := strings.Split(v, ";")
			for _, part := range parts[1:] {
				k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
				k = strings.ToLower(k)
				switch k {
				case "require":
					p.require = true
				case "explicit", "":
				default:
					p.tags[k] = strings.Trim(val, `"`)
				}
			}
			if len(p.tags) > 0 {
				out = append(out, p)
			}
		}
	}
	return out
}

func (p predicate) matches(b registrar.Binding) bool {
	for k, want := range p.tags {
		got, ok := b.Param(k)
		if !ok {
			return false
		}
		got = strings.Trim(got, `"`)
		if want == "" || strings.EqualFold(want, "TRUE") {
			continue
		}
		found := false
		for _, w := range strings.Split(want, ",") {
			for _, g := range strings.Split(got, ",") {
				if strings.EqualFold(strings.TrimSpace(w), strings.TrimSpace(g)) {
					found = true
				}
			}
		}
		if !found {
			return false
		}
	}
	return true
}
