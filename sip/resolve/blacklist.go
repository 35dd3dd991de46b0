package resolve

import (
	"net/netip"
	"time"
)

type blKey struct {
	transport string
	addr      netip.AddrPort
}

// MarkFailed blacklists t for the blacklist duration: until then Resolve
// still returns it, but after every target that is not blacklisted.
func (r *Resolver) MarkFailed(t Target) {
	until := r.clock.Now().Add(r.blacklistD)
	r.blMu.Lock()
	r.blacklist[blKey{t.Transport, t.Addr}] = until
	r.blMu.Unlock()
	r.log.Info("SIP target blacklisted", "target", t.String(), "for", r.blacklistD)
}

// Blacklisted reports whether t is currently blacklisted.
func (r *Resolver) Blacklisted(t Target) bool {
	now := r.clock.Now()
	r.blMu.Lock()
	defer r.blMu.Unlock()
	return r.blacklistedLocked(blKey{t.Transport, t.Addr}, now)
}

func (r *Resolver) blacklistedLocked(k blKey, now time.Time) bool {
	until, ok := r.blacklist[k]
	if !ok {
		return false
	}
	if !now.Before(until) {
		delete(r.blacklist, k)
		return false
	}
	return true
}

// demoteBlacklisted moves blacklisted targets to the end, keeping the order
// within each part.
func (r *Resolver) demoteBlacklisted(ts []Target) []Target {
	now := r.clock.Now()
	r.blMu.Lock()
	defer r.blMu.Unlock()
	if len(r.blacklist) == 0 {
		return ts
	}
	var bad []Target
	good := ts[:0]
	for _, t := range ts {
		if r.blacklistedLocked(blKey{t.Transport, t.Addr}, now) {
			bad = append(bad, t)
		} else {
			good = append(good, t)
		}
	}
	return append(good, bad...)
}
