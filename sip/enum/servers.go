package enum

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"stillwater/sip/resolve"
)

// ParseServers parses enum_server: a comma-separated list of up to three
// IP addresses, each with an optional port (default 53).
func ParseServers(list string) ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	for item := range strings.SplitSeq(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if ap, err := netip.ParseAddrPort(item); err == nil {
			out = append(out, ap)
			continue
		}
		a, err := netip.ParseAddr(strings.Trim(item, "[]"))
		if err != nil {
			return nil, fmt.Errorf("enum_server: %q is not an IP address", item)
		}
		out = append(out, netip.AddrPortFrom(a.Unmap(), 53))
	}
	if len(out) > MaxServers {
		return nil, fmt.Errorf("enum_server: %d servers listed; at most %d", len(out), MaxServers)
	}
	return out, nil
}

// NewServers builds one resolver per ENUM server, for Options.Servers, so
// that Service fails over between them with its own per-server timeout.
// base supplies the other resolver options (Logger, Clock, cache); its
// Servers are replaced and its Timeout, when unset, is set to timeout×2 so
// that Service's jittered attempt deadline governs.
func NewServers(addrs []netip.AddrPort, base resolve.Options, timeout time.Duration) ([]NAPTRLookuper, error) {
	if len(addrs) > MaxServers {
		return nil, fmt.Errorf("enum: %d ENUM servers; at most %d", len(addrs), MaxServers)
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	out := make([]NAPTRLookuper, 0, len(addrs))
	for _, a := range addrs {
		o := base
		o.Servers = []netip.AddrPort{a}
		if o.Timeout <= 0 {
			o.Timeout = 2 * timeout
		}
		r, err := resolve.New(o)
		if err != nil {
			return nil, fmt.Errorf("enum: resolver for ENUM server %s: %w", a, err)
		}
		out = append(out, r)
	}
	return out, nil
}
