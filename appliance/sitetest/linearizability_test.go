package sitetest

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// kvInput and kvOutput are one operation on the kv store as porcupine sees it.
type kvInput struct {
	put        bool
	key, value string
}

type kvOutput struct {
	found bool
	value string
}

// kvState is one key's value in the sequential specification.
type kvState struct {
	found bool
	value string
}

// kvModel is a register per key: a read returns the last write.
var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(kvInput).key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return kvState{} },
	Step: func(state, input, output any) (bool, any) {
		s, in := state.(kvState), input.(kvInput)
		if in.put {
			return true, kvState{found: true, value: in.value}
		}
		out := output.(kvOutput)
		return out.found == s.found && out.value == s.value, s
	},
	DescribeOperation: func(input, output any) string {
		in := input.(kvInput)
		if in.put {
			return fmt.Sprintf("put(%s, %s)", in.key, in.value)
		}
		out := output.(kvOutput)
		if !out.found {
			return fmt.Sprintf("get(%s) -> not found", in.key)
		}
		return fmt.Sprintf("get(%s) -> %s", in.key, out.value)
	},
	DescribeState: func(state any) string {
		s := state.(kvState)
		if !s.found {
			return "(none)"
		}
		return s.value
	},
}

// outcome is what a client may conclude from a write's answer.
type outcome int

const (
	applied       outcome = iota // acknowledged
	notApplied                   // refused before it could take effect
	indeterminate                // may or may not have taken effect
)

// writeOutcome classifies a PUT's answer. Only a refused connection (the
// request never left) and an error the node vouches for as clean (503 without
// "outcome unknown", or a 4xx) count as not applied; a 503 "outcome unknown",
// a lost connection, a timeout or anything else may have been applied.
func writeOutcome(r reply, err error) outcome {
	switch {
	case err == nil && r.code == http.StatusNoContent:
		return applied
	case err != nil:
		if isDialRefused(err) {
			return notApplied
		}
		return indeterminate
	case r.code == http.StatusServiceUnavailable && !strings.Contains(r.body, "outcome unknown"):
		return notApplied
	case r.code >= 400 && r.code < 500:
		return notApplied
	}
	return indeterminate
}

func isDialRefused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" && errors.Is(err, syscall.ECONNREFUSED)
}

// history records operations with times from one monotonic origin.
type history struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
	// Writes by key, for the final read-back check.
	writes map[string][]write
}

type write struct {
	value        string
	call, ret    int64 // ret is math.MaxInt64 for an indeterminate write
	acknowledged bool
}

func newHistory() *history { return &history{start: time.Now(), writes: map[string][]write{}} }

func (h *history) now() int64 { return int64(time.Since(h.start)) }

func (h *history) add(client int, in kvInput, out kvOutput, call, ret int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call, Return: ret})
	if in.put {
		h.writes[in.key] = append(h.writes[in.key], write{value: in.value, call: call, ret: ret, acknowledged: ret != math.MaxInt64})
	}
}

// possiblyLast lists the values a key may hold once every write has ended:
// those of writes that no acknowledged write followed (started after it
// returned). An indeterminate write never returned, so nothing follows it.
func possiblyLast(ws []write) []string {
	var out []string
	for _, w := range ws {
		followed := false
		for _, o := range ws {
			if o.acknowledged && o.call > w.ret {
				followed = true
				break
			}
		}
		if !followed {
			out = append(out, w.value)
		}
	}
	return out
}

