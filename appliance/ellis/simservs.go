package ellis

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// The simservs document (ETSI TS 129 364 / 3GPP TS 24.623) with the
// common-policy rules (RFC 4745) of communication diversion (TS 24.604) and
// barring (TS 24.611).
const (
	simservsNS = "http://uri.etsi.org/ngn/params/xml/simservs/xcap"
	policyNS   = "urn:ietf:params:xml:ns:common-policy"
)

// Diversion conditions the portal offers, in the order rules are written
// (unconditional first, as it overrides the others); "" is unconditional.
var diversionConditions = []struct {
	Cond, ID, Label string
}{
	{"", "cfu", "Always (unconditional)"},
	{"busy", "cfb", "When busy"},
	{"no-answer", "cfnr", "When not answered"},
	{"not-registered", "cfnl", "When not registered"},
	{"not-reachable", "cfnrc", "When not reachable"},
}

const (
	defaultNoReplyTimer = 20
	minNoReplyTimer     = 5 // TS 24.604's range
	maxNoReplyTimer     = 180
)

// services are the settings the portal edits in a simservs document.
type services struct {
	Restricted      bool   // OIR: presentation restricted by default
	BarIncoming     bool   // all incoming communications barred
	BarOutgoing     string // "", "all" or "international"
	DiversionActive bool
	NoReplyTimer    int               // seconds
	Diversions      map[string]string // condition → target
	// Dropped describes rules of the document the portal cannot show;
	// saving the form replaces them.
	Dropped []string
}

// readServices reads the portal's settings from a simservs document.
func readServices(root *elem) services {
	sv := services{NoReplyTimer: defaultNoReplyTimer, Diversions: map[string]string{}}
	if oir := root.child(simservsNS, "originating-identity-presentation-restriction"); oir != nil {
		sv.Restricted = active(oir) && oir.child(simservsNS, "default-behaviour").textOf() == "presentation-restricted"
	}
	if icb := root.child(simservsNS, "incoming-communication-barring"); active(icb) {
		for _, r := range rules(icb) {
			switch c := conditions(r); {
			case !barring(r):
			case len(c) == 0:
				sv.BarIncoming = true
			default:
				sv.Dropped = append(sv.Dropped, "incoming barring rule "+describe(r, c))
			}
		}
	}
	if ocb := root.child(simservsNS, "outgoing-communication-barring"); active(ocb) {
		for _, r := range rules(ocb) {
			switch c := conditions(r); {
			case !barring(r):
			case len(c) == 0:
				sv.BarOutgoing = "all"
			case len(c) == 1 && c[0] == "international":
				if sv.BarOutgoing == "" {
					sv.BarOutgoing = "international"
				}
			default:
				sv.Dropped = append(sv.Dropped, "outgoing barring rule "+describe(r, c))
			}
		}
	}
	if cd := root.child(simservsNS, "communication-diversion"); cd != nil {
		sv.DiversionActive = active(cd)
		if t, err := strconv.Atoi(cd.child(simservsNS, "NoReplyTimer").textOf()); err == nil {
			sv.NoReplyTimer = t
		}
		for _, r := range rules(cd) {
			c := conditions(r)
			target := r.child(policyNS, "actions").child(simservsNS, "forward-to").child(simservsNS, "target").textOf()
			known := len(c) == 0 || len(c) == 1 && offered(c[0])
			if !known || target == "" {
				sv.Dropped = append(sv.Dropped, "diversion rule "+describe(r, c))
				continue
			}
			cond := ""
			if len(c) == 1 {
				cond = c[0]
			}
			if _, dup := sv.Diversions[cond]; !dup {
				sv.Diversions[cond] = target
			}
		}
	}
	return sv
}

// offered reports whether the portal offers a diversion condition.
func offered(c string) bool {
	for _, d := range diversionConditions {
		if d.Cond == c && c != "" {
			return true
		}
	}
	return false
}

func (e *elem) textOf() string {
	if e == nil {
		return ""
	}
	return e.Text
}

func active(e *elem) bool {
	if e == nil {
		return false
	}
	a := e.attr("active")
	return a == "" || a == "true" || a == "1" // active defaults to true
}

func rules(e *elem) []*elem {
	rs := e.child(policyNS, "ruleset")
	if rs == nil {
		return nil
	}
	var out []*elem
	for _, r := range rs.Children {
		if r.Name.Space == policyNS && r.Name.Local == "rule" {
			out = append(out, r)
		}
	}
	return out
}

// conditions are the local names of a rule's conditions (a deactivated
// rule has rule-deactivated among them, which the portal does not show).
func conditions(r *elem) []string {
	var out []string
	for _, c := range r.child(policyNS, "conditions").childrenOrNil() {
		out = append(out, c.Name.Local)
	}
	return out
}

func (e *elem) childrenOrNil() []*elem {
	if e == nil {
		return nil
	}
	return e.Children
}

// barring reports whether a barring rule bars (allow false).
func barring(r *elem) bool {
	a := r.child(policyNS, "actions").child(simservsNS, "allow").textOf()
	return a == "false" || a == "0"
}

