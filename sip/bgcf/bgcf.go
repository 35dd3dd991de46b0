// Package bgcf holds the BGCF's routing table: Clearwater's bgcf.json, which
// maps a request's routing number or telephone number (longest prefix) or
// its domain (exact, then the "*" default) to the route set of IBCFs or
// trunks the request is sent through.
package bgcf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// DefaultDomain is the domain of the default route set.
const DefaultDomain = "*"

// Routes is a parsed bgcf.json. The zero value routes nothing. It is
// immutable and safe for concurrent use.
type Routes struct {
	domains    map[string][]sip.Uri // by lower-case domain
	numbers    []numberRoute        // longest prefix first
	deflt      []sip.Uri
	hasDefault bool
}

type numberRoute struct {
	prefix string
	route  []sip.Uri
}

// entry is one element of "routes"; pointers tell absent from empty.
type entry struct {
	Name   *string          `json:"name"`
	Domain *string          `json:"domain"`
	Number *string          `json:"number"`
	Route  *json.RawMessage `json:"route"`
}

// ParseBGCFJSON parses and validates bgcf.json:
//
//	{"routes":[{"name":..., "domain":"example.net" or "*", "route":["sip:a;lr","sip:b;lr"]},
//	           {"name":..., "number":"+1650", "route":[...]}]}
//
// Each entry has exactly one of domain and number and a non-empty route of
// SIP URIs. As in Clearwater, when a domain or number appears twice the
// first entry is used. Errors name the entry and field at fault.
func ParseBGCFJSON(data []byte) (Routes, error) {
	var doc struct {
		Routes *[]entry `json:"routes"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return Routes{}, fmt.Errorf("bgcf.json: %w", err)
	}
	if dec.More() {
		return Routes{}, fmt.Errorf("bgcf.json: trailing data after the top-level object")
	}
	if doc.Routes == nil {
		return Routes{}, fmt.Errorf("bgcf.json: missing \"routes\" array")
	}
	r := Routes{domains: make(map[string][]sip.Uri)}
	seenNumber := make(map[string]bool)
	for i, e := range *doc.Routes {
		where := fmt.Sprintf("bgcf.json: routes[%d]", i)
		if e.Name != nil {
			where += fmt.Sprintf(" (%q)", *e.Name)
		}
		route, err := parseRoute(e.Route)
		if err != nil {
			return Routes{}, fmt.Errorf("%s: %w", where, err)
		}
		switch {
		case e.Domain != nil && e.Number != nil:
			return Routes{}, fmt.Errorf("%s: has both \"domain\" and \"number\"; an entry is one or the other", where)
		case e.Domain != nil:
			d := domainKey(*e.Domain)
			if d == "" {
				return Routes{}, fmt.Errorf("%s: \"domain\" is empty", where)
			}
			if d == DefaultDomain {
				if !r.hasDefault {
					r.deflt, r.hasDefault = route, true
				}
				continue
			}
			if _, dup := r.domains[d]; !dup {
				r.domains[d] = route
			}
		case e.Number != nil:
			n := stripVisual(*e.Number)
			if !isNumber(n) {
				return Routes{}, fmt.Errorf("%s: \"number\" %q is not digits with an optional leading '+'", where, *e.Number)
			}
			if !seenNumber[n] {
				seenNumber[n] = true
				r.numbers = append(r.numbers, numberRoute{prefix: n, route: route})
			}
		default:
			return Routes{}, fmt.Errorf("%s: needs \"domain\" or \"number\"", where)
		}
	}
	slices.SortStableFunc(r.numbers, func(a, b numberRoute) int { return len(b.prefix) - len(a.prefix) })
	return r, nil
}

// parseRoute checks that "route" is a non-empty array of SIP URIs.
func parseRoute(raw *json.RawMessage) ([]sip.Uri, error) {
	if raw == nil {
		return nil, fmt.Errorf("missing \"route\"")
	}
	var list []string
	if err := json.Unmarshal(*raw, &list); err != nil {
		return nil, fmt.Errorf("\"route\" must be an array of SIP URI strings: %w", err)
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("\"route\" is empty")
	}
	out := make([]sip.Uri, len(list))
	for j, s := range list {
		s = strings.TrimSpace(s)
		// Accept the name-addr form "<sip:...>" as Clearwater did.
		s = strings.TrimSuffix(strings.TrimPrefix(s, "<"), ">")
		if err := sip.ParseUri(s, &out[j]); err != nil {
			return nil, fmt.Errorf("\"route\"[%d] %q: %w", j, list[j], err)
		}
		if sc := strings.ToLower(out[j].Scheme); sc != "sip" && sc != "sips" {
			return nil, fmt.Errorf("\"route\"[%d] %q is not a SIP URI", j, list[j])
		}
		if out[j].Host == "" {
			return nil, fmt.Errorf("\"route\"[%d] %q has no host", j, list[j])
		}
	}
	return out, nil
}

// Lookup returns the route set for a request, copied so that the caller
// may modify it, and whether one was found:
//
//   - with a routing number (rn, or else the rn parameter of uri), the
//     number route with the longest matching prefix, else the default;
//   - for a telephone number (a tel URI, or a SIP URI with user=phone), the
//     longest matching number route, else the default;
//   - for any other SIP URI, the route of its exact domain, else the default.
//
// When nothing matches a number the caller rejects the request (404); when
// nothing matches a domain it may forward the request to the domain as is.
func (r Routes) Lookup(uri *sip.Uri, rn string) ([]sip.Uri, bool) {
	if rn == "" && uri != nil {
		rn = uriParam(uri, "rn")
	}
	if rn != "" {
		return r.byNumber(rn)
	}
	if uri == nil {
		return nil, false
	}
	if num, ok := phoneNumber(uri); ok {
		return r.byNumber(num)
	}
	if strings.EqualFold(uri.Scheme, "tel") {
		return r.fallback()
	}
	if route, ok := r.domains[domainKey(uri.Host)]; ok {
		return clone(route), true
	}
	return r.fallback()
}

func (r Routes) byNumber(n string) ([]sip.Uri, bool) {
	n = stripVisual(n)
	for _, nr := range r.numbers {
		if strings.HasPrefix(n, nr.prefix) {
			return clone(nr.route), true
		}
	}
	return r.fallback()
}

func (r Routes) fallback() ([]sip.Uri, bool) {
	if !r.hasDefault {
		return nil, false
	}
	return clone(r.deflt), true
}

func clone(route []sip.Uri) []sip.Uri {
	out := make([]sip.Uri, len(route))
	for i := range route {
		out[i] = *route[i].Clone()
	}
	return out
}

// phoneNumber returns the number a tel URI or user=phone SIP URI names.
func phoneNumber(u *sip.Uri) (string, bool) {
	switch strings.ToLower(u.Scheme) {
	case "tel":
		n, _, _ := strings.Cut(u.Raw(), ";")
		return n, n != ""
	case "sip", "sips", "":
		if !strings.EqualFold(uriParam(u, "user"), "phone") {
			return "", false
		}
		n, _, _ := strings.Cut(u.User, ";")
		return n, n != ""
	}
	return "", false
}

// uriParam finds a parameter by case-insensitive name: among a tel URI's
// parameters, or a SIP URI's user parameters and then URI parameters.
func uriParam(u *sip.Uri, name string) string {
	var params string
	if strings.EqualFold(u.Scheme, "tel") {
		_, params, _ = strings.Cut(u.Raw(), ";")
	} else {
		_, params, _ = strings.Cut(u.User, ";")
	}
	for p := range strings.SplitSeq(params, ";") {
		k, v, _ := strings.Cut(p, "=")
		if strings.EqualFold(k, name) {
			return v
		}
	}
	for _, kv := range u.UriParams {
		if strings.EqualFold(kv.K, name) {
			return kv.V
		}
	}
	return ""
}

// domainKey normalises a domain or IP literal for matching: lower case,
// IPv6 brackets and a trailing root dot removed.
func domainKey(d string) string {
	return strings.TrimSuffix(strings.Trim(strings.ToLower(strings.TrimSpace(d)), "[]"), ".")
}

// stripVisual removes RFC 3966 visual separators.
func stripVisual(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '-', '.', '(', ')', ' ':
			return -1
		}
		return r
	}, strings.TrimSpace(s))
}

// isNumber accepts digits with an optional leading '+'.
func isNumber(n string) bool {
	body := strings.TrimPrefix(n, "+")
	return body != "" && strings.Trim(body, "0123456789") == ""
}
