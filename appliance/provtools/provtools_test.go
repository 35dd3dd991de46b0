package provtools

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"stillwater/diameter/homestead"
	"stillwater/diameter/hss"
	"stillwater/kv/kvtest"
)

func TestExpandRange(t *testing.T) {
	for _, tc := range []struct {
		arg     string
		want    []string
		wantErr string
	}{
		{"6505550000", []string{"6505550000"}, ""},
		{"6505550098..6505550101", []string{"6505550098", "6505550099", "6505550100", "6505550101"}, ""},
		{"0098..0100", []string{"0098", "0099", "0100"}, ""},
		{"+16505550000..+16505550001", []string{"+16505550000", "+16505550001"}, ""},
		{"alice", []string{"alice"}, ""},
		{"5..3", nil, "backwards"},
		{"+1..2", nil, "both ends"},
		{"a..b", nil, "must be numbers"},
		{"1..2000000", nil, "more than"},
	} {
		got, err := expandRange(tc.arg)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("expandRange(%q) err = %v, want %q", tc.arg, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("expandRange(%q) = %q, %v; want %q", tc.arg, got, err, tc.want)
		}
	}
}

func TestParseArgs(t *testing.T) {
	specs := []flagSpec{{names: []string{"-k", "--keep-going"}}, {names: []string{"--ifc"}, value: true}}
	p, err := parseArgs([]string{"1..2", "--keep-going", "example.com", "--ifc=f.xml", "pw", "--", "-x"}, specs...)
	if err != nil || !p.has("-k") || p.get("--ifc") != "f.xml" || !slices.Equal(p.pos, []string{"1..2", "example.com", "pw", "-x"}) {
		t.Fatalf("parseArgs = %+v, %v", p, err)
	}
	for _, bad := range [][]string{{"--nope"}, {"--ifc"}, {"-k=1"}} {
		if _, err := parseArgs(bad, specs...); err == nil {
			t.Errorf("parseArgs(%q) accepted", bad)
		}
	}
}

// site is a node's Homestead-prov API over a real single-node site.
type site struct {
	store  *hss.Store
	server *httptest.Server
	client *Client
	// bulkLimit, when positive, makes bulk requests after that many fail.
	bulkLimit atomic.Int64
	bulkCount atomic.Int64
}

type nopSimservs struct{}

func (nopSimservs) PutDefault(context.Context, []string) error { return nil }

func newSite(t testing.TB) *site {
	t.Helper()
	kvs := kvtest.New(t, 4)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := &site{store: hss.New(kvs.KV, hss.Options{
		HomeDomain: "example.com",
		ShardOf:    func(k string) int { return kvs.Node.ShardOf([]byte(k)) },
		Simservs:   nopSimservs{},
		Logger:     log,
	})}
	prov := homestead.NewProvHandler(s.store, homestead.WithLogger(log))
	s.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bulk/subscribers" {
			if n := s.bulkCount.Add(1); s.bulkLimit.Load() > 0 && n > s.bulkLimit.Load() {
				http.Error(w, `{"reason": "test: no more bulk requests"}`, http.StatusBadRequest)
				return
			}
		}
		prov.ServeHTTP(w, r)
	}))
	t.Cleanup(s.server.Close)
	s.client = NewClient(s.server.URL)
	return s
}

// users runs a users command and returns stdout, stderr and the error.
func (s *site) users(t testing.TB, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := Users(context.Background(), args, &out, &errOut, s.client)
	return out.String(), errOut.String(), err
}

var uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// golden compares got (with UUIDs blanked) with testdata/name;
// UPDATE_GOLDEN=1 rewrites it.
func golden(t *testing.T, name, got string) {
	t.Helper()
	got = uuidRE.ReplaceAllString(got, "<uuid>")
	path := filepath.Join("testdata", name)
	if os.Getenv("UPDATE_GOLDEN") != "" {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("%s differs:\n--- got ---\n%s\n--- want ---\n%s", name, got, want)
	}
}

