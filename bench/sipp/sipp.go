// Package sipp runs SIPp scenarios against a SIP server and reports how the
// calls went: the acceptance scenarios (registration with digest
// authentication, calls, cancellation, messages, reliable provisional
// responses, forking, large requests) are embedded XML files that run
// unchanged against Kamailio and Stillwater.
package sipp

import (
	"bufio"
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"stillwater/bench/serverproc"
)

//go:embed scenarios/*.xml
var scenarios embed.FS

// Scenarios lists the embedded scenario names (file names without .xml).
func Scenarios() []string {
	entries, _ := fs.ReadDir(scenarios, "scenarios")
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".xml"))
	}
	return names
}

// User is one line of the -inf file: [field0] user, [field1] domain,
// [field2] the [authentication ...] keyword with its credentials.
type User struct {
	Name     string
	Password string
	Domain   string
	AuthName string // digest user name; default Name (IMS: the private identity)
}

// Options of one SIPp run.
type Options struct {
	Scenario  string // embedded scenario name, or a path ending in .xml
	OOC       string // out-of-call scenario (-oocsf) for requests that start new calls, e.g. uas_answer
	Target    string // host:port; empty for a pure server (-sf uas_* alone)
	Transport string // u1, un, t1 or tn; default u1
	LocalIP   string // default 127.0.0.1
	LocalPort int    // 0 picks a free port (SIPp's own default, 5060, would clash with a P-CSCF)
	Service   string // -s: the callee's user part, [service]
	Users     []User
	Vars      map[string]string // -set name value, [$name]
	Rate      float64           // calls per second (-r); 0 leaves SIPp's default of 10
	Calls     int               // stop after this many calls (-m); 0 means 1
	Limit     int               // simultaneous calls (-l); 0 leaves SIPp's default
	Duration  time.Duration     // length of <pause/> (-d)
	Timeout   time.Duration     // whole run (-timeout, an error when reached); default 60 s
	// RecvTimeout fails a call whose expected message does not come; default 10 s.
	RecvTimeout time.Duration
	RTTFreq     int // response times are written every RTTFreq calls; default 1
	ExtraArgs   []string
	Dir         string // where the run's files go (required)
	Binary      string // default "sipp"
}

// Percentiles of one response time measure (SIPp measures in milliseconds).
type Percentiles struct {
	Count         int
	P50, P90, P99 time.Duration
	Max           time.Duration
}

// Result of a run.
type Result struct {
	Successful, Failed int
	// ExitStatus is SIPp's: 0 every call succeeded, 1 some failed, 97 stopped
	// by an internal command, 99 no call processed, 255 fatal or timeout.
	ExitStatus int
	// ResponseTimes by response time name (rtd): "reg" REGISTER→200, "inv"
	// INVITE→180 (or 183), "msg" MESSAGE→200.
	ResponseTimes map[string]Percentiles
	Log           []string // the scenario's <log> lines
	Errors        string   // tail of SIPp's error log
	LocalPort     int
	Elapsed       time.Duration
}

// Run runs SIPp to completion. It returns an error when SIPp could not run
// the scenario or the run timed out; failed calls are counted in the Result.
func Run(ctx context.Context, o Options) (Result, error) {
	p, err := Start(ctx, o)
	if err != nil {
		return Result{}, err
	}
	return p.Wait()
}

// Process is a SIPp run in progress.
type Process struct {
	opts    Options
	dir     string
	cmd     *exec.Cmd
	start   time.Time
	done    chan struct{}
	waitErr error
	out     *serverproc.Tail
	rtdName map[int]string
	once    sync.Once
}

