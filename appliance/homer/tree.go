package homer

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// maxDepth bounds element nesting. The deepest legitimate path
// (simservs/service/ruleset/rule/conditions/identity/many/except) is 8 deep;
// the margin leaves room for extensions.
const maxDepth = 32

// node is one element of a parsed document.
type node struct {
	name     xml.Name   // namespace-resolved
	attrs    []xml.Attr // without namespace declarations
	children []*node
	text     string // character data directly inside the element
	line     int
}

// readTree parses doc into a tree of elements, refusing what is not
// well-formed UTF-8 XML with exactly one root element.
func readTree(doc []byte) (*node, error) {
	// A byte order mark is allowed before UTF-8 XML; encoding/xml would take
	// it for text before the root element.
	doc = bytes.TrimPrefix(doc, []byte("\xef\xbb\xbf"))
	if len(bytes.TrimSpace(doc)) == 0 {
		return nil, malformed("document is empty")
	}
	if !utf8.Valid(doc) {
		return nil, malformed("document is not UTF-8")
	}
	d := xml.NewDecoder(bytes.NewReader(doc))
	d.Strict = true
	// encoding/xml reads UTF-8 by itself and asks CharsetReader only for
	// other declared encodings, which XCAP (RFC 4825 section 6) forbids.
	var charset string
	d.CharsetReader = func(label string, _ io.Reader) (io.Reader, error) {
		charset = label
		return nil, errors.New("not UTF-8")
	}
	var (
		root  *node
		stack []*node
		text  [][]byte // character data of each open element
	)
	for {
		line, _ := d.InputPos()
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			if charset != "" {
				return nil, malformed(fmt.Sprintf("encoding %q declared, but XCAP documents are UTF-8", charset))
			}
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				return nil, malformed(fmt.Sprintf("line %d: %s", se.Line, se.Msg))
			}
			return nil, malformed(err.Error())
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if root != nil && len(stack) == 0 {
				return nil, malformed(fmt.Sprintf("line %d: element <%s> after the root element", line, t.Name.Local))
			}
			if len(stack) == maxDepth {
				return nil, malformed(fmt.Sprintf("line %d: elements nested more than %d deep", line, maxDepth))
			}
			n := &node{name: t.Name, line: line}
			for _, a := range t.Attr {
				if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
					continue
				}
				n.attrs = append(n.attrs, a)
			}
			if len(stack) == 0 {
				root = n
			} else {
				p := stack[len(stack)-1]
				p.children = append(p.children, n)
			}
			stack = append(stack, n)
			text = append(text, nil)
		case xml.EndElement:
			n := stack[len(stack)-1]
			n.text = string(text[len(text)-1])
			stack = stack[:len(stack)-1]
			text = text[:len(text)-1]
		case xml.CharData:
			if len(stack) == 0 {
				if len(bytes.TrimSpace(t)) != 0 {
					return nil, malformed(fmt.Sprintf("line %d: text outside the root element", line))
				}
				continue
			}
			text[len(text)-1] = append(text[len(text)-1], t...)
		case xml.Directive:
			// No DTDs: the schema is fixed, and entity definitions are a
			// denial-of-service vector.
			return nil, malformed(fmt.Sprintf("line %d: DOCTYPE and other directives are not allowed", line))
		}
	}
	if root == nil {
		return nil, malformed("no root element")
	}
	return root, nil
}

func malformed(msg string) *ValidationError {
	return &ValidationError{Reason: "malformed XML: " + msg}
}

// isSpace reports whether s is XML whitespace only.
func isSpace(s string) bool {
	return strings.TrimLeft(s, " \t\r\n") == ""
}

// collapse applies XML Schema's whitespace collapsing, which every simple
// type used here (boolean, integers, anyURI, tokens) undergoes.
func collapse(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return r == ' ' || r == '\t' || r == '\r' || r == '\n'
	}), " ")
}