func TestUsersLifecycle(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	steps := []struct {
		name           string
		args           []string
		wantErr        string
		golden         string // stdout
		stdout, stderr string // substrings
		noStdout       bool
	}{
		{name: "create a range", args: []string{"create", "6505550000..6505550002", "example.com", "7kkzTyGW"}, golden: "create.txt"},
		{name: "display", args: []string{"display", "6505550001", "example.com"}, golden: "display.txt"},
		{name: "display short", args: []string{"display", "6505550000..6505550001", "example.com", "-s"}, golden: "display_short.txt"},
		{name: "create again", args: []string{"create", "6505550002", "example.com", "pw"}, wantErr: "already exists"},
		{name: "create again, keep going", args: []string{"create", "6505550002..6505550003", "example.com", "pw", "-k"},
			wantErr: "1 of 2 users failed", stdout: "Created user sip:6505550003@example.com", stderr: "sip:6505550002@example.com: already exists"},
		{name: "update password in plaintext", args: []string{"update", "6505550000", "example.com", "--password", "n3w", "--plaintext", "-q"}, noStdout: true},
		{name: "update iFC", args: []string{"update", "6505550001", "example.com", "--ifc", writeIFC(t)}, stdout: "sip:as.example.net"},
		{name: "update nothing", args: []string{"update", "6505550001", "example.com"}, wantErr: "nothing to update"},
		{name: "update unknown", args: []string{"update", "6505559999", "example.com", "pw"}, wantErr: "no such user"},
		{name: "display unknown, keep going", args: []string{"display", "6505559998..6505559999", "example.com", "-k", "-q"}, wantErr: "2 of 2 users failed"},
		{name: "delete", args: []string{"delete", "6505550000..6505550001", "example.com"}, golden: "delete.txt"},
		{name: "delete again", args: []string{"delete", "6505550000", "example.com"}, wantErr: "no such user"},
		{name: "delete forced and quiet", args: []string{"delete", "6505550000..6505550002", "example.com", "-f", "-q"}, stdout: "Deleted user sip:6505550002@example.com"},
		{name: "bad range", args: []string{"create", "9..1", "example.com", "pw"}, wantErr: "backwards"},
		{name: "missing password", args: []string{"create", "1", "example.com"}, wantErr: "<password>"},
		{name: "unknown command", args: []string{"frobnicate"}, wantErr: "unknown command"},
		{name: "unknown option", args: []string{"create", "--colour"}, wantErr: "unknown option"},
		{name: "help", args: []string{"--help"}, stdout: "usage: stillwater users"},
	}
	for _, st := range steps {
		out, errOut, err := s.users(t, st.args...)
		switch {
		case st.wantErr == "" && err != nil:
			t.Fatalf("%s: %v (stderr %s)", st.name, err, errOut)
		case st.wantErr != "" && (err == nil || !strings.Contains(err.Error(), st.wantErr)):
			t.Fatalf("%s: err = %v, want %q", st.name, err, st.wantErr)
		case st.golden != "":
			golden(t, st.golden, out)
		case st.stdout != "" && !strings.Contains(out, st.stdout):
			t.Fatalf("%s: stdout %q lacks %q", st.name, out, st.stdout)
		case st.stderr != "" && !strings.Contains(errOut, st.stderr):
			t.Fatalf("%s: stderr %q lacks %q", st.name, errOut, st.stderr)
		case st.noStdout && out != "":
			t.Fatalf("%s: unexpected output %q", st.name, out)
		}
		if st.name == "update password in plaintext" {
			p, err := s.store.GetPrivate(ctx, "6505550000@example.com")
			if err != nil || p.PlaintextPassword != "n3w" || p.DigestHA1 != hss.DigestHA1("6505550000@example.com", "example.com", "n3w") {
				t.Fatalf("after update: %+v, %v", p, err)
			}
		}
	}
	// Deleting a user removes its private identity too.
	if _, err := s.store.GetPrivate(ctx, "6505550000@example.com"); err == nil {
		t.Fatal("private identity survived its user")
	}
	if av, err := s.store.AuthVector(ctx, hss.AVRequest{IMPI: "6505550003@example.com", IMPU: "sip:6505550003@example.com"}); err != nil ||
		av.Digest.HA1 != hss.DigestHA1("6505550003@example.com", "example.com", "pw") {
		t.Fatalf("created user cannot authenticate: %+v, %v", av, err)
	}
}

func writeIFC(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ifc.xml")
	doc := hss.DefaultIFC("sip:as.example.net")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestUsersList(t *testing.T) {
	s := newSite(t)
	if _, _, err := s.users(t, "create", "6505550000..6505550004", "example.com", "pw"); err != nil {
		t.Fatal(err)
	}
	out, _, err := s.users(t, "list", "--pace", "100000", "-f")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(out)
	slices.Sort(lines)
	want := []string{"sip:6505550000@example.com", "sip:6505550001@example.com", "sip:6505550002@example.com", "sip:6505550003@example.com", "sip:6505550004@example.com"}
	if !slices.Equal(lines, want) {
		t.Fatalf("list = %q", lines)
	}
	if _, _, err := s.users(t, "list", "--pace", "1000"); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("fast pace without --force: %v", err)
	}
	out, _, err = s.users(t, "list", "--full", "--pace", "1000", "--force")
	if err != nil || strings.Count(out, "Public User ID ") != 5 || !strings.Contains(out, "Digest HA1") {
		t.Fatalf("list --full: %v\n%s", err, out)
	}
}

