package resolve

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// NAPTR is one NAPTR record (RFC 3403), as used by RFC 3263 and ENUM.
type NAPTR struct {
	Order       uint16
	Preference  uint16
	Flags       string
	Service     string
	Regexp      string
	Replacement string // without the root dot; "" for "."
}

// naptrService maps an RFC 3263/7118 NAPTR service to a transport.
func naptrService(service string) (transport string, secure, ok bool) {
	switch strings.ToUpper(service) {
	case "SIP+D2U":
		return UDP, false, true
	case "SIP+D2T":
		return TCP, false, true
	case "SIPS+D2T":
		return TLS, true, true
	case "SIP+D2W":
		return WS, false, true
	case "SIPS+D2W":
		return WSS, true, true
	}
	return "", false, false
}

// srvPrefix is the SRV owner prefix of each transport that has one.
func srvPrefix(transport string) (string, bool) {
	switch transport {
	case UDP:
		return "_sip._udp.", true
	case TCP:
		return "_sip._tcp.", true
	case TLS:
		return "_sips._tcp.", true
	}
	return "", false
}

// Resolve returns the targets for a SIP URI with the given host, port (0 when
// the URI has none) and transport parameter ("" when none); secure is true
// for sips: URIs. The list follows RFC 3263 §4: an IP literal or an explicit
// port skips NAPTR and SRV, an explicit transport skips NAPTR; NAPTR records
// are taken by order and preference, SRV records by priority and weighted
// random order (RFC 2782), each SRV target's A then AAAA addresses. Targets
// blacklisted by MarkFailed come last. The error wraps ErrNotFound or
// ErrUnavailable when no target was found.
func (r *Resolver) Resolve(ctx context.Context, host string, port int, transport string, secure bool) ([]Target, error) {
	if port < 0 || port > 65535 {
		return nil, fmt.Errorf("resolve %q: port %d out of range", host, port)
	}
	tr := ""
	if transport != "" {
		n, ok := normTransport(transport)
		if !ok {
			return nil, fmt.Errorf("resolve %q: unsupported transport %q", host, transport)
		}
		tr = n
		if secure {
			switch tr {
			case UDP:
				return nil, fmt.Errorf("resolve %q: a sips URI cannot use UDP", host)
			case TCP:
				tr = TLS
			case WS:
				tr = WSS
			}
		}
	}
	h := host
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	if h == "" {
		return nil, errors.New("resolve: empty host")
	}
	if tr == "" && (port != 0 || isIPLiteral(h)) {
		// RFC 3263 §4.1: UDP for sip, TCP (hence TLS) for sips.
		tr = UDP
		if secure {
			tr = TLS
		}
	}
	if ip, err := netip.ParseAddr(h); err == nil {
		p := uint16(port)
		if p == 0 {
			p = defaultPort(tr)
		}
		return []Target{{Transport: tr, Addr: netip.AddrPortFrom(ip.Unmap(), p), Host: h}}, nil
	}
	name := canonName(h)
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("resolve %q: %w", host, err)
	}
	if _, ok := r.hosts[name]; ok {
		// Like an IP literal: no NAPTR or SRV for a hosts-table name.
		if tr == "" {
			tr = UDP
			if secure {
				tr = TLS
			}
		}
		p := uint16(port)
		if p == 0 {
			p = defaultPort(tr)
		}
		var s search
		s.addrs(ctx, r, name, tr, p)
		if len(s.out) == 0 {
			return nil, fmt.Errorf("resolve %q: hosts entry without address: %w", host, ErrNotFound)
		}
		return r.demoteBlacklisted(s.out), nil
	}

	var s search
	switch {
	case port != 0:
		s.addrs(ctx, r, name, tr, uint16(port))
	case tr != "":
		if !s.srv(ctx, r, name, tr) {
			s.addrs(ctx, r, name, tr, defaultPort(tr))
		}
	default:
		r.locate(ctx, &s, name, secure)
	}
	if len(s.out) == 0 {
		if s.unavailable != nil {
			return nil, fmt.Errorf("resolve %q: %w", host, s.unavailable)
		}
		return nil, fmt.Errorf("resolve %q: %w", host, ErrNotFound)
	}
	return r.demoteBlacklisted(s.out), nil
}

