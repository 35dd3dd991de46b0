package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// loadResult is what a closed-loop load measured in its window.
type loadResult struct {
	ops, errs int
	firstErr  error
	window    time.Duration
	lat       []time.Duration // sorted
	cpu       time.Duration   // this process's CPU time in the window
	machine   float64         // whole machine's busy CPUs in the window
}

func (r loadResult) rate() float64 { return float64(r.ops) / r.window.Seconds() }

// pct returns the q-quantile (0 < q ≤ 1) of the latencies.
func (r loadResult) pct(q float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(q*float64(len(r.lat))+0.5) - 1
	return r.lat[min(max(i, 0), len(r.lat)-1)]
}

// cpuPct is the process's CPU use in the window, 100 per busy core.
func (r loadResult) cpuPct() float64 { return 100 * r.cpu.Seconds() / r.window.Seconds() }

// otherPct is the CPU the rest of the machine used in the window, 100 per
// busy core: other load makes the figures unreliable.
func (r loadResult) otherPct() float64 { return max(0, 100*r.machine-r.cpuPct()) }

func (r loadResult) String() string {
	s := fmt.Sprintf("%.0f/s  p50 %s  p99 %s  p99.9 %s  max %s  (%d ops, %d errors, CPU %.0f%%, other processes %.0f%%)",
		r.rate(), ms(r.pct(0.50)), ms(r.pct(0.99)), ms(r.pct(0.999)), ms(r.pct(1)), r.ops, r.errs, r.cpuPct(), r.otherPct())
	if r.firstErr != nil {
		s += "\n    first error: " + r.firstErr.Error()
	}
	return s
}

// runLoad runs op from workers goroutines back to back, for warmup and then
// for a measured window of length dur. Only operations that start and end
// inside the window count. mark is called as the window opens (true) and
// closes (false), for counters and profiles.
func runLoad(ctx context.Context, workers int, warmup, dur time.Duration, op func(ctx context.Context, worker, i int) error, mark func(open bool)) loadResult {
	const (
		warming = iota
		measuring
		stopped
	)
	var phase atomic.Int32
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lats := make([][]time.Duration, workers)
	errs := make([]int, workers)
	firstErr := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				p := phase.Load()
				if p == stopped {
					return
				}
				t0 := time.Now()
				err := op(ctx, w, i)
				d := time.Since(t0)
				if p != measuring || phase.Load() != measuring {
					continue
				}
				if err != nil {
					errs[w]++
					if firstErr[w] == nil {
						firstErr[w] = err
					}
					continue
				}
				lats[w] = append(lats[w], d)
			}
		})
	}
	sleep(ctx, warmup)
	cpu0 := cpuTime()
	busy0, total0 := machineCPU()
	t0 := time.Now()
	if mark != nil {
		mark(true)
	}
	phase.Store(measuring)
	sleep(ctx, dur)
	phase.Store(stopped)
	r := loadResult{window: time.Since(t0), cpu: cpuTime() - cpu0}
	if busy1, total1 := machineCPU(); total1 > total0 {
		r.machine = (busy1 - busy0) / (total1 - total0) * float64(runtime.NumCPU())
	}
	if mark != nil {
		mark(false)
	}
	cancel()
	wg.Wait()
	for w := range workers {
		r.lat = append(r.lat, lats[w]...)
		r.errs += errs[w]
		if r.firstErr == nil {
			r.firstErr = firstErr[w]
		}
	}
	r.ops = len(r.lat)
	slices.Sort(r.lat)
	return r
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// cpuTime is the user plus system time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineCPU returns the busy and total jiffies of all CPUs from /proc/stat.
func machineCPU() (busy, total float64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	for i, v := range f[1:min(len(f), 9)] { // guest time is already in user
		n, _ := strconv.ParseFloat(v, 64)
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }
