package resolve

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/miekg/dns"
)

// ednsSize is the UDP payload size advertised, so that SRV and NAPTR sets
// for a cluster fit without falling back to TCP.
const ednsSize = 4096

type cacheKey struct {
	name  string // after overrides
	qtype uint16
}

// cacheEntry is the answer to one question. An empty rrs means the name or
// the type does not exist (NXDOMAIN or NODATA), cached like any answer.
type cacheEntry struct {
	rrs     []dns.RR
	expires time.Time
	// retryAt holds back refreshes of an expired entry after one failed, so
	// that a DNS outage costs one timeout per StaleRetry, not per request.
	retryAt time.Time
	// notFound is the error for an empty rrs, built once.
	notFound error
}

// flight lets concurrent lookups of one question share a single query.
type flight struct {
	done  chan struct{}
	entry *cacheEntry
	err   error
}

func (e *cacheEntry) result() ([]dns.RR, error) {
	if len(e.rrs) == 0 {
		return nil, e.notFound
	}
	return e.rrs, nil
}

// lookup answers one question from the cache, querying DNS when the entry
// is missing or expired; an expired entry is served when the refresh fails.
func (r *Resolver) lookup(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	qname := r.override(name)
	key := cacheKey{qname, qtype}
	now := r.clock.Now()

	r.cacheMu.Lock()
	if e := r.cache[key]; e != nil && (now.Before(e.expires) || now.Before(e.retryAt)) {
		r.cacheMu.Unlock()
		return e.result()
	}
	f, joined := r.inflight[key]
	if !joined {
		f = &flight{done: make(chan struct{})}
		r.inflight[key] = f
	}
	r.cacheMu.Unlock()

	if !joined {
		r.refresh(ctx, key, f)
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("%s %s: %w", name, dns.TypeToString[qtype], ctx.Err())
	}
	if f.err != nil {
		return nil, f.err
	}
	return f.entry.result()
}

// refresh queries DNS for key and settles f with the new or stale entry.
func (r *Resolver) refresh(ctx context.Context, key cacheKey, f *flight) {
	defer close(f.done)
	resp, err := r.query(ctx, key.name, key.qtype)
	now := r.clock.Now()

	r.cacheMu.Lock()
	defer r.cacheMu.Unlock()
	delete(r.inflight, key)
	typ := dns.TypeToString[key.qtype]
	if err != nil {
		old := r.cache[key]
		if old == nil {
			if ctx.Err() != nil {
				f.err = fmt.Errorf("%s %s: %w", key.name, typ, ctx.Err())
				return
			}
			f.err = fmt.Errorf("%s %s: %w: %w", key.name, typ, ErrUnavailable, err)
			return
		}
		// A caller giving up says nothing about the servers: retry next time.
		if ctx.Err() == nil {
			old.retryAt = now.Add(r.staleRetry)
			r.log.Warn("DNS refresh failed; serving stale answer",
				"name", key.name, "type", typ, "expired", now.Sub(old.expires), "err", err)
		}
		f.entry = old
		return
	}
	e := &cacheEntry{rrs: answers(resp, key.qtype)}
	ttl := r.negativeTTL
	if len(e.rrs) > 0 {
		ttl = answerTTL(resp)
	} else {
		e.notFound = fmt.Errorf("%s %s: %w", key.name, typ, ErrNotFound)
		if soa := soaTTL(resp); soa >= 0 {
			ttl = soa
		}
	}
	e.expires = now.Add(ttl)
	r.store(key, e)
	f.entry = e
}

// store inserts e, evicting an old entry when the cache is full: the one
// that expired first among a few sampled (map order is random).
func (r *Resolver) store(key cacheKey, e *cacheEntry) {
	if _, ok := r.cache[key]; !ok && len(r.cache) >= r.cacheSize {
		var victim cacheKey
		var victimExp time.Time
		n := 0
		for k, v := range r.cache {
			if n == 0 || v.expires.Before(victimExp) {
				victim, victimExp = k, v.expires
			}
			if n++; n == 16 {
				break
			}
		}
		delete(r.cache, victim)
	}
	r.cache[key] = e
}

// answers returns the records of type qtype in resp's answer section, which
// follows any CNAME chain the server resolved.
func answers(resp *dns.Msg, qtype uint16) []dns.RR {
	if resp.Rcode != dns.RcodeSuccess {
		return nil
	}
	var out []dns.RR
	for _, rr := range resp.Answer {
		if rr.Header().Rrtype == qtype {
			out = append(out, rr)
		}
	}
	return out
}

// answerTTL is the smallest TTL in the answer section, CNAMEs included.
func answerTTL(resp *dns.Msg) time.Duration {
	ttl := ^uint32(0)
	for _, rr := range resp.Answer {
		ttl = min(ttl, rr.Header().Ttl)
	}
	return time.Duration(ttl) * time.Second
}

// soaTTL is the negative caching TTL of RFC 2308 §5, or -1 without an SOA.
func soaTTL(resp *dns.Msg) time.Duration {
	for _, rr := range resp.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return time.Duration(min(soa.Hdr.Ttl, soa.Minttl)) * time.Second
		}
	}
	return -1
}

// query asks each server in turn until one gives an authoritative outcome
// (an answer or NXDOMAIN); SERVFAIL, REFUSED, timeouts and network errors
// pass the question on to the next server.
func (r *Resolver) query(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.SetEdns0(ednsSize, false)
	var errs []error
	for _, server := range r.servers {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		resp, _, err := r.udp.ExchangeContext(ctx, m, server)
		if err == nil && resp.Truncated {
			resp, _, err = r.tcp.ExchangeContext(ctx, m, server)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("server %s: %w", server, err))
			continue
		}
		if resp.Rcode == dns.RcodeSuccess || resp.Rcode == dns.RcodeNameError {
			return resp, nil
		}
		errs = append(errs, fmt.Errorf("server %s answered %s", server, dns.RcodeToString[resp.Rcode]))
	}
	if len(errs) == 0 {
		return nil, errors.New("no DNS server configured")
	}
	return nil, errors.Join(errs...)
}
