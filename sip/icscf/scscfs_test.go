package icscf

import (
	"math/rand/v2"
	"strings"
	"testing"
)

func TestParseSCSCFJSON(t *testing.T) {
	for _, tc := range []struct {
		name, doc, err string
		want           int
	}{
		{name: "two servers", doc: `{"s-cscfs":[{"server":"sip:scscf1","priority":0,"weight":100,"capabilities":[1]},{"server":"sip:scscf2","priority":1,"weight":50,"capabilities":[]}]}`, want: 2},
		{name: "empty", doc: `{"s-cscfs":[]}`},
		{name: "not JSON", doc: `{`, err: "s-cscf.json"},
		{name: "bad URI", doc: `{"s-cscfs":[{"server":"sip:a b"}]}`, err: "s-cscfs[0].server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSCSCFJSON([]byte(tc.doc))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one naming %q", err, tc.err)
				}
				return
			}
			if err != nil || len(got) != tc.want {
				t.Fatalf("got %d servers, %v; want %d", len(got), err, tc.want)
			}
		})
	}
}

// TestOrder: lower priority values come first; within a priority each
// server leads in proportion to its weight.
func TestOrder(t *testing.T) {
	servers, err := ParseSCSCFJSON([]byte(`{"s-cscfs":[
		{"server":"sip:backup","priority":1,"weight":100},
		{"server":"sip:big","priority":0,"weight":300},
		{"server":"sip:small","priority":0,"weight":100}]}`))
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	first := map[string]int{}
	const rounds = 4000
	for range rounds {
		got := order(servers, r)
		if len(got) != 3 || got[2].Host != "backup" {
			t.Fatalf("order %v: the priority 1 server must come last", got)
		}
		first[got[0].Host]++
	}
	if share := float64(first["big"]) / rounds; share < 0.70 || share > 0.80 {
		t.Errorf("weight 300 of 400 led %.2f of selections, want about 0.75", share)
	}
}