// locate runs the NAPTR → SRV → A/AAAA chain for a host with neither port
// nor transport.
func (r *Resolver) locate(ctx context.Context, s *search, name string, secure bool) {
	fallback := UDP
	if secure {
		fallback = TLS
	}
	naptrs, err := r.LookupNAPTR(ctx, name)
	s.note(err)
	first := true
	for _, n := range naptrs {
		tr, ok := r.naptrTransport(n, secure)
		if !ok {
			continue
		}
		if first {
			fallback, first = tr, false
		}
		s.srvName(ctx, r, n.Replacement, tr)
	}
	if len(s.out) > 0 {
		return
	}
	// RFC 3263 §4.1: no usable NAPTR, so query SRV for each transport we
	// support, most preferred first.
	for _, tr := range r.transportOrder {
		if secure && tr != TLS {
			continue
		}
		s.srv(ctx, r, name, tr)
	}
	if len(s.out) > 0 {
		return
	}
	s.addrs(ctx, r, name, fallback, defaultPort(fallback))
}

// naptrTransport reports the transport a NAPTR record selects, if usable.
func (r *Resolver) naptrTransport(n NAPTR, secure bool) (string, bool) {
	if !strings.EqualFold(n.Flags, "s") || n.Replacement == "" {
		return "", false
	}
	tr, sec, ok := naptrService(n.Service)
	if !ok || (secure && !sec) || !r.transports[tr] {
		return "", false
	}
	return tr, true
}

// search accumulates targets and remembers whether DNS failed on the way.
type search struct {
	out         []Target
	unavailable error
}

func (s *search) note(err error) {
	if err != nil && !errors.Is(err, ErrNotFound) && s.unavailable == nil {
		s.unavailable = err
	}
}

func (s *search) add(t Target) {
	for _, o := range s.out {
		if o.Transport == t.Transport && o.Addr == t.Addr {
			return
		}
	}
	s.out = append(s.out, t)
}

// srv adds the targets of the SRV records for name over transport, and
// reports whether there were any SRV records.
func (s *search) srv(ctx context.Context, r *Resolver, name, transport string) bool {
	prefix, ok := srvPrefix(transport)
	if !ok {
		return false
	}
	return s.srvName(ctx, r, prefix+name, transport)
}

func (s *search) srvName(ctx context.Context, r *Resolver, srvName, transport string) bool {
	rrs, err := r.lookup(ctx, srvName, dns.TypeSRV)
	s.note(err)
	if len(rrs) == 0 {
		return false
	}
	recs := make([]*dns.SRV, 0, len(rrs))
	for _, rr := range rrs {
		if srv, ok := rr.(*dns.SRV); ok && srv.Target != "." {
			recs = append(recs, srv)
		}
	}
	for _, srv := range orderSRV(recs, r.intn) {
		s.addrs(ctx, r, canonName(srv.Target), transport, srv.Port)
	}
	return len(recs) > 0
}

// addrs adds one target per address of name: hosts entries, else A then AAAA
// records, each family shuffled so that clients spread over a cluster.
func (s *search) addrs(ctx context.Context, r *Resolver, name, transport string, port uint16) {
	if ip, err := netip.ParseAddr(name); err == nil {
		s.add(Target{Transport: transport, Addr: netip.AddrPortFrom(ip.Unmap(), port), Host: name})
		return
	}
	if hs, ok := r.hosts[name]; ok {
		for _, a := range hs {
			s.add(Target{Transport: transport, Addr: netip.AddrPortFrom(a, port), Host: name})
		}
		return
	}
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		rrs, err := r.lookup(ctx, name, qtype)
		s.note(err)
		addrs := make([]netip.Addr, 0, len(rrs))
		for _, rr := range rrs {
			var a netip.Addr
			switch rr := rr.(type) {
			case *dns.A:
				a, _ = netip.AddrFromSlice(rr.A.To4())
			case *dns.AAAA:
				a, _ = netip.AddrFromSlice(rr.AAAA.To16())
			}
			if a.IsValid() {
				addrs = append(addrs, a)
			}
		}
		r.shuffle(len(addrs), func(i, j int) { addrs[i], addrs[j] = addrs[j], addrs[i] })
		for _, a := range addrs {
			s.add(Target{Transport: transport, Addr: netip.AddrPortFrom(a, port), Host: name})
		}
	}
}

