package resolve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
)

// dnsJSON is Clearwater's /etc/clearwater/dns.json.
type dnsJSON struct {
	Hostnames *[]struct {
		Name    string `json:"name"`
		Records []struct {
			RRType string `json:"rrtype"`
			Target string `json:"target"`
		} `json:"records"`
	} `json:"hostnames"`
}

// ParseDNSJSON reads Clearwater's dns.json static overrides, returning host
// name → CNAME target. Only CNAME records are supported, one per name, as in
// Clearwater; anything else is an error naming the offending entry.
func ParseDNSJSON(data []byte) (map[string]string, error) {
	var doc dnsJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("dns.json: %w", err)
	}
	if dec.More() {
		return nil, errors.New("dns.json: trailing data after the JSON object")
	}
	if doc.Hostnames == nil {
		return nil, errors.New(`dns.json: missing "hostnames" array`)
	}
	out := make(map[string]string, len(*doc.Hostnames))
	for i, h := range *doc.Hostnames {
		name := canonName(strings.TrimSpace(h.Name))
		if name == "" {
			return nil, fmt.Errorf("dns.json: hostnames[%d]: missing name", i)
		}
		if err := checkName(name); err != nil {
			return nil, fmt.Errorf("dns.json: hostnames[%d]: %w", i, err)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("dns.json: hostnames[%d]: %q listed twice", i, name)
		}
		if len(h.Records) != 1 {
			return nil, fmt.Errorf("dns.json: hostnames[%d] (%s): want exactly one record, got %d", i, name, len(h.Records))
		}
		rec := h.Records[0]
		if !strings.EqualFold(rec.RRType, "CNAME") {
			return nil, fmt.Errorf("dns.json: hostnames[%d] (%s): unsupported rrtype %q (only CNAME)", i, name, rec.RRType)
		}
		target := canonName(strings.TrimSpace(rec.Target))
		if target == "" {
			return nil, fmt.Errorf("dns.json: hostnames[%d] (%s): missing CNAME target", i, name)
		}
		if err := checkName(target); err != nil {
			return nil, fmt.Errorf("dns.json: hostnames[%d] (%s): target: %w", i, name, err)
		}
		out[name] = target
	}
	if err := checkOverrideLoops(out); err != nil {
		return nil, fmt.Errorf("dns.json: %w", err)
	}
	return out, nil
}

// SetOverrides replaces the CNAME overrides (from ParseDNSJSON) for lookups
// from now on; cached answers stay valid as they are keyed by the name
// actually queried. A nil or empty map removes all overrides.
func (r *Resolver) SetOverrides(overrides map[string]string) error {
	m := make(map[string]string, len(overrides))
	for k, v := range overrides {
		m[canonName(k)] = canonName(v)
	}
	if err := checkOverrideLoops(m); err != nil {
		return fmt.Errorf("resolve: overrides: %w", err)
	}
	r.overridesMu.Lock()
	r.overrides = m
	r.overridesMu.Unlock()
	return nil
}

// Overrides returns a copy of the CNAME overrides in force.
func (r *Resolver) Overrides() map[string]string {
	r.overridesMu.RLock()
	defer r.overridesMu.RUnlock()
	return maps.Clone(r.overrides)
}

// override follows the override chain from name (loops were refused).
func (r *Resolver) override(name string) string {
	r.overridesMu.RLock()
	defer r.overridesMu.RUnlock()
	for range len(r.overrides) {
		t, ok := r.overrides[name]
		if !ok {
			break
		}
		name = t
	}
	return name
}

func checkOverrideLoops(m map[string]string) error {
	for start := range m {
		name := start
		for range len(m) {
			t, ok := m[name]
			if !ok {
				break
			}
			if t == start {
				return fmt.Errorf("CNAME override loop through %q", start)
			}
			name = t
		}
	}
	return nil
}
