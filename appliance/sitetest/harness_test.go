package sitetest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"stillwater/consensus"
)

// binary is the stillwater command under test, built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sitetest-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "sitetest:", err)
		os.Exit(1)
	}
	// SITETEST_BINARY runs the tests against a stillwater built elsewhere
	// (another revision, say) instead of this tree's.
	binary = os.Getenv("SITETEST_BINARY")
	if binary == "" {
		binary = filepath.Join(dir, "stillwater")
		build := exec.Command("go", "build", "-o", binary, "stillwater/appliance/cmd/stillwater")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "sitetest: building stillwater:", err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	// Every node of a site listens on the same ports, told apart by address:
	// the loopback addresses beyond 127.0.0.1 must be usable.
	for i := 1; i <= 4; i++ {
		ln, err := net.Listen("tcp", nodeIP(i)+":0")
		if err != nil {
			fmt.Fprintf(os.Stderr, "sitetest: cannot listen on %s: %v\n", nodeIP(i), err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
		ln.Close()
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func nodeIP(i int) string { return fmt.Sprintf("127.0.0.%d", i) }
func nodeID(i int) string { return fmt.Sprintf("127-0-0-%d", i) }
func skipIfShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("long end-to-end test; skipped with -short")
	}
}

// ports are one site's listening ports, the same on each of its nodes.
type ports struct {
	consensus, admin, chronos, homestead, homesteadProv, homer, ellis int
	sip, sipTrusted, icscf, scscf, bgcf, mmtel, ws, tls, sproutMgmt   int
}

var (
	portsMu   sync.Mutex
	portsUsed = map[int]bool{}
)

// freePorts picks ports free on every test address. They are taken below the
// kernel's ephemeral range so that no outgoing connection can hold one, and
// never handed out twice in a run so that sites of successive tests do not
// meet.
func freePorts(t *testing.T) ports {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	var got []int
	for tries := 0; len(got) < 16; tries++ {
		if tries > 1000 {
			t.Fatal("no free ports found")
		}
		r, _ := rand.Int(rand.Reader, big.NewInt(20000))
		p := 10000 + int(r.Int64())
		if portsUsed[p] || !portFree(p) {
			continue
		}
		portsUsed[p] = true
		got = append(got, p)
	}
	return ports{consensus: got[0], admin: got[1], chronos: got[2], homestead: got[3], homesteadProv: got[4], homer: got[5], ellis: got[6],
		sip: got[7], sipTrusted: got[8], icscf: got[9], scscf: got[10], ws: got[11], sproutMgmt: got[12], tls: got[13], bgcf: got[14], mmtel: got[15]}
}

func portFree(p int) bool {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for i := 1; i <= 4; i++ {
		l, err := net.Listen("tcp", net.JoinHostPort(nodeIP(i), strconv.Itoa(p)))
		if err != nil {
			return false
		}
		lns = append(lns, l)
	}
	return true
}

// siteOpts shape a site.
type siteOpts struct {
	nodes          int    // nodes started by newSite
	faultInjection bool   // fault_injection=Y on every node
	shared         string // shared_config file in every node's config directory
	// bare leaves local_ip, etcd_cluster and site_key out of local_config:
	// the all-in-one node that creates its own key.
	bare  bool
	ports *ports // reuse these ports (a second site after the first stopped)
}

// site is a set of node processes forming one Stillwater site.
type site struct {
	t     *testing.T
	dir   string
	ports ports
	key   []byte // nil for a bare node, which keeps its key in its data dir
	opts  siteOpts

	mu    sync.Mutex
	nodes map[int]*node
}

// newSite starts opts.nodes nodes (1..n) and waits until the site has settled.
// Every process is killed when the test ends, and on failure the nodes' logs
// are printed.
func newSite(t *testing.T, opts siteOpts) *site {
	t.Helper()
	s := &site{t: t, dir: t.TempDir(), opts: opts, nodes: map[int]*node{}}
	if opts.ports != nil {
		s.ports = *opts.ports
	} else {
		s.ports = freePorts(t)
	}
	if !opts.bare {
		s.key = make([]byte, 32)
		rand.Read(s.key)
	}
	// Registered after TempDir, so it runs before the directory is removed.
	t.Cleanup(s.cleanup)
	var all []int
	for i := 1; i <= opts.nodes; i++ {
		all = append(all, i)
	}
	for _, i := range all {
		s.addNode(i, all)
	}
	s.startAll(all...)
	if opts.nodes > 0 {
		waitConverged(t, s.node(1), all, 90*time.Second)
	}
	return s
}

func (s *site) cleanup() {
	nodes := s.list()
	for _, n := range nodes {
		n.kill()
	}
	if s.t.Failed() {
		for _, n := range nodes {
			n.dumpLog(s.t)
		}
	}
}

// stopAll stops every node gracefully (SIGTERM), for a site that is done.
func (s *site) stopAll() {
	s.t.Helper()
	for _, n := range s.list() {
		n.stop(s.t)
	}
}

func (s *site) list() []*node {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*node
	for _, n := range s.nodes {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].idx < out[j].idx })
	return out
}

