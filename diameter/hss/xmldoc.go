package hss

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// The XML documents provisioned here (a ServiceProfile holding iFCs, a
// PublicIdentity) follow the CxDataType schema of 3GPP TS 29.228. They are
// read into a plain element tree that remembers where each element sits in
// the source, so that the documents can be checked element by element, with
// the line of every problem, and later spliced verbatim into the
// IMSSubscription document the S-CSCF receives.

type xnode struct {
	name       xml.Name
	line       int
	start, end int64 // the element's bytes in the source, tags included
	inStart    int64 // where its content starts
	inEnd      int64 // where its content ends
	text       strings.Builder
	kids       []*xnode
}

// parseXML reads a document into a tree. DOCTYPE declarations are refused
// (no entity tricks), as is text outside the root element.
func parseXML(what string, doc []byte) (*xnode, error) {
	if len(bytes.TrimSpace(doc)) == 0 {
		return nil, invalid("%s: empty document", what)
	}
	d := xml.NewDecoder(bytes.NewReader(doc))
	var root *xnode
	var stack []*xnode
	for {
		off := d.InputOffset()
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				return nil, invalid("%s: malformed XML at line %d: %s", what, se.Line, se.Msg)
			}
			return nil, invalid("%s: malformed XML: %v", what, err)
		}
		line, _ := d.InputPos()
		switch t := tok.(type) {
		case xml.StartElement:
			n := &xnode{name: t.Name, line: line, start: off, inStart: d.InputOffset()}
			switch {
			case len(stack) > 0:
				top := stack[len(stack)-1]
				top.kids = append(top.kids, n)
			case root != nil:
				return nil, invalid("%s: malformed XML at line %d: more than one root element", what, line)
			default:
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			n := stack[len(stack)-1]
			n.inEnd, n.end = off, d.InputOffset()
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text.Write(t)
			} else if len(bytes.TrimSpace(t)) > 0 {
				return nil, invalid("%s: malformed XML at line %d: text outside the root element", what, line)
			}
		case xml.Directive:
			return nil, invalid("%s: line %d: DOCTYPE and other declarations are not allowed", what, line)
		}
	}
	if root == nil {
		return nil, invalid("%s: malformed XML: no root element", what)
	}
	return root, nil
}

// checker collects the problems of one document.
type checker struct {
	what string
	errs []string
}

func (c *checker) fail(n *xnode, path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	c.errs = append(c.errs, fmt.Sprintf("line %d: %s", n.line, msg))
}

func (c *checker) err() error {
	if len(c.errs) == 0 {
		return nil
	}
	return invalid("%s: %s", c.what, strings.Join(c.errs, "; "))
}

// rule says how often a child may appear; max < 0 is unbounded.
type rule struct {
	name     string
	min, max int
}

// children checks n's children against rules and returns them by name.
// Elements in a namespace are extensions the schema allows (xs:any
// namespace="##other") and are skipped.
func (c *checker) children(n *xnode, path string, rules ...rule) map[string][]*xnode {
	if t := strings.TrimSpace(n.text.String()); t != "" {
		c.fail(n, path, "unexpected text %q", t)
	}
	found := map[string][]*xnode{}
	for _, k := range n.kids {
		if k.name.Space != "" {
			continue
		}
		known := false
		for _, r := range rules {
			if k.name.Local == r.name {
				known = true
				break
			}
		}
		if !known {
			c.fail(k, path, "unexpected element <%s>", k.name.Local)
			continue
		}
		found[k.name.Local] = append(found[k.name.Local], k)
	}
	for _, r := range rules {
		got := found[r.name]
		switch {
		case len(got) < r.min:
			c.fail(n, path, "missing <%s>", r.name)
		case r.max >= 0 && len(got) > r.max:
			c.fail(got[r.max], path, "more than %d <%s>", r.max, r.name)
		}
	}
	return found
}

