package icscf

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Server is one S-CSCF of s-cscf.json.
type Server struct {
	URI          sip.Uri
	Priority     int
	Weight       int
	Capabilities []int
}

// ParseSCSCFJSON reads Clearwater's s-cscf.json.
func ParseSCSCFJSON(b []byte) ([]Server, error) {
	var doc struct {
		SCSCFs []struct {
			Server       string `json:"server"`
			Priority     int    `json:"priority"`
			Weight       int    `json:"weight"`
			Capabilities []int  `json:"capabilities"`
		} `json:"s-cscfs"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("s-cscf.json: %w", err)
	}
	var out []Server
	for i, s := range doc.SCSCFs {
		var u sip.Uri
		err := sip.ParseUri(strings.Trim(s.Server, "<>"), &u)
		if err == nil && (!strings.EqualFold(u.Scheme, "sip") && !strings.EqualFold(u.Scheme, "sips") || u.Host == "" || strings.ContainsAny(u.Host, " \t")) {
			err = fmt.Errorf("not a SIP URI")
		}
		if err != nil {
			return nil, fmt.Errorf("s-cscf.json: s-cscfs[%d].server %q: %w", i, s.Server, err)
		}
		out = append(out, Server{URI: u, Priority: s.Priority, Weight: s.Weight, Capabilities: s.Capabilities})
	}
	return out, nil
}

// order lists servers for one selection: lowest priority value first and,
// within a priority, a weighted random order (as RFC 2782 orders SRV
// targets), so that load spreads by weight and each request still has the
// others to fall back on.
func order(servers []Server, r *rand.Rand) []sip.Uri {
	byPrio := map[int][]Server{}
	var prios []int
	for _, s := range servers {
		if _, ok := byPrio[s.Priority]; !ok {
			prios = append(prios, s.Priority)
		}
		byPrio[s.Priority] = append(byPrio[s.Priority], s)
	}
	sort.Ints(prios)
	var out []sip.Uri
	for _, p := range prios {
		group := append([]Server(nil), byPrio[p]...)
		for len(group) > 0 {
			total := 0
			for _, s := range group {
				total += max(s.Weight, 0)
			}
			pick := 0
			if total > 0 {
				n := r.IntN(total)
				for i, s := range group {
					n -= max(s.Weight, 0)
					if n < 0 {
						pick = i
						break
					}
				}
			}
			out = append(out, group[pick].URI)
			group = append(group[:pick], group[pick+1:]...)
		}
	}
	return out
}
