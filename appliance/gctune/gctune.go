// Package gctune adapts the garbage collector's target (GOGC) to the load.
// Under heavy SIP load collection took a fifth of the node's CPU: the live
// heap holds tens of thousands of responses kept for retransmissions, and
// every cycle marks them. While collection takes a large share of the CPU
// and the memory budget allows, the target is raised; when load falls it
// returns to the default, so an idle node keeps a small footprint.
package gctune

import (
	"bufio"
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// Policy decides GOGC from what the last interval measured.
type Policy struct {
	// Min and Max bound GOGC; Min is where an idle node stays.
	Min, Max int
	// High is the share of CPU spent collecting above which GOGC doubles;
	// it halves when the share would stay below Low after halving.
	High, Low float64
	// Budget is the heap, in bytes, that a raised target may reach.
	Budget uint64
}

// DefaultPolicy is the node's policy for a machine with mem bytes of memory:
// the heap may take a quarter of it.
func DefaultPolicy(mem uint64) Policy {
	// Measured under registration load: GOGC 200 cut a registration's
	// CPU by a sixth; 400 gained nothing more and doubled the memory.
	return Policy{Min: 100, Max: 200, High: 0.12, Low: 0.04, Budget: max(mem/4, 512<<20)}
}

// Sample is one interval's measurement.
type Sample struct {
	GCShare float64 // CPU spent collecting / CPU spent collecting and running Go code
	Live    uint64  // live heap after the last collection, bytes
}

// Next returns the GOGC for the next interval, given the current one.
func (p Policy) Next(cur int, s Sample) int {
	switch {
	case s.GCShare > p.High:
		next := min(cur*2, p.Max)
		// The heap grows to Live × (1 + GOGC/100): stay inside the budget.
		if s.Live > 0 {
			next = min(next, int(p.Budget*100/s.Live)-100)
		}
		return max(next, cur) // never lower while collection is busy
	case cur > p.Min && s.GCShare*float64(cur)/float64(max(cur/2, p.Min)) < p.Low:
		// Collection's share grows about as GOGC shrinks: lower the
		// target only if the lower one would stay quiet too, or it
		// would swing back at once.
		return max(cur/2, p.Min)
	}
	return cur
}

// Run applies p every interval until ctx ends, and restores GOGC=p.Min.
func Run(ctx context.Context, p Policy, every time.Duration, log *slog.Logger) {
	cur := p.Min
	debug.SetGCPercent(cur)
	defer debug.SetGCPercent(p.Min)
	ss := []metrics.Sample{
		{Name: "/cpu/classes/gc/total:cpu-seconds"},
		{Name: "/cpu/classes/user:cpu-seconds"},
		{Name: "/gc/heap/live:bytes"},
	}
	read := func() (gc, user float64, live uint64) {
		metrics.Read(ss)
		f := func(i int) float64 {
			if ss[i].Value.Kind() == metrics.KindFloat64 {
				return ss[i].Value.Float64()
			}
			return 0
		}
		if ss[2].Value.Kind() == metrics.KindUint64 {
			live = ss[2].Value.Uint64()
		}
		return f(0), f(1), live
	}
	lastGC, lastUser, _ := read()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		gc, user, live := read()
		d := (gc - lastGC) + (user - lastUser)
		if d <= 0 {
			// The CPU classes are updated as collections end: no cycle
			// in the interval tells nothing either way.
			continue
		}
		s := Sample{GCShare: (gc - lastGC) / d, Live: live}
		lastGC, lastUser = gc, user
		next := p.Next(cur, s)
		if next == cur {
			continue
		}
		debug.SetGCPercent(next)
		log.Debug("GC target changed", "gogc", next, "gc_share", s.GCShare, "live_bytes", live)
		cur = next
	}
}

// MachineMemory is the memory this process may use: the cgroup's limit if
// one is set, else the machine's (0 if neither can be read).
func MachineMemory() uint64 {
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
			return v
		}
	}
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseUint(fields[1], 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}
