package dnstest

import (
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestServerAnswers(t *testing.T) {
	z := Start(t, Options{TCP: true},
		`host.test. 60 IN A 192.0.2.1`,
		`alias.test. 60 IN CNAME host.test.`,
		`_sip._udp.deep.test. 60 IN SRV 1 0 5060 host.test.`,
		`*.4.e164.arpa. 60 IN NAPTR 100 10 "u" "E2U+sip" "!^.*$!sip:x@example.test!" .`,
	)
	cases := []struct {
		name    string
		q       string
		typ     uint16
		rcode   int
		answers []string // owner and type of each answer
		soa     bool
	}{
		{name: "record", q: "host.test.", typ: dns.TypeA, answers: []string{"host.test. A"}},
		{name: "case folded", q: "HOST.test.", typ: dns.TypeA, answers: []string{"host.test. A"}},
		{name: "cname followed", q: "alias.test.", typ: dns.TypeA, answers: []string{"alias.test. CNAME", "host.test. A"}},
		{name: "cname asked for", q: "alias.test.", typ: dns.TypeCNAME, answers: []string{"alias.test. CNAME"}},
		{name: "no such type", q: "host.test.", typ: dns.TypeAAAA, soa: true},
		{name: "no such name", q: "nx.test.", typ: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
		{name: "empty non-terminal", q: "_udp.deep.test.", typ: dns.TypeSRV, soa: true},
		{name: "wildcard", q: "3.2.1.4.e164.arpa.", typ: dns.TypeNAPTR, answers: []string{"3.2.1.4.e164.arpa. NAPTR"}},
		{name: "outside the wildcard", q: "3.2.1.5.e164.arpa.", typ: dns.TypeNAPTR, rcode: dns.RcodeNameError, soa: true},
	}
	for _, tc := range cases {
		for _, network := range []string{"udp", "tcp"} {
			t.Run(tc.name+"/"+network, func(t *testing.T) {
				res := exchange(t, z, network, tc.q, tc.typ)
				if res.Rcode != tc.rcode {
					t.Errorf("rcode %s, want %s", dns.RcodeToString[res.Rcode], dns.RcodeToString[tc.rcode])
				}
				var got []string
				for _, rr := range res.Answer {
					got = append(got, rr.Header().Name+" "+dns.TypeToString[rr.Header().Rrtype])
				}
				if !slices.Equal(got, tc.answers) {
					t.Errorf("answers %q, want %q", got, tc.answers)
				}
				if soa := len(res.Ns) == 1 && res.Ns[0].Header().Rrtype == dns.TypeSOA; soa != tc.soa {
					t.Errorf("SOA in authority %v, want %v", soa, tc.soa)
				}
			})
		}
	}
	if n := z.Count("host.test", "A"); n != 4 {
		t.Errorf("Count(host.test, A) = %d, want 4", n)
	}
	if n := z.Count("alias.test", ""); n != 4 {
		t.Errorf("Count(alias.test) = %d, want 4", n)
	}
	if n := z.Total(); n != 2*len(cases) {
		t.Errorf("Total() = %d, want %d", n, 2*len(cases))
	}
}

func TestServerFails(t *testing.T) {
	z := Start(t, Options{TCP: true}, `host.test. 60 IN A 192.0.2.1`)
	cases := []struct {
		name  string
		mode  Mode
		rcode int
	}{
		{name: "SERVFAIL", mode: ServFail, rcode: dns.RcodeServerFailure},
		{name: "REFUSED", mode: Refused, rcode: dns.RcodeRefused},
		{name: "answers again", mode: Answer, rcode: dns.RcodeSuccess},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			z.SetMode(tc.mode)
			if res := exchange(t, z, "udp", "host.test.", dns.TypeA); res.Rcode != tc.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[res.Rcode], dns.RcodeToString[tc.rcode])
			}
		})
	}
	t.Run("truncated over UDP", func(t *testing.T) {
		z.TruncateUDP(true)
		defer z.TruncateUDP(false)
		if res := exchange(t, z, "udp", "host.test.", dns.TypeA); !res.Truncated || len(res.Answer) != 0 {
			t.Errorf("UDP answer truncated %v with %d records, want an empty truncated one", res.Truncated, len(res.Answer))
		}
		if res := exchange(t, z, "tcp", "host.test.", dns.TypeA); res.Truncated || len(res.Answer) != 1 {
			t.Errorf("TCP answer truncated %v with %d records, want the record", res.Truncated, len(res.Answer))
		}
	})
	t.Run("dropped", func(t *testing.T) {
		z.SetMode(Drop)
		defer z.SetMode(Answer)
		m := new(dns.Msg).SetQuestion("host.test.", dns.TypeA)
		c := &dns.Client{Net: "udp", Timeout: 200 * time.Millisecond}
		if _, _, err := c.Exchange(m, z.Addr().String()); err == nil {
			t.Error("a dropped query was answered")
		}
	})
}

func exchange(t *testing.T, z *Server, network, name string, typ uint16) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 5 * time.Second}
	res, _, err := c.Exchange(new(dns.Msg).SetQuestion(name, typ), z.Addr().String())
	if err != nil {
		t.Fatalf("%s %s over %s: %v", name, dns.TypeToString[typ], network, err)
	}
	return res
}