// TestLinearizableUnderKill runs clients against random nodes while nodes,
// shard leaders included, are killed with kill -9 and restarted, and checks
// that the history of reads and writes is linearizable.
func TestLinearizableUnderKill(t *testing.T) {
	skipIfShort(t)
	s := newSite(t, siteOpts{nodes: 3})
	const (
		clients  = 8
		duration = 20 * time.Second
	)
	keys := make([]string, 8)
	for i := range keys {
		keys[i] = fmt.Sprintf("lin/%d", i)
	}

	// Shared configuration uploaded before the kills must outlive them: a
	// restarting node must not put its own files back in force.
	shared := "home_domain=lin.example.com\n"
	if r, err := s.node(2).admin(http.MethodPut, "/config/shared_config", []byte(shared)); err != nil || r.code != http.StatusOK {
		t.Fatalf("PUT /config/shared_config: %v %v", r, err)
	}

	// up holds the nodes clients send to; a node is taken out just before it
	// is killed and put back once restarted (a client may still hit it
	// mid-kill: that is the point).
	var upMu sync.Mutex
	up := map[int]bool{1: true, 2: true, 3: true}
	pick := func(r *rand.Rand) *node {
		upMu.Lock()
		defer upMu.Unlock()
		var live []int
		for i := 1; i <= 3; i++ {
			if up[i] {
				live = append(live, i)
			}
		}
		return s.node(live[r.IntN(len(live))])
	}
	setUp := func(i int, v bool) { upMu.Lock(); up[i] = v; upMu.Unlock() }

	h := newHistory()
	var stop atomic.Bool
	var counts struct {
		sync.Mutex
		m map[string]int
	}
	counts.m = map[string]int{}
	count := func(what string) { counts.Lock(); counts.m[what]++; counts.Unlock() }
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(c), 42))
			for seq := 0; !stop.Load(); seq++ {
				n := pick(r)
				key := keys[r.IntN(len(keys))]
				if r.IntN(2) == 0 {
					val := fmt.Sprintf("c%d-%d", c, seq)
					call := h.now()
					rep, err := n.put(key, val)
					ret := h.now()
					switch writeOutcome(rep, err) {
					case applied:
						count("put ok")
						h.add(c, kvInput{put: true, key: key, value: val}, kvOutput{}, call, ret)
					case indeterminate:
						count("put indeterminate: " + why(rep, err))
						h.add(c, kvInput{put: true, key: key, value: val}, kvOutput{}, call, math.MaxInt64)
					default:
						count("put refused: " + why(rep, err))
					}
					continue
				}
				call := h.now()
				rep, err := n.get(key)
				ret := h.now()
				switch {
				case err == nil && rep.code == http.StatusOK:
					count("get ok")
					h.add(c, kvInput{key: key}, kvOutput{found: true, value: rep.body}, call, ret)
				case err == nil && rep.code == http.StatusNotFound:
					count("get not found")
					h.add(c, kvInput{key: key}, kvOutput{}, call, ret)
				default:
					count("get failed") // a failed read constrains nothing
				}
			}
		})
	}
	defer func() { stop.Store(true); wg.Wait() }()

	// Kill and restart nodes, the first time the node leading the most shards.
	r := rand.New(rand.NewPCG(7, 7))
	end := time.Now().Add(duration)
	kills := 0
	for kills < 2 || time.Now().Before(end) {
		st, err := s.node(1 + r.IntN(3)).status()
		if err != nil {
			t.Fatal(err)
		}
		victim := 1 + r.IntN(3)
		if kills == 0 {
			victim = busiestLeader(st)
			if len(ledBy(st, nodeID(victim))) == 0 {
				t.Fatalf("no node leads a shard: %v", shardLeaders(st))
			}
			t.Logf("killing node %d, leader of shards %v", victim, ledBy(st, nodeID(victim)))
		} else {
			t.Logf("killing node %d (leads %v)", victim, ledBy(st, nodeID(victim)))
		}
		var alive []int
		for i := 1; i <= 3; i++ {
			if i != victim {
				alive = append(alive, i)
			}
		}
		setUp(victim, false)
		s.node(victim).kill()
		kills++
		waitFor(t, 30*time.Second, "the survivors to lead every group", func() error {
			st, err := s.node(alive[0]).status()
			if err != nil {
				return err
			}
			return leadersAmong(st, alive)
		})
		if err := s.node(victim).start(); err != nil {
			t.Fatal(err)
		}
		setUp(victim, true)
		waitConverged(t, s.node(alive[0]), []int{1, 2, 3}, 60*time.Second)
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d kills; operations: %v", kills, counts.m)
	if counts.m["put ok"] < 100 || counts.m["get ok"] < 100 {
		t.Fatalf("too little traffic went through to judge: %v", counts.m)
	}

	// Every acknowledged write's final value reads back, through every node.
	for _, key := range keys {
		want := possiblyLast(h.writes[key])
		for i := 1; i <= 3; i++ {
			var rep reply
			call := h.now()
			waitFor(t, 20*time.Second, "a final read of "+key, func() error {
				var err error
				call = h.now()
				rep, err = s.node(i).get(key)
				if err != nil {
					return err
				}
				if rep.code != http.StatusOK && rep.code != http.StatusNotFound {
					return fmt.Errorf("GET %s via node %d: %v", key, i, rep)
				}
				return nil
			})
			ret := h.now()
			out := kvOutput{found: rep.code == http.StatusOK, value: rep.body}
			h.add(100+i, kvInput{key: key}, out, call, ret)
			if len(want) == 0 && out.found {
				t.Errorf("%s: never written, yet node %d reads %q", key, i, out.value)
			}
			if len(want) > 0 && (!out.found || !slices.Contains(want, out.value)) {
				t.Errorf("%s: node %d reads %v, want the last acknowledged write or a later indeterminate one: %v", key, i, out, want)
			}
		}
	}

	for i := 1; i <= 3; i++ {
		if r, err := s.node(i).admin(http.MethodGet, "/config/shared_config", nil); err != nil || r.body != shared {
			t.Errorf("shared_config on node %d after the kills: %v %v, want %q as uploaded", i, r, err, shared)
		}
	}

	res, info := porcupine.CheckOperationsVerbose(kvModel, h.ops, time.Minute)
	switch res {
	case porcupine.Ok:
		t.Logf("history of %d operations is linearizable", len(h.ops))
	case porcupine.Illegal:
		path := filepath.Join(os.TempDir(), fmt.Sprintf("sitetest-linearizability-%d.html", time.Now().UnixNano()))
		if err := porcupine.VisualizePath(kvModel, info, path); err != nil {
			t.Logf("cannot write the visualization: %v", err)
		}
		t.Fatalf("history of %d operations is not linearizable; see %s", len(h.ops), path)
	default:
		t.Fatalf("linearizability check of %d operations did not finish: %v", len(h.ops), res)
	}
}

// why sums up a failed request for the operation counts.
func why(r reply, err error) string {
	switch {
	case err != nil && isDialRefused(err):
		return "connection refused"
	case err != nil:
		return "connection lost"
	case strings.Contains(r.body, "outcome unknown"):
		return fmt.Sprintf("%d outcome unknown", r.code)
	}
	return fmt.Sprint(r.code)
}
