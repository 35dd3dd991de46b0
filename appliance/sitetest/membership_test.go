package sitetest

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// writeLoad is a steady stream of kv requests from a few clients spread over
// some nodes: each writes a fresh key, then reads it back. It remembers what
// was acknowledged, every failed write, and every read that failed (retried
// until it answers) or answered wrong.
type writeLoad struct {
	stop       atomic.Bool
	wg         sync.WaitGroup
	mu         sync.Mutex
	acked      map[string]string
	fails      []string // failed writes and wrong reads
	readErrors []string // reads that failed and were retried
}

// startLoad starts clients sending through the given nodes, each at most
// rate writes a second so the site keeps CPU for the change under test.
func startLoad(s *site, clients int, rate int, via []int) *writeLoad {
	l := &writeLoad{acked: map[string]string{}}
	note := func(list *[]string, format string, a ...any) {
		l.mu.Lock()
		*list = append(*list, time.Now().Format("15:04:05.000 ")+fmt.Sprintf(format, a...))
		l.mu.Unlock()
	}
	for c := range clients {
		l.wg.Go(func() {
			tick := time.NewTicker(time.Second / time.Duration(rate))
			defer tick.Stop()
			for seq := 0; !l.stop.Load(); seq++ {
				n := s.node(via[(c+seq)%len(via)])
				key, val := fmt.Sprintf("load/%d/%d", c, seq), fmt.Sprintf("v%d-%d", c, seq)
				r, err := n.put(key, val)
				if err != nil || r.code != http.StatusNoContent {
					note(&l.fails, "PUT %s via node %d: %v %v", key, n.idx, r, err)
					<-tick.C
					continue
				}
				l.mu.Lock()
				l.acked[key] = val
				l.mu.Unlock()
				n = s.node(via[(c+seq+1)%len(via)])
				for try := 0; try < 20; try++ {
					r, err = n.get(key)
					if err == nil && r.code == http.StatusOK {
						if r.body != val {
							note(&l.fails, "GET %s via node %d: %q after %q was acknowledged", key, n.idx, r.body, val)
						}
						break
					}
					note(&l.readErrors, "GET %s via node %d: %v %v", key, n.idx, r, err)
					<-tick.C
				}
				<-tick.C
			}
		})
	}
	return l
}

// end stops the clients.
func (l *writeLoad) end() {
	l.stop.Store(true)
	l.wg.Wait()
}

// readBack checks that every acknowledged write reads back through via. A
// read failing with an error is retried, and noted.
func readBack(t *testing.T, via *node, acked map[string]string) {
	t.Helper()
	keys := make(chan string)
	var mu sync.Mutex
	var wrong []string
	retried := 0
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for k := range keys {
				var r reply
				err := poll(20*time.Second, func() error {
					var err error
					r, err = via.get(k)
					if err == nil && (r.code == http.StatusOK || r.code == http.StatusNotFound) {
						return nil
					}
					mu.Lock()
					retried++
					mu.Unlock()
					return fmt.Errorf("%v %v", r, err)
				})
				mu.Lock()
				if err != nil {
					wrong = append(wrong, fmt.Sprintf("%s: read fails: %v", k, err))
				} else if r.code != http.StatusOK || r.body != acked[k] {
					wrong = append(wrong, fmt.Sprintf("%s: read %v, acknowledged %q", k, r, acked[k]))
				}
				mu.Unlock()
			}
		})
	}
	for k := range acked {
		keys <- k
	}
	close(keys)
	wg.Wait()
	if retried > 0 {
		t.Logf("note: %d reads failed and were retried", retried)
	}
	if len(wrong) > 0 {
		slices.Sort(wrong)
		t.Errorf("%d of %d acknowledged writes do not read back through node %d; first: %s",
			len(wrong), len(acked), via.idx, strings.Join(wrong[:min(len(wrong), 20)], "\n"))
	}
}

