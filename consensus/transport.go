package consensus

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Every stream on the consensus port starts, after the TLS handshake, with a
// header naming what it carries: the multiplexed Raft RPCs and forwarded
// proposals of all groups (see mux.go), one snapshot being installed, or the
// node-to-node HTTP API (joins, status, membership changes).
const (
	streamMagic    = "SWC2"
	streamHTTP     = byte(2)
	streamMux      = byte(3)
	streamSnapshot = byte(4)
	tlsName        = "stillwater-site"
)

// ErrPartitioned is returned when the fault-injection hook has cut the link.
var errPartitioned = errors.New("consensus: link cut by fault injection")

// siteTLS derives the site's certificate authority from its shared key, so
// that every node holding the key can issue itself a certificate the others
// accept, and a node without it is refused during the handshake.
func siteTLS(siteKey []byte, nodeID string) (*tls.Config, error) {
	if len(siteKey) < 16 {
		return nil, errors.New("consensus: site key shorter than 16 bytes")
	}
	seed := sha256.Sum256(append([]byte("stillwater site CA\x00"), siteKey...))
	caKey := ed25519.NewKeyFromSeed(seed[:])
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "stillwater site CA"},
		NotBefore:             time.Unix(0, 0),
		NotAfter:              time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(nil, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, fmt.Errorf("consensus: site CA: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("consensus: site CA: %w", err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("consensus: node key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, fmt.Errorf("consensus: serial: %w", err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: nodeID},
		DNSNames:     []string{tlsName},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, pub, caKey)
	if err != nil {
		return nil, fmt.Errorf("consensus: node certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: priv}},
		RootCAs:      pool,
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ServerName:   tlsName,
	}, nil
}

// transport is the node's single consensus port: it accepts TLS connections,
// reads each stream's header and hands the stream to the Raft group or the
// HTTP server it names.
type transport struct {
	addr   string // host:port this node listens on and dials from
	tls    *tls.Config
	ln     net.Listener
	log    *slog.Logger
	faults bool

	mu      sync.Mutex
	groups  map[uint16]*raftTransport
	conns   map[*trackedConn]struct{}
	blocked map[string]bool // peer hosts cut off by fault injection
	http    *groupStream
	closed  bool

	peersMu sync.Mutex
	peers   map[string]*peerSlot // outgoing multiplexed connections by address

	// proposals serves a proposal forwarded by a peer; it runs on a
	// goroutine of its own.
	proposals func(f frame, w *frameWriter)
}

func newTransport(addr string, tlsConf *tls.Config, faults bool, log *slog.Logger, proposals func(frame, *frameWriter)) (*transport, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("consensus: listen on %s: %w", addr, err)
	}
	t := &transport{
		addr: addr, tls: tlsConf, ln: ln, log: log, faults: faults, proposals: proposals,
		groups:  map[uint16]*raftTransport{},
		peers:   map[string]*peerSlot{},
		conns:   map[*trackedConn]struct{}{},
		blocked: map[string]bool{},
	}
	t.http = newGroupStream(t, streamHTTP, 0)
	go t.acceptLoop()
	return t, nil
}

func (t *transport) acceptLoop() {
	for {
		c, err := t.ln.Accept()
		if err != nil {
			return
		}
		go t.handshake(c)
	}
}

func (t *transport) handshake(raw net.Conn) {
	_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Server(raw, t.tls)
	if err := tc.Handshake(); err != nil {
		t.log.Warn("consensus: refused connection", "peer", raw.RemoteAddr().String(), "err", err)
		raw.Close()
		return
	}
	br := bufio.NewReader(tc)
	kind, group, peer, err := readHeader(br)
	if err != nil {
		t.log.Warn("consensus: bad stream header", "peer", raw.RemoteAddr().String(), "err", err)
		tc.Close()
		return
	}
	_ = raw.SetDeadline(time.Time{})
	conn, ok := t.track(&trackedConn{Conn: tc, r: br, peer: peer})
	if !ok {
		return
	}
	switch kind {
	case streamHTTP:
		if !t.http.deliver(conn) {
			conn.Close()
		}
	case streamMux:
		t.serveMux(conn)
	case streamSnapshot:
		t.serveSnapshot(conn, group)
	default:
		t.log.Warn("consensus: unknown stream kind", "peer", conn.peer, "kind", kind)
		conn.Close()
	}
}

func readHeader(r *bufio.Reader) (kind byte, group uint16, peer string, err error) {
	var h [8]byte
	if _, err = io.ReadFull(r, h[:]); err != nil {
		return 0, 0, "", err
	}
	if string(h[:4]) != streamMagic {
		return 0, 0, "", errors.New("bad magic")
	}
	kind, group = h[4], binary.BigEndian.Uint16(h[5:7])
	p := make([]byte, h[7])
	if _, err = io.ReadFull(r, p); err != nil {
		return 0, 0, "", err
	}
	return kind, group, string(p), nil
}