func writeCSV(t testing.TB, dir string, n, from int, withPasswords bool) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("# bulk provisioning test\npublic id,private id,realm,password\n")
	for i := from; i < from+n; i++ {
		switch {
		case withPasswords:
			fmt.Fprintf(&b, "sip:2010%06d@example.com,2010%06d@example.com,example.com,7kkzTyGW\n", i, i)
		case i%2 == 0:
			fmt.Fprintf(&b, "sip:2010%06d@example.com\n", i)
		default:
			fmt.Fprintf(&b, "sip:2010%06d@example.com,,,pw%d\n", i, i)
		}
	}
	path := filepath.Join(dir, "users.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestImport(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	dir := t.TempDir()
	file := writeCSV(t, dir, 3000, 0, false)

	// The server refuses the third request: the import stops part way.
	s.bulkLimit.Store(2)
	out, _, err := s.users(t, "import", file, "--batch", "500", "--workers", "1", "-q")
	if err == nil || !strings.Contains(err.Error(), "re-run to resume") {
		t.Fatalf("interrupted import: err = %v\n%s", err, out)
	}
	if !strings.Contains(out, "Created 1000 subscribers, skipped 0") {
		t.Fatalf("interrupted import output: %q", out)
	}
	auto := filepath.Join(dir, "users.auto.csv")
	autoBefore, err := os.ReadFile(auto)
	if err != nil {
		t.Fatalf("generated passwords not saved: %v", err)
	}

	// Re-running creates the rest and skips what exists, with the same
	// generated passwords.
	s.bulkLimit.Store(0)
	out, errOut, err := s.users(t, "import", file, "--batch", "700")
	if err != nil {
		t.Fatalf("resumed import: %v\n%s", err, errOut)
	}
	if !strings.Contains(out, "Created 2000 subscribers, skipped 1000 already present, 0 failed") ||
		!strings.Contains(out, "Skipped (already provisioned): sip:20100") || !strings.Contains(out, "and 990 more") {
		t.Fatalf("resumed import output: %q", out)
	}
	if !strings.Contains(errOut, "[==============================] 100% 3000/3000") || !strings.Contains(errOut, "earlier run") {
		t.Fatalf("progress: %q", errOut)
	}
	if autoAfter, _ := os.ReadFile(auto); !bytes.Equal(autoBefore, autoAfter) {
		t.Fatal("passwords regenerated on re-run")
	}
	// The generated password is the one provisioned.
	var pw string
	for _, line := range strings.Split(string(autoBefore), "\n") {
		if strings.HasPrefix(line, "sip:2010000002@example.com,") {
			pw = line[strings.LastIndexByte(line, ',')+1:]
		}
	}
	av, err := s.store.AuthVector(ctx, hss.AVRequest{IMPI: "2010000002@example.com", IMPU: "sip:2010000002@example.com"})
	if err != nil || pw == "" || av.Digest.HA1 != hss.DigestHA1("2010000002@example.com", "example.com", pw) {
		t.Fatalf("generated password %q does not authenticate: %+v, %v", pw, av, err)
	}
	av, err = s.store.AuthVector(ctx, hss.AVRequest{IMPI: "2010000001@example.com", IMPU: "sip:2010000001@example.com"})
	if err != nil || av.Digest.HA1 != hss.DigestHA1("2010000001@example.com", "example.com", "pw1") {
		t.Fatalf("CSV password does not authenticate: %+v, %v", av, err)
	}

	// A third run creates nothing.
	out, _, err = s.users(t, "import", file, "-q")
	if err != nil || !strings.Contains(out, "Created 0 subscribers, skipped 3000 already present") || !strings.Contains(out, "and 2990 more") {
		t.Fatalf("third run: %v, %q", err, out)
	}

	// Bad rows are reported and fail the command; the good ones land.
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("sip:ok@example.com,,,pw\nnot-a-uri,,,pw\n"), 0o644)
	_, errOut, err = s.users(t, "import", bad, "-q")
	if err == nil || !strings.Contains(errOut, "failed: not-a-uri:") {
		t.Fatalf("bad rows: %v, %q", err, errOut)
	}
	if _, err := s.store.LookupPublicID(ctx, "sip:ok@example.com"); err != nil {
		t.Fatal(err)
	}
	tooWide := filepath.Join(dir, "wide.csv")
	os.WriteFile(tooWide, []byte("sip:a@b,a,b,c,d\n"), 0o644)
	if _, _, err := s.users(t, "import", tooWide); err == nil || !strings.Contains(err.Error(), "5 columns") {
		t.Fatalf("wide CSV: %v", err)
	}
}

// BenchmarkImport measures `users import` end to end: CSV, HTTP bulk
// requests, two-phase batched writes on a real (single-node, fsynced) site.
func BenchmarkImport(b *testing.B) {
	s := newSite(b)
	dir := b.TempDir()
	const per = 20000
	var total int
	var mu sync.Mutex
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		file := writeCSV(b, dir, per, i*per, true)
		b.StartTimer()
		var out, errOut bytes.Buffer
		if err := Users(context.Background(), []string{"import", file, "-q"}, &out, &errOut, s.client); err != nil {
			b.Fatalf("%v: %s", err, errOut.String())
		}
		mu.Lock()
		total += per
		mu.Unlock()
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "subscribers/s")
}
