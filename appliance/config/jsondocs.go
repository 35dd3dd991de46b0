package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// The JSON documents are decoded generically and walked by hand rather than
// unmarshalled into structs, so that every problem can be reported, each
// with its position in the document, and unknown fields refused by name.

// checker collects the problems found in one document.
type checker struct {
	file string
	errs []error
}

func (c *checker) fail(path, format string, args ...any) {
	c.errs = append(c.errs, &Error{File: c.file, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (c *checker) err() error { return errors.Join(c.errs...) }

func field(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// decodeJSON parses a document whose top level must be an object.
func decodeJSON(file string, content []byte) (map[string]any, error) {
	if len(bytes.TrimSpace(content)) == 0 {
		return nil, &Error{File: file, Msg: "file is empty"}
	}
	dec := json.NewDecoder(bytes.NewReader(content))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			off := dec.InputOffset()
			return nil, &Error{File: file, Line: lineAt(content, off), Msg: "invalid JSON: more data after the top-level value"}
		}
	}
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return nil, &Error{File: file, Line: lineAt(content, se.Offset), Msg: "invalid JSON: " + se.Error()}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return nil, &Error{File: file, Msg: "invalid JSON: unexpected end of file"}
	case err != nil:
		return nil, &Error{File: file, Msg: "invalid JSON: " + err.Error()}
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, &Error{File: file, Msg: "must be a JSON object"}
	}
	return obj, nil
}

func lineAt(content []byte, off int64) int {
	off = min(max(off, 0), int64(len(content)))
	return bytes.Count(content[:off], []byte("\n")) + 1
}

// object checks that v is an object with every required field and no fields
// but those required and optional.
func (c *checker) object(path string, v any, required, optional []string) (map[string]any, bool) {
	obj, ok := v.(map[string]any)
	if !ok {
		c.fail(path, "must be an object")
		return nil, false
	}
	for _, k := range required {
		if _, ok := obj[k]; !ok {
			c.fail(path, "missing %q", k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(obj)) {
		if !slices.Contains(required, k) && !slices.Contains(optional, k) {
			c.fail(path, "unknown field %q", k)
		}
	}
	return obj, true
}

// array returns obj[key] as an array; absent fields were reported by object.
func (c *checker) array(path string, obj map[string]any, key string) ([]any, bool) {
	v, ok := obj[key]
	if !ok {
		return nil, false
	}
	a, ok := v.([]any)
	if !ok {
		c.fail(path, "%q must be an array", key)
	}
	return a, ok
}

func (c *checker) str(path string, obj map[string]any, key string) (string, bool) {
	v, ok := obj[key]
	if !ok {
		return "", false
	}
	s, ok := v.(string)
	if !ok {
		c.fail(path, "%q must be a string", key)
	}
	return s, ok
}

// integer returns v as an int within lo..hi (at most math.MaxInt32, as
// Clearwater reads these as 32-bit integers).
func integer(v any, lo, hi int64) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	i, err := strconv.ParseInt(n.String(), 10, 32)
	return i, err == nil && i >= lo && i <= hi
}

func validateSCSCF(file string, content []byte) error {
	top, err := decodeJSON(file, content)
	if err != nil {
		return err
	}
	c := &checker{file: file}
	c.object("", top, []string{"s-cscfs"}, nil)
	list, _ := c.array("", top, "s-cscfs")
	servers := map[string]string{}
	for i, v := range list {
		p := index("s-cscfs", i)
		obj, ok := c.object(p, v, []string{"server", "priority", "weight", "capabilities"}, nil)
		if !ok {
			continue
		}
		if s, ok := c.str(p, obj, "server"); ok {
			switch prev, dup := servers[s]; {
			case !isSIPURI(s):
				c.fail(p, "%q is not a SIP URI: %q", "server", s)
			case dup:
				c.fail(p, "duplicate server %q (also %s)", s, prev)
			default:
				servers[s] = p
			}
		}
		for _, k := range []string{"priority", "weight"} {
			if v, ok := obj[k]; ok {
				if _, ok := integer(v, 0, math.MaxInt32); !ok {
					c.fail(p, "%q must be a non-negative integer", k)
				}
			}
		}
		caps, _ := c.array(p, obj, "capabilities")
		for j, v := range caps {
			if _, ok := integer(v, 0, math.MaxInt32); !ok {
				c.fail(index(field(p, "capabilities"), j), "must be a non-negative integer")
			}
		}
	}
	return c.err()
}

// stripVisual removes the visual separators RFC 3966 allows in numbers, as
// Sprout does before comparing them.
func stripVisual(s string) string {
	return strings.NewReplacer("-", "", ".", "", "(", "", ")", "").Replace(s)
}

// isNumberPrefix accepts an optional + followed by digits.
func isNumberPrefix(s string) bool {
	s = strings.TrimPrefix(s, "+")
	return strings.Trim(s, "0123456789") == ""
}

func validateBGCF(file string, content []byte) error {
	top, err := decodeJSON(file, content)
	if err != nil {
		return err
	}
	c := &checker{file: file}
	c.object("", top, []string{"routes"}, nil)
	routes, _ := c.array("", top, "routes")
	domains, numbers := map[string]string{}, map[string]string{}
	for i, v := range routes {
		p := index("routes", i)
		obj, ok := c.object(p, v, []string{"route"}, []string{"name", "domain", "number"})
		if !ok {
			continue
		}
		c.str(p, obj, "name")
		_, hasDomain := obj["domain"]
		_, hasNumber := obj["number"]
		switch {
		case hasDomain && hasNumber:
			c.fail(p, `must have "domain" or "number", not both`)
		case !hasDomain && !hasNumber:
			c.fail(p, `must have "domain" or "number"`)
		}
		if d, ok := c.str(p, obj, "domain"); ok {
			key := strings.ToLower(strings.TrimSuffix(d, "."))
			switch prev, dup := domains[key]; {
			case d != "*" && !isHost(d):
				c.fail(p, "%q is not a hostname or IP address: %q", "domain", d)
			case dup:
				c.fail(p, "duplicate domain %q (%s is used)", d, prev)
			default:
				domains[key] = p
			}
		}
		if n, ok := c.str(p, obj, "number"); ok {
			key := stripVisual(n)
			switch prev, dup := numbers[key]; {
			case key == "" || key == "+" || !isNumberPrefix(key):
				c.fail(p, "%q is not a telephone number: %q", "number", n)
			case dup:
				c.fail(p, "duplicate number %q (%s is used)", n, prev)
			default:
				numbers[key] = p
			}
		}
		route, ok := c.array(p, obj, "route")
		if ok && len(route) == 0 {
			c.fail(p, "%q must not be empty", "route")
		}
		for j, v := range route {
			rp := index(field(p, "route"), j)
			if s, ok := v.(string); !ok {
				c.fail(rp, "must be a string")
			} else if !isSIPURI(s) {
				c.fail(rp, "%q is not a SIP URI", s)
			}
		}
	}
	return c.err()
}

func validateENUM(file string, content []byte) error {
	top, err := decodeJSON(file, content)
	if err != nil {
		return err
	}
	c := &checker{file: file}
	c.object("", top, []string{"number_blocks"}, nil)
	blocks, _ := c.array("", top, "number_blocks")
	prefixes := map[string]string{}
	for i, v := range blocks {
		p := index("number_blocks", i)
		obj, ok := c.object(p, v, []string{"prefix", "regex"}, []string{"name"})
		if !ok {
			continue
		}
		c.str(p, obj, "name")
		if pre, ok := c.str(p, obj, "prefix"); ok {
			key := stripVisual(pre)
			switch prev, dup := prefixes[key]; {
			case !isNumberPrefix(key):
				c.fail(p, "%q is not a number prefix: %q", "prefix", pre)
			case dup:
				c.fail(p, "duplicate prefix %q (%s is used)", pre, prev)
			default:
				prefixes[key] = p
			}
		}
		if re, ok := c.str(p, obj, "regex"); ok {
			if _, _, msg := compileENUM(re); msg != "" {
				c.fail(p, "%q %s", "regex", msg)
			}
		}
	}
	return c.err()
}

// isToken reports whether s is a SIP token (RFC 3261), the syntax of a
// Resource-Priority namespace and priority and of a method name.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && strings.IndexByte("-.!%*_+`'~", c) < 0 {
			return false
		}
	}
	return true
}