// Start launches SIPp and returns without waiting for it.
func Start(ctx context.Context, o Options) (*Process, error) {
	if o.Dir == "" {
		return nil, errors.New("sipp: Options.Dir is required")
	}
	if o.Transport == "" {
		o.Transport = "u1"
	}
	if !slices.Contains([]string{"u1", "un", "t1", "tn"}, o.Transport) {
		return nil, fmt.Errorf("sipp: transport %q: want u1, un, t1 or tn", o.Transport)
	}
	if o.LocalIP == "" {
		o.LocalIP = "127.0.0.1"
	}
	if o.Timeout <= 0 {
		o.Timeout = 60 * time.Second
	}
	if o.RecvTimeout <= 0 {
		o.RecvTimeout = 10 * time.Second
	}
	if o.Calls <= 0 {
		o.Calls = 1
	}
	if o.RTTFreq <= 0 {
		o.RTTFreq = 1
	}
	if o.Binary == "" {
		o.Binary = "sipp"
	}
	if o.LocalPort == 0 {
		port, err := serverproc.FreePort(o.LocalIP)
		if err != nil {
			return nil, err
		}
		o.LocalPort = port
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("sipp: %w", err)
	}
	dir, err := os.MkdirTemp(o.Dir, "sipp-"+baseName(o.Scenario)+"-")
	if err != nil {
		return nil, fmt.Errorf("sipp: %w", err)
	}
	sf, rtds, err := materialize(dir, o.Scenario)
	if err != nil {
		return nil, err
	}
	args := []string{"-sf", sf}
	if o.OOC != "" {
		ooc, _, err := materialize(dir, o.OOC)
		if err != nil {
			return nil, err
		}
		args = append(args, "-oocsf", ooc)
	}
	if o.Target != "" {
		if _, _, err := net.SplitHostPort(o.Target); err != nil {
			return nil, fmt.Errorf("sipp: target %q: %w", o.Target, err)
		}
		args = append(args, o.Target)
	}
	args = append(args,
		"-t", o.Transport, "-i", o.LocalIP, "-p", strconv.Itoa(o.LocalPort),
		"-m", strconv.Itoa(o.Calls),
		"-timeout", fmt.Sprintf("%dms", o.Timeout.Milliseconds()), "-timeout_error",
		"-recv_timeout", fmt.Sprintf("%dms", o.RecvTimeout.Milliseconds()),
		"-nostdin",
		"-trace_err", "-error_file", filepath.Join(dir, "errors.log"),
		"-trace_logs", "-log_file", filepath.Join(dir, "scenario.log"),
		"-trace_stat", "-stf", filepath.Join(dir, "stat.csv"), "-fd", "1",
		"-trace_rtt", "-rtt_freq", strconv.Itoa(o.RTTFreq),
	)
	if o.Service != "" {
		args = append(args, "-s", o.Service)
	}
	if len(o.Users) > 0 {
		inf := filepath.Join(dir, "users.csv")
		if err := writeUsers(inf, o.Users); err != nil {
			return nil, err
		}
		args = append(args, "-inf", inf)
	}
	vars := make([]string, 0, len(o.Vars))
	for k := range o.Vars {
		vars = append(vars, k)
	}
	slices.Sort(vars)
	for _, k := range vars {
		args = append(args, "-set", k, o.Vars[k])
	}
	if o.Rate > 0 {
		// -r takes whole calls per -rp period.
		period := 1000.0
		for o.Rate*period/1000 != math.Trunc(o.Rate*period/1000) && period < 1e6 {
			period *= 10
		}
		args = append(args, "-r", strconv.FormatFloat(o.Rate*period/1000, 'f', 0, 64), "-rp", fmt.Sprintf("%.0fms", period))
	}
	if o.Limit > 0 {
		args = append(args, "-l", strconv.Itoa(o.Limit))
	}
	if o.Duration > 0 {
		args = append(args, "-d", strconv.FormatInt(o.Duration.Milliseconds(), 10))
	}
	args = append(args, o.ExtraArgs...)

	cmd := exec.CommandContext(ctx, o.Binary, args...)
	cmd.Dir = dir
	out := serverproc.NewTail(16 << 10)
	cmd.Stdout, cmd.Stderr = io.Discard, out
	cmd.WaitDelay = 5 * time.Second
	p := &Process{opts: o, dir: dir, cmd: cmd, done: make(chan struct{}), out: out, rtdName: rtds}
	p.start = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("sipp: start %s: %w", o.Binary, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// LocalPort is the port SIPp listens and sends on.
func (p *Process) LocalPort() int { return p.opts.LocalPort }

// Dir holds the run's files: scenario, users.csv, logs, statistics.
func (p *Process) Dir() string { return p.dir }

// WaitLog waits until n lines of the scenario log contain substr, or SIPp
// exits, or ctx ends.
func (p *Process) WaitLog(ctx context.Context, substr string, n int) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		count := 0
		for _, l := range readLines(filepath.Join(p.dir, "scenario.log")) {
			if strings.Contains(l, substr) {
				count++
			}
		}
		if count >= n {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("sipp %s exited (%v) after %d of %d %q log lines: %s", p.opts.Scenario, p.waitErr, count, n, substr, p.errorsTail())
		case <-ctx.Done():
			return fmt.Errorf("sipp %s: %d of %d %q log lines: %w", p.opts.Scenario, count, n, substr, ctx.Err())
		case <-tick.C:
		}
	}
}

