// Command sipbench finds the highest rate a SIP server sustains with at
// least 99.9 % successful transactions and a median response within 1 s,
// for initial registrations with digest authentication and for calls, and
// prints the figures side by side for Kamailio (the reference, started
// through bench/kamailio) and Stillwater.
//
// For each target and transport it ramps the rate up (doubling) for short
// steps, bisects between the last good and the first bad rate, then confirms
// the best rate for the full duration, backing off 10 % at a time; every
// step starts on an idle server. It reports that rate, p50/p99 of
// REGISTER→200 (including the 401 round trip) and INVITE→180, and the
// server's CPU time per registration and per call (utime+stime from
// /proc/<pid>/stat of all the server's processes, before and after the
// confirmation run). Load comes from SIPp (bench/sipp scenarios) on the
// same machine, so both share its cores.
//
//	go run ./bench/sipbench                                   # both targets, UDP, 60 s confirmation
//	go run ./bench/sipbench -target kamailio -duration 20s -transport both
package main

import (
	"context"
	"crypto/hmac"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"stillwater/bench/kamailio"
	"stillwater/bench/serverproc"
	"stillwater/bench/sipp"
)

type options struct {
	targets      []string
	transports   []string
	duration     time.Duration
	step         time.Duration
	startRate    float64
	maxRate      float64
	users        int
	stillwater   string
	stillwaterIP string
	dir          string
	loads        map[string]bool
	// services is what Stillwater's subscribers get: "mmtel" (the default
	// iFCs, the MMTEL AS originating and terminating on every call) or
	// "none" (iFCs that trigger nothing), to price the TAS.
	services string
	// cpuprofile, when set, is the file prefix for the Stillwater node's
	// CPU, heap and goroutine profiles of each confirmation run.
	cpuprofile string
	// shared are extra shared_config lines for the Stillwater node.
	shared string
	log    *slog.Logger
}

// figures are one target's results on one transport.
type figures struct {
	target, transport string
	reg, call         point
	err               error
}

// point is the confirmed rate of one load type and what it cost.
type point struct {
	rate         float64
	ok, failed   int
	p50, p99     time.Duration
	cpuPer       time.Duration
	err          error
	measuredWhat string
}

func main() {
	var o options
	target := flag.String("target", "both", "stillwater, kamailio or both")
	transport := flag.String("transport", "udp", "udp, tcp or both")
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "length of the confirmation run at the best rate")
	flag.DurationVar(&o.step, "step", 5*time.Second, "length of each ramp and bisection step")
	flag.Float64Var(&o.startRate, "start-rate", 100, "first rate of the ramp (per second)")
	flag.Float64Var(&o.maxRate, "max-rate", 20000, "highest rate tried")
	flag.IntVar(&o.users, "users", 20000, "subscribers provisioned (callers and registering users cycle through them)")
	flag.StringVar(&o.stillwater, "stillwater", "", "stillwater binary (default: built from ./appliance/cmd/stillwater)")
	flag.StringVar(&o.stillwaterIP, "stillwater-ip", "127.0.0.1", "local_ip of the Stillwater node started (P-CSCF on port 5060, admin API on 9880)")
	flag.StringVar(&o.dir, "dir", "", "working directory (default: a temporary one, removed afterwards)")
	only := flag.String("only", "reg,call", "what to measure: reg, call or both (comma-separated)")
	flag.StringVar(&o.shared, "shared-config", "", "extra shared_config options for the Stillwater node, comma-separated (e.g. shard_count=4)")
	flag.StringVar(&o.services, "services", "mmtel", "Stillwater subscribers' services: mmtel (default iFCs) or none")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write Stillwater's CPU profile of each confirmation run to `prefix`.<reg|inv>-<transport>.pprof, and its heap and goroutines at the end to ….heap.pprof and ….goroutine.txt")
	flag.Parse()
	o.loads = map[string]bool{}
	for _, l := range strings.Split(*only, ",") {
		if l != "reg" && l != "call" {
			fmt.Fprintf(os.Stderr, "sipbench: -only %q: want reg, call or reg,call\n", *only)
			os.Exit(2)
		}
		o.loads[l] = true
	}
	o.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	switch *target {
	case "both":
		o.targets = []string{"kamailio", "stillwater"}
	case "kamailio", "stillwater":
		o.targets = []string{*target}
	default:
		fmt.Fprintf(os.Stderr, "sipbench: -target %q: want stillwater, kamailio or both\n", *target)
		os.Exit(2)
	}
	switch *transport {
	case "both":
		o.transports = []string{"udp", "tcp"}
	case "udp", "tcp":
		o.transports = []string{*transport}
	default:
		fmt.Fprintf(os.Stderr, "sipbench: -transport %q: want udp, tcp or both\n", *transport)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "sipbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	if _, err := exec.LookPath("sipp"); err != nil {
		return errors.New("sipp not found: install the Debian package sip-tester (make deps)")
	}
	if o.dir == "" {
		d, err := os.MkdirTemp("", "sipbench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		o.dir = d
	}
	var all []figures
	for _, tg := range o.targets {
		for _, tr := range o.transports {
			o.log.Info("measuring", "target", tg, "transport", tr)
			f := measureTarget(ctx, o, tg, tr)
			if f.err != nil {
				o.log.Error("target failed", "target", tg, "transport", tr, "err", f.err)
			}
			all = append(all, f)
			if ctx.Err() != nil {
				break
			}
		}
	}
	printTable(os.Stdout, o, all)
	return nil
}