func validateRPH(file string, content []byte) error {
	top, err := decodeJSON(file, content)
	if err != nil {
		return err
	}
	c := &checker{file: file}
	c.object("", top, []string{"priority_blocks"}, nil)
	blocks, _ := c.array("", top, "priority_blocks")
	values := map[string]string{}
	for i, v := range blocks {
		p := index("priority_blocks", i)
		obj, ok := c.object(p, v, []string{"priority", "rph_values"}, nil)
		if !ok {
			continue
		}
		if v, ok := obj["priority"]; ok {
			if _, ok := integer(v, 1, 15); !ok {
				c.fail(p, "%q must be an integer from 1 (lowest) to 15 (highest)", "priority")
			}
		}
		vals, _ := c.array(p, obj, "rph_values")
		for j, v := range vals {
			vp := index(field(p, "rph_values"), j)
			s, ok := v.(string)
			switch prev, dup := values[s]; {
			case !ok:
				c.fail(vp, "must be a string")
			case !isToken(s):
				c.fail(vp, "%q is not a Resource-Priority value", s)
			case dup:
				c.fail(vp, "%q is already given a priority in %s", s, prev)
			default:
				values[s] = p
			}
		}
	}
	return c.err()
}

func validateDNS(file string, content []byte) error {
	top, err := decodeJSON(file, content)
	if err != nil {
		return err
	}
	c := &checker{file: file}
	c.object("", top, nil, []string{"hostnames"})
	hosts, _ := c.array("", top, "hostnames")
	names := map[string]string{}
	for i, v := range hosts {
		p := index("hostnames", i)
		obj, ok := c.object(p, v, []string{"name", "records"}, nil)
		if !ok {
			continue
		}
		if n, ok := c.str(p, obj, "name"); ok {
			key := strings.ToLower(strings.TrimSuffix(n, "."))
			switch prev, dup := names[key]; {
			case !isHostname(n):
				c.fail(p, "%q is not a hostname: %q", "name", n)
			case dup:
				c.fail(p, "duplicate name %q (also %s)", n, prev)
			default:
				names[key] = p
			}
		}
		// A name with a CNAME can have no other record, so exactly one.
		recs, ok := c.array(p, obj, "records")
		if ok && len(recs) != 1 {
			c.fail(p, "%q must hold exactly one record", "records")
		}
		for j, v := range recs {
			rp := index(field(p, "records"), j)
			rec, ok := c.object(rp, v, []string{"rrtype", "target"}, nil)
			if !ok {
				continue
			}
			if t, ok := c.str(rp, rec, "rrtype"); ok && t != "CNAME" {
				c.fail(rp, "%q must be \"CNAME\", the only record type supported", "rrtype")
			}
			if t, ok := c.str(rp, rec, "target"); ok && !isHostname(t) {
				c.fail(rp, "%q is not a hostname: %q", "target", t)
			}
		}
	}
	return c.err()
}

func validateSAS(file string, content []byte) error {
	top, err := decodeJSON(file, content)
	if err != nil {
		return err
	}
	c := &checker{file: file}
	c.object("", top, []string{"sas_servers"}, nil)
	servers, _ := c.array("", top, "sas_servers")
	for i, v := range servers {
		p := index("sas_servers", i)
		obj, ok := c.object(p, v, []string{"ip"}, nil)
		if !ok {
			continue
		}
		if ip, ok := c.str(p, obj, "ip"); ok && (!isIP(ip) || strings.Contains(ip, ":")) {
			c.fail(p, "%q is not an IPv4 address: %q", "ip", ip)
		}
	}
	return c.err()
}
