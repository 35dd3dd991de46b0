package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"stillwater/consensus"
)

// procMem is a process's memory as /proc/<pid>/status reports it, in kB.
type procMem struct {
	rss, hwm, anon, file int64
}

func readProcMem(pid int) (procMem, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procMem{}, err
	}
	var m procMem
	for line := range strings.SplitSeq(string(b), "\n") {
		name, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(val)
		if len(f) == 0 {
			continue
		}
		kb, _ := strconv.ParseInt(f[0], 10, 64)
		switch name {
		case "VmRSS":
			m.rss = kb
		case "VmHWM":
			m.hwm = kb
		case "RssAnon":
			m.anon = kb
		case "RssFile":
			m.file = kb
		}
	}
	return m, nil
}

// rssResult is the per-node memory of a site of real processes holding n
// pending timers.
type rssResult struct {
	n        int
	shards   int
	leaders  string
	created  time.Duration
	errs     int64
	firstErr string
	nodes    []rssNode
}

type rssNode struct {
	id         string
	pid        int
	mem        procMem
	stateBytes int64 // bbolt state files
	walBytes   int64
	snapBytes  int64
}

func (r rssResult) rate() float64 { return float64(r.n) / r.created.Seconds() }

// proc is one stillwater process of the site.
type proc struct {
	id      string
	cmd     *exec.Cmd
	etc     string
	data    string
	up      chan struct{}
	exited  chan struct{}
	waitErr error
}

