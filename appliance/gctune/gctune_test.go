package gctune

import "testing"

func TestNext(t *testing.T) {
	p := Policy{Min: 100, Max: 800, High: 0.12, Low: 0.04, Budget: 4 << 30}
	for _, tc := range []struct {
		name string
		cur  int
		s    Sample
		want int
	}{
		{"busy collector doubles the target", 100, Sample{GCShare: 0.2, Live: 300 << 20}, 200},
		{"up to the maximum", 800, Sample{GCShare: 0.3, Live: 300 << 20}, 800},
		{"within the budget", 200, Sample{GCShare: 0.3, Live: 1 << 30}, 300},
		{"a heap past the budget stays where it is", 200, Sample{GCShare: 0.3, Live: 3 << 30}, 200},
		{"between the thresholds nothing changes", 400, Sample{GCShare: 0.08, Live: 300 << 20}, 400},
		{"a quiet collector halves it", 400, Sample{GCShare: 0.01, Live: 300 << 20}, 200},
		{"unless halving would make it busy", 400, Sample{GCShare: 0.03, Live: 300 << 20}, 400},
		{"down to the minimum", 100, Sample{GCShare: 0, Live: 50 << 20}, 100},
		{"no live heap read yet", 100, Sample{GCShare: 0.5}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.Next(tc.cur, tc.s); got != tc.want {
				t.Fatalf("Next(%d, %+v) = %d, want %d", tc.cur, tc.s, got, tc.want)
			}
		})
	}
}

func TestDefaultPolicy(t *testing.T) {
	if p := DefaultPolicy(24 << 30); p.Min != 100 || p.Max != 200 {
		t.Errorf("bounds %d..%d", p.Min, p.Max)
	}
	if b := DefaultPolicy(24 << 30).Budget; b != 6<<30 {
		t.Errorf("budget for 24 GiB: %d", b)
	}
	if b := DefaultPolicy(0).Budget; b != 512<<20 {
		t.Errorf("budget without a reading: %d, want the 512 MiB floor", b)
	}
}