func subPath(path, name string, i, count int) string {
	if count > 1 {
		name = fmt.Sprintf("%s[%d]", name, i+1)
	}
	if path == "" {
		return name
	}
	return path + "/" + name
}

func (c *checker) each(found map[string][]*xnode, path, name string, f func(n *xnode, path string)) {
	for i, n := range found[name] {
		f(n, subPath(path, name, i, len(found[name])))
	}
}

// leaf returns the trimmed text of an element that may not have children.
func (c *checker) leaf(n *xnode, path string) string {
	for _, k := range n.kids {
		c.fail(k, path, "unexpected element <%s>", k.name.Local)
	}
	return strings.TrimSpace(n.text.String())
}

func (c *checker) intLeaf(n *xnode, path string, lo, hi int64) int64 {
	v := c.leaf(n, path)
	i, err := strconv.ParseInt(v, 10, 64)
	if err != nil || i < lo || i > hi {
		c.fail(n, path, "%q is not an integer from %d to %d", v, lo, hi)
	}
	return i
}

// boolLeaf accepts the schema's boolean forms; empty counts as false, as in
// the iFCs Clearwater's own documentation and Ellis use.
func (c *checker) boolLeaf(n *xnode, path string) bool {
	switch v := c.leaf(n, path); v {
	case "1", "true":
		return true
	case "", "0", "false":
	default:
		c.fail(n, path, "%q is not 0, 1, true or false", v)
	}
	return false
}

func (c *checker) regexLeaf(n *xnode, path string) {
	if v := c.leaf(n, path); v != "" {
		if _, err := regexp.Compile(v); err != nil {
			c.fail(n, path, "%q is not a valid regular expression: %v", v, err)
		}
	}
}

func (c *checker) root(n *xnode, want string) bool {
	switch {
	case n.name.Local != want:
		c.fail(n, "", "the root element must be <%s>, not <%s>", want, n.name.Local)
	case n.name.Space != "":
		c.fail(n, "", "<%s> must not be in a namespace (it is in %q)", want, n.name.Space)
	default:
		return true
	}
	return false
}

// serviceProfileDoc is a checked filter-criteria document.
type serviceProfileDoc struct {
	// parts are the root's child elements, verbatim: the iFCs and any other
	// ServiceProfile content, ready to be spliced into an IMSSubscription.
	parts string
	ifcs  int
	raw   string // the whole document
}

// ParseServiceProfile checks an iFC document: a TS 29.228 ServiceProfile
// element holding InitialFilterCriteria (and optionally
// CoreNetworkServicesAuthorization, SharedIFCSetID and Extension), without
// PublicIdentity elements, which are provisioned one by one. It returns the
// number of iFCs.
func ParseServiceProfile(doc []byte) (ifcs int, err error) {
	sp, err := parseServiceProfile(doc)
	return sp.ifcs, err
}

func parseServiceProfile(doc []byte) (serviceProfileDoc, error) {
	const what = "ServiceProfile document"
	root, err := parseXML(what, doc)
	if err != nil {
		return serviceProfileDoc{}, err
	}
	c := &checker{what: what}
	out := serviceProfileDoc{raw: string(doc)}
	if c.root(root, "ServiceProfile") {
		for _, k := range root.kids {
			if k.name.Local == "PublicIdentity" && k.name.Space == "" {
				c.fail(k, "", "public identities are provisioned through .../public_ids/<impu>, not in the filter criteria")
			}
		}
		found := c.children(root, "", rule{"PublicIdentity", 0, -1}, rule{"CoreNetworkServicesAuthorization", 0, 1},
			rule{"InitialFilterCriteria", 0, -1}, rule{"SharedIFCSetID", 0, -1}, rule{"Extension", 0, 1})
		c.each(found, "", "InitialFilterCriteria", c.ifc)
		c.each(found, "", "SharedIFCSetID", func(n *xnode, p string) { c.intLeaf(n, p, 0, 1<<32-1) })
		out.ifcs = len(found["InitialFilterCriteria"])
		var b strings.Builder
		for _, k := range root.kids {
			b.Write(doc[k.start:k.end])
		}
		out.parts = b.String()
	}
	return out, c.err()
}

