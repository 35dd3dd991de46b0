package config

import (
	"bytes"
	"cmp"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
)

// The iFC documents follow the InitialFilterCriteria schema of 3GPP TS
// 29.228 (CxDataType). They are read into a plain element tree and walked by
// hand, so that every problem is reported with its line, and elements the
// schema does not allow are refused by name. Element order is not checked:
// Clearwater does not depend on it. Elements in another namespace are
// allowed where the schema has xs:any namespace="##other", and Extension
// elements may hold anything.

type element struct {
	name xml.Name
	line int
	text strings.Builder
	kids []*element
}

// parseXML reads a document into a tree, refusing DOCTYPE declarations and
// text outside the root element.
func parseXML(file string, content []byte) (*element, error) {
	if len(bytes.TrimSpace(content)) == 0 {
		return nil, &Error{File: file, Msg: "file is empty"}
	}
	d := xml.NewDecoder(bytes.NewReader(content))
	var root *element
	var stack []*element
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		var se *xml.SyntaxError
		if errors.As(err, &se) {
			return nil, &Error{File: file, Line: se.Line, Msg: "invalid XML: " + se.Msg}
		}
		if err != nil {
			return nil, &Error{File: file, Msg: "invalid XML: " + err.Error()}
		}
		line, _ := d.InputPos()
		switch t := tok.(type) {
		case xml.StartElement:
			e := &element{name: t.Name, line: line}
			if len(stack) > 0 {
				top := stack[len(stack)-1]
				top.kids = append(top.kids, e)
			} else if root != nil {
				return nil, &Error{File: file, Line: line, Msg: "invalid XML: more than one root element"}
			} else {
				root = e
			}
			stack = append(stack, e)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text.Write(t)
			} else if len(bytes.TrimSpace(t)) > 0 {
				return nil, &Error{File: file, Line: line, Msg: "invalid XML: text outside the root element"}
			}
		case xml.Directive:
			return nil, &Error{File: file, Line: line, Msg: "DOCTYPE and other declarations are not allowed"}
		}
	}
	if root == nil {
		return nil, &Error{File: file, Msg: "invalid XML: no root element"}
	}
	return root, nil
}

type xmlChecker struct {
	file string
	errs []error
}