// orderSRV sorts SRV records by priority and, within a priority, in the
// weighted random order of RFC 2782. intn(n) returns a uniform value in [0, n).
func orderSRV(recs []*dns.SRV, intn func(uint64) uint64) []*dns.SRV {
	recs = slices.Clone(recs)
	slices.SortStableFunc(recs, func(a, b *dns.SRV) int { return int(a.Priority) - int(b.Priority) })
	out := make([]*dns.SRV, 0, len(recs))
	for len(recs) > 0 {
		n := 1
		for n < len(recs) && recs[n].Priority == recs[0].Priority {
			n++
		}
		group := recs[:n]
		recs = recs[n:]
		// Zero-weight records first, so that they have a small chance of
		// being picked whenever a running sum of 0 is drawn.
		slices.SortStableFunc(group, func(a, b *dns.SRV) int {
			return min(int(a.Weight), 1) - min(int(b.Weight), 1)
		})
		for len(group) > 0 {
			var total uint64
			for _, g := range group {
				total += uint64(g.Weight)
			}
			pick := intn(total + 1)
			var sum uint64
			i := 0
			for ; i < len(group)-1; i++ {
				sum += uint64(group[i].Weight)
				if sum >= pick {
					break
				}
			}
			out = append(out, group[i])
			group = slices.Delete(group, i, i+1)
		}
	}
	return out
}

// LookupNAPTR returns the NAPTR records of name sorted by order then
// preference, from the cache when fresh. The error wraps ErrNotFound when the
// name has none and ErrUnavailable when DNS could not be asked.
func (r *Resolver) LookupNAPTR(ctx context.Context, name string) ([]NAPTR, error) {
	name = canonName(name)
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("NAPTR lookup: %w", err)
	}
	rrs, err := r.lookup(ctx, name, dns.TypeNAPTR)
	if err != nil {
		return nil, err
	}
	out := make([]NAPTR, 0, len(rrs))
	for _, rr := range rrs {
		if n, ok := rr.(*dns.NAPTR); ok {
			rep := canonName(n.Replacement)
			out = append(out, NAPTR{
				Order: n.Order, Preference: n.Preference,
				Flags: unescape(n.Flags), Service: unescape(n.Service), Regexp: unescape(n.Regexp),
				Replacement: rep,
			})
		}
	}
	slices.SortStableFunc(out, func(a, b NAPTR) int {
		if a.Order != b.Order {
			return int(a.Order) - int(b.Order)
		}
		return int(a.Preference) - int(b.Preference)
	})
	return out, nil
}

// unescape turns a character-string in miekg/dns presentation form (\\,
// \", \DDD) back into its wire bytes, which is what ENUM regexps act on.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		if i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
			if v := int(s[i+1]-'0')*100 + int(s[i+2]-'0')*10 + int(s[i+3]-'0'); v < 256 {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i+1])
		i++
	}
	return b.String()
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isIPLiteral(h string) bool {
	_, err := netip.ParseAddr(h)
	return err == nil
}

// checkName accepts host names made of letters, digits, '-' and '_' labels.
func checkName(name string) error {
	if name == "" {
		return errors.New("empty host name")
	}
	if len(name) > 253 {
		return fmt.Errorf("host name longer than 253 characters")
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("invalid host name %q: bad label length", name)
		}
		for _, c := range []byte(label) {
			ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
			if !ok {
				return fmt.Errorf("invalid host name %q: character %q", name, c)
			}
		}
	}
	return nil
}
