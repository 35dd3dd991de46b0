// Command storagebench measures the site's built-in storage on this machine
// and prints the figures against the design's targets:
//
//   - acknowledged kv.Put writes/s and latency (64 writers, 200-byte values)
//     on a fresh three-node site with 1 shard and with 16, and the WAL fsyncs,
//     write calls and Raft stage timings behind them;
//   - timer creates/s (Set with an in-process callback) and pops/s;
//   - the resident memory of each of three stillwater processes holding a
//     million pending timers created through the Chronos HTTP API.
//
// The kv and timer points run three nodes in this process on 127.0.0.1, .2
// and .3, assembled as the appliance assembles a node (real WAL with fsync,
// site TLS over loopback TCP). The memory point builds the stillwater command
// (./appliance/cmd/stillwater) into a temporary directory, or takes
// -stillwater, and runs it three times.
//
//	go run ./bench/storagebench                    # all, ≈7 min (5½ of them creating 1M timers)
//	go run ./bench/storagebench -rss-timers 200000 # all, ≈3 min
//	go run ./bench/storagebench -only kv -shards 16 -cpuprofile /tmp/sw
//
// The in-process points run with GOMAXPROCS three times the CPU count: a
// real site is three processes, each with a P per CPU, and a P blocked in
// fdatasync must not stall the other two nodes as it would with only two Ps
// between them (measured: 6.2k writes/s with 16 shards at GOMAXPROCS 2,
// 10.4k at 6). -procs changes it.
//
// Diagnosis flags: -stages (Raft stage timings), -entry leader (no
// forwarding), -apply null (no state machine), -wal-maxwait, -cpuprofile and
// -trace. The in-process nodes' logs go to -nodelog.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

type options struct {
	only          map[string]bool
	shards        []int
	duration      time.Duration
	warmup        time.Duration
	writers       int
	valueSize     int
	entry         string
	apply         string
	walMaxWait    time.Duration
	timerShards   int
	timerDuration time.Duration
	timerWarmup   time.Duration
	pops          int
	rssTimers     int
	rssClients    int
	rssShards     int
	rssSettle     time.Duration
	stillwater    string
	dir           string
	keep          bool
	cpuprofile    string
	trace         string
	nodeLog       string
	stages        bool
	procs         int
	log           *slog.Logger
}

