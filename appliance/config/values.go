package config

import (
	"encoding/hex"
	"fmt"
	"math"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// check returns what is wrong with v as a value of o, or "" if nothing is.
// An empty value is always accepted: as in Clearwater's scripts, it leaves
// the option at its default.
func (o *Option) check(v string) string {
	if v == "" {
		return ""
	}
	q := strconv.Quote(v)
	if o.Secret {
		q = "value" // never echo a secret
	}
	switch o.Type {
	case TypeString:
		return ""
	case TypeInt, TypeDuration:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
				return q + " is out of range"
			}
			if o.Type == TypeDuration {
				return q + " is not a whole number of " + unitName(o)
			}
			return q + " is not an integer"
		}
		return o.inRange(q, n)
	case TypeFloat:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return q + " is not a number"
		}
		if f < float64(o.Min) {
			return fmt.Sprintf("%s is less than %d", q, o.Min)
		}
		return ""
	case TypeBool:
		if _, ok := parseBool(v); !ok {
			return q + " is not Y or N"
		}
		return ""
	case TypeIP:
		if !isIP(v) {
			return q + " is not an IP address"
		}
		return ""
	case TypeHost:
		if !isHost(v) {
			return q + " is not a hostname or IP address"
		}
		return ""
	case TypeHostPort:
		return checkHostPort(v)
	case TypeSIPURI:
		if !isSIPURI(v) {
			return q + " is not a SIP URI"
		}
		return ""
	case TypeURL:
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return q + " is not an http or https URL"
		}
		return ""
	case TypePath:
		if !strings.HasPrefix(v, "/") {
			return q + " is not an absolute path"
		}
		return ""
	case TypeName:
		if !isName(v) {
			return q + " is not a name (letters, digits, '.', '_' and '-')"
		}
		return ""
	case TypeEnum:
		if slices.Contains(o.Choices, v) {
			return ""
		}
		return q + " is not one of " + quoteAll(o.Choices)
	case TypeHex:
		_, err := hex.DecodeString(v)
		switch {
		case err == hex.ErrLength:
			return q + " has an odd number of hex digits"
		case err != nil || int64(len(v)) < o.Min:
			return fmt.Sprintf("%s is not a hex string of at least %d digits", q, o.Min)
		}
		return ""
	case TypeDiskLimit:
		return checkDiskLimit(q, v)
	}
	if o.Type.isList() {
		return o.checkList(v)
	}
	panic("config: no check for type " + o.Type.String())
}

func (o *Option) inRange(q string, n int64) string {
	switch {
	case n >= o.Min && n <= o.Max:
		return ""
	case o.Max == math.MaxInt64:
		return fmt.Sprintf("%s is less than %d", q, o.Min)
	default:
		return fmt.Sprintf("%s is not in %d..%d", q, o.Min, o.Max)
	}
}

func unitName(o *Option) string {
	switch o.Unit.String() {
	case "1s":
		return "seconds"
	case "1ms":
		return "milliseconds"
	case "1µs":
		return "microseconds"
	}
	return o.Unit.String()
}

func (o *Option) checkList(v string) string {
	items := strings.Split(v, ",")
	if o.MaxLen > 0 && len(items) > o.MaxLen {
		return fmt.Sprintf("%q has more than %d entries", v, o.MaxLen)
	}
	if o.Type == TypeStoreList {
		return checkStores(items)
	}
	for _, it := range items {
		q := strconv.Quote(it)
		switch {
		case it == "":
			return fmt.Sprintf("%q has an empty entry", v)
		case o.Type == TypeIPList && !isIP(it):
			return q + " is not an IP address"
		case o.Type == TypeHostList && !isHost(it):
			return q + " is not a hostname or IP address"
		case o.Type == TypeNameList && !isName(it):
			return q + " is not a name (letters, digits, '.', '_' and '-')"
		case o.Type == TypeEnumList && !slices.Contains(o.Choices, it):
			return q + " is not one of " + quoteAll(o.Choices)
		}
	}
	return ""
}