// Wait waits for SIPp to finish and collects the result.
func (p *Process) Wait() (Result, error) {
	<-p.done
	return p.result()
}

// Stop ends a SIPp that serves or waits (a callee) and collects the result.
// Calls still in progress are neither successful nor failed.
func (p *Process) Stop() (Result, error) {
	p.once.Do(func() {
		p.cmd.Process.Signal(syscall.SIGINT)
	})
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
	r, err := p.result()
	if r.ExitStatus == 0 || r.ExitStatus == 1 || r.ExitStatus == 255 {
		// A stopped SIPp reports what it has; a stop is not a failure.
		err = nil
	}
	return r, err
}

func (p *Process) result() (Result, error) {
	r := Result{LocalPort: p.opts.LocalPort, Elapsed: time.Since(p.start), ResponseTimes: map[string]Percentiles{}}
	r.ExitStatus = p.cmd.ProcessState.ExitCode()
	r.Log = readLines(filepath.Join(p.dir, "scenario.log"))
	r.Errors = p.errorsTail()
	var statErr error
	r.Successful, r.Failed, statErr = readStats(filepath.Join(p.dir, "stat.csv"))
	rtt, err := readRTT(p.dir, p.rtdName)
	if err != nil {
		return r, err
	}
	r.ResponseTimes = rtt
	switch r.ExitStatus {
	case 0, 1:
		if statErr != nil {
			return r, fmt.Errorf("%w (exit status %d): %s", statErr, r.ExitStatus, r.Errors)
		}
		return r, nil
	}
	return r, fmt.Errorf("sipp %s: exit status %d (%v): %s", p.opts.Scenario, r.ExitStatus, p.waitErr, r.Errors)
}

func (p *Process) errorsTail() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "errors.log"))
	s := strings.TrimSpace(p.out.String() + "\n" + string(b))
	if len(s) > 4000 {
		s = "..." + s[len(s)-4000:]
	}
	return s
}

func baseName(scenario string) string {
	return strings.TrimSuffix(filepath.Base(scenario), ".xml")
}

// materialize writes an embedded scenario into dir (or takes a path as is)
// and returns its path and response time names in SIPp's numbering.
func materialize(dir, scenario string) (string, map[int]string, error) {
	if scenario == "" {
		return "", nil, errors.New("sipp: Options.Scenario is required")
	}
	var data []byte
	var err error
	path := scenario
	if strings.HasSuffix(scenario, ".xml") {
		data, err = os.ReadFile(scenario)
	} else {
		data, err = scenarios.ReadFile("scenarios/" + scenario + ".xml")
		if err == nil {
			path = filepath.Join(dir, scenario+".xml")
			err = os.WriteFile(path, data, 0o644)
		} else {
			err = fmt.Errorf("no embedded scenario %q (have %s)", scenario, strings.Join(Scenarios(), ", "))
		}
	}
	if err != nil {
		return "", nil, fmt.Errorf("sipp: %w", err)
	}
	return path, rtdNames(string(data)), nil
}