// server is a started target.
type server struct {
	hostPort string
	domain   string
	pid      int // process group whose CPU time is counted
	authName func(user string) string
	close    func()
	// transport is the one being measured, for file names.
	transport string
	// profile, if the target can, records the server's profiles for d into
	// file and its siblings in the background; the returned function waits
	// for them.
	profile func(d time.Duration, file string) func() error
}

func measureTarget(ctx context.Context, o options, target, transport string) figures {
	f := figures{target: target, transport: transport}
	users := make([]sipp.User, o.users)
	for i := range users {
		users[i] = sipp.User{Name: fmt.Sprintf("bench%06d", i), Password: fmt.Sprintf("pw%06d", i), Domain: "example.com"}
	}
	dir := filepath.Join(o.dir, target+"-"+transport)
	var srv *server
	var err error
	switch target {
	case "kamailio":
		srv, err = startKamailio(ctx, dir, users)
	default:
		srv, err = startStillwater(ctx, o, dir, users)
	}
	if err != nil {
		f.err = err
		return f
	}
	defer srv.close()
	srv.transport = transport
	for i := range users {
		users[i].AuthName = srv.authName(users[i].Name)
	}
	tr := map[string]string{"udp": "u1", "tcp": "t1"}[transport]
	// users[0] is the callee of the call runs; the others register and call.
	if o.loads["reg"] {
		// Every run registers from one port, as a real UE keeps its
		// contact: a new port per run would leave each user another
		// binding per run, and later runs would carry more state than
		// earlier ones.
		port, err := serverproc.StablePort("127.0.0.1", 25060, 28000)
		if err != nil {
			f.reg.err = err
			return f
		}
		f.reg = findRate(ctx, o, srv, "reg", func(ctx context.Context, rate float64, d time.Duration) (sipp.Result, error) {
			return sipp.Run(ctx, sipp.Options{
				Scenario: "register", Target: srv.hostPort, Transport: tr, Users: users[1:], LocalPort: port,
				Rate: rate, Calls: calls(rate, d), Limit: limit(rate), Timeout: d + 30*time.Second,
				RecvTimeout: 5 * time.Second, RTTFreq: 100, Dir: dir,
			})
		})
	} else {
		f.reg.err = errNotMeasured
	}
	if o.loads["call"] {
		f.call = measureCalls(ctx, o, srv, tr, dir, users)
	} else {
		f.call.err = errNotMeasured
	}
	return f
}

