// Package dnstest is a real DNS server for tests: miekg/dns on UDP (and,
// when asked, TCP on the same port) serving a zone of presentation-format
// records, following CNAMEs inside the zone and answering RFC 4592
// wildcards as BIND does, with switches that make it fail as a broken
// server would.
package dnstest

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// Mode is how the server answers.
type Mode int32

// Modes of the server.
const (
	Answer   Mode = iota // from the zone
	ServFail             // SERVFAIL to everything
	Refused              // REFUSED to everything
	Drop                 // no answer at all: the client times out
)

// soa goes in the authority section of answers without records, so that
// clients cache them negatively for its minimum, 30 s (RFC 2308 §5).
const soa = ". 3600 IN SOA ns.test. admin.test. 1 7200 900 1209600 30"

// Options say where the server listens.
type Options struct {
	// Addr is the ip:port to listen on; empty is a free port on 127.0.0.1.
	Addr string
	// TCP serves TCP on the UDP port too.
	TCP bool
}

// Server is a running test DNS server.
type Server struct {
	addr netip.AddrPort

	mode        atomic.Int32
	truncateUDP atomic.Bool

	mu      sync.Mutex
	rrs     map[string][]dns.RR // by lower-case FQDN
	exists  map[string]bool     // owner names and their ancestors
	queries map[string]int      // "name TYPE" → count
}

// Start serves records until the test ends.
func Start(t testing.TB, o Options, records ...string) *Server {
	t.Helper()
	z := &Server{queries: make(map[string]int)}
	z.SetZone(t, records...)
	addr := o.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var pc net.PacketConn
	var ln net.Listener
	for attempt := 0; ; attempt++ {
		var err error
		pc, err = net.ListenPacket("udp4", addr)
		if err != nil {
			t.Fatalf("dns server on %s: %v", addr, err)
		}
		if !o.TCP {
			break
		}
		ln, err = net.Listen("tcp4", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		if attempt == 20 {
			t.Fatalf("dns server on %s: no port free for both UDP and TCP: %v", addr, err)
		}
	}
	z.addr = netip.MustParseAddrPort(pc.LocalAddr().String())
	servers := []*dns.Server{{PacketConn: pc, Handler: z}}
	if ln != nil {
		servers = append(servers, &dns.Server{Listener: ln, Handler: z})
	}
	for _, srv := range servers {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		done := make(chan error, 1)
		go func() { done <- srv.ActivateAndServe() }()
		select {
		case <-started:
		case err := <-done:
			t.Fatalf("dns server: %v", err)
		}
		t.Cleanup(func() {
			if err := srv.Shutdown(); err != nil {
				t.Errorf("dns server shutdown: %v", err)
			}
			<-done
		})
	}
	return z
}

// Addr is where the server listens.
func (z *Server) Addr() netip.AddrPort { return z.addr }

// SetMode sets how the server answers from now on.
func (z *Server) SetMode(m Mode) { z.mode.Store(int32(m)) }

// TruncateUDP makes every answer over UDP an empty truncated one, so that
// clients retry over TCP.
func (z *Server) TruncateUDP(on bool) { z.truncateUDP.Store(on) }

// SetZone replaces the served records.
func (z *Server) SetZone(t testing.TB, records ...string) {
	t.Helper()
	rrs, exists := make(map[string][]dns.RR), make(map[string]bool)
	for _, s := range records {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatalf("bad zone record %q: %v", s, err)
		}
		name := strings.ToLower(rr.Header().Name)
		rrs[name] = append(rrs[name], rr)
		for n := name; n != "."; {
			exists[n] = true
			_, rest, _ := strings.Cut(n, ".")
			if rest == "" {
				break
			}
			n = rest
		}
	}
	z.mu.Lock()
	z.rrs, z.exists = rrs, exists
	z.mu.Unlock()
}

// Count is how many queries for name and type ("A", "SRV", ...; "" for
// every type) arrived.
func (z *Server) Count(name, typ string) int {
	z.mu.Lock()
	defer z.mu.Unlock()
	name = strings.ToLower(dns.Fqdn(name))
	n := 0
	for k, c := range z.queries {
		qn, qt, _ := strings.Cut(k, " ")
		if qn == name && (typ == "" || qt == typ) {
			n += c
		}
	}
	return n
}

// Total is how many queries arrived.
func (z *Server) Total() int {
	z.mu.Lock()
	defer z.mu.Unlock()
	n := 0
	for _, c := range z.queries {
		n += c
	}
	return n
}

// ServeDNS answers one query.
func (z *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	if len(req.Question) != 1 {
		_ = w.WriteMsg(new(dns.Msg).SetRcode(req, dns.RcodeFormatError))
		return
	}
	q := req.Question[0]
	z.mu.Lock()
	z.queries[strings.ToLower(q.Name)+" "+dns.TypeToString[q.Qtype]]++
	z.mu.Unlock()

	switch Mode(z.mode.Load()) {
	case Drop:
		return
	case ServFail:
		_ = w.WriteMsg(new(dns.Msg).SetRcode(req, dns.RcodeServerFailure))
		return
	case Refused:
		_ = w.WriteMsg(new(dns.Msg).SetRcode(req, dns.RcodeRefused))
		return
	}
	resp := new(dns.Msg).SetReply(req)
	resp.Authoritative = true
	if z.truncateUDP.Load() && w.LocalAddr().Network() == "udp" {
		resp.Truncated = true
		_ = w.WriteMsg(resp)
		return
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	name, asked := strings.ToLower(q.Name), q.Name
	for range 8 { // follow CNAMEs inside the zone
		owner, ok := z.find(name)
		if !ok {
			if len(resp.Answer) == 0 {
				resp.Rcode = dns.RcodeNameError
			}
			break
		}
		var cname *dns.CNAME
		for _, rr := range z.rrs[owner] {
			if owner != name {
				// A wildcard's records answer as the name asked.
				rr = dns.Copy(rr)
				rr.Header().Name = asked
			}
			switch {
			case rr.Header().Rrtype == q.Qtype:
				resp.Answer = append(resp.Answer, rr)
			case rr.Header().Rrtype == dns.TypeCNAME:
				cname = rr.(*dns.CNAME)
			}
		}
		if cname == nil || q.Qtype == dns.TypeCNAME {
			break
		}
		resp.Answer = append(resp.Answer, cname)
		asked = cname.Target
		name = strings.ToLower(asked)
	}
	if len(resp.Answer) == 0 {
		rr, _ := dns.NewRR(soa)
		resp.Ns = append(resp.Ns, rr)
	}
	_ = w.WriteMsg(resp)
}

// find returns the owner name whose records answer name: name itself if
// it exists, else the wildcard child of its closest existing ancestor.
func (z *Server) find(name string) (string, bool) {
	if z.exists[name] {
		return name, true
	}
	for n := name; ; {
		_, rest, _ := strings.Cut(n, ".")
		if rest == "" {
			return "", false
		}
		if z.exists[rest] {
			wc := "*." + rest
			return wc, z.exists[wc]
		}
		n = rest
	}
}