// runRSS starts three stillwater processes on 127.0.0.1, .2 and .3, creates
// o.rssTimers one-hour timers through the Chronos API and reads each
// process's resident memory.
func runRSS(ctx context.Context, o *options) (rssResult, error) {
	res := rssResult{n: o.rssTimers, shards: o.rssShards}
	dir, err := os.MkdirTemp(o.dir, "rss-")
	if err != nil {
		return res, err
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	bin := o.stillwater
	if bin == "" {
		bin = filepath.Join(dir, "stillwater")
		if err := buildStillwater(ctx, bin); err != nil {
			return res, err
		}
	}
	ports, err := freePorts(3)
	if err != nil {
		return res, err
	}
	consPort, adminPort, chronosPort := ports[0], ports[1], ports[2]
	key := make([]byte, 32)
	rand.Read(key)
	procs := make([]*proc, 3)
	defer func() {
		for _, p := range procs {
			if p != nil {
				p.stop()
			}
		}
	}()
	for i := range procs {
		ip := fmt.Sprintf("127.0.0.%d", i+1)
		p := &proc{id: strings.ReplaceAll(ip, ".", "-"), etc: filepath.Join(dir, fmt.Sprintf("n%d", i+1), "etc"),
			data: filepath.Join(dir, fmt.Sprintf("n%d", i+1), "data")}
		if err := os.MkdirAll(p.etc, 0o700); err != nil {
			return res, err
		}
		local := fmt.Sprintf("local_ip=%s\netcd_cluster=127.0.0.1,127.0.0.2,127.0.0.3\nsite_key=%s\ndata_dir=%s\n"+
			"consensus_port=%d\nadmin_port=%d\nchronos_port=%d\n", ip, hex.EncodeToString(key), p.data, consPort, adminPort, chronosPort)
		if err := os.WriteFile(filepath.Join(p.etc, "local_config"), []byte(local), 0o600); err != nil {
			return res, err
		}
		shared := fmt.Sprintf("shard_count=%d\n", o.rssShards)
		if err := os.WriteFile(filepath.Join(p.etc, "shared_config"), []byte(shared), 0o600); err != nil {
			return res, err
		}
		procs[i] = p
	}
	// The first node creates the site; the others join through it.
	if err := procs[0].start(bin); err != nil {
		return res, err
	}
	if err := procs[0].waitUp(ctx, 2*time.Minute); err != nil {
		return res, err
	}
	for _, p := range procs[1:] {
		if err := p.start(bin); err != nil {
			return res, err
		}
	}
	for _, p := range procs[1:] {
		if err := p.waitUp(ctx, 2*time.Minute); err != nil {
			return res, err
		}
	}
	admin := &adminClient{addr: fmt.Sprintf("127.0.0.1:%d", adminPort), token: adminToken(key)}
	if err := admin.waitFormed(ctx, o.rssShards, 3, 2*time.Minute); err != nil {
		return res, err
	}
	if st, err := admin.status(ctx); err == nil {
		res.leaders = leaderSummary(st)
	}

	urls := make([]string, 3)
	for i := range urls {
		urls[i] = fmt.Sprintf("http://127.0.0.%d:%d/timers", i+1, chronosPort)
	}
	body := []byte(`{"timing":{"interval":3600},"callback":{"http":{"uri":"http://127.0.0.1:9/cb","opaque":"x"}}}`)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: o.rssClients, MaxIdleConnsPerHost: o.rssClients, IdleConnTimeout: time.Minute,
	}}
	var next, done, errs atomic.Int64
	var firstErr sync.Once
	t0 := time.Now()
	stopProgress := progress(func() string {
		el := time.Since(t0)
		var mems []string
		for _, p := range procs {
			m, _ := readProcMem(p.cmd.Process.Pid)
			mems = append(mems, fmt.Sprintf("%s %d MB", p.id, m.rss>>10))
		}
		d := done.Load()
		return fmt.Sprintf("  %d/%d timers (%.0f/s), %d errors; RSS %s", d, o.rssTimers, float64(d)/el.Seconds(), errs.Load(), strings.Join(mems, ", "))
	})
	var wg sync.WaitGroup
	for c := range o.rssClients {
		wg.Go(func() {
			url := urls[c%len(urls)]
			for next.Add(1) <= int64(o.rssTimers) && ctx.Err() == nil {
				for ctx.Err() == nil {
					err := postTimer(ctx, client, url, body)
					if err == nil {
						done.Add(1)
						break
					}
					errs.Add(1)
					firstErr.Do(func() { res.firstErr = err.Error() })
					sleep(ctx, 10*time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	res.created = time.Since(t0)
	stopProgress()
	res.errs = errs.Load()
	if err := ctx.Err(); err != nil {
		return res, err
	}
	// Let every replica apply everything, and the nodes settle (snapshots,
	// log compaction) before reading their memory.
	if err := admin.waitApplied(ctx, 2*time.Minute); err != nil {
		return res, err
	}
	sleep(ctx, o.rssSettle)
	for _, p := range procs {
		if p.exitedEarly() {
			return res, fmt.Errorf("node %s exited: %v: %s", p.id, p.waitErr, p.logTail())
		}
		m, err := readProcMem(p.cmd.Process.Pid)
		if err != nil {
			return res, err
		}
		res.nodes = append(res.nodes, rssNode{
			id: p.id, pid: p.cmd.Process.Pid, mem: m,
			stateBytes: dirSize(filepath.Join(p.data, "state")),
			walBytes:   dirSize(filepath.Join(p.data, "wal")),
			snapBytes:  dirSize(filepath.Join(p.data, "snapshots")),
		})
	}
	return res, nil
}

func postTimer(ctx context.Context, c *http.Client, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s: %s", url, resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

// progress prints line() every 10 seconds until the returned func is called.
func progress(line func() string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintln(console, line())
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

func buildStillwater(ctx context.Context, out string) error {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./appliance/cmd/stillwater")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	cmd.Stdout, cmd.Stderr = console, console
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build stillwater: %w", err)
	}
	return nil
}

func (p *proc) start(bin string) error {
	logf, err := os.Create(filepath.Join(filepath.Dir(p.etc), "stderr.log"))
	if err != nil {
		return err
	}
	p.cmd = exec.Command(bin, "-c", p.etc, "run")
	p.cmd.Stderr = logf
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	logf.Close()
	p.up, p.exited = make(chan struct{}), make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		up := false
		for sc.Scan() {
			if !up && strings.Contains(sc.Text(), " is up") {
				up = true
				close(p.up)
			}
		}
	}()
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	return nil
}

func (p *proc) waitUp(ctx context.Context, limit time.Duration) error {
	select {
	case <-p.up:
		return nil
	case <-p.exited:
		return fmt.Errorf("node %s exited while starting: %v: %s", p.id, p.waitErr, p.logTail())
	case <-time.After(limit):
		return fmt.Errorf("node %s not up after %v", p.id, limit)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// logTail is the end of the node's log, for errors.
func (p *proc) logTail() string {
	b, _ := os.ReadFile(filepath.Join(filepath.Dir(p.etc), "stderr.log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], "\n")
}

func (p *proc) exitedEarly() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// stop ends the process: SIGTERM, then SIGKILL if it lingers.
func (p *proc) stop() {
	if p.cmd == nil || p.cmd.Process == nil || p.exitedEarly() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// adminToken is the bearer token the stillwater command derives from the
// site key for the admin API.
func adminToken(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("stillwater admin"))
	return hex.EncodeToString(m.Sum(nil))
}

type adminClient struct {
	addr, token string
}

func (a *adminClient) status(ctx context.Context) (consensus.SiteStatus, error) {
	var st consensus.SiteStatus
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a.addr+"/cluster/status", nil)
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return st, fmt.Errorf("cluster status: %s: %s", resp.Status, b)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// waitFormed waits until every node holds every shard and all agree on each
// shard's leader.
func (a *adminClient) waitFormed(ctx context.Context, shards, nodes int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		st, err := a.status(ctx)
		why := ""
		if err != nil {
			why = err.Error()
		} else {
			why = formedWhy(st, shards, nodes)
		}
		if why == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("site of processes did not form: %s", why)
		}
		sleep(ctx, 200*time.Millisecond)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// formedWhy says why a site is not yet formed, or "" if it is.
func formedWhy(st consensus.SiteStatus, shards, nodes int) string {
	if st.Meta == nil || len(st.Meta.Members) != nodes || len(st.Nodes) != nodes {
		return "members still joining"
	}
	leaders := map[string]string{}
	for _, ns := range st.Nodes {
		if ns.Error != "" {
			return ns.ID + ": " + ns.Error
		}
		seen := 0
		for _, g := range ns.Groups {
			if !strings.HasPrefix(g.Group, "s") {
				continue
			}
			seen++
			if g.Leader == "" {
				return fmt.Sprintf("%s: %s has no leader", ns.ID, g.Group)
			}
			if l, ok := leaders[g.Group]; ok && l != g.Leader {
				return g.Group + ": leaders disagree"
			}
			leaders[g.Group] = g.Leader
		}
		if seen != shards {
			return fmt.Sprintf("%s holds %d of %d shards", ns.ID, seen, shards)
		}
	}
	return ""
}

// waitApplied waits until every replica has applied its group's last entry.
func (a *adminClient) waitApplied(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		st, err := a.status(ctx)
		if err == nil {
			last := map[string]uint64{}
			for _, ns := range st.Nodes {
				for _, g := range ns.Groups {
					if g.State == "Leader" {
						last[g.Group] = g.Commit
					}
				}
			}
			behind := 0
			for _, ns := range st.Nodes {
				for _, g := range ns.Groups {
					if g.Applied < last[g.Group] {
						behind++
					}
				}
			}
			if behind == 0 {
				return nil
			}
			err = fmt.Errorf("%d replicas behind", behind)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("replicas did not catch up: %w", err)
		}
		sleep(ctx, 250*time.Millisecond)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

func leaderSummary(st consensus.SiteStatus) string {
	counts := map[string]int{}
	for _, ns := range st.Nodes {
		for _, g := range ns.Groups {
			if g.State == "Leader" && strings.HasPrefix(g.Group, "s") {
				counts[ns.ID]++
			}
		}
	}
	var parts []string
	for _, ns := range st.Nodes {
		parts = append(parts, fmt.Sprintf("%s:%d", ns.ID, counts[ns.ID]))
	}
	return strings.Join(parts, " ")
}

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if info, err := d.Info(); err == nil && !d.IsDir() {
			n += info.Size()
		}
		return nil
	})
	return n
}