// console is where progress and warnings go: the process's stderr as it was
// at start, since the nodes' logs are redirected to a file.
var console = os.Stderr

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "storagebench:", err)
		os.Exit(2)
	}
	if o.procs > 0 {
		runtime.GOMAXPROCS(o.procs)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(console, "storagebench:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (*options, error) {
	fs := flag.NewFlagSet("storagebench", flag.ContinueOnError)
	o := &options{}
	only := fs.String("only", "kv,timers,rss", "points to run: any of kv, timers, rss")
	shards := fs.String("shards", "1,16", "shard counts of the kv points (a fresh site each)")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "measured time per kv point")
	fs.DurationVar(&o.warmup, "warmup", 3*time.Second, "load before each measured window")
	fs.IntVar(&o.writers, "writers", 64, "concurrent writers (kv puts, timer creates)")
	fs.IntVar(&o.valueSize, "value", 200, "kv value and timer opaque size in bytes")
	fs.StringVar(&o.entry, "entry", "spread", "node each write enters by: spread (writer w uses node w%3; writes for a shard led elsewhere are forwarded) or leader (the node leading the key's shard)")
	fs.StringVar(&o.apply, "apply", "kv", "what the kv points commit: kv (kv.Put into the shards' stores) or null (the same bytes through consensus to a machine that keeps nothing, to size the state machine's share)")
	fs.DurationVar(&o.walMaxWait, "wal-maxwait", 0, "in-process sites: the WAL's MaxWait for missing groups (0: its default; negative: no wait)")
	fs.IntVar(&o.timerShards, "timer-shards", 16, "shards of the timer site")
	fs.DurationVar(&o.timerDuration, "timer-duration", 10*time.Second, "measured time of timer creates")
	fs.DurationVar(&o.timerWarmup, "timer-warmup", 2*time.Second, "load before timer creates are measured")
	fs.IntVar(&o.pops, "pops", 20000, "timers that come due at one moment for the pop rate (0: skip)")
	fs.IntVar(&o.rssTimers, "rss-timers", 1_000_000, "pending timers created through the Chronos API before reading each process's memory")
	fs.IntVar(&o.rssClients, "rss-clients", 96, "concurrent keep-alive HTTP clients creating them")
	fs.IntVar(&o.rssShards, "rss-shards", 16, "shard_count of the site of processes")
	fs.DurationVar(&o.rssSettle, "rss-settle", 5*time.Second, "wait after the last create (and catch-up) before reading memory")
	fs.StringVar(&o.stillwater, "stillwater", "", "stillwater binary for the memory point (default: built from this module)")
	fs.StringVar(&o.dir, "dir", "", "directory for the sites' data (default: the system temporary directory)")
	fs.BoolVar(&o.keep, "keep", false, "keep the process site's directory (configuration, logs, data)")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of each in-process measured window to `prefix`.<point>.pprof")
	fs.StringVar(&o.trace, "trace", "", "write an execution trace of the first 3 s of each in-process measured window to `prefix`.<point>.trace")
	fs.StringVar(&o.nodeLog, "nodelog", "", "file for the in-process nodes' logs (default: storagebench-nodes.log in the temporary directory)")
	fs.BoolVar(&o.stages, "stages", false, "break kv writes into Raft stages (costs a few per cent of CPU, so off for the figures)")
	fs.IntVar(&o.procs, "procs", 3*runtime.NumCPU(), "GOMAXPROCS of this process: three nodes share it, each of which would run as a process with one P per CPU")
	verbose := fs.Bool("v", false, "log the nodes' info messages")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o.only = map[string]bool{}
	for p := range strings.SplitSeq(*only, ",") {
		switch p = strings.TrimSpace(p); p {
		case "kv", "timers", "rss":
			o.only[p] = true
		case "":
		default:
			return nil, fmt.Errorf("-only: unknown point %q", p)
		}
	}
	for f := range strings.SplitSeq(*shards, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 256 {
			return nil, fmt.Errorf("-shards: bad shard count %q", f)
		}
		o.shards = append(o.shards, n)
	}
	if o.entry != "spread" && o.entry != "leader" {
		return nil, fmt.Errorf("-entry: want spread or leader, not %q", o.entry)
	}
	if o.apply != "kv" && o.apply != "null" {
		return nil, fmt.Errorf("-apply: want kv or null, not %q", o.apply)
	}
	if o.writers < 1 || o.rssClients < 1 {
		return nil, fmt.Errorf("-writers and -rss-clients must be positive")
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	if o.dir != "" {
		if err := os.MkdirAll(o.dir, 0o755); err != nil {
			return nil, err
		}
	}
	if o.nodeLog == "" {
		base := o.dir
		if base == "" {
			base = os.TempDir()
		}
		o.nodeLog = filepath.Join(base, "storagebench-nodes.log")
	}
	f, err := os.Create(o.nodeLog)
	if err != nil {
		return nil, err
	}
	// Raft's own logger writes to os.Stderr as it is when a group starts, so
	// the in-process nodes' logs all land in the file.
	os.Stderr = f
	o.log = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: level}))
	return o, nil
}

// report collects what the points measured.
type report struct {
	kv     []kvResult
	timers *timerResult
	rss    *rssResult
}

