package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"stillwater/sip/sipcheck"
)

// A Listener is one SIP port of the node.
type Listener struct {
	// Network is "udp", "tcp", "tls" or "ws".
	Network string
	// Addr is the address to bind; port 0 picks a free one.
	Addr netip.AddrPort
	// Advertise is the host put in Via and Record-Route for this listener;
	// empty means Addr's address.
	Advertise string
	// Service receives initial requests that arrive here without a Route
	// naming a local service.
	Service string
	// Trusted marks a listener facing the core network rather than UEs.
	Trusted bool
	// TLS configures "tls" listeners.
	TLS *tls.Config
}

// Hop is one resolved next-hop address.
type Hop struct {
	Transport string // "UDP", "TCP", "TLS", "WS"
	Addr      string // ip:port
}

// A Resolver locates the servers for a SIP URI host (RFC 3263). port 0 and
// transport "" mean the URI named none.
type Resolver interface {
	Resolve(ctx context.Context, host string, port int, transport string, secure bool) ([]Hop, error)
}

// An Admitter gates initial requests under overload: Admit reports whether a
// request may be processed; done is called with it once it has been.
type Admitter interface {
	Admit() (ok bool, retryAfterSeconds int, done func())
}

// Config configures a Core.
type Config struct {
	Listeners []Listener
	// Hosts are the host names and addresses that address this node (and
	// the site's shared names); a URI with one of them is local.
	Hosts []string
	// Ports maps a port on a local host to the service it reaches.
	Ports map[int]string
	// Names maps a host naming a service (e.g. "scscf.sprout.example.com")
	// to that service; any port on such a host reaches it.
	Names map[string]string
	// FlowKey authenticates flow tokens; every node of a site uses the same
	// key so that any node can route over a token another issued.
	FlowKey []byte
	// Resolver locates next hops; nil resolves only IP literals and
	// names known to the system resolver.
	Resolver Resolver
	// Admitter, if set, refuses initial requests with 503 under overload.
	Admitter Admitter
	// EdgeOnlyInDialog refuses in-dialog requests (and drops ACKs) that
	// arrive on an untrusted listener without a Route naming this node:
	// a UE's in-dialog requests follow the edge's own Record-Route, and
	// relaying others would make the edge an open relay.
	EdgeOnlyInDialog bool
	// DisableTCPSwitch keeps large requests on UDP (disable_tcp_switch).
	DisableTCPSwitch bool
	// UserAgent is the Server/User-Agent header value.
	UserAgent string
	Rand      io.Reader
	Logger    *slog.Logger
}

// Branch workers: enough for the branches in flight at a few thousand
// requests a second; idle ones go after a while.
const (
	maxHopWorkers = 1024
	hopWorkerIdle = 10 * time.Second
)

// Core is a running SIP node: its listeners, transaction layer and services.
type Core struct {
	cfg      Config
	log      *slog.Logger
	tpl      *sip.TransportLayer
	txl      *sip.TransactionLayer
	hosts    map[string]bool
	svcMu    sync.RWMutex
	services map[string]Service
	lns      []*boundListener
	checker  sipcheck.Policy

	mu       sync.Mutex
	closed   bool
	closers  []io.Closer
	branchID func() string
	answered *answerCache
	// accepting maps the key of each INVITE client transaction awaiting
	// its final response to its acceptWatch; taken maps a 2xx that
	// takeAccepted claimed to the watch it goes to.
	accepting sync.Map
	taken     sync.Map
	stop      chan struct{} // closed by Close
	hops      *hopPool
}

type boundListener struct {
	Listener
	port int
}

func (l *boundListener) host() string {
	if l.Advertise != "" {
		return l.Advertise
	}
	return hostLiteral(l.Addr.Addr().String())
}

// udpMTULimit lifts sipgo's 1300-byte UDP send refusal: the core decides
// itself when a request must move to TCP (RFC 3261 §18.1.1) and when it may
// not (a UE's UDP flow).
const udpMTULimit = 65535