func (c *checker) ifc(n *xnode, path string) {
	found := c.children(n, path, rule{"Priority", 0, 1}, rule{"TriggerPoint", 0, 1},
		rule{"ApplicationServer", 1, 1}, rule{"ProfilePartIndicator", 0, 1}, rule{"Extension", 0, 1})
	c.each(found, path, "Priority", func(n *xnode, p string) { c.intLeaf(n, p, 0, 1<<31-1) })
	c.each(found, path, "ProfilePartIndicator", func(n *xnode, p string) { c.intLeaf(n, p, 0, 1) })
	c.each(found, path, "TriggerPoint", c.trigger)
	c.each(found, path, "ApplicationServer", c.appServer)
}

func (c *checker) trigger(n *xnode, path string) {
	found := c.children(n, path, rule{"ConditionTypeCNF", 1, 1}, rule{"SPT", 1, -1}, rule{"Extension", 0, 1})
	c.each(found, path, "ConditionTypeCNF", func(n *xnode, p string) { c.boolLeaf(n, p) })
	c.each(found, path, "SPT", c.spt)
}

// spt checks a service point trigger, which holds exactly one condition.
func (c *checker) spt(n *xnode, path string) {
	conditions := []string{"RequestURI", "Method", "SIPHeader", "SessionCase", "SessionDescription"}
	rules := []rule{{"ConditionNegated", 0, 1}, {"Group", 1, -1}, {"Extension", 0, 1}}
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
	c.each(found, path, "ConditionNegated", func(n *xnode, p string) { c.boolLeaf(n, p) })
	c.each(found, path, "Group", func(n *xnode, p string) { c.intLeaf(n, p, 0, 1<<31-1) })
	c.each(found, path, "RequestURI", c.regexLeaf)
	c.each(found, path, "Method", func(n *xnode, p string) {
		if v := c.leaf(n, p); !isToken(v) {
			c.fail(n, p, "%q is not a SIP method", v)
		}
	})
	c.each(found, path, "SessionCase", func(n *xnode, p string) { c.intLeaf(n, p, 0, 4) })
	c.each(found, path, "SIPHeader", func(n *xnode, p string) {
		f := c.children(n, p, rule{"Header", 1, 1}, rule{"Content", 0, 1}, rule{"Extension", 0, 1})
		c.each(f, p, "Header", func(n *xnode, p string) {
			if v := c.leaf(n, p); !isToken(v) {
				c.fail(n, p, "%q is not a SIP header name", v)
			}
		})
		c.each(f, p, "Content", c.regexLeaf)
	})
	c.each(found, path, "SessionDescription", func(n *xnode, p string) {
		f := c.children(n, p, rule{"Line", 1, 1}, rule{"Content", 0, 1}, rule{"Extension", 0, 1})
		c.each(f, p, "Line", c.regexLeaf)
		c.each(f, p, "Content", c.regexLeaf)
	})
}

func (c *checker) appServer(n *xnode, path string) {
	found := c.children(n, path, rule{"ServerName", 1, 1}, rule{"DefaultHandling", 0, 1},
		rule{"ServiceInfo", 0, 1}, rule{"Extension", 0, 1})
	c.each(found, path, "ServerName", func(n *xnode, p string) {
		v := c.leaf(n, p)
		if l := strings.ToLower(v); !(strings.HasPrefix(l, "sip:") || strings.HasPrefix(l, "sips:")) || len(v) < 5 {
			c.fail(n, p, "%q is not a SIP URI", v)
		}
	})
	c.each(found, path, "DefaultHandling", func(n *xnode, p string) { c.intLeaf(n, p, 0, 1) })
	c.each(found, path, "ServiceInfo", func(n *xnode, p string) { c.leaf(n, p) })
}