func run(ctx context.Context, o *options, out io.Writer) error {
	var rep report
	start := time.Now()
	fmt.Fprintf(out, "storagebench: %d CPUs, GOMAXPROCS %d, %s; node logs in %s\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), o.nodeLog)
	var errs []string
	if o.only["kv"] {
		for _, n := range o.shards {
			fmt.Fprintf(out, "\n%s, %d shard(s), %d writers, %d-byte values: %v warm-up + %v\n  %s\n",
				pointName(o), n, o.writers, o.valueSize, o.warmup, o.duration, entryNote(o.entry))
			r, err := runKV(ctx, o, n)
			if err != nil {
				errs = append(errs, fmt.Sprintf("kv %d shards: %v", n, err))
				fmt.Fprintln(out, "  failed:", err)
				continue
			}
			rep.kv = append(rep.kv, r)
			fmt.Fprintf(out, "  leaders %s\n  %s\n", r.leaders, r.load)
			for i, w := range r.wal {
				fmt.Fprintf(out, "  WAL n%d: %.0f fsyncs/s, %.0f records/s, %.1f MB/s\n", i+1, w.syncs, w.records, w.mbytes)
			}
			fmt.Fprintf(out, "  all three nodes: %.0f MB/s through %.0f write calls/s (WAL, state stores, sockets), %.1f MB/s written by the data directory's device (all processes)\n",
				r.io.wcharMB, r.io.syscw, r.io.deviceMB)
			if lines := stageLines(r.stages); len(lines) > 0 {
				fmt.Fprintln(out, "  Raft stages, all groups and nodes:")
				for _, l := range lines {
					fmt.Fprintln(out, "    "+l)
				}
			}
		}
	}
	if o.only["timers"] && ctx.Err() == nil {
		fmt.Fprintf(out, "\ntimers, %d shards: Set with an in-process callback, %d concurrent (caller w on node w%%3): %v warm-up + %v; then %d pops due at one moment\n",
			o.timerShards, o.writers, o.timerWarmup, o.timerDuration, o.pops)
		r, err := runTimers(ctx, o)
		if err != nil {
			errs = append(errs, fmt.Sprintf("timers: %v", err))
			fmt.Fprintln(out, "  failed:", err)
		}
		if r.creates.ops > 0 {
			rep.timers = &r
			fmt.Fprintf(out, "  leaders %s\n  creates %s\n", r.leaders, r.creates)
			if p := r.pops; p.done > 0 {
				fmt.Fprintf(out, "  pops: %d created in %v; first delivered %s after due, last %s, all committed %s after due: %.0f pops/s (%d duplicate deliveries)\n",
					p.n, p.createdIn.Round(time.Millisecond), ms(p.first), ms(p.last), ms(p.done), p.rate(), p.dups)
				if p.overran {
					fmt.Fprintln(out, "  warning: creating the timers took past their due time; the pop rate is understated")
				}
			}
		}
	}
	if o.only["rss"] && ctx.Err() == nil {
		fmt.Fprintf(out, "\nmemory: three stillwater processes, %d shards, %d one-hour timers through the Chronos API, %d keep-alive clients\n",
			o.rssShards, o.rssTimers, o.rssClients)
		r, err := runRSS(ctx, o)
		if err != nil {
			errs = append(errs, fmt.Sprintf("rss: %v", err))
			fmt.Fprintln(out, "  failed:", err)
		} else {
			rep.rss = &r
			fmt.Fprintf(out, "  leaders %s\n  created in %v: %.0f creates/s, %d errors (retried)\n", r.leaders, r.created.Round(time.Second), r.rate(), r.errs)
			if r.firstErr != "" {
				fmt.Fprintln(out, "  first error:", r.firstErr)
			}
			for _, n := range r.nodes {
				fmt.Fprintf(out, "  %s: VmRSS %d MB (anon %d MB, file %d MB), peak %d MB; state %d MB, WAL %d MB, snapshots %d MB\n",
					n.id, n.mem.rss>>10, n.mem.anon>>10, n.mem.file>>10, n.mem.hwm>>10, n.stateBytes>>20, n.walBytes>>20, n.snapBytes>>20)
			}
		}
	}
	printTable(out, o, &rep)
	fmt.Fprintf(out, "\ntotal time %v\n", time.Since(start).Round(time.Second))
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return ctx.Err()
}

func pointName(o *options) string {
	if o.apply == "null" {
		return "Propose (null machine)"
	}
	return "kv.Put"
}

func entryNote(entry string) string {
	if entry == "leader" {
		return "each write enters at the node leading its key's shard (no forwarding)"
	}
	return "writer w enters at node w%3; writes for shards led elsewhere are forwarded to the leader"
}

// Targets from the design (section 3).
const (
	targetWrites  = 10_000
	targetP99     = 20 * time.Millisecond
	targetRSSMB   = 300
	targetShards  = 16
	targetWriters = 64
)

func printTable(out io.Writer, o *options, rep *report) {
	fmt.Fprintln(out, "\nSUMMARY")
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tvalue\ttarget\tother processes' CPU\t")
	for _, r := range rep.kv {
		l := r.load
		verdict := ""
		if r.shards == targetShards && o.writers == targetWriters {
			ok := l.rate() >= targetWrites && l.pct(0.99) <= targetP99
			verdict = fmt.Sprintf("≥ %dk/s at p99 ≤ %v: %s", targetWrites/1000, targetP99, passFail(ok))
		}
		fmt.Fprintf(tw, "%s %d shard(s), %d writers, entry %s\t%.0f writes/s, p50 %s, p99 %s\t%s\t%.0f%%\t\n",
			pointName(o), r.shards, o.writers, r.entry, l.rate(), ms(l.pct(0.5)), ms(l.pct(0.99)), verdict, l.otherPct())
		var syncs []string
		for _, w := range r.wal {
			syncs = append(syncs, fmt.Sprintf("%.0f", w.syncs))
		}
		perSync := 0.0
		if len(r.wal) > 0 && r.wal[0].syncs > 0 {
			perSync = l.rate() / r.wal[0].syncs
		}
		fmt.Fprintf(tw, "  WAL fsyncs/s n1/n2/n3\t%s (%.1f writes per n1 fsync)\t\t\t\n", strings.Join(syncs, " / "), perSync)
	}
	if len(rep.kv) > 1 {
		ss := slices.Clone(rep.kv)
		slices.SortFunc(ss, func(a, b kvResult) int { return a.shards - b.shards })
		lo, hi := ss[0], ss[len(ss)-1]
		if len(lo.wal) > 0 && len(hi.wal) > 0 && lo.wal[0].syncs > 0 {
			fmt.Fprintf(tw, "  n1 fsyncs/s, %d vs %d shards\t×%.2f\tnot growing\t\t\n", hi.shards, lo.shards, hi.wal[0].syncs/lo.wal[0].syncs)
		}
	}
	if t := rep.timers; t != nil {
		fmt.Fprintf(tw, "timer creates, %d shards, %d concurrent\t%.0f/s, p50 %s, p99 %s\t\t%.0f%%\t\n",
			t.shards, o.writers, t.creates.rate(), ms(t.creates.pct(0.5)), ms(t.creates.pct(0.99)), t.creates.otherPct())
		if t.pops.done > 0 {
			fmt.Fprintf(tw, "timer pops, %d due at once\t%.0f/s (all done %s after due)\t\t\t\n", t.pops.n, t.pops.rate(), ms(t.pops.done))
		}
	}
	if r := rep.rss; r != nil {
		fmt.Fprintf(tw, "Chronos API creates, %d clients\t%.0f/s\t\t\t\n", o.rssClients, r.rate())
		for _, n := range r.nodes {
			ok := n.mem.rss>>10 <= targetRSSMB
			fmt.Fprintf(tw, "VmRSS %s, %d pending timers\t%d MB (anon %d, file %d)\t≤ %d MB: %s\t\t\n",
				n.id, r.n, n.mem.rss>>10, n.mem.anon>>10, n.mem.file>>10, targetRSSMB, passFail(ok))
		}
	}
	tw.Flush()
}

func passFail(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}