// measureCalls registers one callee (a SIPp that answers 180, 200 and the
// BYE) and finds the call rate from the other users to it.
func measureCalls(ctx context.Context, o options, srv *server, tr, dir string, users []sipp.User) point {
	callee := users[0]
	callers := users[1:]
	uas, err := sipp.Start(ctx, sipp.Options{
		Scenario: "uas_register", OOC: "uas_answer", Target: srv.hostPort, Transport: tr,
		Users: []sipp.User{callee}, Duration: 24 * time.Hour, Timeout: 24 * time.Hour, Dir: dir,
		ExtraArgs: append([]string{"-max_socket", "20000"}, lenient...),
	})
	if err != nil {
		return point{err: err}
	}
	defer uas.Stop()
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	err = uas.WaitLog(wctx, "registered "+callee.Name, 1)
	cancel()
	if err != nil {
		return point{err: fmt.Errorf("callee registration: %w", err)}
	}
	// An IMS P-CSCF takes requests only from registered UEs, over the flow
	// they registered on: the callers register first from the port every
	// call run then uses (for TCP the flow is gone when that SIPp exits;
	// Kamailio does not mind).
	callers = callers[:min(len(callers), 2000)]
	port, err := serverproc.FreePort("127.0.0.1")
	if err != nil {
		return point{err: err}
	}
	r, err := sipp.Run(ctx, sipp.Options{
		Scenario: "register", Target: srv.hostPort, Transport: tr, LocalPort: port, Users: callers,
		Rate: 200, Calls: len(callers), Timeout: time.Duration(len(callers))*time.Second/200 + time.Minute, Dir: dir,
	})
	if err != nil || r.Successful != len(callers) {
		return point{err: fmt.Errorf("registering %d callers: %d registered: %v", len(callers), r.Successful, err)}
	}
	return findRate(ctx, o, srv, "inv", func(ctx context.Context, rate float64, d time.Duration) (sipp.Result, error) {
		return sipp.Run(ctx, sipp.Options{
			Scenario: "uac_call", Target: srv.hostPort, Transport: tr, LocalPort: port, Service: callee.Name, Users: callers,
			Rate: rate, Calls: calls(rate, d), Limit: limit(rate), Timeout: d + 30*time.Second,
			RecvTimeout: 5 * time.Second, RTTFreq: 100, Dir: dir, ExtraArgs: lenient,
		})
	})
}

// lenient keeps a call going when a message arrives that the scenario does
// not expect at that point: through a multi-process proxy a 180 may overtake
// or trail the 200 over UDP, which a UAC must tolerate.
var lenient = []string{"-default_behaviors", "all,-abortunexp"}

func calls(rate float64, d time.Duration) int { return max(1, int(rate*d.Seconds())) }

// limit caps calls in flight at two seconds' worth, so that an overloaded
// server shows as failures rather than as an ever-growing backlog.
func limit(rate float64) int { return max(50, int(2*rate)) }

var errNotMeasured = errors.New("not measured (-only)")

type runFunc func(ctx context.Context, rate float64, d time.Duration) (sipp.Result, error)

// good is the success criterion: every call ran and ≥ 99.9 % succeeded
// (keptUp adds that they were answered in time).
func good(r sipp.Result, err error, want int) bool {
	if err != nil || r.Successful+r.Failed < want {
		return false
	}
	return float64(r.Successful) >= 0.999*float64(want)
}

// maxMedian is the longest median response a passing step may have: SIPp
// counts a call as successful however long it queued, and over TCP, where
// nothing is retransmitted, an overloaded server still completes every call,
// seconds late.
const maxMedian = time.Second

// keptUp reports whether the server answered the step's rtd in time.
func keptUp(r sipp.Result, rtd string) bool {
	rt, ok := r.ResponseTimes[rtd]
	return !ok || rt.P50 <= maxMedian
}

// maxSettle bounds how long settle waits for an idle server.
const maxSettle = 30 * time.Second