func (s *site) node(i int) *node {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nodes[i]
	if n == nil {
		panic(fmt.Sprintf("sitetest: site has no node %d", i)) // a bug in a test
	}
	return n
}

// addNode writes node i's configuration; cluster lists the etcd_cluster
// members (the first creates the site, the others join through it).
func (s *site) addNode(i int, cluster []int) *node {
	t := s.t
	t.Helper()
	n := &node{site: s, idx: i, ip: nodeIP(i), id: nodeID(i)}
	base := filepath.Join(s.dir, fmt.Sprintf("n%d", i))
	n.confDir = filepath.Join(base, "config")
	n.dataDir = filepath.Join(base, "data")
	n.logPath = filepath.Join(base, "node.log")
	if err := os.MkdirAll(n.confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	var lc strings.Builder
	if !s.opts.bare {
		var ips []string
		for _, c := range cluster {
			ips = append(ips, nodeIP(c))
		}
		fmt.Fprintf(&lc, "local_ip=%s\netcd_cluster=%s\nsite_key=%s\n", n.ip, strings.Join(ips, ","), hex.EncodeToString(s.key))
	}
	fmt.Fprintf(&lc, "data_dir=%s\nconsensus_port=%d\nadmin_port=%d\nchronos_port=%d\n",
		n.dataDir, s.ports.consensus, s.ports.admin, s.ports.chronos)
	fmt.Fprintf(&lc, "homestead_port=%d\nhomestead_prov_port=%d\nhomer_port=%d\nellis_port=%d\n",
		s.ports.homestead, s.ports.homesteadProv, s.ports.homer, s.ports.ellis)
	fmt.Fprintf(&lc, "pcscf_untrusted_port=%d\npcscf_trusted_port=%d\nicscf=%d\nscscf=%d\npcscf_ws_port=%d\nsprout_mgmt_port=%d\npcscf_tls_port=%d\nbgcf=%d\nmmtel=%d\n",
		s.ports.sip, s.ports.sipTrusted, s.ports.icscf, s.ports.scscf, s.ports.ws, s.ports.sproutMgmt, s.ports.tls, s.ports.bgcf, s.ports.mmtel)
	if s.opts.faultInjection {
		lc.WriteString("fault_injection=Y\n")
	}
	if err := os.WriteFile(filepath.Join(n.confDir, "local_config"), []byte(lc.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if s.opts.shared != "" {
		if err := os.WriteFile(filepath.Join(n.confDir, "shared_config"), []byte(s.opts.shared), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s.mu.Lock()
	s.nodes[i] = n
	s.mu.Unlock()
	return n
}

// startAll starts nodes concurrently (joiners retry until the first is up)
// and fails the test unless every one comes up.
func (s *site) startAll(idx ...int) {
	s.t.Helper()
	errs := make([]error, len(idx))
	var wg sync.WaitGroup
	for k, i := range idx {
		n := s.node(i)
		wg.Go(func() { errs[k] = n.start() })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		s.t.Fatal(err)
	}
}

// node is one stillwater process (or its configuration while it is down).
type node struct {
	site    *site
	idx     int
	ip, id  string
	confDir string
	dataDir string
	logPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when the current process has exited
	exit   error         // its exit status, once exited is closed
	starts int
}

// lineWatcher is a process's stdout: copied to the log, and watched for the
// line that says the node serves.
type lineWatcher struct {
	log  io.Writer
	buf  []byte
	up   chan struct{}
	once sync.Once
}

func (w *lineWatcher) Write(p []byte) (int, error) {
	w.log.Write(p)
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		if bytes.Contains(w.buf[:i], []byte(" is up")) {
			w.once.Do(func() { close(w.up) })
		}
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

// start runs the node and returns once it prints that it is up, or with an
// error (its log's tail included) if it exits or takes too long.
func (n *node) start() error {
	_, err := n.launch(2 * time.Minute)
	return err
}

// launch starts the process and waits for it to come up or exit.
func (n *node) launch(timeout time.Duration) (up bool, err error) {
	n.mu.Lock()
	if n.cmd != nil && !isClosed(n.exited) {
		n.mu.Unlock()
		return false, fmt.Errorf("node %d is already running", n.idx)
	}
	n.starts++
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		n.mu.Unlock()
		return false, err
	}
	fmt.Fprintf(logf, "===== sitetest: start %d of node %d at %s =====\n", n.starts, n.idx, time.Now().Format(time.RFC3339Nano))
	watch := &lineWatcher{log: logf, up: make(chan struct{})}
	cmd := exec.Command(binary, "-c", n.confDir, "run")
	cmd.Stdout = watch
	cmd.Stderr = logf
	reapWithTest(cmd)
	if err := cmd.Start(); err != nil {
		logf.Close()
		n.mu.Unlock()
		return false, fmt.Errorf("node %d: %w", n.idx, err)
	}
	exited := make(chan struct{})
	n.cmd, n.exited = cmd, exited
	n.mu.Unlock()
	go func() {
		err := cmd.Wait()
		logf.Close()
		n.mu.Lock()
		n.exit = err
		n.mu.Unlock()
		close(exited)
	}()
	select {
	case <-watch.up:
		return true, nil
	case <-exited:
		return false, fmt.Errorf("node %d exited before it was up (%v):\n%s", n.idx, n.exitErr(), n.logTail(4096))
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-exited
		return false, fmt.Errorf("node %d not up after %v:\n%s", n.idx, timeout, n.logTail(8192))
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func (n *node) exitErr() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.exit
}

// kill is kill -9: the process gets no chance to flush or say goodbye.
func (n *node) kill() {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil || isClosed(exited) {
		return
	}
	cmd.Process.Kill()
	<-exited
}

// stop asks the node to shut down (SIGTERM) and waits for it to exit.
func (n *node) stop(t *testing.T) {
	t.Helper()
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil || isClosed(exited) {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-exited
		t.Errorf("node %d did not stop within 30 s of SIGTERM", n.idx)
	}
}

// waitExit waits for the node's process to exit by itself.
func (n *node) waitExit(timeout time.Duration) error {
	n.mu.Lock()
	exited := n.exited
	n.mu.Unlock()
	if exited == nil {
		return errors.New("never started")
	}
	select {
	case <-exited:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("node %d still running after %v", n.idx, timeout)
	}
}

func (n *node) logTail(max int) string {
	b, _ := os.ReadFile(n.logPath)
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

func (n *node) dumpLog(t *testing.T) {
	const max = 128 << 10
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		return
	}
	cut := ""
	if len(b) > max {
		cut = fmt.Sprintf(" (last %d of %d bytes)", max, len(b))
		b = b[len(b)-max:]
	}
	t.Logf("----- log of node %d%s -----\n%s", n.idx, cut, b)
}

// cli runs a stillwater command against this node's configuration.
func (n *node) cli(args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"-c", n.confDir}, args...)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// token is the admin API's bearer token: HMAC-SHA256 of a fixed text under
// the site key (kept in the data directory by a bare node).
func (n *node) token() string {
	key := n.site.key
	if key == nil {
		b, err := os.ReadFile(filepath.Join(n.dataDir, "site.key"))
		if err != nil {
			return ""
		}
		key, _ = hex.DecodeString(strings.TrimSpace(string(b)))
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("stillwater admin"))
	return hex.EncodeToString(m.Sum(nil))
}

// httpClient opens a connection per request: after a kill -9 no request is
// sent on a dead pooled connection, so a refused dial always means the
// request was never sent.
var httpClient = &http.Client{
	Timeout:   20 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
}

// reply is an HTTP answer.
type reply struct {
	code   int
	body   string
	header http.Header
}

func (r reply) String() string { return fmt.Sprintf("%d %s", r.code, strings.TrimSpace(r.body)) }

func do(method, url, token string, body []byte) (reply, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return reply{}, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	return reply{code: resp.StatusCode, body: string(b), header: resp.Header}, nil
}

func (n *node) adminURL(path string) string {
	return "http://" + net.JoinHostPort(n.ip, strconv.Itoa(n.site.ports.admin)) + path
}

func (n *node) chronosURL(path string) string {
	return "http://" + net.JoinHostPort(n.ip, strconv.Itoa(n.site.ports.chronos)) + path
}

func (n *node) admin(method, path string, body []byte) (reply, error) {
	return do(method, n.adminURL(path), n.token(), body)
}

func (n *node) put(key, value string) (reply, error) {
	return n.admin(http.MethodPut, "/kv/"+key, []byte(value))
}

func (n *node) get(key string) (reply, error) { return n.admin(http.MethodGet, "/kv/"+key, nil) }

func (n *node) getLocal(key string) (reply, error) {
	return n.admin(http.MethodGet, "/kv/"+key+"?local=1", nil)
}

// mustPut writes a record and fails the test unless it is acknowledged.
func (n *node) mustPut(t *testing.T, key, value string) {
	t.Helper()
	r, err := n.put(key, value)
	if err != nil || r.code != http.StatusNoContent {
		t.Fatalf("PUT /kv/%s via node %d: %v %v", key, n.idx, r, err)
	}
}

// mustGet reads a record linearizably and fails the test unless it has value.
func (n *node) mustGet(t *testing.T, key, value string) {
	t.Helper()
	r, err := n.get(key)
	if err != nil || r.code != http.StatusOK || r.body != value {
		t.Fatalf("GET /kv/%s via node %d: got %v %v, want 200 %q", key, n.idx, r, err, value)
	}
}

func (n *node) status() (*consensus.SiteStatus, error) {
	r, err := n.admin(http.MethodGet, "/cluster/status", nil)
	if err != nil {
		return nil, err
	}
	if r.code != http.StatusOK {
		return nil, fmt.Errorf("GET /cluster/status via node %d: %v", n.idx, r)
	}
	var st consensus.SiteStatus
	if err := json.Unmarshal([]byte(r.body), &st); err != nil {
		return nil, fmt.Errorf("GET /cluster/status via node %d: %w", n.idx, err)
	}
	return &st, nil
}

func (n *node) timerStats() (map[string]int64, error) {
	r, err := n.admin(http.MethodGet, "/timers/stats", nil)
	if err != nil {
		return nil, err
	}
	if r.code != http.StatusOK {
		return nil, fmt.Errorf("GET /timers/stats via node %d: %v", n.idx, r)
	}
	st := map[string]int64{}
	if err := json.Unmarshal([]byte(r.body), &st); err != nil {
		return nil, fmt.Errorf("GET /timers/stats via node %d: %w", n.idx, err)
	}
	return st, nil
}

// timerJSON is a Chronos timer body.
func timerJSON(interval, repeatFor int, uri, opaque, tag string) []byte {
	timing := map[string]int{"interval": interval}
	if repeatFor > 0 {
		timing["repeat-for"] = repeatFor
	}
	doc := map[string]any{
		"timing":   timing,
		"callback": map[string]any{"http": map[string]string{"uri": uri, "opaque": opaque}},
	}
	if tag != "" {
		doc["statistics"] = map[string]any{"tag-info": []map[string]any{{"type": tag, "count": 1}}}
	}
	b, _ := json.Marshal(doc)
	return b
}

// createTimer posts a timer to the node's Chronos API and returns its id.
func (n *node) createTimer(body []byte) (string, error) {
	r, err := do(http.MethodPost, n.chronosURL("/timers"), "", body)
	if err != nil {
		return "", err
	}
	loc := r.header.Get("Location")
	if r.code != http.StatusOK || !strings.HasPrefix(loc, "/timers/") {
		return "", fmt.Errorf("POST /timers via node %d: %v (Location %q)", n.idx, r, loc)
	}
	return strings.TrimPrefix(loc, "/timers/"), nil
}

// waitFor polls cond until it returns nil, failing the test with cond's last
// complaint after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	if err := poll(timeout, cond); err != nil {
		t.Fatalf("timed out after %v waiting for %s: %v", timeout, what, err)
	}
}

// poll is waitFor for any goroutine: it returns cond's last error on timeout.
func poll(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitConverged waits until the site, seen from via, has settled with
// exactly the members want.
func waitConverged(t *testing.T, via *node, want []int, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, fmt.Sprintf("site to settle with members %v", want), func() error {
		st, err := via.status()
		if err != nil {
			return err
		}
		return converged(st, want)
	})
}

// groupNames lists the meta group and every shard.
func groupNames(st *consensus.SiteStatus) []string {
	names := []string{"meta"}
	for i := 0; i < st.Meta.Shards; i++ {
		names = append(names, fmt.Sprintf("s%d", i))
	}
	return names
}

// replicas maps each group to the replicas the given nodes report.
func replicas(st *consensus.SiteStatus, from []string) map[string]map[string]consensus.GroupStatus {
	out := map[string]map[string]consensus.GroupStatus{}
	for _, ns := range st.Nodes {
		if ns.Error != "" || !slices.Contains(from, ns.ID) {
			continue
		}
		for _, g := range ns.Groups {
			if out[g.Group] == nil {
				out[g.Group] = map[string]consensus.GroupStatus{}
			}
			out[g.Group][ns.ID] = g
		}
	}
	return out
}

// agreedLeader checks that one of reps leads and the others follow it.
func agreedLeader(group string, reps map[string]consensus.GroupStatus) (string, error) {
	leader := ""
	for id, g := range reps {
		if g.State == "Leader" {
			if leader != "" {
				return "", fmt.Errorf("%s: both %s and %s claim to lead", group, leader, id)
			}
			leader = id
		}
	}
	if leader == "" {
		return "", fmt.Errorf("%s: no leader among %v", group, slices.Sorted(mapKeys(reps)))
	}
	for id, g := range reps {
		if !g.Voter {
			return "", fmt.Errorf("%s: %s is still catching up as a nonvoter", group, id)
		}
		if g.Leader != leader {
			return "", fmt.Errorf("%s: %s follows %q, not %s", group, id, g.Leader, leader)
		}
	}
	return leader, nil
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func ids(idx []int) []string {
	var out []string
	for _, i := range idx {
		out = append(out, nodeID(i))
	}
	return out
}

// converged explains why the site is not yet settled: the members are
// exactly want, each reachable, every shard's replicas sit exactly where the
// placement puts them, and every group has one leader its replicas follow.
func converged(st *consensus.SiteStatus, want []int) error {
	if st.Meta == nil || st.Meta.Shards == 0 {
		return errors.New("site not initialised")
	}
	wantIDs := ids(want)
	members := slices.Sorted(mapKeys(st.Meta.Members))
	if !slices.Equal(members, slices.Sorted(slices.Values(wantIDs))) {
		return fmt.Errorf("members %v, want %v", members, wantIDs)
	}
	for _, ns := range st.Nodes {
		if ns.Error != "" {
			return fmt.Errorf("member %s unreachable: %s", ns.ID, ns.Error)
		}
		if m := st.Meta.Members[ns.ID]; m.State != consensus.MemberActive {
			return fmt.Errorf("member %s is %s", ns.ID, m.State)
		}
	}
	reps := replicas(st, wantIDs)
	if len(st.Meta.Placement) != st.Meta.Shards {
		return fmt.Errorf("placement covers %d of %d shards", len(st.Meta.Placement), st.Meta.Shards)
	}
	// Right after a membership change the recorded placement is still the
	// old one, which the replicas match: a shard is placed on every member
	// of a site of up to three, and on three members of a larger one.
	for sh, p := range st.Meta.Placement {
		if len(p) != min(len(want), 3) {
			return fmt.Errorf("s%d placed on %v, not yet on %d members", sh, p, min(len(want), 3))
		}
	}
	for _, name := range groupNames(st) {
		var placed []string
		if name == "meta" {
			placed = wantIDs
		} else {
			var s int
			fmt.Sscanf(name, "s%d", &s)
			placed = st.Meta.Placement[s]
		}
		have := slices.Sorted(mapKeys(reps[name]))
		if !slices.Equal(have, slices.Sorted(slices.Values(placed))) {
			return fmt.Errorf("%s: replicas on %v, placement wants %v", name, have, placed)
		}
		if _, err := agreedLeader(name, reps[name]); err != nil {
			return err
		}
	}
	return nil
}

// leadersAmong explains why some group has no leader among the alive nodes
// (what a site needs to serve again after losing a node).
func leadersAmong(st *consensus.SiteStatus, alive []int) error {
	reps := replicas(st, ids(alive))
	for _, name := range groupNames(st) {
		if _, err := agreedLeader(name, reps[name]); err != nil {
			return err
		}
	}
	return nil
}

// shardLeaders maps each data shard to the node id leading it.
func shardLeaders(st *consensus.SiteStatus) map[int]string {
	out := map[int]string{}
	for _, ns := range st.Nodes {
		for _, g := range ns.Groups {
			var s int
			if g.State == "Leader" && g.Group != "meta" {
				if _, err := fmt.Sscanf(g.Group, "s%d", &s); err == nil {
					out[s] = ns.ID
				}
			}
		}
	}
	return out
}

// shardOf is the shard a key lives in: FNV-1a modulo the shard count, as
// consensus.Node.ShardOf computes it. A timer's key is its id, big-endian.
func shardOf(key []byte, shards int) int {
	h := fnv.New32a()
	h.Write(key)
	return int(h.Sum32() % uint32(shards))
}

// timerShard is the shard holding the timer with the given Chronos id.
func timerShard(t *testing.T, id string, shards int) int {
	t.Helper()
	hexPart, _, _ := strings.Cut(id, "-")
	b, err := hex.DecodeString(hexPart)
	if err != nil || len(b) != 8 {
		t.Fatalf("timer id %q is not <16 hex>-<rf>", id)
	}
	return shardOf(b, shards)
}

// callbacks is an HTTP server standing in for a timer's owner: it records
// every callback the site posts.
type callbacks struct {
	srv *httptest.Server

	mu      sync.Mutex
	pops    []pop
	failing map[string]int // opaque -> callbacks still to be answered 500
	changed chan struct{}  // closed and replaced at every callback
}

// pop is one callback as received.
type pop struct {
	opaque string
	seq    int
	at     time.Time
	code   int // what the server answered
}

func newCallbacks(t *testing.T) *callbacks {
	c := &callbacks{failing: map[string]int{}, changed: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.srv = &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(c.serve)}}
	c.srv.Start()
	t.Cleanup(c.srv.Close)
	return c
}

func (c *callbacks) serve(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	b, _ := io.ReadAll(r.Body)
	seq, _ := strconv.Atoi(r.Header.Get("X-Sequence-Number"))
	p := pop{opaque: string(b), seq: seq, at: at, code: http.StatusOK}
	c.mu.Lock()
	if c.failing[p.opaque] > 0 {
		c.failing[p.opaque]--
		p.code = http.StatusInternalServerError
	}
	c.pops = append(c.pops, p)
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	w.WriteHeader(p.code)
}

func (c *callbacks) url() string { return c.srv.URL + "/callback" }

// failFirst makes the next n callbacks with this opaque data fail with 500.
func (c *callbacks) failFirst(opaque string, n int) {
	c.mu.Lock()
	c.failing[opaque] = n
	c.mu.Unlock()
}

// of returns the callbacks received for one opaque.
func (c *callbacks) of(opaque string) []pop {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []pop
	for _, p := range c.pops {
		if p.opaque == opaque {
			out = append(out, p)
		}
	}
	return out
}

// wait waits until cond holds over the callbacks received, or the deadline.
func (c *callbacks) wait(deadline time.Time, cond func(all []pop) bool) bool {
	for {
		c.mu.Lock()
		ok := cond(c.pops)
		ch := c.changed
		c.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-time.After(time.Until(deadline)):
			return false
		}
	}
}

// delivered counts the callbacks answered 200 per opaque.
func delivered(all []pop) map[string]int {
	out := map[string]int{}
	for _, p := range all {
		if p.code == http.StatusOK {
			out[p.opaque]++
		}
	}
	return out
}

// ledBy lists the data shards the node leads.
func ledBy(st *consensus.SiteStatus, id string) []int {
	var out []int
	for s, l := range shardLeaders(st) {
		if l == id {
			out = append(out, s)
		}
	}
	sort.Ints(out)
	return out
}

// busiestLeader is the node (by index) that leads the most data shards.
func busiestLeader(st *consensus.SiteStatus) int {
	best, most := 1, -1
	for i := 1; i <= 4; i++ {
		if n := len(ledBy(st, nodeID(i))); n > most {
			best, most = i, n
		}
	}
	return best
}
