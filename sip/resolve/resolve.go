// Package resolve locates SIP servers per RFC 3263 (NAPTR → SRV → A/AAAA),
// returning an ordered list of transport/address targets for failover, over a
// caching DNS client that also serves ENUM NAPTR lookups.
//
// The caller resolves a URI once, tries the targets in order and reports the
// ones that fail with MarkFailed, which sends them to the back of later lists
// for the blacklist duration. DNS answers are cached for their TTL; when the
// DNS servers fail (SERVFAIL, REFUSED, timeout, unreachable) an expired entry
// keeps being served until a later refresh succeeds, as Clearwater did.
package resolve

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Transports a Target can carry.
const (
	UDP = "UDP"
	TCP = "TCP"
	TLS = "TLS"
	WS  = "WS"
	WSS = "WSS"
)

// Default option values (Clearwater's dns_timeout and sip_blacklist_duration).
const (
	DefaultTimeout           = 200 * time.Millisecond
	DefaultBlacklistDuration = 30 * time.Second
	DefaultNegativeTTL       = 60 * time.Second
	DefaultStaleRetry        = 5 * time.Second
	DefaultCacheSize         = 10000
)

// Errors wrapped by Resolve and LookupNAPTR.
var (
	// ErrNotFound means DNS answered but the name has no usable records.
	ErrNotFound = errors.New("no usable DNS records")
	// ErrUnavailable means no DNS server answered and nothing was cached.
	ErrUnavailable = errors.New("DNS servers unavailable")
)

// Target is one place to send a request: a transport and an address. Host is
// the name whose address record produced Addr (the SRV target or the URI host),
// for TLS server name checks and logs.
type Target struct {
	Transport string // UDP, TCP, TLS, WS or WSS
	Addr      netip.AddrPort
	Host      string
}

func (t Target) String() string { return t.Transport + " " + t.Addr.String() + " (" + t.Host + ")" }

// Clock is the resolver's time source; tests inject a fake one.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// sharedSource draws from the runtime's goroutine-safe generator.
type sharedSource struct{}

func (sharedSource) Uint64() uint64 { return rand.Uint64() }

// Options configures a Resolver. Zero values take the defaults.
type Options struct {
	// Servers are queried in order; a server that fails (SERVFAIL, REFUSED,
	// timeout) passes the query to the next (dns_servers). Default: the
	// nameservers of ResolvConf.
	Servers []netip.AddrPort
	// ResolvConf is read when Servers is empty. Default /etc/resolv.conf.
	ResolvConf string
	// Timeout bounds each query to one server (dns_timeout). Default 200 ms.
	Timeout time.Duration
	Clock   Clock
	Logger  *slog.Logger
	// Overrides maps a host name to the name it is a CNAME for, before any
	// DNS query (dns.json). See ParseDNSJSON.
	Overrides map[string]string
	// Hosts answers address lookups for these names without DNS, like
	// /etc/hosts. Default: localhost → 127.0.0.1, ::1.
	Hosts map[string][]netip.Addr
	// Rand orders SRV records of equal priority and addresses of one host.
	// Default: the runtime's random source.
	Rand rand.Source
	// BlacklistDuration is how long MarkFailed demotes a target
	// (sip_blacklist_duration). Default 30 s.
	BlacklistDuration time.Duration
	// NegativeTTL caches "no such record" answers that carry no SOA.
	// Default 60 s.
	NegativeTTL time.Duration
	// StaleRetry is how long a stale entry is served without asking DNS
	// again after a refresh failed. Default 5 s.
	StaleRetry time.Duration
	// CacheSize bounds the number of cached answers. Default 10000.
	CacheSize int
	// Transports are the transports NAPTR records may select. Default UDP,
	// TCP and TLS; add WS/WSS to follow SIP+D2W / SIPS+D2W records.
	Transports []string
}

// Resolver resolves SIP URIs to targets. It is safe for concurrent use.
type Resolver struct {
	servers     []string
	timeout     time.Duration
	clock       Clock
	log         *slog.Logger
	hosts       map[string][]netip.Addr
	blacklistD  time.Duration
	negativeTTL time.Duration
	staleRetry  time.Duration
	cacheSize   int
	transports  map[string]bool
	// transportOrder is Options.Transports in preference order.
	transportOrder []string
	udp, tcp       *dns.Client

	randMu sync.Mutex
	rnd    *rand.Rand

	overridesMu sync.RWMutex
	overrides   map[string]string

	cacheMu  sync.Mutex
	cache    map[cacheKey]*cacheEntry
	inflight map[cacheKey]*flight

	blMu      sync.Mutex
	blacklist map[blKey]time.Time
}