// settle waits, at most maxSettle, until the server has used less than 5 %
// of a core for a whole second. After an overloaded step a server may
// still be working through what it queued (and a store that replicates
// everything through a log takes longer to drain than one in memory); the
// next step must not pay for it.
func settle(ctx context.Context, pid int) {
	const idle = 50 * time.Millisecond // of CPU in a second
	prev, err := groupCPU(pid)
	if err != nil {
		return
	}
	deadline := time.Now().Add(maxSettle)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		cur, err := groupCPU(pid)
		if err != nil || cur-prev < idle {
			return
		}
		prev = cur
	}
}

// findRate ramps, bisects and confirms; rtd names the response time reported.
func findRate(ctx context.Context, o options, srv *server, rtd string, fn runFunc) point {
	try := func(rate float64, d time.Duration) (sipp.Result, bool, error) {
		r, err := fn(ctx, rate, d)
		ok := good(r, err, calls(rate, d)) && keptUp(r, rtd)
		o.log.Info("step", "what", rtd, "rate", rate, "duration", d, "ok", r.Successful, "failed", r.Failed, "pass", ok, "err", err)
		return r, ok, err
	}
	lo, hi := 0.0, 0.0
	var lastErr error
	for rate := o.startRate; rate <= o.maxRate && ctx.Err() == nil; rate *= 2 {
		settle(ctx, srv.pid)
		_, ok, err := try(rate, o.step)
		if !ok {
			hi, lastErr = rate, err
			break
		}
		lo = rate
	}
	if lo == 0 {
		return point{err: fmt.Errorf("not even %.0f/s succeeded: %v", o.startRate, lastErr)}
	}
	if hi == 0 {
		hi = lo // never failed up to max-rate
	}
	for range 4 {
		if hi-lo < lo*0.1 || ctx.Err() != nil {
			break
		}
		mid := (lo + hi) / 2
		settle(ctx, srv.pid)
		if _, ok, _ := try(mid, o.step); ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	// Confirm for the full duration, backing off 10 % at a time: a
	// coarser step reported a fifth below what the server sustains.
	for rate := lo; rate >= o.startRate/2 && ctx.Err() == nil; rate = float64(int(rate * 0.9)) {
		settle(ctx, srv.pid)
		before, err := groupCPU(srv.pid)
		if err != nil {
			return point{err: err}
		}
		wait := func() error { return nil }
		if o.cpuprofile != "" && srv.profile != nil {
			wait = srv.profile(o.duration, fmt.Sprintf("%s.%s-%s.pprof", o.cpuprofile, rtd, srv.transport))
		}
		r, ok, err := try(rate, o.duration)
		if perr := wait(); perr != nil {
			o.log.Warn("cpu profile", "err", perr)
		}
		after, cerr := groupCPU(srv.pid)
		if cerr != nil {
			return point{err: cerr}
		}
		if ok {
			p := point{rate: rate, ok: r.Successful, failed: r.Failed}
			if rt, found := r.ResponseTimes[rtd]; found {
				p.p50, p.p99 = rt.P50, rt.P99
			}
			if r.Successful > 0 {
				p.cpuPer = (after - before) / time.Duration(r.Successful)
			}
			return p
		}
		lastErr = err
	}
	return point{err: fmt.Errorf("no rate confirmed for %s: %v", o.duration, lastErr)}
}

func startKamailio(ctx context.Context, dir string, users []sipp.User) (*server, error) {
	m := make(map[string]string, len(users))
	for _, u := range users {
		m[u.Name] = u.Password
	}
	k, err := kamailio.Start(ctx, kamailio.Options{Dir: dir, Users: m, Children: runtime.NumCPU(), ShmMB: 512})
	if err != nil {
		return nil, err
	}
	return &server{hostPort: k.HostPort(), domain: k.Domain, pid: k.PID(),
		authName: func(u string) string { return u }, close: func() { k.Close() }}, nil
}

// startStillwater runs an all-in-one node on -stillwater-ip (P-CSCF on 5060) with
// its own configuration and data directories, and provisions the users with
// `stillwater users import`.
func startStillwater(ctx context.Context, o options, dir string, users []sipp.User) (*server, error) {
	bin := o.stillwater
	if bin == "" {
		bin = filepath.Join(o.dir, "stillwater")
		if _, err := os.Stat(bin); err != nil {
			out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./appliance/cmd/stillwater").CombinedOutput()
			if err != nil {
				return nil, fmt.Errorf("building stillwater (run from the repository root): %w\n%s", err, out)
			}
		}
	}
	ip := o.stillwaterIP
	// Another node on this address would answer in ours' place.
	for _, addr := range []string{ip + ":9880", ip + ":5060"} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("%s is already in use (another stillwater?); stop it or pick a free address with -stillwater-ip: %w", addr, err)
		}
		l.Close()
	}
	etc, data := filepath.Join(dir, "etc"), filepath.Join(dir, "data")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return nil, err
	}
	// A known site key lets the bench derive the admin token for profiles.
	key := make([]byte, 32)
	crand.Read(key)
	cfg := "local_ip=" + ip + "\nhome_domain=example.com\nsite_key=" + hex.EncodeToString(key) + "\n"
	if err := os.WriteFile(filepath.Join(etc, "local_config"), []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	// Kamailio's registrar is set to grant up to 3600 s too: the same
	// scenario then leaves the same bindings behind, and none of the
	// registration runs' bindings expire while calls are measured.
	if err := os.WriteFile(filepath.Join(etc, "shared_config"), []byte("reg_max_expires=3600\n"+strings.ReplaceAll(o.shared, ",", "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "stillwater.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-c", etc, "-d", data, "run")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	done := make(chan struct{})
	var exitErr error
	go func() { exitErr = cmd.Wait(); close(done) }()
	srv := &server{hostPort: net.JoinHostPort(ip, "5060"), domain: "example.com", pid: cmd.Process.Pid,
		authName: func(u string) string { return u + "@example.com" }, // Clearwater's default private identity
		close: func() {
			stopGroup(cmd.Process.Pid, done)
			logf.Close()
		}}
	srv.profile = func(d time.Duration, file string) func() error {
		errc := make(chan error, 1)
		base, token := "http://"+net.JoinHostPort(ip, "9880"), adminToken(key)
		go func() {
			err := fetchProfile(ctx, base+fmt.Sprintf("/debug/pprof/profile?seconds=%d", max(1, int(d.Seconds())-1)), token, file)
			if err == nil {
				// The heap as the run ends, with its transactions still held.
				err = fetchProfile(ctx, base+"/debug/pprof/heap", token, strings.TrimSuffix(file, ".pprof")+".heap.pprof")
			}
			if err == nil {
				err = fetchProfile(ctx, base+"/debug/pprof/goroutine?debug=1", token, strings.TrimSuffix(file, ".pprof")+".goroutine.txt")
			}
			errc <- err
		}()
		return func() error { return <-errc }
	}
	fail := func(err error) (*server, error) {
		srv.close()
		return nil, err
	}
	tail := func() string {
		b, _ := os.ReadFile(logf.Name())
		select {
		case <-done:
			return fmt.Sprintf("stillwater exited: %v\n%s", exitErr, lastLines(string(b), 15))
		default:
		}
		return lastLines(string(b), 15)
	}
	// Provisioning goes through the admin API, which answers before SIP.
	csv := filepath.Join(dir, "users.csv")
	var b strings.Builder
	for _, u := range users {
		fmt.Fprintf(&b, "sip:%s@example.com,%s@example.com,example.com,%s\n", u.Name, u.Name, u.Password)
	}
	if err := os.WriteFile(csv, []byte(b.String()), 0o600); err != nil {
		return fail(err)
	}
	if err := waitTCP(ctx, net.JoinHostPort(ip, "9880"), 60*time.Second, done); err != nil {
		return fail(fmt.Errorf("stillwater admin API: %w\n%s", err, tail()))
	}
	args := []string{"-c", etc, "-d", data, "users", "import", csv}
	if o.services == "none" {
		ifc := filepath.Join(dir, "no-services.xml")
		if err := os.WriteFile(ifc, []byte("<ServiceProfile></ServiceProfile>\n"), 0o600); err != nil {
			return fail(err)
		}
		args = append(args, "--ifc", ifc)
	}
	ictx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	out, err := exec.CommandContext(ictx, bin, args...).CombinedOutput()
	cancel()
	if err != nil {
		return fail(fmt.Errorf("stillwater users import: %w\n%s", err, lastLines(string(out), 10)))
	}
	if err := waitTCP(ctx, srv.hostPort, 30*time.Second, done); err != nil {
		return fail(fmt.Errorf("Stillwater's SIP core does not answer on %s (the P-CSCF may not exist yet): %w\n%s", srv.hostPort, err, tail()))
	}
	return srv, nil
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

func printTable(w *os.File, o options, all []figures) {
	fmt.Fprintf(w, "\nSIP benchmark: %d CPU cores (shared with whatever else runs here; SIPp runs on the same cores), confirmation runs of %s, ≥ 99.9 %% success\n\n",
		runtime.NumCPU(), o.duration)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "\t"
	for _, f := range all {
		head += f.target + " " + f.transport + "\t"
	}
	fmt.Fprintln(tw, head)
	row := func(name string, cell func(f figures) string) {
		line := name + "\t"
		for _, f := range all {
			switch {
			case f.err != nil:
				line += "failed\t"
			default:
				line += cell(f) + "\t"
			}
		}
		fmt.Fprintln(tw, line)
	}
	pt := func(p point, v func(point) string) string {
		if errors.Is(p.err, errNotMeasured) {
			return "-"
		}
		if p.err != nil {
			return "failed"
		}
		return v(p)
	}
	row("registrations/s", func(f figures) string {
		return pt(f.reg, func(p point) string { return strconv.FormatFloat(p.rate, 'f', 0, 64) })
	})
	row("REGISTER→200 p50 (ms)", func(f figures) string { return pt(f.reg, func(p point) string { return ms(p.p50) }) })
	row("REGISTER→200 p99 (ms)", func(f figures) string { return pt(f.reg, func(p point) string { return ms(p.p99) }) })
	row("CPU per registration (µs)", func(f figures) string { return pt(f.reg, func(p point) string { return us(p.cpuPer) }) })
	row("calls/s", func(f figures) string {
		return pt(f.call, func(p point) string { return strconv.FormatFloat(p.rate, 'f', 0, 64) })
	})
	row("INVITE→180 p50 (ms)", func(f figures) string { return pt(f.call, func(p point) string { return ms(p.p50) }) })
	row("INVITE→180 p99 (ms)", func(f figures) string { return pt(f.call, func(p point) string { return ms(p.p99) }) })
	row("CPU per call (µs)", func(f figures) string { return pt(f.call, func(p point) string { return us(p.cpuPer) }) })
	tw.Flush()
	fmt.Fprintln(w, "\nResponse times come from SIPp, which measures whole milliseconds. CPU is the server's (all its processes), not SIPp's.")
	for _, f := range all {
		for what, err := range map[string]error{"": f.err, "registrations: ": f.reg.err, "calls: ": f.call.err} {
			if err != nil && !errors.Is(err, errNotMeasured) {
				fmt.Fprintf(w, "%s %s: %s%v\n", f.target, f.transport, what, err)
				if f.err != nil {
					break
				}
			}
		}
	}
}

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 0, 64) }
func us(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e3, 'f', 0, 64) }

// adminToken is the admin API token a node derives from its site key.
func adminToken(siteKey []byte) string {
	m := hmac.New(sha256.New, siteKey)
	m.Write([]byte("stillwater admin"))
	return hex.EncodeToString(m.Sum(nil))
}

// fetchProfile saves a profile from a node's admin API.
func fetchProfile(ctx context.Context, url, token string, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("profile: %s: %s", resp.Status, b)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