// isToken reports whether s is a non-empty RFC 3261 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("-.!%*_+`'~", r):
		default:
			return false
		}
	}
	return true
}

// publicIdentityDoc is a checked PublicIdentity element.
type publicIdentityDoc struct {
	identity string
	barred   bool
	element  string // the element, verbatim, without any XML declaration
}

// parsePublicIdentity checks a TS 29.228 PublicIdentity element: one
// Identity, an optional BarringIndication, and the schema's other optional
// elements.
func parsePublicIdentity(doc []byte) (publicIdentityDoc, error) {
	const what = "PublicIdentity document"
	root, err := parseXML(what, doc)
	if err != nil {
		return publicIdentityDoc{}, err
	}
	c := &checker{what: what}
	var out publicIdentityDoc
	if c.root(root, "PublicIdentity") {
		found := c.children(root, "", rule{"BarringIndication", 0, 1}, rule{"Identity", 1, 1},
			rule{"IdentityType", 0, 1}, rule{"WildcardedPSI", 0, 1}, rule{"WildcardedIMPU", 0, 1},
			rule{"DisplayName", 0, 1}, rule{"AliasIdentityGroupID", 0, 1}, rule{"ServiceLevelTraceInfo", 0, 1},
			rule{"Extension", 0, 1})
		c.each(found, "", "BarringIndication", func(n *xnode, p string) { out.barred = c.boolLeaf(n, p) })
		c.each(found, "", "Identity", func(n *xnode, p string) { out.identity = c.leaf(n, p) })
		c.each(found, "", "IdentityType", func(n *xnode, p string) { c.intLeaf(n, p, 0, 4) })
		out.element = string(doc[root.start:root.end])
	}
	return out, c.err()
}

// publicIdentityXML is the minimal PublicIdentity element for impu.
func publicIdentityXML(impu string, barred bool) string {
	var b strings.Builder
	b.WriteString("<PublicIdentity>")
	if barred {
		b.WriteString("<BarringIndication>1</BarringIndication>")
	}
	b.WriteString("<Identity>")
	xml.EscapeText(&b, []byte(impu))
	b.WriteString("</Identity></PublicIdentity>")
	return b.String()
}

// DefaultIFC is the iFC document a subscriber gets when none is given: the
// MMTEL application server at server (e.g. sip:mmtel.example.com) for
// originating and terminating INVITEs, as Ellis provisions new lines.
func DefaultIFC(server string) string {
	var b strings.Builder
	b.WriteString("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ServiceProfile>\n")
	// Session cases (TS 29.228): the originating iFC covers registered (0)
	// and unregistered (3) callers, the terminating one registered (1) and
	// unregistered (2) callees, as Ellis's default does.
	for i, cases := range [][]string{{"0", "3"}, {"1", "2"}} {
		fmt.Fprintf(&b, `  <InitialFilterCriteria>
    <Priority>%d</Priority>
    <TriggerPoint>
      <ConditionTypeCNF>1</ConditionTypeCNF>
      <SPT><ConditionNegated>0</ConditionNegated><Group>0</Group><Method>INVITE</Method><Extension></Extension></SPT>
`, i)
		for _, c := range cases {
			fmt.Fprintf(&b, "      <SPT><ConditionNegated>0</ConditionNegated><Group>1</Group><SessionCase>%s</SessionCase><Extension></Extension></SPT>\n", c)
		}
		b.WriteString("    </TriggerPoint>\n    <ApplicationServer>\n      <ServerName>")
		xml.EscapeText(&b, []byte(server))
		b.WriteString("</ServerName>\n      <DefaultHandling>0</DefaultHandling>\n    </ApplicationServer>\n  </InitialFilterCriteria>\n")
	}
	b.WriteString("</ServiceProfile>\n")
	return b.String()
}