// TestJoinAndDecommissionUnderLoad adds a fourth node to a loaded site, waits
// for it to take shard replicas, then decommissions it; no write may fail.
func TestJoinAndDecommissionUnderLoad(t *testing.T) {
	skipIfShort(t)
	s := newSite(t, siteOpts{nodes: 3})
	// Enough data that a replica moving to the new node has some to copy.
	preload := map[string]string{}
	for i := range 2000 {
		preload[fmt.Sprintf("pre/%04d", i)] = fmt.Sprintf("value %d %s", i, strings.Repeat("p", i%100))
	}
	putAll(t, s, preload)
	load := startLoad(s, 4, 20, []int{1, 2, 3})
	defer load.end()

	n4 := s.addNode(4, []int{1, 2, 3, 4})
	if err := n4.start(); err != nil {
		t.Fatal(err)
	}
	// Settled, and with replicas on the new node: right after the join the
	// old placement still matches the replicas.
	var on4 []int
	waitFor(t, 2*time.Minute, "the site to settle with shard replicas on node 4", func() error {
		st, err := s.node(1).status()
		if err != nil {
			return err
		}
		if err := converged(st, []int{1, 2, 3, 4}); err != nil {
			return err
		}
		on4 = nil
		for sh, ids := range st.Meta.Placement {
			if slices.Contains(ids, n4.id) {
				on4 = append(on4, sh)
			}
		}
		if len(on4) == 0 {
			return fmt.Errorf("node 4 holds no shard: placement %v", st.Meta.Placement)
		}
		return nil
	})
	t.Logf("node 4 holds replicas of shards %v", on4)
	// The new node serves, too.
	n4.mustPut(t, "via4", "x")
	n4.mustGet(t, "via4", "x")

	out, errOut, err := n4.cli("cluster", "decommission")
	if err != nil {
		t.Fatalf("stillwater cluster decommission: %v\n%s%s", err, out, errOut)
	}
	if err := n4.waitExit(30 * time.Second); err != nil {
		t.Fatalf("decommissioned node did not exit: %v", err)
	}
	if err := n4.exitErr(); err != nil {
		t.Errorf("decommissioned node exited with %v", err)
	}
	waitConverged(t, s.node(1), []int{1, 2, 3}, 2*time.Minute)

	load.end()
	t.Logf("%d writes acknowledged, %d failed; %d reads failed and were retried",
		len(load.acked), len(load.fails), len(load.readErrors))
	if len(load.readErrors) > 0 {
		t.Logf("note: reads retried: %s", strings.Join(load.readErrors[:min(len(load.readErrors), 10)], "\n"))
	}
	if len(load.fails) > 0 {
		t.Errorf("%d requests failed while the site grew and shrank; first: %s",
			len(load.fails), strings.Join(load.fails[:min(len(load.fails), 20)], "\n"))
	}
	load.acked["via4"] = "x"
	readBack(t, s.node(1), load.acked)
	readBack(t, s.node(2), preload)
}

// TestRemoveDeadNode removes a node killed for good; the site carries on
// with two members.
func TestRemoveDeadNode(t *testing.T) {
	s := newSite(t, siteOpts{nodes: 3})
	s.node(3).mustPut(t, "before", "3")
	s.node(3).kill()
	// Removal goes through the meta group, which needs a leader first.
	waitFor(t, 30*time.Second, "the survivors to lead every group", func() error {
		st, err := s.node(1).status()
		if err != nil {
			return err
		}
		return leadersAmong(st, []int{1, 2})
	})
	out, errOut, err := s.node(1).cli("cluster", "remove-node", nodeID(3))
	if err != nil {
		t.Fatalf("stillwater cluster remove-node %s: %v\n%s%s", nodeID(3), err, out, errOut)
	}
	st, err := s.node(1).status()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Meta.Members) != 2 {
		t.Fatalf("after remove-node the site has members %v, want 2", slices.Sorted(mapKeys(st.Meta.Members)))
	}
	out, _, err = s.node(2).cli("cluster", "status")
	if err != nil || strings.Contains(out, nodeID(3)) {
		t.Errorf("cluster status after removal (err %v) still shows %s:\n%s", err, nodeID(3), out)
	}
	waitConverged(t, s.node(1), []int{1, 2}, time.Minute)
	for _, c := range []struct{ id, why string }{{nodeID(3), "no member"}, {nodeID(1), "decommission"}} {
		if _, errOut, err := s.node(1).cli("cluster", "remove-node", c.id); err == nil || !strings.Contains(errOut, c.why) {
			t.Errorf("remove-node %s via node 1: err %v, stderr %q; want a refusal saying %q", c.id, err, errOut, c.why)
		}
	}
	for i := range 20 {
		s.node(1+i%2).mustPut(t, fmt.Sprintf("after/%d", i), "ok")
	}
	s.node(2).mustGet(t, "before", "3")
	s.node(1).mustGet(t, "after/19", "ok")
}