// checkStores checks Clearwater's store location syntax:
// <site_name>=<domain>[:<port>][,<site_name>=<domain>[:<port>]]. The site
// name may be left out only when there is a single store.
func checkStores(items []string) string {
	seen := map[string]bool{}
	for _, it := range items {
		site, hostport, named := strings.Cut(it, "=")
		if !named {
			site, hostport = "", it
		}
		switch {
		case named && !isName(site):
			return fmt.Sprintf("site name %q is not a name", site)
		case !named && len(items) > 1:
			return fmt.Sprintf("entry %q needs a site name (<site>=<host>[:<port>])", it)
		case seen[site]:
			return fmt.Sprintf("site %q appears twice", site)
		}
		seen[site] = true
		if msg := checkHostPort(hostport); msg != "" {
			return msg
		}
	}
	return ""
}

// storeSites returns the site names in a store list.
func storeSites(v string) []string {
	var sites []string
	for _, it := range strings.Split(v, ",") {
		if site, _, ok := strings.Cut(it, "="); ok {
			sites = append(sites, site)
		}
	}
	return sites
}

func checkDiskLimit(q, v string) string {
	num, pct := strings.CutSuffix(v, "%")
	if !pct {
		num = strings.TrimRight(v, "kMG")
		if len(v)-len(num) > 1 {
			num = "" // at most one suffix
		}
	}
	n, err := strconv.ParseUint(num, 10, 64)
	switch {
	case err != nil:
		return q + " is not a size in bytes (optionally with a k, M or G suffix) or a percentage"
	case pct && n > 100:
		return q + " is more than 100%"
	}
	return ""
}

func parseBool(v string) (bool, bool) {
	switch v {
	case "Y", "y", "true":
		return true, true
	case "N", "n", "false":
		return false, true
	}
	return false, false
}

func isIP(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Zone() == ""
}

// isHostname accepts DNS names, allowing '_' as SRV owner names need it. A
// name whose last label is numeric must be an IPv4 address instead.
func isHostname(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !isAlnum(c) && c != '-' && c != '_' {
				return false
			}
		}
	}
	_, err := strconv.Atoi(labels[len(labels)-1])
	return err != nil
}

func isHost(s string) bool { return isIP(s) || isHostname(s) }

// splitHostPort splits host[:port], [v6]:port or a bare IPv6 address.
func splitHostPort(s string) (host, port string, ok bool) {
	if rest, found := strings.CutPrefix(s, "["); found {
		h, after, closed := strings.Cut(rest, "]")
		if !closed || !strings.Contains(h, ":") || !isIP(h) {
			return s, "", false
		}
		if after == "" {
			return h, "", true
		}
		p, colon := strings.CutPrefix(after, ":")
		return h, p, colon
	}
	switch strings.Count(s, ":") {
	case 0:
		return s, "", true
	case 1:
		h, p, _ := strings.Cut(s, ":")
		return h, p, true
	}
	return s, "", isIP(s) // bare IPv6 address, no port
}

func checkHostPort(v string) string {
	h, p, ok := splitHostPort(v)
	if !ok || !isHost(h) {
		return strconv.Quote(v) + " is not a host or host:port"
	}
	if p != "" || strings.HasSuffix(v, ":") {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 || p[0] == '+' {
			return fmt.Sprintf("port %q of %q is not in 1..65535", p, v)
		}
	}
	return ""
}

// isSIPURI accepts sip: and sips: URIs, optionally in angle brackets:
// scheme, optional user part, host, optional port, then ;parameters and
// ?headers.
func isSIPURI(s string) bool {
	if inner, ok := strings.CutPrefix(s, "<"); ok {
		if s, ok = strings.CutSuffix(inner, ">"); !ok {
			return false
		}
	}
	if strings.ContainsAny(s, " \t<>\"") {
		return false
	}
	scheme, rest, ok := strings.Cut(s, ":")
	if !ok || !(strings.EqualFold(scheme, "sip") || strings.EqualFold(scheme, "sips")) {
		return false
	}
	rest, _, _ = strings.Cut(rest, "?")
	rest, params, hasParams := strings.Cut(rest, ";")
	if hasParams {
		for _, p := range strings.Split(params, ";") {
			if p == "" || strings.HasPrefix(p, "=") {
				return false
			}
		}
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		if i == 0 {
			return false
		}
		rest = rest[i+1:]
	}
	return rest != "" && checkHostPort(rest) == ""
}

func isName(s string) bool {
	if s == "" || len(s) > 63 || !isAlnum(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func quoteAll(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}