// dial opens a stream to a peer's consensus port.
func (t *transport) dial(ctx context.Context, addr string, kind byte, group uint16) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("consensus: bad peer address %q: %w", addr, err)
	}
	if t.isBlocked(host) {
		return nil, errPartitioned
	}
	localHost, _, _ := net.SplitHostPort(t.addr)
	d := &net.Dialer{Timeout: 5 * time.Second}
	if ip := net.ParseIP(localHost); ip != nil && !ip.IsUnspecified() {
		// Dial from our own address so that peers on one machine (127.0.0.x)
		// see who is calling.
		d.LocalAddr = &net.TCPAddr{IP: ip}
	}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(raw, t.tls)
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("consensus: TLS with %s: %w", addr, err)
	}
	hdr := make([]byte, 0, 8+len(t.addr))
	hdr = append(hdr, streamMagic...)
	hdr = append(hdr, kind, byte(group>>8), byte(group), byte(len(t.addr)))
	hdr = append(hdr, t.addr...)
	if _, err := tc.Write(hdr); err != nil {
		tc.Close()
		return nil, err
	}
	conn, ok := t.track(&trackedConn{Conn: tc, r: bufio.NewReader(tc), peer: addr})
	if !ok {
		return nil, errPartitioned
	}
	return conn, nil
}

func (t *transport) track(c *trackedConn) (*trackedConn, bool) {
	host, _, _ := net.SplitHostPort(c.peer)
	c.t = t
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || t.blocked[host] {
		c.Conn.Close()
		return nil, false
	}
	t.conns[c] = struct{}{}
	return c, true
}

func (t *transport) isBlocked(host string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.blocked[host]
}

// Partition cuts (or, with an empty list, heals) the links to the given peer
// hosts. It exists for fault tests and works only when enabled in config.
func (t *transport) Partition(hosts []string) error {
	if !t.faults {
		return errors.New("consensus: fault injection is disabled (fault_injection=N)")
	}
	t.mu.Lock()
	t.blocked = map[string]bool{}
	for _, h := range hosts {
		t.blocked[h] = true
	}
	var victims []*trackedConn
	for c := range t.conns {
		host, _, _ := net.SplitHostPort(c.peer)
		if t.blocked[host] {
			victims = append(victims, c)
		}
	}
	t.mu.Unlock()
	for _, c := range victims {
		c.Close()
	}
	t.log.Warn("consensus: fault injection partition set", "blocked", hosts)
	return nil
}

// register creates the Raft transport of one group.
func (t *transport) register(group uint16) *raftTransport {
	rt := &raftTransport{t: t, group: group, consumer: make(chan raft.RPC), done: make(chan struct{})}
	t.mu.Lock()
	t.groups[group] = rt
	t.mu.Unlock()
	return rt
}

func (t *transport) unregister(group uint16, rt *raftTransport) {
	t.mu.Lock()
	if t.groups[group] == rt {
		delete(t.groups, group)
	}
	t.mu.Unlock()
	rt.Close()
}

func (t *transport) raftGroup(group uint16) *raftTransport {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.groups[group]
}

func (t *transport) Close() error {
	t.mu.Lock()
	t.closed = true
	conns := t.conns
	t.conns = map[*trackedConn]struct{}{}
	t.mu.Unlock()
	err := t.ln.Close()
	for c := range conns {
		c.Conn.Close()
	}
	return err
}

// trackedConn remembers its peer so a partition can cut it.
type trackedConn struct {
	net.Conn
	r    *bufio.Reader
	peer string
	t    *transport
	once sync.Once
}

func (c *trackedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.t.mu.Lock()
		delete(c.t.conns, c)
		c.t.mu.Unlock()
	})
	return c.Conn.Close()
}

// groupStream is a net.Listener fed by the transport's demultiplexer.
type groupStream struct {
	t     *transport
	kind  byte
	group uint16
	ch    chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newGroupStream(t *transport, kind byte, group uint16) *groupStream {
	return &groupStream{t: t, kind: kind, group: group, ch: make(chan net.Conn, 16), done: make(chan struct{})}
}

func (g *groupStream) deliver(c net.Conn) bool {
	select {
	case g.ch <- c:
		return true
	case <-g.done:
		return false
	case <-time.After(5 * time.Second):
		return false
	}
}

func (g *groupStream) Accept() (net.Conn, error) {
	select {
	case c := <-g.ch:
		return c, nil
	case <-g.done:
		return nil, net.ErrClosed
	}
}

func (g *groupStream) Close() error {
	g.once.Do(func() { close(g.done) })
	return nil
}

func (g *groupStream) Addr() net.Addr { return g.t.ln.Addr() }