// New creates a Core; Start binds its listeners.
func New(cfg Config) (*Core, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "Stillwater"
	}
	// sipgo's limit is a package variable every running core reads on each
	// UDP send: write it only the first time, so that a second core in the
	// process does not race with the first one's sends.
	if sip.UDPMTUSize != udpMTULimit {
		sip.UDPMTUSize = udpMTULimit
	}
	c := &Core{cfg: cfg, log: cfg.Logger.With("component", "sip"), hosts: map[string]bool{}, services: map[string]Service{}, stop: make(chan struct{})}
	c.hops = newHopPool(c.stop, maxHopWorkers, hopWorkerIdle)
	for _, h := range cfg.Hosts {
		c.hosts[normHost(h)] = true
	}
	for _, l := range cfg.Listeners {
		c.hosts[normHost(l.Addr.Addr().String())] = true
		if l.Advertise != "" {
			c.hosts[normHost(l.Advertise)] = true
		}
	}
	c.branchID = newIDSource(cfg.Rand)
	c.answered = newAnswerCache(sip.Timer_J, time.Now)
	// A proxy refuses only Proxy-Require extensions it lacks (RFC 3261
	// §16.3 step 4); Require is for the UAS.
	c.checker = sipcheck.Policy{Supported: []string{"path", "outbound", "gruu", "timer", "100rel"}}
	aliases := make([]string, 0, len(c.hosts))
	for h := range c.hosts {
		aliases = append(aliases, h)
	}
	for h := range cfg.Names {
		aliases = append(aliases, h)
	}
	sort.Strings(aliases)
	c.log.Info("local host aliases", "aliases", strings.Join(aliases, " "))
	// The layers are built here rather than by sipgo's UserAgent so that
	// takeAccepted sees each message before the transaction layer does.
	c.tpl = sip.NewTransportLayer(net.DefaultResolver, sip.NewParser(), nil, sip.WithTransportLayerLogger(c.log))
	c.tpl.OnMessage(c.takeAccepted)
	c.txl = sip.NewTransactionLayer(c.tpl,
		sip.WithTransactionLayerLogger(c.log),
		sip.WithTransactionLayerUnhandledResponseHandler(c.onStrayResponse),
	)
	c.txl.OnRequest(c.onRequest)
	return c, nil
}

// Handle registers the service reached by name.
// It may be called while the core runs: a service is replaced for the
// requests that arrive after.
func (c *Core) Handle(name string, s Service) {
	c.svcMu.Lock()
	defer c.svcMu.Unlock()
	c.services[name] = s
}

// service returns the service registered under name.
func (c *Core) service(name string) (Service, bool) {
	c.svcMu.RLock()
	defer c.svcMu.RUnlock()
	s, ok := c.services[name]
	return s, ok
}

// Start binds every listener and serves them until ctx ends or Close.
func (c *Core) Start(ctx context.Context) error {
	// Every listener is bound and recorded before any serves: a request
	// arriving on the first must not race with recording the others.
	var serves []func()
	for _, l := range c.cfg.Listeners {
		bl := &boundListener{Listener: l}
		var serve func() error
		switch strings.ToLower(l.Network) {
		case "udp":
			pc, err := net.ListenPacket("udp", l.Addr.String())
			if err != nil {
				c.Close()
				return fmt.Errorf("sip: listen udp %s: %w", l.Addr, err)
			}
			bl.port = pc.LocalAddr().(*net.UDPAddr).Port
			c.closers = append(c.closers, pc)
			serve = func() error { return c.tpl.ServeUDP(pc) }
		case "tcp", "tls", "ws":
			ln, err := net.Listen("tcp", l.Addr.String())
			if err != nil {
				c.Close()
				return fmt.Errorf("sip: listen %s %s: %w", l.Network, l.Addr, err)
			}
			bl.port = ln.Addr().(*net.TCPAddr).Port
			c.closers = append(c.closers, ln)
			switch strings.ToLower(l.Network) {
			case "tcp":
				serve = func() error { return c.tpl.ServeTCP(ln) }
			case "tls":
				if l.TLS == nil {
					c.Close()
					return fmt.Errorf("sip: tls listener %s has no certificate", l.Addr)
				}
				tl := tls.NewListener(ln, l.TLS)
				serve = func() error { return c.tpl.ServeTLS(tl) }
			default:
				serve = func() error { return c.tpl.ServeWS(ln) }
			}
		default:
			c.Close()
			return fmt.Errorf("sip: listener %s: unknown network %q", l.Addr, l.Network)
		}
		c.lns = append(c.lns, bl)
		serves = append(serves, func() {
			if err := serve(); err != nil && !c.isClosed() {
				c.log.Error("listener stopped", "network", l.Network, "addr", l.Addr, "err", err)
			}
		})
	}
	for _, s := range serves {
		go s()
	}
	go func() {
		<-ctx.Done()
		c.Close()
	}()
	return nil
}