func (c *xmlChecker) fail(e *element, path, format string, args ...any) {
	c.errs = append(c.errs, &Error{File: c.file, Line: e.line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// rule says how often a child element may appear; max < 0 is unbounded.
type rule struct {
	name     string
	min, max int
}

// children checks e's children against rules and returns them by name.
// Children in another namespace are skipped when other is set.
func (c *xmlChecker) children(e *element, path string, other bool, rules ...rule) map[string][]*element {
	if t := strings.TrimSpace(e.text.String()); t != "" {
		c.fail(e, path, "unexpected text %q", t)
	}
	found := map[string][]*element{}
	for _, k := range e.kids {
		if k.name.Space != "" && other {
			continue
		}
		known := false
		for _, r := range rules {
			known = known || (k.name.Space == "" && k.name.Local == r.name)
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
			c.fail(e, path, "missing <%s>", r.name)
		case r.max >= 0 && len(got) > r.max:
			c.fail(got[r.max], path, "more than %d <%s>", r.max, r.name)
		}
	}
	return found
}

// sub returns the path of child k, numbered when it may repeat.
func sub(path, name string, i int, repeats bool) string {
	if repeats {
		name = fmt.Sprintf("%s[%d]", name, i+1)
	}
	if path == "" {
		return name
	}
	return path + "/" + name
}

// leaf returns the text of an element that may not have children.
func (c *xmlChecker) leaf(e *element, path string) string {
	for _, k := range e.kids {
		c.fail(k, path, "unexpected element <%s>", k.name.Local)
	}
	return strings.TrimSpace(e.text.String())
}

// each checks every child called name with f.
func (c *xmlChecker) each(found map[string][]*element, path, name string, repeats bool, f func(e *element, path string)) {
	for i, e := range found[name] {
		f(e, sub(path, name, i, repeats))
	}
}

func (c *xmlChecker) intLeaf(e *element, path string, lo, hi int64) {
	v := c.leaf(e, path)
	if n, err := strconv.ParseInt(v, 10, 64); err != nil || n < lo || n > hi {
		if lo == 0 && hi == 1<<31-1 {
			c.fail(e, path, "%q is not a non-negative integer", v)
		} else {
			c.fail(e, path, "%q is not an integer from %d to %d", v, lo, hi)
		}
	}
}

func (c *xmlChecker) boolLeaf(e *element, path string) {
	switch v := c.leaf(e, path); v {
	case "true", "false", "1", "0":
	default:
		c.fail(e, path, "%q is not true, false, 1 or 0", v)
	}
}

// regexLeaf checks a pattern Clearwater matches SIP messages with.
func (c *xmlChecker) regexLeaf(e *element, path string) {
	v := c.leaf(e, path)
	if _, err := regexp.Compile(v); err != nil {
		var se *syntax.Error
		if errors.As(err, &se) {
			c.fail(e, path, "%q is not a valid regular expression: %s: %s", v, se.Code, se.Expr)
		} else {
			c.fail(e, path, "%q is not a valid regular expression: %v", v, err)
		}
	}
}

func (c *xmlChecker) ifc(e *element, path string) {
	found := c.children(e, path, true,
		rule{"Priority", 0, 1}, rule{"TriggerPoint", 0, 1}, rule{"ApplicationServer", 1, 1},
		rule{"ProfilePartIndicator", 0, 1}, rule{"Extension", 0, 1})
	c.each(found, path, "Priority", false, func(e *element, p string) { c.intLeaf(e, p, 0, 1<<31-1) })
	c.each(found, path, "ProfilePartIndicator", false, func(e *element, p string) { c.intLeaf(e, p, 0, 1) })
	c.each(found, path, "TriggerPoint", false, c.trigger)
	c.each(found, path, "ApplicationServer", false, c.appServer)
}

func (c *xmlChecker) trigger(e *element, path string) {
	found := c.children(e, path, true, rule{"ConditionTypeCNF", 1, 1}, rule{"SPT", 1, -1}, rule{"Extension", 0, 1})
	c.each(found, path, "ConditionTypeCNF", false, c.boolLeaf)
	c.each(found, path, "SPT", true, c.spt)
}

// spt checks a service point trigger, which holds exactly one condition.
func (c *xmlChecker) spt(e *element, path string) {
	conditions := []string{"RequestURI", "Method", "SIPHeader", "SessionCase", "SessionDescription"}
	rules := []rule{{"ConditionNegated", 0, 1}, {"Group", 1, -1}, {"Extension", 0, 1}}
	for _, name := range conditions {
		rules = append(rules, rule{name, 0, 1})
	}
	found := c.children(e, path, true, rules...)
	n := 0
	for _, name := range conditions {
		n += len(found[name])
	}
	if n != 1 {
		c.fail(e, path, "must hold exactly one of <%s>", strings.Join(conditions, ">, <"))
	}
	c.each(found, path, "ConditionNegated", false, c.boolLeaf)
	c.each(found, path, "Group", true, func(e *element, p string) { c.intLeaf(e, p, 0, 1<<31-1) })
	c.each(found, path, "RequestURI", false, c.regexLeaf)
	c.each(found, path, "Method", false, func(e *element, p string) {
		if v := c.leaf(e, p); !isToken(v) {
			c.fail(e, p, "%q is not a SIP method", v)
		}
	})
	c.each(found, path, "SessionCase", false, func(e *element, p string) { c.intLeaf(e, p, 0, 4) })
	c.each(found, path, "SIPHeader", false, func(e *element, p string) {
		f := c.children(e, p, true, rule{"Header", 1, 1}, rule{"Content", 0, 1}, rule{"Extension", 0, 1})
		c.each(f, p, "Header", false, c.regexLeaf)
		c.each(f, p, "Content", false, c.regexLeaf)
	})
	c.each(found, path, "SessionDescription", false, func(e *element, p string) {
		f := c.children(e, p, true, rule{"Line", 1, 1}, rule{"Content", 0, 1}, rule{"Extension", 0, 1})
		c.each(f, p, "Line", false, c.regexLeaf)
		c.each(f, p, "Content", false, c.regexLeaf)
	})
	c.each(found, path, "Extension", false, func(e *element, p string) {
		f := c.children(e, p, false, rule{"RegistrationType", 0, 2}, rule{"Extension", 0, 1})
		c.each(f, p, "RegistrationType", true, func(e *element, p string) { c.intLeaf(e, p, 0, 2) })
	})
}

func (c *xmlChecker) appServer(e *element, path string) {
	found := c.children(e, path, true,
		rule{"ServerName", 1, 1}, rule{"DefaultHandling", 0, 1}, rule{"ServiceInfo", 0, 1}, rule{"Extension", 0, 1})
	c.each(found, path, "ServerName", false, func(e *element, p string) {
		if v := c.leaf(e, p); !isSIPURI(v) {
			c.fail(e, p, "%q is not a SIP URI", v)
		}
	})
	c.each(found, path, "DefaultHandling", false, func(e *element, p string) { c.intLeaf(e, p, 0, 1) })
	c.each(found, path, "ServiceInfo", false, func(e *element, p string) { c.leaf(e, p) })
	c.each(found, path, "Extension", false, func(e *element, p string) {
		f := c.children(e, p, true, rule{"IncludeRegisterRequest", 0, 1}, rule{"IncludeRegisterResponse", 0, 1}, rule{"Extension", 0, 1})
		for _, name := range []string{"IncludeRegisterRequest", "IncludeRegisterResponse"} {
			c.each(f, p, name, false, func(e *element, p string) { c.children(e, p, true, rule{"Extension", 0, 1}) })
		}
	})
}

// root checks that the document element is want, in no namespace.
func (c *xmlChecker) root(e *element, want string) bool {
	switch {
	case e.name.Local != want:
		c.fail(e, "", "the root element must be <%s>, not <%s>", want, e.name.Local)
	case e.name.Space != "":
		c.fail(e, "", "the root element <%s> must not be in a namespace (it is in %q)", want, e.name.Space)
	default:
		return true
	}
	return false
}

// err returns the problems found, in line order.
func (c *xmlChecker) err() error {
	slices.SortStableFunc(c.errs, func(a, b error) int {
		return cmp.Compare(a.(*Error).Line, b.(*Error).Line)
	})
	return errors.Join(c.errs...)
}

func validateSharedIFCs(file string, content []byte) error {
	root, err := parseXML(file, content)
	if err != nil {
		return err
	}
	c := &xmlChecker{file: file}
	if c.root(root, "SharedIFCsSets") {
		found := c.children(root, "", false, rule{"SharedIFCsSet", 0, -1})
		ids := map[uint64]string{}
		c.each(found, "", "SharedIFCsSet", true, func(e *element, p string) {
			f := c.children(e, p, false, rule{"SetID", 1, 1}, rule{"InitialFilterCriteria", 0, -1})
			c.each(f, p, "SetID", false, func(e *element, p string) {
				v := c.leaf(e, p)
				id, err := strconv.ParseUint(v, 10, 32)
				switch prev, dup := ids[id]; {
				case err != nil:
					c.fail(e, p, "%q is not a non-negative integer", v)
				case dup:
					c.fail(e, p, "set %d is already defined by %s", id, prev)
				default:
					ids[id] = strings.TrimSuffix(p, "/SetID")
				}
			})
			c.each(f, p, "InitialFilterCriteria", true, c.ifc)
		})
	}
	return c.err()
}

func validateFallbackIFCs(file string, content []byte) error {
	root, err := parseXML(file, content)
	if err != nil {
		return err
	}
	c := &xmlChecker{file: file}
	if c.root(root, "FallbackIFCsSet") {
		found := c.children(root, "", false, rule{"InitialFilterCriteria", 0, -1})
		c.each(found, "", "InitialFilterCriteria", true, c.ifc)
	}
	return c.err()
}
