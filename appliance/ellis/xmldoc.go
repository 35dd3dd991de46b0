package ellis

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"slices"
	"strings"
)

// elem is a parsed XML element with namespaces resolved, so documents can be
// edited and written back with prefixes of our choosing whatever prefixes
// their author used. Comments and processing instructions are not kept.
type elem struct {
	Name     xml.Name
	Attrs    []xml.Attr // without namespace declarations
	Children []*elem
	Text     string // trimmed character data of a leaf
}

// parseXML reads one document.
func parseXML(doc []byte) (*elem, error) {
	dec := xml.NewDecoder(bytes.NewReader(doc))
	var stack []*elem
	var root *elem
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("malformed XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			e := &elem{Name: t.Name}
			for _, a := range t.Attr {
				if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
					continue
				}
				e.Attrs = append(e.Attrs, a)
			}
			if len(stack) == 0 {
				if root != nil {
					return nil, fmt.Errorf("malformed XML: more than one root element")
				}
				root = e
			} else {
				p := stack[len(stack)-1]
				p.Children = append(p.Children, e)
			}
			stack = append(stack, e)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].Text += string(t)
			} else if len(bytes.TrimSpace(t)) > 0 {
				return nil, fmt.Errorf("malformed XML: text outside the root element")
			}
		}
	}
	if root == nil {
		return nil, fmt.Errorf("malformed XML: no root element")
	}
	root.trim()
	return root, nil
}

func (e *elem) trim() {
	e.Text = strings.TrimSpace(e.Text)
	for _, c := range e.Children {
		c.trim()
	}
}

// child returns the first child with the given name.
func (e *elem) child(space, local string) *elem {
	if e == nil {
		return nil
	}
	for _, c := range e.Children {
		if c.Name.Space == space && c.Name.Local == local {
			return c
		}
	}
	return nil
}

func (e *elem) attr(local string) string {
	for _, a := range e.Attrs {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// replace puts n where the first child named like n is, or appends it, and
// drops any further children of that name.
func (e *elem) replace(n *elem) {
	seen := false
	e.Children = slices.DeleteFunc(e.Children, func(c *elem) bool {
		if c.Name != n.Name {
			return false
		}
		dup := seen
		seen = true
		return dup
	})
	for i, c := range e.Children {
		if c.Name == n.Name {
			e.Children[i] = n
			return
		}
	}
	e.Children = append(e.Children, n)
}

func el(space, local string, children ...*elem) *elem {
	return &elem{Name: xml.Name{Space: space, Local: local}, Children: children}
}

func (e *elem) with(attr, value string) *elem {
	e.Attrs = append(e.Attrs, xml.Attr{Name: xml.Name{Local: attr}, Value: value})
	return e
}

func (e *elem) text(t string) *elem {
	e.Text = t
	return e
}

// xmlWriter writes elements with fixed prefixes: one namespace is the
// default, the others get the prefixes given or ns1, ns2, ... declared on
// the root.
type xmlWriter struct {
	buf      bytes.Buffer
	defaultN string
	prefix   map[string]string
	indent   bool
}

// render writes a document. defaultNS is the root's default namespace;
// prefixes names the prefix of other namespaces ("" for none).
func render(root *elem, defaultNS string, prefixes map[string]string, indent bool) []byte {
	w := &xmlWriter{defaultN: defaultNS, prefix: map[string]string{}, indent: indent}
	for ns, p := range prefixes {
		w.prefix[ns] = p
	}
	var used []string
	root.walk(func(e *elem) {
		if e.Name.Space != "" && e.Name.Space != defaultNS {
			used = append(used, e.Name.Space)
		}
		for _, a := range e.Attrs {
			if a.Name.Space != "" {
				used = append(used, a.Name.Space)
			}
		}
	})
	slices.Sort(used)
	used = slices.Compact(used)
	taken := map[string]bool{}
	for _, p := range w.prefix {
		taken[p] = true
	}
	n := 0
	var decls []xml.Attr
	for _, ns := range used {
		p := w.prefix[ns]
		for p == "" || (taken[p] && w.prefix[ns] == "") {
			n++
			p = fmt.Sprintf("ns%d", n)
		}
		w.prefix[ns] = p
		taken[p] = true
		decls = append(decls, xml.Attr{Name: xml.Name{Local: "xmlns:" + p}, Value: ns})
	}
	w.buf.WriteString(xml.Header)
	w.elem(root, 0, "", decls)
	if indent {
		w.buf.WriteByte('\n')
	}
	return w.buf.Bytes()
}

func (e *elem) walk(fn func(*elem)) {
	fn(e)
	for _, c := range e.Children {
		c.walk(fn)
	}
}

func (w *xmlWriter) name(n xml.Name, attr bool) string {
	if n.Space == "" || (!attr && n.Space == w.defaultN) {
		return n.Local
	}
	return w.prefix[n.Space] + ":" + n.Local
}

func (w *xmlWriter) elem(e *elem, depth int, inherited string, decls []xml.Attr) {
	if w.indent && depth > 0 {
		w.buf.WriteString("\n" + strings.Repeat("  ", depth))
	}
	name := w.name(e.Name, false)
	w.buf.WriteString("<" + name)
	// Unprefixed names take the default namespace in scope: declare it
	// where it changes (the root, or an unqualified element inside).
	if e.Name.Space == "" || e.Name.Space == w.defaultN {
		if e.Name.Space != inherited {
			w.attr("xmlns", e.Name.Space)
			inherited = e.Name.Space
		}
	}
	for _, d := range decls {
		w.attr(d.Name.Local, d.Value)
	}
	for _, a := range e.Attrs {
		w.attr(w.name(a.Name, true), a.Value)
	}
	if len(e.Children) == 0 && e.Text == "" {
		w.buf.WriteString("/>")
		return
	}
	w.buf.WriteString(">")
	xml.EscapeText(&w.buf, []byte(e.Text))
	for _, c := range e.Children {
		w.elem(c, depth+1, inherited, nil)
	}
	if w.indent && len(e.Children) > 0 {
		w.buf.WriteString("\n" + strings.Repeat("  ", depth))
	}
	w.buf.WriteString("</" + name + ">")
}

func (w *xmlWriter) attr(name, value string) {
	w.buf.WriteString(" " + name + `="`)
	xml.EscapeText(&w.buf, []byte(value))
	w.buf.WriteString(`"`)
}

// canonical is a comparable form of an element: names with namespaces,
// sorted attributes, trimmed text.
func (e *elem) canonical() string {
	var b strings.Builder
	var walk func(*elem)
	walk = func(e *elem) {
		b.WriteString("<{" + e.Name.Space + "}" + e.Name.Local)
		attrs := slices.Clone(e.Attrs)
		slices.SortFunc(attrs, func(x, y xml.Attr) int {
			return strings.Compare(x.Name.Space+" "+x.Name.Local, y.Name.Space+" "+y.Name.Local)
		})
		for _, a := range attrs {
			fmt.Fprintf(&b, " {%s}%s=%q", a.Name.Space, a.Name.Local, a.Value)
		}
		b.WriteString(">" + e.Text)
		for _, c := range e.Children {
			walk(c)
		}
		b.WriteString("</>")
	}
	walk(e)
	return b.String()
}