// Ports lists the bound port of each listener, in Config order.
func (c *Core) Ports() []int {
	out := make([]int, len(c.lns))
	for i, l := range c.lns {
		out[i] = l.port
	}
	return out
}

func (c *Core) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Close stops the listeners and the transaction layer.
func (c *Core) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	closers := c.closers
	c.mu.Unlock()
	for _, cl := range closers {
		cl.Close()
	}
	close(c.stop)
	c.txl.Close()
	c.tpl.Close()
}

// listenerFor finds the listener a request arrived on.
func (c *Core) listenerFor(network string, conn sip.Connection) *boundListener {
	network = strings.ToLower(network)
	port := 0
	if conn != nil {
		if la, ok := conn.(interface{ LocalAddr() net.Addr }); ok && la.LocalAddr() != nil {
			if _, p, err := net.SplitHostPort(la.LocalAddr().String()); err == nil {
				port, _ = strconv.Atoi(p)
			}
		}
	}
	var byNet *boundListener
	for _, l := range c.lns {
		if strings.ToLower(l.Network) != network {
			continue
		}
		if l.port == port {
			return l
		}
		if byNet == nil {
			byNet = l
		}
	}
	return byNet
}

// listenerForSend picks the listener whose socket and Via a request sent
// over network should use, preferring one serving the sending service.
func (c *Core) listenerForSend(network, service string, trusted bool) *boundListener {
	network = strings.ToLower(network)
	var first, trust *boundListener
	for _, l := range c.lns {
		if strings.ToLower(l.Network) != network {
			continue
		}
		if l.Service == service && service != "" {
			return l
		}
		if first == nil {
			first = l
		}
		if trust == nil && l.Trusted == trusted {
			trust = l
		}
	}
	if trust != nil {
		return trust
	}
	return first
}

// listenerByPort finds the listener bound to port on network.
func (c *Core) listenerByPort(network string, port int) *boundListener {
	for _, l := range c.lns {
		if strings.EqualFold(l.Network, network) && l.port == port {
			return l
		}
	}
	return nil
}

// LocalService reports which local service a URI addresses, if any.
func (c *Core) LocalService(u *sip.Uri) (string, bool) {
	h := normHost(u.Host)
	if s, ok := c.cfg.Names[h]; ok {
		return s, true
	}
	if !c.hosts[h] {
		return "", false
	}
	port := u.Port
	if port == 0 {
		port = 5060
		if u.IsEncrypted() {
			port = 5061
		}
	}
	if s, ok := c.cfg.Ports[port]; ok {
		return s, true
	}
	for _, l := range c.lns {
		if l.port == port {
			return l.Service, true
		}
	}
	return "", false
}

// IsLocalHost reports whether host addresses this node.
func (c *Core) IsLocalHost(host string) bool {
	h := normHost(host)
	_, named := c.cfg.Names[h]
	return named || c.hosts[h]
}

func normHost(h string) string {
	h = strings.ToLower(strings.TrimSuffix(strings.Trim(h, "[]"), "."))
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Unmap().String()
	}
	return h
}

func hostLiteral(ip string) string {
	if strings.Contains(ip, ":") && !strings.HasPrefix(ip, "[") {
		return "[" + ip + "]"
	}
	return ip
}

var errNoHop = errors.New("no route to the next hop")
