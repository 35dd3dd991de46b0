package enum

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// Failure modes of the test ENUM server.
const (
	modeAnswer int32 = iota
	modeServfail
	modeDrop // never answers: the client times out
)

// enumServer is a real miekg/dns server on 127.0.0.1 (UDP) serving a zone
// of presentation-format records, with RFC 4592 wildcards as BIND serves
// them: "*.x" answers for names below x that do not exist themselves.
type enumServer struct {
	addr netip.AddrPort
	mode atomic.Int32

	mu      sync.Mutex
	rrs     map[string][]dns.RR // by lower-case FQDN
	exists  map[string]bool     // owner names and their ancestors
	queries map[string]int      // by lower-case FQDN
}

func startENUMServer(t testing.TB, records ...string) *enumServer {
	t.Helper()
	z := &enumServer{rrs: make(map[string][]dns.RR), exists: make(map[string]bool), queries: make(map[string]int)}
	for _, s := range records {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatalf("bad zone record %q: %v", s, err)
		}
		name := strings.ToLower(rr.Header().Name)
		z.rrs[name] = append(z.rrs[name], rr)
		for n := name; n != "."; {
			z.exists[n] = true
			_, rest, _ := strings.Cut(n, ".")
			if rest == "" {
				break
			}
			n = rest
		}
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen udp: %v", err)
	}
	z.addr = netip.MustParseAddrPort(pc.LocalAddr().String())
	srv := &dns.Server{PacketConn: pc, Handler: z}
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
	return z
}

// count is how many queries for name arrived.
func (z *enumServer) count(name string) int {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.queries[dns.Fqdn(strings.ToLower(name))]
}

func (z *enumServer) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	if len(req.Question) != 1 {
		_ = w.WriteMsg(new(dns.Msg).SetRcode(req, dns.RcodeFormatError))
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	z.mu.Lock()
	z.queries[name]++
	z.mu.Unlock()
	switch z.mode.Load() {
	case modeDrop:
		return
	case modeServfail:
		_ = w.WriteMsg(new(dns.Msg).SetRcode(req, dns.RcodeServerFailure))
		return
	}
	resp := new(dns.Msg).SetReply(req)
	z.mu.Lock()
	owner, ok := z.find(name)
	if !ok {
		resp.Rcode = dns.RcodeNameError
	}
	for _, rr := range z.rrs[owner] {
		if rr.Header().Rrtype == q.Qtype {
			c := dns.Copy(rr)
			c.Header().Name = q.Name
			resp.Answer = append(resp.Answer, c)
		}
	}
	z.mu.Unlock()
	if len(resp.Answer) == 0 {
		soa, _ := dns.NewRR("e164.arpa. 3600 IN SOA ns.test. admin.test. 1 7200 900 1209600 0")
		resp.Ns = append(resp.Ns, soa)
	}
	_ = w.WriteMsg(resp)
}

// find returns the owner name whose records answer name: name itself if
// it exists, else the wildcard child of its closest existing ancestor.
func (z *enumServer) find(name string) (string, bool) {
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
