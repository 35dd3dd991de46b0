package sitetest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// partition cuts node i's links to the given nodes (none: heals them).
func partition(t *testing.T, s *site, i int, from ...int) {
	t.Helper()
	ips := []string{}
	for _, j := range from {
		ips = append(ips, nodeIP(j))
	}
	body, _ := json.Marshal(ips)
	r, err := s.node(i).admin(http.MethodPost, "/debug/partition", body)
	if err != nil || r.code != http.StatusNoContent {
		t.Fatalf("POST /debug/partition %s on node %d: %v %v", body, i, r, err)
	}
}

// TestPartitionedMinority cuts one node off from the other two: it refuses
// requests with a clear error in bounded time while the majority carries on,
// and after the heal it catches up. The first round cuts off node 1, which
// leads every shard of a new site; the second node 3, by then likely leading
// some.
func TestPartitionedMinority(t *testing.T) {
	skipIfShort(t)
	s := newSite(t, siteOpts{nodes: 3, faultInjection: true})
	for round, cut := range []int{1, 3} {
		t.Run(fmt.Sprintf("node %d cut off", cut), func(t *testing.T) {
			minorityRound(t, s, round, cut)
		})
		if t.Failed() {
			return
		}
	}
}

func minorityRound(t *testing.T, s *site, round, cut int) {
	var others []int
	for i := 1; i <= 3; i++ {
		if i != cut {
			others = append(others, i)
		}
	}
	major := s.node(others[0])
	keys := make([]string, 16)
	for i := range keys {
		keys[i] = fmt.Sprintf("part/%d/%d", round, i)
		major.mustPut(t, keys[i], "before")
	}
	st, err := major.status()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cutting off node %d, leader of shards %v", cut, ledBy(st, nodeID(cut)))

	partition(t, s, cut, others...)
	for _, o := range others {
		partition(t, s, o, cut)
	}

	// The majority carries on, through either of its nodes.
	for i, k := range keys {
		s.node(others[i%2]).mustPut(t, k, "majority")
	}
	s.node(others[1]).mustGet(t, keys[0], "majority")

	// The cut-off node refuses writes, and reads it cannot prove current,
	// with a reason. The route gives up after 10 s; more than 15 s is no
	// answer. The requests go in parallel so the test waits that long once.
	const bound = 15 * time.Second
	minor := s.node(cut)
	final := map[string][]string{} // values each key may end with
	for _, k := range keys {
		final[k] = []string{"majority"}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, k := range keys[:6] {
		wg.Go(func() {
			start := time.Now()
			var r reply
			var err error
			what := "PUT"
			if i%2 == 0 {
				r, err = minor.put(k, "minority")
			} else {
				what = "GET"
				r, err = minor.get(k)
			}
			took := time.Since(start)
			switch {
			case err != nil:
				t.Errorf("%s %s via the cut-off node %d: %v after %v", what, k, cut, err, took)
			case r.code != http.StatusServiceUnavailable || strings.TrimSpace(r.body) == "":
				t.Errorf("%s %s via the cut-off node %d: got %v after %v, want 503 with a reason", what, k, cut, r, took)
			case took > bound:
				t.Errorf("%s %s via the cut-off node %d took %v to fail, more than %v", what, k, cut, took, bound)
			default:
				t.Logf("node %d refused a %s in %v: %v", cut, what, took.Round(time.Millisecond), r)
			}
			if what == "PUT" && writeOutcome(r, err) != notApplied {
				mu.Lock()
				final[k] = append(final[k], "minority")
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	for i := 1; i <= 3; i++ {
		partition(t, s, i)
	}
	waitFor(t, 30*time.Second, fmt.Sprintf("node %d to catch up with the majority", cut), func() error {
		for _, k := range keys {
			r, err := minor.getLocal(k)
			if err != nil {
				return err
			}
			if r.code != http.StatusOK || !slices.Contains(final[k], r.body) {
				return fmt.Errorf("local read of %s on node %d: %v, want one of %v", k, cut, r, final[k])
			}
		}
		return nil
	})
	// The refused writes were not applied behind the majority's back.
	for _, k := range keys {
		for i := 1; i <= 3; i++ {
			r, err := s.node(i).get(k)
			if err != nil || r.code != http.StatusOK || !slices.Contains(final[k], r.body) {
				t.Errorf("GET %s via node %d after the heal: %v %v, want one of %v", k, i, r, err, final[k])
			}
		}
	}
	waitConverged(t, minor, []int{1, 2, 3}, time.Minute)
}
