package ifc

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Error is one problem found in an iFC document.
type Error struct {
	Line int
	// Path locates the element, e.g.
	// "InitialFilterCriteria[2]/TriggerPoint/SPT[1]/Method".
	Path string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// maxDepth bounds element nesting; no iFC document comes near it.
const maxDepth = 64

// node is an element of a document, read into a plain tree so that each
// problem can be reported with its line.
type node struct {
	name xml.Name
	line int
	text strings.Builder
	kids []*node
}

// readXML reads a document into its top-level elements. More than one is
// allowed so that a bare list of InitialFilterCriteria can be read; DOCTYPE
// declarations and text outside elements are refused.
func readXML(doc []byte) ([]*node, error) {
	if len(bytes.TrimSpace(doc)) == 0 {
		return nil, &Error{Msg: "empty document"}
	}
	d := xml.NewDecoder(bytes.NewReader(doc))
	var roots, stack []*node
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				return nil, &Error{Line: se.Line, Msg: "malformed XML: " + se.Msg}
			}
			return nil, &Error{Msg: "malformed XML: " + err.Error()}
		}
		line, _ := d.InputPos()
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) >= maxDepth {
				return nil, &Error{Line: line, Msg: fmt.Sprintf("elements nested deeper than %d", maxDepth)}
			}
			n := &node{name: t.Name, line: line}
			if len(stack) > 0 {
				top := stack[len(stack)-1]
				top.kids = append(top.kids, n)
			} else {
				roots = append(roots, n)
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text.Write(t)
			} else if len(bytes.TrimSpace(t)) > 0 {
				return nil, &Error{Line: line, Msg: "malformed XML: text outside the root element"}
			}
		case xml.Directive:
			return nil, &Error{Line: line, Msg: "DOCTYPE and other declarations are not allowed"}
		}
	}
	if len(roots) == 0 {
		return nil, &Error{Msg: "malformed XML: no root element"}
	}
	return roots, nil
}

// checker collects the problems of one part of a document.
type checker struct {
	errs []error
}

func (c *checker) fail(n *node, path, format string, args ...any) {
	c.errs = append(c.errs, &Error{Line: n.line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// rule says how often a child may appear; max < 0 is unbounded.
type rule struct {
	name     string
	min, max int
}

// children checks n's children against rules and returns them by name.
// Elements in a namespace are extensions the schema allows (xs:any
// namespace="##other") and are skipped, as is text-free whitespace.
func (c *checker) children(n *node, path string, rules ...rule) map[string][]*node {
	if t := strings.TrimSpace(n.text.String()); t != "" {
		c.fail(n, path, "unexpected text %q", clip(t))
	}
	found := make(map[string][]*node, len(rules))
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
			c.fail(k, path, "unexpected element <%s>", clip(k.name.Local))
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

// leaf returns the trimmed text of an element that may not have children.
func (c *checker) leaf(n *node, path string) string {
	for _, k := range n.kids {
		c.fail(k, path, "unexpected element <%s>", clip(k.name.Local))
	}
	return strings.TrimSpace(n.text.String())
}

// join extends path with name, numbered (from 1) when it may repeat.
func join(path, name string, i int, repeats bool) string {
	if repeats {
		name = fmt.Sprintf("%s[%d]", name, i+1)
	}
	if path == "" {
		return name
	}
	return path + "/" + name
}

// clip shortens a value quoted in an error message.
func clip(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

// isToken reports whether s is a non-empty RFC 3261 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch r := s[i]; {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.IndexByte("-.!%*_+`'~", r) >= 0:
		default:
			return false
		}
	}
	return true
}
