package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-metrics"
)

// raftStages collects the timings hashicorp/raft reports through go-metrics
// while a window is open, summed over every group and node in this process.
// They break an acknowledged write into its stages.
type raftStages struct {
	sink *metrics.InmemSink
}

// stage is one metric's aggregate: count, mean and max (ms for timers).
type stage struct {
	count     int
	mean, max float64
}

func startRaftStages() *raftStages {
	sink := metrics.NewInmemSink(time.Hour, 2*time.Hour)
	cfg := metrics.DefaultConfig("")
	cfg.EnableHostname, cfg.EnableRuntimeMetrics, cfg.EnableServiceLabel = false, false, false
	metrics.NewGlobal(cfg, sink)
	return &raftStages{sink: sink}
}

// stop detaches the sink and returns the aggregate of every metric, under its
// name (all labels folded together) and, if labelled, its full key.
func (r *raftStages) stop() map[string]stage {
	metrics.NewGlobal(metrics.DefaultConfig(""), &metrics.BlackholeSink{})
	type acc struct {
		count    int
		sum, max float64
	}
	accs := map[string]*acc{}
	for _, iv := range r.sink.Data() {
		iv.RLock()
		for key, v := range iv.Samples {
			name, _, labelled := strings.Cut(key, ";")
			names := []string{name}
			if labelled {
				names = append(names, key)
			}
			for _, n := range names {
				a := accs[n]
				if a == nil {
					a = &acc{}
					accs[n] = a
				}
				a.count += v.Count
				a.sum += v.Sum
				a.max = max(a.max, v.Max)
			}
		}
		iv.RUnlock()
	}
	out := map[string]stage{}
	for name, a := range accs {
		if a.count > 0 {
			out[name] = stage{count: a.count, mean: a.sum / float64(a.count), max: a.max}
		}
	}
	return out
}

// stageLines renders the stages of a write, in the order a write meets them.
func stageLines(st map[string]stage) []string {
	if len(st) == 0 {
		return nil
	}
	rows := []struct{ key, what string }{
		{"raft.leader.dispatchLog", "leader log write (WAL submit to durable)"},
		{"raft.replication.appendEntries.rpc", "replication round trip (send to follower's answer)"},
		{"raft.net.rpcDecode;rpcType=AppendEntries", "follower: decoding an AppendEntries"},
		{"raft.net.rpcEnqueue;rpcType=AppendEntries", "follower: waiting for the group's main loop to take it"},
		{"raft.rpc.appendEntries", "follower: main loop handling it"},
		{"raft.rpc.appendEntries.storeLogs", "  of which its log write (WAL)"},
		{"raft.commitTime", "leader: dispatch to commit"},
		{"raft.fsm.enqueue", "leader: handing committed entries to the FSM goroutine"},
		{"raft.fsm.applyBatch", "FSM apply of one batch (one store transaction)"},
	}
	var out []string
	for _, r := range rows {
		if s, ok := st[r.key]; ok {
			out = append(out, fmt.Sprintf("%-56s mean %6.2fms  max %7.1fms  (%d)", r.what, s.mean, s.max, s.count))
		}
	}
	if s, ok := st["raft.fsm.applyBatchNum"]; ok {
		out = append(out, fmt.Sprintf("%-56s mean %6.1f", "entries per FSM batch", s.mean))
	}
	for _, k := range []string{"raft.thread.main.saturation", "raft.thread.fsm.saturation"} {
		if s, ok := st[k]; ok {
			out = append(out, fmt.Sprintf("%-56s mean %5.0f%%  max %5.0f%%", strings.TrimPrefix(k, "raft.thread.")+" (per group)", 100*s.mean, 100*s.max))
		}
	}
	return out
}
