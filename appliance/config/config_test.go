package config

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLoadGolden loads each directory under testdata/load.
func TestLoadGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/load/*")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, dir := range dirs {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			continue
		}
		n++
		t.Run(dir, func(t *testing.T) {
			c, err := Load(dir)
			out := ""
			if err == nil {
				out = renderConfig(c)
			}
			checkResult(t, dir, out, err)
		})
	}
	if n == 0 {
		t.Fatal("no inputs")
	}
}

// renderConfig shows the settings in effect with where they came from, and
// the values of options that follow from them.
func renderConfig(c *Config) string {
	var b strings.Builder
	for _, s := range c.Settings() {
		fmt.Fprintf(&b, "%s=%q from %s:%d\n", s.Name, s.Value, filepath.Base(s.File), s.Line)
	}
	b.WriteString("--\n")
	for _, name := range []string{"node_id", "upstream_hostname", "scscf_uri", "scscf_node_uri", "sprout_impi_store",
		"sprout_homestead_timeout_ms", "sprout_chronos_callback_uri", "ralf_chronos_callback_uri", "hs_diameteridentity",
		"signaling_dns_server", "shard_count", "data_dir"} {
		fmt.Fprintf(&b, "%s=%q\n", name, c.String(name))
	}
	fmt.Fprintf(&b, "LogLevel=%v\n", c.LogLevel())
	return b.String()
}

func TestLoadMissingFiles(t *testing.T) {
	c, err := Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, want string }{
		{"log_level", "2"},
		{"local_site_name", "site1"},
		{"data_dir", "/var/lib/stillwater"},
		{"shard_count", "16"},
		{"consensus_port", "2380"},
		{"admin_port", "9880"},
		{"chronos_port", "7253"},
		{"fault_injection", "N"},
		{"node_id", ""},
		{"scscf", "5054"},
		{"scscf_prefix", "scscf"},
		{"scscf_uri", ""},
		{"gemini", "0"},
		{"sprout_target_latency_us", "10000"},
		{"ralf_target_latency_us", "100000"},
		{"hss_reregistration_time", "150"},
		{"sprout_homestead_timeout_ms", "950"},
		{"signaling_dns_server", "127.0.0.1"},
	}
	for _, tt := range tests {
		if got := c.String(tt.name); got != tt.want {
			t.Errorf("String(%q) = %q, want %q", tt.name, got, tt.want)
		}
		if _, ok := c.Source(tt.name); ok {
			t.Errorf("Source(%q) found a setting in an empty directory", tt.name)
		}
	}
	if c.LogLevel() != slog.LevelInfo {
		t.Errorf("LogLevel = %v", c.LogLevel())
	}
	if c.Bool("fault_injection") {
		t.Error("fault_injection is on by default")
	}
	if got := c.Duration("reg_max_expires"); got != 5*time.Minute {
		t.Errorf("Duration(reg_max_expires) = %v", got)
	}
	if got := c.Duration("sprout_target_latency_us"); got != 10*time.Millisecond {
		t.Errorf("Duration(sprout_target_latency_us) = %v", got)
	}
	if got := c.Float("sprout_min_token_rate"); got != 10 {
		t.Errorf("Float(sprout_min_token_rate) = %v", got)
	}
	if got := c.List("etcd_cluster"); got != nil {
		t.Errorf("List(etcd_cluster) = %q", got)
	}
	if got := c.List("signaling_dns_server"); len(got) != 1 || got[0] != "127.0.0.1" {
		t.Errorf("List(signaling_dns_server) = %q", got)
	}
	if got, want := c.String("num_worker_threads"), perCore(50); got != want {
		t.Errorf("num_worker_threads = %s, want %s", got, want)
	}
}

func TestLoadUnreadable(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "local_config"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil {
		t.Fatal("Load read a directory as local_config")
	}
}

func TestLogLevel(t *testing.T) {
	want := map[string]slog.Level{
		"1": slog.LevelWarn, "2": slog.LevelInfo, "3": LevelDetail, "4": slog.LevelDebug, "5": LevelTrace,
	}
	for v, level := range want {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "user_settings"), []byte("log_level="+v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.LogLevel(); got != level {
			t.Errorf("log_level=%s: LogLevel = %v, want %v", v, got, level)
		}
	}
}

func TestWith(t *testing.T) {
	c, err := Load("testdata/load/gr_node")
	if err != nil {
		t.Fatal(err)
	}
	n, err := c.With([]byte("home_domain=example.org\nshard_count=32\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := n.String("home_domain"); got != "example.org" {
		t.Errorf("new home_domain = %q", got)
	}
	if got := c.String("home_domain"); got != "example.com" {
		t.Errorf("old config changed: home_domain = %q", got)
	}
	if got := n.String("sprout_hostname"); got != "" {
		t.Errorf("sprout_hostname survived the new shared_config: %q", got)
	}
	if got := n.String("local_ip"); got != "10.1.0.7" {
		t.Errorf("local_config lost: local_ip = %q", got)
	}
	if s, _ := n.Source("home_domain"); s.File != "shared_config" || s.Line != 1 {
		t.Errorf("Source(home_domain) = %+v", s)
	}

	tests := []struct{ shared, err string }{
		{"log_level=7\n", `shared_config:1: option "log_level": "7" is not in 1..5`},
		{"node_id=n1\n", `shared_config:1: option "node_id": may only be set in local_config`},
		{"sprout_registration_store=\"siteA=a.example.com\"\n",
			`shared_config:1: option "sprout_registration_store": no store for the local site "siteB" (local_site_name)`},
	}
	for _, tt := range tests {
		if _, err := c.With([]byte(tt.shared)); err == nil || err.Error() != tt.err {
			t.Errorf("With(%q): %v, want %s", tt.shared, err, tt.err)
		}
	}
}

func TestAccessorMisuse(t *testing.T) {
	c, err := Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func()
		want string
	}{
		{"unknown", func() { c.String("no_such_option") }, `config: unknown option "no_such_option"`},
		{"Int", func() { c.Int("home_domain") }, `config: option "home_domain" is of type host, not integer`},
		{"Bool", func() { c.Bool("log_level") }, `config: option "log_level" is of type integer, not Y/N`},
		{"List", func() { c.List("local_ip") }, `config: option "local_ip" is of type IP address, not IP address list`},
		{"Duration", func() { c.Duration("log_level") }, `config: option "log_level" is of type integer, not duration`},
		{"Source", func() { c.Source("nope") }, `config: unknown option "nope"`},
	}
	for _, tt := range tests {
		func() {
			defer func() {
				if r := recover(); r != tt.want {
					t.Errorf("%s: panic %v, want %s", tt.name, r, tt.want)
				}
			}()
			tt.call()
		}()
	}
}
