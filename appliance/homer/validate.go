package homer

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Service element names (the members of the schema's absService group that
// this package knows).
const (
	svcOIP  = "originating-identity-presentation"
	svcOIR  = "originating-identity-presentation-restriction"
	svcTIP  = "terminating-identity-presentation"
	svcTIR  = "terminating-identity-presentation-restriction"
	svcCW   = "communication-waiting"
	svcCDIV = "communication-diversion"
	svcICB  = "incoming-communication-barring"
	svcOCB  = "outgoing-communication-barring"
)

// ruleKind says which service a ruleset belongs to, and so which
// simservs-namespace conditions and actions its rules may use.
type ruleKind int

const (
	diversionRules ruleKind = iota
	incomingRules
	outgoingRules
)

// allows reports whether a rule of kind k may have the condition l. The
// schema declares every condition globally and would take any of them
// anywhere; the service specifications (TS 24.604, TS 24.611) say which make
// sense where, and a condition that can never be evaluated is a mistake worth
// reporting.
func (k ruleKind) allows(l string) bool {
	switch l {
	case "media", "rule-deactivated":
		return true
	case "busy", "no-answer", "not-reachable", "not-registered", "not-logged-in":
		return k == diversionRules
	case "anonymous", "presence-status":
		return k == diversionRules || k == incomingRules
	case "communication-diverted":
		return k == incomingRules
	case "roaming":
		return k == incomingRules || k == outgoingRules
	case "international", "international-exHC":
		return k == outgoingRules
	}
	return false
}

// isCondition reports whether l is a simservs-namespace condition.
func isCondition(l string) bool {
	return diversionRules.allows(l) || incomingRules.allows(l) || outgoingRules.allows(l)
}

// isService reports whether l is a service this package knows (a member of
// the schema's absService substitution group).
func isService(l string) bool {
	switch l {
	case svcOIP, svcOIR, svcTIP, svcTIR, svcCW, svcCDIV, svcICB, svcOCB:
		return true
	}
	return false
}

// forwardToOrder is the sequence of forward-to's children (TS 24.604).
func forwardToOrder() []string {
	return []string{"target", "notify-caller", "reveal-identity-to-caller",
		"reveal-served-user-identity-to-caller", "notify-served-user", "notify-served-user-on-outbound-call",
		"reveal-identity-to-target"}
}

// isSimservsElement reports whether l is a simservs-namespace element this
// package knows, to tell a misplaced element from an unknown one.
func isSimservsElement(l string) bool {
	switch l {
	case "simservs", "extensions", "default-behaviour", "NoReplyTimer", "forward-to", "allow":
		return true
	}
	return isService(l) || isCondition(l) || slices.Contains(forwardToOrder(), l)
}

// isPolicyElement reports whether l is a common-policy element (RFC 4745).
func isPolicyElement(l string) bool {
	switch l {
	case "ruleset", "rule", "conditions", "actions", "transformations",
		"identity", "one", "many", "except", "sphere", "validity", "from", "until":
		return true
	}
	return false
}

const (
	nsXSI = "http://www.w3.org/2001/XMLSchema-instance"
	nsXML = "http://www.w3.org/XML/1998/namespace"
)

// checker walks a document tree, keeping the path that errors report.
type checker struct {
	path []string
}

func (c *checker) errf(n *node, format string, args ...any) *ValidationError {
	return &ValidationError{Path: slices.Clone(c.path), Reason: fmt.Sprintf(format, args...), Line: n.line}
}

func (c *checker) push(p string) { c.path = append(c.path, p) }
func (c *checker) pop()          { c.path = c.path[:len(c.path)-1] }

// is reports whether n is the element local in namespace ns.
func is(n *node, ns, local string) bool { return n.name.Space == ns && n.name.Local == local }

// namespaced checks that n's prefix resolved to a namespace: encoding/xml
// leaves an undeclared prefix in place of the namespace, and namespace
// names are URIs, so a name without a colon is a prefix nobody declared.
func (c *checker) namespaced(n *node) error {
	if n.name.Space != "" && !strings.Contains(n.name.Space, ":") {
		return c.errf(n, "namespace prefix %q of <%s:%s> is not declared", n.name.Space, n.name.Space, n.name.Local)
	}
	return nil
}

// unexpected explains why child may not appear where it does.
func (c *checker) unexpected(child *node) error {
	if err := c.namespaced(child); err != nil {
		return err
	}
	l := child.name.Local
	switch child.name.Space {
	case NamespaceSimservs:
		if isSimservsElement(l) {
			return c.errf(child, "element <%s> is not allowed here", l)
		}
		if isPolicyElement(l) {
			return c.errf(child, "unknown element <%s> in the simservs namespace (%s belongs to the common-policy namespace %s)", l, l, NamespaceCommonPolicy)
		}
		return c.errf(child, "unknown element <%s> in the simservs namespace", l)
	case NamespaceCommonPolicy:
		if isPolicyElement(l) {
			return c.errf(child, "element <cp:%s> is not allowed here", l)
		}
		if isSimservsElement(l) {
			return c.errf(child, "unknown element <cp:%s> in the common-policy namespace (%s belongs to the simservs namespace %s)", l, l, NamespaceSimservs)
		}
		return c.errf(child, "unknown element <cp:%s> in the common-policy namespace", l)
	case "":
		return c.errf(child, "element <%s> has no namespace and is not allowed here", l)
	}
	return c.errf(child, "element <%s> in namespace %s is not allowed here", l, child.name.Space)
}

// foreign reports whether n is in a namespace other than simservs and
// common policy: the extension points of the schemas accept such elements.
func foreign(n *node) bool {
	return n.name.Space != NamespaceSimservs && n.name.Space != NamespaceCommonPolicy &&
		strings.Contains(n.name.Space, ":")
}

// noText refuses character data in element-only content.
func (c *checker) noText(n *node) error {
	if !isSpace(n.text) {
		what := "<" + n.name.Local + "> contains"
		if len(c.path) > 0 && c.path[len(c.path)-1] == n.name.Local {
			what = "contains" // the path names it already
		}
		return c.errf(n, "%s text %q where only elements are allowed", what, clip(strings.TrimSpace(n.text)))
	}
	return nil
}

// attrs checks n's attributes against the unqualified names allowed; xsi
// and xml attributes are always allowed. It returns the allowed values.
func (c *checker) attrs(n *node, allowed ...string) (map[string]string, error) {
	var vals map[string]string
	for _, a := range n.attrs {
		switch {
		case a.Name.Space == nsXSI || a.Name.Space == nsXML || a.Name.Space == "xml":
		case a.Name.Space == "" && slices.Contains(allowed, a.Name.Local):
			if vals == nil {
				vals = make(map[string]string, len(allowed))
			}
			vals[a.Name.Local] = a.Value
		case a.Name.Space == "":
			return nil, c.errf(n, "<%s> has unexpected attribute %s", n.name.Local, a.Name.Local)
		default:
			return nil, c.errf(n, "<%s> has unexpected attribute %s in namespace %s", n.name.Local, a.Name.Local, a.Name.Space)
		}
	}
	return vals, nil
}

// leaf returns the collapsed text of an element of simple type.
func (c *checker) leaf(n *node) (string, error) {
	if len(n.children) > 0 {
		return "", c.errf(n, "<%s> must contain text, not elements", n.name.Local)
	}
	if _, err := c.attrs(n); err != nil {
		return "", err
	}
	return collapse(n.text), nil
}

// empty checks an element of the schema's empty-element-type.
func (c *checker) empty(n *node) error {
	if len(n.children) > 0 || !isSpace(n.text) {
		return c.errf(n, "<%s> must be empty", n.name.Local)
	}
	_, err := c.attrs(n)
	return err
}

func (c *checker) boolean(n *node, what, v string) (bool, error) {
	switch v {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, c.errf(n, "%s %q is not a boolean (true, false, 1 or 0)", what, clip(v))
}

func (c *checker) boolElem(n *node) (bool, error) {
	v, err := c.leaf(n)
	if err != nil {
		return false, err
	}
	return c.boolean(n, n.name.Local, v)
}

// active reads a service's active attribute (default true). Services take
// any other attribute (the schema's anyAttribute), so only active is checked.
func (c *checker) active(n *node) (bool, error) {
	for _, a := range n.attrs {
		if a.Name.Space == "" && a.Name.Local == "active" {
			return c.boolean(n, "attribute active", collapse(a.Value))
		}
	}
	return true, nil
}

// noReplyTimer reads a NoReplyTimer element: an integer of seconds in
// MinNoReplyTimer..MaxNoReplyTimer.
func (c *checker) noReplyTimer(n *node) (int, error) {
	v, err := c.leaf(n)
	if err != nil {
		return 0, err
	}
	digits := strings.TrimPrefix(v, "+")
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return 0, c.errf(n, "NoReplyTimer %q is not an integer", clip(v))
	}
	t := 0
	for _, r := range digits {
		if t = t*10 + int(r-'0'); t > MaxNoReplyTimer {
			break // stops before overflow; the range check below refuses it
		}
	}
	if t < MinNoReplyTimer || t > MaxNoReplyTimer {
		return 0, c.errf(n, "NoReplyTimer %s is out of range %d..%d seconds", clip(v), MinNoReplyTimer, MaxNoReplyTimer)
	}
	return t, nil
}

// sequence checks that children come in the order the schema's xs:sequence
// gives, each at most once.
type sequence struct {
	order []string
	last  int
}

func newSequence(order ...string) *sequence { return &sequence{order: order, last: -1} }

func (s *sequence) add(c *checker, n *node) error {
	i := slices.Index(s.order, n.name.Local)
	switch {
	case i < 0:
		return c.unexpected(n)
	case i == s.last:
		return c.errf(n, "<%s> appears more than once", n.name.Local)
	case i < s.last:
		return c.errf(n, "<%s> must come before <%s>", n.name.Local, s.order[s.last])
	}
	s.last = i
	return nil
}

func parseSimservs(root *node) (*Simservs, error) {
	c := &checker{}
	if err := c.namespaced(root); err != nil {
		return nil, err
	}
	if !is(root, NamespaceSimservs, "simservs") {
		ns := root.name.Space
		if ns == "" {
			ns = "no namespace"
		} else {
			ns = "namespace " + ns
		}
		return nil, c.errf(root, "root element is <%s> in %s; want <simservs> in namespace %s", root.name.Local, ns, NamespaceSimservs)
	}
	if err := c.noText(root); err != nil {
		return nil, err
	}
	// <simservs> takes any attribute (anyAttribute ##any).
	s := &Simservs{}
	seen := map[string]bool{}
	extensions := false
	for _, n := range root.children {
		if n.name.Space != NamespaceSimservs {
			return nil, c.unexpected(n)
		}
		l := n.name.Local
		if extensions {
			if l == "extensions" {
				return nil, c.errf(n, "<extensions> appears more than once")
			}
			return nil, c.errf(n, "<%s> must come before <extensions>", l)
		}
		if l == "extensions" {
			extensions = true
			if err := c.extensions(n); err != nil {
				return nil, err
			}
			continue
		}
		if !isService(l) {
			return nil, c.unexpected(n)
		}
		if seen[l] {
			return nil, c.errf(n, "service %s appears more than once", l)
		}
		seen[l] = true
		c.push(l)
		var err error
		switch l {
		case svcOIP:
			s.OIP, err = c.plainService(n)
		case svcTIP:
			s.TIP, err = c.plainService(n)
		case svcCW:
			s.CommunicationWaiting, err = c.plainService(n)
		case svcOIR:
			s.OIR, err = c.restriction(n)
		case svcTIR:
			s.TIR, err = c.restriction(n)
		case svcCDIV:
			s.Diversion, err = c.diversion(n)
		case svcICB:
			s.IncomingBarring, err = c.barring(n, incomingRules)
		case svcOCB:
			s.OutgoingBarring, err = c.barring(n, outgoingRules)
		}
		if err != nil {
			return nil, err
		}
		c.pop()
	}
	return s, nil
}

// extensions holds elements of other namespaces only, which are not
// looked into (the schema's processContents="lax" for undeclared content).
func (c *checker) extensions(n *node) error {
	c.push("extensions")
	defer c.pop()
	if _, err := c.attrs(n); err != nil {
		return err
	}
	if err := c.noText(n); err != nil {
		return err
	}
	for _, ch := range n.children {
		if !foreign(ch) {
			return c.unexpected(ch)
		}
	}
	return nil
}

func (c *checker) plainService(n *node) (*Service, error) {
	active, err := c.active(n)
	if err != nil {
		return nil, err
	}
	if len(n.children) > 0 {
		return nil, c.unexpected(n.children[0])
	}
	if err := c.noText(n); err != nil {
		return nil, err
	}
	return &Service{Active: active}, nil
}

func (c *checker) restriction(n *node) (*Restriction, error) {
	active, err := c.active(n)
	if err != nil {
		return nil, err
	}
	if err := c.noText(n); err != nil {
		return nil, err
	}
	r := &Restriction{Active: active, Restricted: true}
	seq := newSequence("default-behaviour")
	for _, ch := range n.children {
		if !is(ch, NamespaceSimservs, "default-behaviour") {
			return nil, c.unexpected(ch)
		}
		if err := seq.add(c, ch); err != nil {
			return nil, err
		}
		v, err := c.leaf(ch)
		if err != nil {
			return nil, err
		}
		switch v {
		case "presentation-restricted":
			r.Restricted = true
		case "presentation-not-restricted":
			r.Restricted = false
		default:
			return nil, c.errf(ch, "default-behaviour %q is neither presentation-restricted nor presentation-not-restricted", clip(v))
		}
	}
	return r, nil
}

func (c *checker) diversion(n *node) (*Diversion, error) {
	active, err := c.active(n)
	if err != nil {
		return nil, err
	}
	if err := c.noText(n); err != nil {
		return nil, err
	}
	d := &Diversion{Active: active}
	seq := newSequence("NoReplyTimer", "ruleset")
	for _, ch := range n.children {
		switch {
		case is(ch, NamespaceSimservs, "NoReplyTimer"):
			if err := seq.add(c, ch); err != nil {
				return nil, err
			}
			if d.NoReplyTimer, err = c.noReplyTimer(ch); err != nil {
				return nil, err
			}
		case is(ch, NamespaceCommonPolicy, "ruleset"):
			if err := seq.add(c, ch); err != nil {
				return nil, err
			}
			err := c.ruleset(ch, diversionRules, func(id string, rule *node, cond Conditions, actions *node) error {
				r := DiversionRule{ID: id, Conditions: cond}
				if err := c.diversionActions(rule, actions, &r); err != nil {
					return err
				}
				d.Rules = append(d.Rules, r)
				return nil
			})
			if err != nil {
				return nil, err
			}
		default:
			return nil, c.unexpected(ch)
		}
	}
	return d, nil
}

func (c *checker) barring(n *node, kind ruleKind) (*Barring, error) {
	active, err := c.active(n)
	if err != nil {
		return nil, err
	}
	if err := c.noText(n); err != nil {
		return nil, err
	}
	b := &Barring{Active: active}
	seq := newSequence("ruleset")
	for _, ch := range n.children {
		if !is(ch, NamespaceCommonPolicy, "ruleset") {
			return nil, c.unexpected(ch)
		}
		if err := seq.add(c, ch); err != nil {
			return nil, err
		}
		err := c.ruleset(ch, kind, func(id string, rule *node, cond Conditions, actions *node) error {
			r := BarringRule{ID: id, Conditions: cond}
			if err := c.barringActions(rule, actions, &r); err != nil {
				return err
			}
			b.Rules = append(b.Rules, r)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return b, nil
}

// ruleset checks a common-policy ruleset and hands each rule's id,
// conditions and actions element (nil if absent) to add.
func (c *checker) ruleset(n *node, kind ruleKind, add func(id string, rule *node, cond Conditions, actions *node) error) error {
	if _, err := c.attrs(n); err != nil {
		return err
	}
	if err := c.noText(n); err != nil {
		return err
	}
	ids := map[string]bool{}
	for i, rule := range n.children {
		if !is(rule, NamespaceCommonPolicy, "rule") {
			return c.unexpected(rule)
		}
		id, ok := "", false
		for _, a := range rule.attrs {
			if a.Name.Space == "" && a.Name.Local == "id" {
				id, ok = collapse(a.Value), true
			}
		}
		if !ok {
			return c.errf(rule, "rule %d has no id", i+1)
		}
		c.push(fmt.Sprintf("rule %q", clip(id)))
		if _, err := c.attrs(rule, "id"); err != nil {
			return err
		}
		if !isNCName(id) {
			return c.errf(rule, "id is not an XML name without colons (xs:ID)")
		}
		// RFC 4745 makes ids unique within a ruleset. xs:ID would make them
		// unique across the document, but documents provisioned by Ellis
		// reuse ids between the barring rulesets, so the RFC's scope is kept.
		if ids[id] {
			return c.errf(rule, "another rule of the ruleset has the same id")
		}
		ids[id] = true
		if err := c.noText(rule); err != nil {
			return err
		}
		var (
			cond    Conditions
			actions *node
		)
		seq := newSequence("conditions", "actions", "transformations")
		for _, ch := range rule.children {
			if ch.name.Space != NamespaceCommonPolicy || !slices.Contains(seq.order, ch.name.Local) {
				return c.unexpected(ch)
			}
			if err := seq.add(c, ch); err != nil {
				return err
			}
			switch ch.name.Local {
			case "conditions":
				var err error
				if cond, err = c.conditions(ch, kind); err != nil {
					return err
				}
			case "actions":
				actions = ch
			case "transformations":
				if err := c.onlyForeign(ch); err != nil {
					return err
				}
			}
		}
		if err := add(id, rule, cond, actions); err != nil {
			return err
		}
		c.pop()
	}
	return nil
}

// onlyForeign checks an element whose content is extension elements only
// (common-policy's extensibleType, when this package defines none for it).
func (c *checker) onlyForeign(n *node) error {
	if _, err := c.attrs(n); err != nil {
		return err
	}
	if err := c.noText(n); err != nil {
		return err
	}
	for _, ch := range n.children {
		if !foreign(ch) {
			return c.unexpected(ch)
		}
	}
	return nil
}

func (c *checker) conditions(n *node, kind ruleKind) (Conditions, error) {
	var cond Conditions
	if _, err := c.attrs(n); err != nil {
		return cond, err
	}
	if err := c.noText(n); err != nil {
		return cond, err
	}
	for _, ch := range n.children {
		if err := c.namespaced(ch); err != nil {
			return cond, err
		}
		l := ch.name.Local
		switch ch.name.Space {
		case NamespaceCommonPolicy:
			var err error
			switch l {
			case "identity":
				if cond.Identity != nil {
					return cond, c.errf(ch, "<identity> appears more than once")
				}
				cond.Identity, err = c.identity(ch)
			case "sphere":
				var v string
				if v, err = c.sphere(ch); err == nil {
					cond.Sphere = append(cond.Sphere, v)
				}
			case "validity":
				var iv []Interval
				if iv, err = c.validity(ch); err == nil {
					cond.Validity = append(cond.Validity, iv...)
				}
			default:
				return cond, c.unexpected(ch)
			}
			if err != nil {
				return cond, err
			}
			continue
		case NamespaceSimservs:
		default:
			if !foreign(ch) {
				return cond, c.unexpected(ch)
			}
			cond.Unsupported = append(cond.Unsupported, "{"+ch.name.Space+"}"+l)
			continue
		}
		if !kind.allows(l) {
			if isCondition(l) {
				return cond, c.errf(ch, "condition <%s> does not apply to %s", l, c.path[0])
			}
			return cond, c.unexpected(ch)
		}
		var flag *bool
		switch l {
		case "busy":
			flag = &cond.Busy
		case "no-answer":
			flag = &cond.NoAnswer
		case "not-reachable":
			flag = &cond.NotReachable
		case "not-registered":
			flag = &cond.NotRegistered
		case "not-logged-in":
			flag = &cond.NotLoggedIn
		case "anonymous":
			flag = &cond.Anonymous
		case "communication-diverted":
			flag = &cond.CommunicationDiverted
		case "roaming":
			flag = &cond.Roaming
		case "international":
			flag = &cond.International
		case "international-exHC":
			flag = &cond.InternationalExHC
		case "rule-deactivated":
			flag = &cond.RuleDeactivated
		case "media", "presence-status":
			v, err := c.leaf(ch)
			if err != nil {
				return cond, err
			}
			if v == "" {
				return cond, c.errf(ch, "condition <%s> is empty", l)
			}
			if l == "media" {
				cond.Media = append(cond.Media, v)
			} else {
				cond.PresenceStatus = append(cond.PresenceStatus, v)
			}
			continue
		}
		if err := c.empty(ch); err != nil {
			return cond, err
		}
		*flag = true
	}
	return cond, nil
}

func (c *checker) identity(n *node) (*Identity, error) {
	if _, err := c.attrs(n); err != nil {
		return nil, err
	}
	if err := c.noText(n); err != nil {
		return nil, err
	}
	id := &Identity{}
	known := 0
	for _, ch := range n.children {
		switch {
		case is(ch, NamespaceCommonPolicy, "one"):
			vals, err := c.attrs(ch, "id")
			if err != nil {
				return nil, err
			}
			uri := collapse(vals["id"])
			if uri == "" || strings.Contains(uri, " ") {
				return nil, c.errf(ch, "<one> needs an id that is a URI, not %q", clip(uri))
			}
			if err := c.noText(ch); err != nil {
				return nil, err
			}
			// <one> may carry a single extension element.
			if len(ch.children) > 1 || (len(ch.children) == 1 && !foreign(ch.children[0])) {
				return nil, c.unexpected(ch.children[len(ch.children)-1])
			}
			id.One = append(id.One, uri)
		case is(ch, NamespaceCommonPolicy, "many"):
			vals, err := c.attrs(ch, "domain")
			if err != nil {
				return nil, err
			}
			if err := c.noText(ch); err != nil {
				return nil, err
			}
			m := Many{Domain: collapse(vals["domain"])}
			for _, ex := range ch.children {
				if foreign(ex) {
					continue
				}
				if !is(ex, NamespaceCommonPolicy, "except") {
					return nil, c.unexpected(ex)
				}
				if len(ex.children) > 0 || !isSpace(ex.text) {
					return nil, c.errf(ex, "<except> must be empty")
				}
				vals, err := c.attrs(ex, "domain", "id")
				if err != nil {
					return nil, err
				}
				m.Except = append(m.Except, Except{Domain: collapse(vals["domain"]), ID: collapse(vals["id"])})
			}
			id.Many = append(id.Many, m)
		case foreign(ch):
			// An alternative this package cannot match never matches,
			// which leaves the others to decide.
		default:
			return nil, c.unexpected(ch)
		}
		known++
	}
	if known == 0 {
		return nil, c.errf(n, "<identity> is empty (it needs <one> or <many>)")
	}
	return id, nil
}

func (c *checker) sphere(n *node) (string, error) {
	vals, err := c.attrs(n, "value")
	if err != nil {
		return "", err
	}
	v, ok := vals["value"]
	if !ok {
		return "", c.errf(n, "<sphere> has no value attribute")
	}
	if len(n.children) > 0 || !isSpace(n.text) {
		return "", c.errf(n, "<sphere> must be empty")
	}
	return v, nil
}

func (c *checker) validity(n *node) ([]Interval, error) {
	if _, err := c.attrs(n); err != nil {
		return nil, err
	}
	if err := c.noText(n); err != nil {
		return nil, err
	}
	var out []Interval
	var from *node
	for _, ch := range n.children {
		want := "from"
		if from != nil {
			want = "until"
		}
		if !is(ch, NamespaceCommonPolicy, want) {
			if is(ch, NamespaceCommonPolicy, "from") || is(ch, NamespaceCommonPolicy, "until") {
				return nil, c.errf(ch, "<validity> must alternate <from> and <until>, found <%s> where <%s> belongs", ch.name.Local, want)
			}
			return nil, c.unexpected(ch)
		}
		if want == "from" {
			from = ch
			continue
		}
		f, err := c.dateTime(from)
		if err != nil {
			return nil, err
		}
		u, err := c.dateTime(ch)
		if err != nil {
			return nil, err
		}
		if !u.After(f) {
			return nil, c.errf(ch, "<validity> period ends (%s) before it starts (%s)", u.Format(time.RFC3339), f.Format(time.RFC3339))
		}
		out = append(out, Interval{From: f, Until: u})
		from = nil
	}
	if from != nil {
		return nil, c.errf(from, "<validity> has a <from> without an <until>")
	}
	if len(out) == 0 {
		return nil, c.errf(n, "<validity> is empty (it needs <from> and <until>)")
	}
	return out, nil
}

// dateTime reads an xs:dateTime. A time without a zone offset is taken as
// UTC; every time is kept in UTC.
func (c *checker) dateTime(n *node) (time.Time, error) {
	v, err := c.leaf(n)
	if err != nil {
		return time.Time{}, err
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, c.errf(n, "<%s> %q is not a date and time (xs:dateTime, e.g. 2025-01-31T09:00:00Z)", n.name.Local, clip(v))
}

func (c *checker) diversionActions(rule, actions *node, r *DiversionRule) error {
	var forward *node
	if actions != nil {
		if _, err := c.attrs(actions); err != nil {
			return err
		}
		if err := c.noText(actions); err != nil {
			return err
		}
		timer := false
		for _, ch := range actions.children {
			switch {
			case is(ch, NamespaceSimservs, "forward-to"):
				if forward != nil {
					return c.errf(ch, "<forward-to> appears more than once")
				}
				forward = ch
			case is(ch, NamespaceSimservs, "NoReplyTimer"):
				if timer {
					return c.errf(ch, "<NoReplyTimer> appears more than once")
				}
				timer = true
				t, err := c.noReplyTimer(ch)
				if err != nil {
					return err
				}
				r.NoReplyTimer = t
			case is(ch, NamespaceSimservs, "allow"):
				return c.errf(ch, "<allow> is a barring action and does not apply to %s", svcCDIV)
			case foreign(ch):
			default:
				return c.unexpected(ch)
			}
		}
	}
	if forward == nil {
		return c.errf(rule, "actions have no forward-to")
	}
	return c.forwardTo(forward, r)
}

func (c *checker) forwardTo(n *node, r *DiversionRule) error {
	if _, err := c.attrs(n); err != nil {
		return err
	}
	if err := c.noText(n); err != nil {
		return err
	}
	f := ForwardTo{NotifyCaller: true, RevealIdentityToCaller: true, RevealServedUserIdentityToCaller: true, RevealIdentityToTarget: true}
	order := forwardToOrder()
	seq := newSequence(order...)
	target := false
	for _, ch := range n.children {
		if foreign(ch) {
			continue
		}
		if ch.name.Space != NamespaceSimservs || !slices.Contains(order, ch.name.Local) {
			return c.unexpected(ch)
		}
		if err := seq.add(c, ch); err != nil {
			return err
		}
		if ch.name.Local == "target" {
			v, err := c.leaf(ch)
			if err != nil {
				return err
			}
			if v == "" && !r.Conditions.RuleDeactivated {
				return c.errf(ch, "forward-to target is empty (allowed only in a rule with <rule-deactivated/>)")
			}
			if v != "" {
				if why := checkTarget(v); why != "" {
					return c.errf(ch, "forward-to target %q %s", clip(v), why)
				}
			}
			f.Target = v
			target = true
			continue
		}
		b, err := c.boolElem(ch)
		if err != nil {
			return err
		}
		switch ch.name.Local {
		case "notify-caller":
			f.NotifyCaller = b
		case "reveal-identity-to-caller":
			f.RevealIdentityToCaller = b
		case "reveal-served-user-identity-to-caller":
			f.RevealServedUserIdentityToCaller = b
		case "notify-served-user":
			f.NotifyServedUser = b
		case "notify-served-user-on-outbound-call":
			f.NotifyServedUserOnOutboundCall = b
		case "reveal-identity-to-target":
			f.RevealIdentityToTarget = b
		}
	}
	if !target {
		return c.errf(n, "forward-to has no target")
	}
	r.ForwardTo = f
	return nil
}

func (c *checker) barringActions(rule, actions *node, r *BarringRule) error {
	var allow *node
	if actions != nil {
		if _, err := c.attrs(actions); err != nil {
			return err
		}
		if err := c.noText(actions); err != nil {
			return err
		}
		for _, ch := range actions.children {
			switch {
			case is(ch, NamespaceSimservs, "allow"):
				if allow != nil {
					return c.errf(ch, "<allow> appears more than once")
				}
				allow = ch
			case is(ch, NamespaceSimservs, "forward-to"), is(ch, NamespaceSimservs, "NoReplyTimer"):
				return c.errf(ch, "<%s> is a diversion action and does not apply to %s", ch.name.Local, c.path[0])
			case foreign(ch):
			default:
				return c.unexpected(ch)
			}
		}
	}
	if allow == nil {
		return c.errf(rule, "actions have no allow")
	}
	b, err := c.boolElem(allow)
	if err != nil {
		return err
	}
	r.Allow = b
	return nil
}

// clip shortens a value quoted in an error message.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