// rtdNames numbers response time names as SIPp does: in order of first use.
func rtdNames(xml string) map[int]string {
	names := map[int]string{}
	seen := map[string]bool{}
	rest := xml
	for {
		i := strings.Index(rest, `rtd="`)
		if i < 0 {
			break
		}
		rest = rest[i+len(`rtd="`):]
		j := strings.IndexByte(rest, '"')
		if j < 0 {
			break
		}
		n := rest[:j]
		if !seen[n] {
			seen[n] = true
			names[len(names)+1] = n
		}
	}
	return names
}

// writeUsers writes the -inf file. Fields are ;-separated and the
// credentials sit inside SIPp's [authentication ...] keyword, so neither may
// hold ';', ']', spaces or line breaks.
func writeUsers(path string, users []User) error {
	var b strings.Builder
	b.WriteString("SEQUENTIAL\n")
	for i, u := range users {
		auth := u.AuthName
		if auth == "" {
			auth = u.Name
		}
		for _, f := range []string{u.Name, u.Domain, auth, u.Password} {
			if f == "" || strings.ContainsAny(f, "; ]\r\n\t") {
				return fmt.Errorf("sipp: user %d (%q): fields must be non-empty without ';', ']', spaces or line breaks", i, u.Name)
			}
		}
		fmt.Fprintf(&b, "%s;%s;[authentication username=%s password=%s]\n", u.Name, u.Domain, auth, u.Password)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("sipp: users file: %w", err)
	}
	return nil
}

// readStats takes the cumulative successful and failed call counts from the
// last line of the -trace_stat file.
func readStats(path string) (ok, failed int, err error) {
	lines := readLines(path)
	if len(lines) < 2 {
		return 0, 0, fmt.Errorf("sipp: no statistics in %s", path)
	}
	head := strings.Split(lines[0], ";")
	last := strings.Split(lines[len(lines)-1], ";")
	get := func(name string) (int, error) {
		i := slices.Index(head, name)
		if i < 0 || i >= len(last) {
			return 0, fmt.Errorf("sipp: statistics %s: no column %s", path, name)
		}
		return strconv.Atoi(strings.TrimSpace(last[i]))
	}
	if ok, err = get("SuccessfulCall(C)"); err != nil {
		return 0, 0, err
	}
	failed, err = get("FailedCall(C)")
	return ok, failed, err
}

// readRTT reads the -trace_rtt file (<scenario>_<pid>_rtt.csv):
// Date_ms;response_time_ms;rtd_no, where rtd_no is the name or number.
func readRTT(dir string, names map[int]string) (map[string]Percentiles, error) {
	files, _ := filepath.Glob(filepath.Join(dir, "*_rtt.csv"))
	samples := map[string][]float64{}
	for _, f := range files {
		for i, l := range readLines(f) {
			if i == 0 && strings.HasPrefix(l, "Date") {
				continue
			}
			parts := strings.Split(l, ";")
			if len(parts) < 3 {
				continue
			}
			ms, err := strconv.ParseFloat(parts[1], 64)
			if err != nil {
				return nil, fmt.Errorf("sipp: %s line %d: %q is not a response time", f, i+1, l)
			}
			// SIPp 3.6 writes the name; older versions the number.
			name := strings.TrimSpace(parts[2])
			if no, err := strconv.Atoi(name); err == nil && names[no] != "" {
				name = names[no]
			}
			samples[name] = append(samples[name], ms)
		}
	}
	out := map[string]Percentiles{}
	for name, s := range samples {
		out[name] = percentiles(s)
	}
	return out, nil
}

func percentiles(ms []float64) Percentiles {
	slices.Sort(ms)
	at := func(q float64) time.Duration {
		i := int(math.Ceil(q*float64(len(ms)))) - 1
		i = max(0, min(i, len(ms)-1))
		return time.Duration(ms[i] * float64(time.Millisecond))
	}
	return Percentiles{Count: len(ms), P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: at(1)}
}

func readLines(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if l := strings.TrimRight(sc.Text(), "\r"); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}
