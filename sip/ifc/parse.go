package ifc

import (
	"cmp"
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Parse reads the iFCs of a ServiceProfile element (TS 29.228 CxDataType),
// or of a bare list of InitialFilterCriteria elements such as a
// FallbackIFCsSet holds or a single iFC such as Ellis stores. A malformed
// iFC is left out and reported in the errors with its line and path; the
// others are still returned. Only a document that is not XML, or has the
// wrong root, yields no iFCs at all.
func Parse(doc []byte) (Profile, []error) {
	roots, err := readXML(doc)
	if err != nil {
		return Profile{}, []error{err}
	}
	c := &checker{}
	var p Profile
	var ifcNodes []*node
	prefix := ""
	switch first := roots[0]; {
	case allNamed(roots, "InitialFilterCriteria"):
		ifcNodes = roots
	case len(roots) > 1:
		c.fail(roots[1], "", "more than one root element")
	case first.name.Space != "":
		c.fail(first, "", "the root element <%s> must not be in a namespace (it is in %q)", first.name.Local, clip(first.name.Space))
	case first.name.Local == "ServiceProfile":
		prefix = "ServiceProfile"
		found := c.children(first, prefix, rule{"PublicIdentity", 0, -1}, rule{"CoreNetworkServicesAuthorization", 0, 1},
			rule{"InitialFilterCriteria", 0, -1}, rule{"SharedIFCSetID", 0, -1}, rule{"Extension", 0, 1})
		ifcNodes = found["InitialFilterCriteria"]
		for i, n := range found["SharedIFCSetID"] {
			path := join(prefix, "SharedIFCSetID", i, true)
			v := c.leaf(n, path)
			id, err := strconv.ParseUint(v, 10, 32)
			switch {
			case err != nil:
				c.fail(n, path, "%q is not a set ID (an integer from 0 to %d)", clip(v), uint32(1<<32-1))
			case slices.Contains(p.SharedIFCSetIDs, uint32(id)):
				c.fail(n, path, "set %d is named twice", id)
			default:
				p.SharedIFCSetIDs = append(p.SharedIFCSetIDs, uint32(id))
			}
		}
	case first.name.Local == "FallbackIFCsSet":
		prefix = "FallbackIFCsSet"
		ifcNodes = c.children(first, prefix, rule{"InitialFilterCriteria", 0, -1})["InitialFilterCriteria"]
	default:
		c.fail(first, "", "the root element must be <ServiceProfile>, <FallbackIFCsSet> or <InitialFilterCriteria>, not <%s>", clip(first.name.Local))
	}
	p.IFCs = parseIFCs(c, ifcNodes, prefix)
	return p, sortErrors(c.errs)
}

// Sets is a shared_ifcs.xml or fallback_ifcs.xml document.
type Sets struct {
	// Root is the document element: SharedIFCsSets or FallbackIFCsSet.
	Root string
	// Shared are the shared iFC sets by SetID, each in evaluation order.
	Shared map[uint32][]IFC
	// Fallback are the fallback iFCs, in evaluation order.
	Fallback []IFC
}

// ParseSet reads shared_ifcs.xml (a SharedIFCsSets element holding
// SharedIFCsSet elements, each with a unique SetID and any number of
// InitialFilterCriteria) or fallback_ifcs.xml (a FallbackIFCsSet element
// holding InitialFilterCriteria), the formats Clearwater documents. As with
// Parse, a malformed iFC or set is left out and reported, and the rest is
// returned; the errors are in line order, ready for a validator to show.
func ParseSet(doc []byte) (Sets, []error) {
	roots, err := readXML(doc)
	if err != nil {
		return Sets{}, []error{err}
	}
	c := &checker{}
	root := roots[0]
	s := Sets{Root: root.name.Local}
	switch {
	case len(roots) > 1:
		c.fail(roots[1], "", "more than one root element")
	case root.name.Space != "":
		c.fail(root, "", "the root element <%s> must not be in a namespace (it is in %q)", root.name.Local, clip(root.name.Space))
	case root.name.Local == "FallbackIFCsSet":
		nodes := c.children(root, "", rule{"InitialFilterCriteria", 0, -1})["InitialFilterCriteria"]
		s.Fallback = parseIFCs(c, nodes, "")
	case root.name.Local == "SharedIFCsSets":
		s.Shared = map[uint32][]IFC{}
		defined := map[uint32]string{}
		sets := c.children(root, "", rule{"SharedIFCsSet", 0, -1})["SharedIFCsSet"]
		for i, n := range sets {
			path := join("", "SharedIFCsSet", i, true)
			f := c.children(n, path, rule{"SetID", 1, 1}, rule{"InitialFilterCriteria", 0, -1})
			ifcs := parseIFCs(c, f["InitialFilterCriteria"], path)
			if len(f["SetID"]) != 1 {
				continue // reported by children
			}
			idNode := f["SetID"][0]
			v := c.leaf(idNode, path+"/SetID")
			id, err := strconv.ParseUint(v, 10, 32)
			switch prev, dup := defined[uint32(id)]; {
			case err != nil:
				c.fail(idNode, path+"/SetID", "%q is not a set ID (an integer from 0 to %d)", clip(v), uint32(1<<32-1))
			case dup:
				c.fail(idNode, path+"/SetID", "set %d is already defined by %s", id, prev)
			default:
				defined[uint32(id)] = path
				s.Shared[uint32(id)] = ifcs
			}
		}
	default:
		c.fail(root, "", "the root element must be <SharedIFCsSets> or <FallbackIFCsSet>, not <%s>", clip(root.name.Local))
	}
	return s, sortErrors(c.errs)
}

func allNamed(nodes []*node, name string) bool {
	for _, n := range nodes {
		if n.name.Space != "" || n.name.Local != name {
			return false
		}
	}
	return true
}

// parseIFCs reads InitialFilterCriteria elements, leaving out the
// malformed, and returns them in evaluation order.
func parseIFCs(c *checker, nodes []*node, prefix string) []IFC {
	var out []IFC
	for i, n := range nodes {
		ic := &checker{}
		f := ic.ifc(n, join(prefix, "InitialFilterCriteria", i, true))
		if len(ic.errs) > 0 {
			c.errs = append(c.errs, ic.errs...)
			continue
		}
		out = append(out, f)
	}
	Sort(out)
	return out
}

// Sort puts iFCs in evaluation order: Priority ascending, and the order
// they were given in among equal priorities.
func Sort(ifcs []IFC) {
	slices.SortStableFunc(ifcs, func(a, b IFC) int { return cmp.Compare(a.Priority, b.Priority) })
}

func sortErrors(errs []error) []error {
	slices.SortStableFunc(errs, func(a, b error) int {
		var ea, eb *Error
		errors.As(a, &ea)
		errors.As(b, &eb)
		return cmp.Compare(ea.Line, eb.Line)
	})
	return errs
}

func (c *checker) intLeaf(n *node, path string, lo, hi int64) int64 {
	v := c.leaf(n, path)
	i, err := strconv.ParseInt(v, 10, 64)
	if err != nil || i < lo || i > hi {
		c.fail(n, path, "%q is not an integer from %d to %d", clip(v), lo, hi)
		return lo
	}
	return i
}

// boolLeaf reads an xs:boolean. Empty counts as false, as in the iFCs
// Ellis writes (<ConditionTypeCNF></ConditionTypeCNF>).
func (c *checker) boolLeaf(n *node, path string) bool {
	switch v := c.leaf(n, path); v {
	case "1", "true":
		return true
	case "", "0", "false":
	default:
		c.fail(n, path, "%q is not true, false, 1 or 0", clip(v))
	}
	return false
}

// regexLeaf compiles a pattern; TS 29.228 Annex F patterns are POSIX
// extended regular expressions, which RE2 syntax covers.
func (c *checker) regexLeaf(n *node, path string) *regexp.Regexp {
	v := c.leaf(n, path)
	re, err := regexp.Compile(v)
	if err != nil {
		var se *syntax.Error
		if errors.As(err, &se) {
			c.fail(n, path, "%q is not a valid regular expression: %s: %s", clip(v), se.Code, clip(se.Expr))
		} else {
			c.fail(n, path, "%q is not a valid regular expression: %v", clip(v), err)
		}
		return nil
	}
	return re
}

func (c *checker) ifc(n *node, path string) IFC {
	f := IFC{ProfilePart: PartAny, Line: n.line}
	found := c.children(n, path, rule{"Priority", 0, 1}, rule{"TriggerPoint", 0, 1},
		rule{"ApplicationServer", 1, 1}, rule{"ProfilePartIndicator", 0, 1}, rule{"Extension", 0, 1})
	for _, k := range found["Priority"] {
		f.Priority = int32(c.intLeaf(k, path+"/Priority", 0, 1<<31-1))
	}
	for _, k := range found["ProfilePartIndicator"] {
		f.ProfilePart = ProfilePart(c.intLeaf(k, path+"/ProfilePartIndicator", 0, 1))
	}
	for _, k := range found["TriggerPoint"] {
		f.Trigger = c.trigger(k, path+"/TriggerPoint")
	}
	for _, k := range found["ApplicationServer"] {
		f.AS = c.appServer(k, path+"/ApplicationServer")
	}
	return f
}

func (c *checker) trigger(n *node, path string) *TriggerPoint {
	t := &TriggerPoint{}
	found := c.children(n, path, rule{"ConditionTypeCNF", 1, 1}, rule{"SPT", 1, -1}, rule{"Extension", 0, 1})
	for _, k := range found["ConditionTypeCNF"] {
		t.CNF = c.boolLeaf(k, path+"/ConditionTypeCNF")
	}
	var groups []int32
	for i, k := range found["SPT"] {
		s := c.spt(k, join(path, "SPT", i, true))
		for _, g := range s.Groups {
			slot := slices.Index(groups, g)
			if slot < 0 {
				slot = len(groups)
				groups = append(groups, g)
			}
			s.slots = append(s.slots, slot)
		}
		t.SPTs = append(t.SPTs, s)
	}
	t.groups = len(groups)
	return t
}

// spt reads a service point trigger, which holds exactly one condition.
// RegistrationType is read from the SPT's Extension, where Clearwater and
// the Rel-7+ schema put it, or from the SPT itself.
func (c *checker) spt(n *node, path string) SPT {
	var s SPT
	conditions := []string{"RequestURI", "Method", "SIPHeader", "SessionCase", "SessionDescription"}
	rules := []rule{{"ConditionNegated", 0, 1}, {"Group", 1, -1}, {"RegistrationType", 0, -1}, {"Extension", 0, 1}}
	for _, name := range conditions {
		rules = append(rules, rule{name, 0, 1})
	}
	found := c.children(n, path, rules...)
	count := 0
	for _, name := range conditions {
		count += len(found[name])
	}
	if count != 1 {
		c.fail(n, path, "must hold exactly one of <%s>", strings.Join(conditions, ">, <"))
	}
	for _, k := range found["ConditionNegated"] {
		s.Negated = c.boolLeaf(k, path+"/ConditionNegated")
	}
	for i, k := range found["Group"] {
		p := join(path, "Group", i, true)
		g := int32(c.intLeaf(k, p, 0, 1<<31-1))
		if slices.Contains(s.Groups, g) {
			c.fail(k, p, "group %d is named twice", g)
			continue
		}
		s.Groups = append(s.Groups, g)
	}
	regTypes := found["RegistrationType"]
	for _, k := range found["Extension"] {
		f := c.children(k, path+"/Extension", rule{"RegistrationType", 0, -1}, rule{"Extension", 0, 1})
		regTypes = append(regTypes, f["RegistrationType"]...)
	}
	for i, k := range regTypes {
		t := RegistrationType(c.intLeaf(k, join(path, "RegistrationType", i, true), 0, 2))
		if !slices.Contains(s.RegistrationTypes, t) {
			s.RegistrationTypes = append(s.RegistrationTypes, t)
		}
	}
	for _, k := range found["RequestURI"] {
		s.Kind = CondRequestURI
		s.RequestURI = c.regexLeaf(k, path+"/RequestURI")
	}
	for _, k := range found["Method"] {
		s.Kind = CondMethod
		s.Method = c.leaf(k, path+"/Method")
		if !isToken(s.Method) {
			c.fail(k, path+"/Method", "%q is not a SIP method", clip(s.Method))
		}
	}
	for _, k := range found["SessionCase"] {
		s.Kind = CondSessionCase
		s.SessionCase = SessionCase(c.intLeaf(k, path+"/SessionCase", 0, 4))
	}
	for _, k := range found["SIPHeader"] {
		s.Kind = CondSIPHeader
		s.Header = c.sipHeader(k, path+"/SIPHeader")
	}
	for _, k := range found["SessionDescription"] {
		s.Kind = CondSessionDescription
		p := path + "/SessionDescription"
		s.SessionDesc = &SDPCondition{}
		f := c.children(k, p, rule{"Line", 1, 1}, rule{"Content", 0, 1}, rule{"Extension", 0, 1})
		for _, l := range f["Line"] {
			s.SessionDesc.Line = c.regexLeaf(l, p+"/Line")
		}
		for _, l := range f["Content"] {
			s.SessionDesc.Content = c.regexLeaf(l, p+"/Content")
		}
	}
	return s
}

// sipHeader reads a SIPHeader condition. Header is normally a header name;
// Clearwater also took a pattern there, which is kept: a Header holding a
// regular expression metacharacter (none occurs in real header names) is
// matched against whole header names without regard to case.
func (c *checker) sipHeader(n *node, path string) *HeaderCondition {
	h := &HeaderCondition{}
	f := c.children(n, path, rule{"Header", 1, 1}, rule{"Content", 0, 1}, rule{"Extension", 0, 1})
	for _, k := range f["Header"] {
		p := path + "/Header"
		h.Header = c.leaf(k, p)
		switch {
		case h.Header == "":
			c.fail(k, p, "empty header name")
		case isToken(h.Header) && !strings.ContainsAny(h.Header, `.*+?()[]{}|^$\`):
			h.long, h.compact = headerNames(h.Header)
		default:
			re, err := regexp.Compile("(?i)^(?:" + h.Header + ")$")
			if err != nil {
				c.fail(k, p, "%q is neither a SIP header name nor a valid regular expression", clip(h.Header))
			}
			h.nameRE = re
		}
	}
	for _, k := range f["Content"] {
		h.Content = c.regexLeaf(k, path+"/Content")
	}
	return h
}

func (c *checker) appServer(n *node, path string) ApplicationServer {
	var as ApplicationServer
	found := c.children(n, path, rule{"ServerName", 1, 1}, rule{"DefaultHandling", 0, 1}, rule{"ServiceInfo", 0, 1},
		rule{"IncludeRegisterRequest", 0, 1}, rule{"IncludeRegisterResponse", 0, 1}, rule{"Extension", 0, 1})
	for _, k := range found["ServerName"] {
		p := path + "/ServerName"
		as.ServerName = c.leaf(k, p)
		var u sip.Uri
		if err := sip.ParseUri(as.ServerName, &u); err != nil || (u.Scheme != "sip" && u.Scheme != "sips") || u.Host == "" {
			c.fail(k, p, "%q is not a SIP URI", clip(as.ServerName))
		}
	}
	for _, k := range found["DefaultHandling"] {
		// Empty is SESSION_CONTINUED, the default, as Clearwater read it.
		if c.leaf(k, path+"/DefaultHandling") != "" {
			as.DefaultHandling = DefaultHandling(c.intLeaf(k, path+"/DefaultHandling", 0, 1))
		}
	}
	for _, k := range found["ServiceInfo"] {
		as.ServiceInfo = c.leaf(k, path+"/ServiceInfo")
	}
	flags := func(f map[string][]*node, p string) {
		for _, name := range []string{"IncludeRegisterRequest", "IncludeRegisterResponse"} {
			for _, k := range f[name] {
				c.children(k, p+"/"+name, rule{"Extension", 0, 1})
				if name == "IncludeRegisterRequest" {
					as.IncludeRegisterRequest = true
				} else {
					as.IncludeRegisterResponse = true
				}
			}
		}
	}
	flags(found, path)
	for _, k := range found["Extension"] {
		p := path + "/Extension"
		flags(c.children(k, p, rule{"IncludeRegisterRequest", 0, 1}, rule{"IncludeRegisterResponse", 0, 1}, rule{"Extension", 0, 1}), p)
	}
	return as
}

// compactForm returns the compact form of a lower-case long header name
// (RFC 3261 §7.3.3 and later RFCs), or "".
func compactForm(long string) string {
	switch long {
	case "accept-contact":
		return "a"
	case "referred-by":
		return "b"
	case "content-type":
		return "c"
	case "request-disposition":
		return "d"
	case "content-encoding":
		return "e"
	case "from":
		return "f"
	case "call-id":
		return "i"
	case "reject-contact":
		return "j"
	case "supported":
		return "k"
	case "content-length":
		return "l"
	case "contact":
		return "m"
	case "identity-info":
		return "n"
	case "event":
		return "o"
	case "refer-to":
		return "r"
	case "subject":
		return "s"
	case "to":
		return "t"
	case "allow-events":
		return "u"
	case "via":
		return "v"
	case "session-expires":
		return "x"
	case "identity":
		return "y"
	}
	return ""
}

// headerNames returns the lower-case long and compact names of a header
// given by either.
func headerNames(name string) (long, compact string) {
	name = strings.ToLower(name)
	if len(name) == 1 {
		for _, l := range []string{"accept-contact", "referred-by", "content-type", "request-disposition",
			"content-encoding", "from", "call-id", "reject-contact", "supported", "content-length", "contact",
			"identity-info", "event", "refer-to", "subject", "to", "allow-events", "via", "session-expires", "identity"} {
			if compactForm(l) == name {
				return l, name
			}
		}
	}
	return name, compactForm(name)
}

// errorf is for problems outside a document's lines.
func errorf(format string, args ...any) error {
	return &Error{Msg: fmt.Sprintf(format, args...)}
}