func describe(r *elem, conds []string) string {
	id := r.attr("id")
	if len(conds) == 0 {
		return fmt.Sprintf("%q (no conditions)", id)
	}
	return fmt.Sprintf("%q (%s)", id, strings.Join(conds, ", "))
}

// applyServices writes the portal's settings into a simservs document,
// replacing the elements of the services it manages and keeping the others
// (OIP, TIP, communication waiting, ...) as they are.
func applyServices(root *elem, sv services) {
	behaviour := "presentation-not-restricted"
	if sv.Restricted {
		behaviour = "presentation-restricted"
	}
	root.replace(el(simservsNS, "originating-identity-presentation-restriction",
		el(simservsNS, "default-behaviour").text(behaviour),
	).with("active", "true"))

	cd := el(simservsNS, "communication-diversion").with("active", strconv.FormatBool(sv.DiversionActive))
	cd.Children = append(cd.Children, el(simservsNS, "NoReplyTimer").text(strconv.Itoa(sv.NoReplyTimer)))
	rs := el(policyNS, "ruleset")
	for _, d := range diversionConditions {
		target, ok := sv.Diversions[d.Cond]
		if !ok {
			continue
		}
		conds := el(policyNS, "conditions")
		if d.Cond != "" {
			conds.Children = append(conds.Children, el(simservsNS, d.Cond))
		}
		rs.Children = append(rs.Children, el(policyNS, "rule", conds,
			el(policyNS, "actions", el(simservsNS, "forward-to", el(simservsNS, "target").text(target))),
		).with("id", d.ID))
	}
	cd.Children = append(cd.Children, rs)
	root.replace(cd)

	icb := el(policyNS, "ruleset")
	if sv.BarIncoming {
		icb.Children = append(icb.Children, barRule("icb-all", ""))
	}
	root.replace(el(simservsNS, "incoming-communication-barring", icb).with("active", strconv.FormatBool(sv.BarIncoming)))

	ocb := el(policyNS, "ruleset")
	switch sv.BarOutgoing {
	case "all":
		ocb.Children = append(ocb.Children, barRule("ocb-all", ""))
	case "international":
		ocb.Children = append(ocb.Children, barRule("ocb-international", "international"))
	}
	root.replace(el(simservsNS, "outgoing-communication-barring", ocb).with("active", strconv.FormatBool(sv.BarOutgoing != "")))
}

func barRule(id, cond string) *elem {
	conds := el(policyNS, "conditions")
	if cond != "" {
		conds.Children = append(conds.Children, el(simservsNS, cond))
	}
	return el(policyNS, "rule", conds, el(policyNS, "actions", el(simservsNS, "allow").text("false"))).with("id", id)
}

// renderSimservs writes a simservs document with simservs as the default
// namespace and cp: for common-policy.
func renderSimservs(root *elem) []byte {
	return render(root, simservsNS, map[string]string{policyNS: "cp", simservsNS: "ss"}, true)
}

// defaultSimservs is a new line's document: identity presentation on, OIR
// off (presentation not restricted), no diversion, no barring.
func defaultSimservs() []byte {
	root := el(simservsNS, "simservs", el(simservsNS, "originating-identity-presentation").with("active", "true"))
	applyServices(root, services{NoReplyTimer: defaultNoReplyTimer})
	return renderSimservs(root)
}

// validate checks settings from the form and completes diversion targets
// given as bare numbers with the line's domain.
func (sv *services) validate(domain string) error {
	if sv.BarOutgoing != "" && sv.BarOutgoing != "all" && sv.BarOutgoing != "international" {
		return errf(http.StatusBadRequest, "outgoing barring %q is not none, all or international", sv.BarOutgoing)
	}
	if sv.NoReplyTimer < minNoReplyTimer || sv.NoReplyTimer > maxNoReplyTimer {
		return errf(http.StatusBadRequest, "the no-answer timer must be %d to %d seconds", minNoReplyTimer, maxNoReplyTimer)
	}
	for cond, t := range sv.Diversions {
		target, err := diversionTarget(t, domain)
		if err != nil {
			return err
		}
		sv.Diversions[cond] = target
	}
	return nil
}

// diversionTarget makes a SIP or tel URI of what a subscriber typed:
// 6505550001 → sip:6505550001@<domain>, bob@example.org → sip:bob@example.org.
func diversionTarget(t, domain string) (string, error) {
	t = strings.TrimSpace(t)
	if t == "" {
		return "", errf(http.StatusBadRequest, "a diversion rule needs a target")
	}
	if strings.ContainsAny(t, " \t\r\n<>\"'`\\") || len(t) > 256 {
		return "", errf(http.StatusBadRequest, "diversion target %q is not a SIP URI, tel URI or number", t)
	}
	lower := strings.ToLower(t)
	switch {
	case strings.HasPrefix(lower, "sip:"), strings.HasPrefix(lower, "sips:"), strings.HasPrefix(lower, "tel:"):
		if !strings.Contains(t, ":") || strings.HasSuffix(t, ":") {
			return "", errf(http.StatusBadRequest, "diversion target %q is incomplete", t)
		}
		return t, nil
	case strings.Contains(t, "@"):
		return "sip:" + t, nil
	}
	return "sip:" + t + "@" + domain, nil
}
