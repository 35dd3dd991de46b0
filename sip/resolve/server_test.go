package resolve

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Failure modes of the test DNS server.
const (
	modeAnswer int32 = iota
	modeServfail
	modeRefused
	modeDrop // no answer at all: the client times out
)

// testDNS is a real miekg/dns server on 127.0.0.1 (UDP and TCP on one port)
// serving a zone given as presentation-format records.
type testDNS struct {
	addr netip.AddrPort

	mode        atomic.Int32
	truncateUDP atomic.Bool

	mu      sync.Mutex
	rrs     map[string][]dns.RR // by lower-case FQDN
	queries map[string]int      // "name TYPE" → count
}

// startDNS serves records until the test ends.
func startDNS(t testing.TB, records ...string) *testDNS {
	t.Helper()
	z := &testDNS{queries: make(map[string]int)}
	z.setZone(t, records...)

	var pc net.PacketConn
	var ln net.Listener
	for attempt := 0; ; attempt++ {
		var err error
		pc, err = net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen udp: %v", err)
		}
		ln, err = net.Listen("tcp4", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		if attempt == 20 {
			t.Fatalf("no port free for both UDP and TCP: %v", err)
		}
	}
	z.addr = netip.MustParseAddrPort(pc.LocalAddr().String())

	for _, srv := range []*dns.Server{
		{PacketConn: pc, Handler: z},
		{Listener: ln, Handler: z},
	} {
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

// setZone replaces the served records.
func (z *testDNS) setZone(t testing.TB, records ...string) {
	t.Helper()
	rrs := make(map[string][]dns.RR)
	for _, s := range records {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatalf("bad zone record %q: %v", s, err)
		}
		name := strings.ToLower(rr.Header().Name)
		rrs[name] = append(rrs[name], rr)
	}
	z.mu.Lock()
	z.rrs = rrs
	z.mu.Unlock()
}

// count returns how many queries for name and type ("A", "SRV", ...) arrived.
func (z *testDNS) count(name, typ string) int {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.queries[dns.Fqdn(name)+" "+typ]
}

func (z *testDNS) total() int {
	z.mu.Lock()
	defer z.mu.Unlock()
	n := 0
	for _, c := range z.queries {
		n += c
	}
	return n
}

func (z *testDNS) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	if len(req.Question) != 1 {
		_ = w.WriteMsg(new(dns.Msg).SetRcode(req, dns.RcodeFormatError))
		return
	}
	q := req.Question[0]
	z.mu.Lock()
	z.queries[strings.ToLower(q.Name)+" "+dns.TypeToString[q.Qtype]]++
	z.mu.Unlock()

	switch z.mode.Load() {
	case modeDrop:
		return
	case modeServfail:
		_ = w.WriteMsg(new(dns.Msg).SetRcode(req, dns.RcodeServerFailure))
		return
	case modeRefused:
		_ = w.WriteMsg(new(dns.Msg).SetRcode(req, dns.RcodeRefused))
		return
	}
	resp := new(dns.Msg).SetReply(req)
	if z.truncateUDP.Load() && w.LocalAddr().Network() == "udp" {
		resp.Truncated = true
		_ = w.WriteMsg(resp)
		return
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	name := strings.ToLower(q.Name)
	for range 8 { // follow CNAMEs inside the zone
		set, ok := z.rrs[name]
		if !ok {
			if len(resp.Answer) == 0 {
				resp.Rcode = dns.RcodeNameError
			}
			break
		}
		var cname *dns.CNAME
		for _, rr := range set {
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
		name = strings.ToLower(cname.Target)
	}
	if len(resp.Answer) == 0 {
		soa, _ := dns.NewRR("test. 3600 IN SOA ns.test. admin.test. 1 7200 900 1209600 30")
		resp.Ns = append(resp.Ns, soa)
	}
	_ = w.WriteMsg(resp)
}

// fakeClock is a Clock that moves only when told to.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// targetStrings renders targets compactly for comparisons.
func targetStrings(ts []Target) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = fmt.Sprintf("%s %s %s", t.Transport, t.Addr, t.Host)
	}
	return out
}