// New returns a Resolver configured by opts.
func New(opts Options) (*Resolver, error) {
	r := &Resolver{
		timeout:     opts.Timeout,
		clock:       opts.Clock,
		log:         opts.Logger,
		blacklistD:  opts.BlacklistDuration,
		negativeTTL: opts.NegativeTTL,
		staleRetry:  opts.StaleRetry,
		cacheSize:   opts.CacheSize,
		cache:       make(map[cacheKey]*cacheEntry),
		inflight:    make(map[cacheKey]*flight),
		blacklist:   make(map[blKey]time.Time),
		transports:  make(map[string]bool),
		hosts:       make(map[string][]netip.Addr),
	}
	if r.timeout <= 0 {
		r.timeout = DefaultTimeout
	}
	if r.clock == nil {
		r.clock = systemClock{}
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.blacklistD <= 0 {
		r.blacklistD = DefaultBlacklistDuration
	}
	if r.negativeTTL <= 0 {
		r.negativeTTL = DefaultNegativeTTL
	}
	if r.staleRetry <= 0 {
		r.staleRetry = DefaultStaleRetry
	}
	if r.cacheSize <= 0 {
		r.cacheSize = DefaultCacheSize
	}
	src := opts.Rand
	if src == nil {
		src = sharedSource{}
	}
	r.rnd = rand.New(src)

	servers := opts.Servers
	if len(servers) == 0 {
		path := opts.ResolvConf
		if path == "" {
			path = "/etc/resolv.conf"
		}
		var err error
		if servers, err = serversFromResolvConf(path); err != nil {
			return nil, err
		}
	}
	for _, s := range servers {
		if !s.IsValid() || s.Port() == 0 {
			return nil, fmt.Errorf("resolve: invalid DNS server address %q", s)
		}
		r.servers = append(r.servers, s.String())
	}

	transports := opts.Transports
	if len(transports) == 0 {
		transports = []string{UDP, TCP, TLS}
	}
	for _, t := range transports {
		n, ok := normTransport(t)
		if !ok {
			return nil, fmt.Errorf("resolve: unknown transport %q in Options.Transports", t)
		}
		if !r.transports[n] {
			r.transports[n] = true
			r.transportOrder = append(r.transportOrder, n)
		}
	}

	if opts.Hosts == nil {
		r.hosts["localhost"] = []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}
	}
	for name, addrs := range opts.Hosts {
		r.hosts[canonName(name)] = append([]netip.Addr(nil), addrs...)
	}
	if err := r.SetOverrides(opts.Overrides); err != nil {
		return nil, err
	}

	r.udp = &dns.Client{Net: "udp", Timeout: r.timeout, UDPSize: ednsSize}
	r.tcp = &dns.Client{Net: "tcp", Timeout: r.timeout}
	return r, nil
}

func serversFromResolvConf(path string) ([]netip.AddrPort, error) {
	cfg, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("resolve: no DNS servers configured and %s unreadable: %w", path, err)
	}
	port := uint16(53)
	if cfg.Port != "" {
		var p int
		if _, err := fmt.Sscan(cfg.Port, &p); err != nil || p <= 0 || p > 65535 {
			return nil, fmt.Errorf("resolve: %s: bad port %q", path, cfg.Port)
		}
		port = uint16(p)
	}
	var out []netip.AddrPort
	for _, s := range cfg.Servers {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("resolve: %s: bad nameserver %q: %w", path, s, err)
		}
		out = append(out, netip.AddrPortFrom(a.Unmap(), port))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("resolve: %s lists no nameserver", path)
	}
	return out, nil
}

// normTransport maps a URI transport parameter or Via transport to ours.
func normTransport(t string) (string, bool) {
	switch strings.ToUpper(t) {
	case UDP:
		return UDP, true
	case TCP:
		return TCP, true
	case TLS:
		return TLS, true
	case WS:
		return WS, true
	case WSS:
		return WSS, true
	}
	return "", false
}

// defaultPort is the port used when neither the URI nor SRV gives one.
func defaultPort(transport string) uint16 {
	if transport == TLS || transport == WSS {
		return 5061
	}
	return 5060
}

// canonName lower-cases a host name and strips the root dot.
func canonName(name string) string {
	return strings.TrimSuffix(strings.ToLower(name), ".")
}

func (r *Resolver) intn(n uint64) uint64 {
	r.randMu.Lock()
	defer r.randMu.Unlock()
	return r.rnd.Uint64N(n)
}

func (r *Resolver) shuffle(n int, swap func(i, j int)) {
	r.randMu.Lock()
	defer r.randMu.Unlock()
	r.rnd.Shuffle(n, swap)
}
