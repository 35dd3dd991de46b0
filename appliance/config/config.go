package config

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is a node's merged name=value configuration. It is immutable, so it
// can be shared between goroutines; With makes a changed copy.
type Config struct {
	files [len(loadOrder)]Settings // indexed as loadOrder
	eff   map[string]Setting       // the setting that won, per option
}

// Load reads dir/shared_config, dir/local_config and dir/user_settings,
// later files overriding earlier ones as Clearwater's scripts do. Missing
// files are skipped. All problems found in any file are returned together,
// and the configuration is refused if there are any.
func Load(dir string) (*Config, error) {
	c := &Config{}
	var errs []error
	for i, f := range loadOrder {
		path := filepath.Join(dir, fileNames[f])
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s, err := parse(f, path, data)
		if err != nil {
			errs = append(errs, err)
		}
		c.files[i] = s
	}
	c.merge()
	errs = append(errs, c.crossCheck()...)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// With returns a copy of c whose shared_config is replaced by shared, as when
// an operator uploads a new one; errors name the file "shared_config".
func (c *Config) With(shared []byte) (*Config, error) {
	s, err := parse(SharedConfig, "shared_config", shared)
	if err != nil {
		return nil, err
	}
	n := &Config{files: c.files}
	n.files[slices.Index(loadOrder[:], SharedConfig)] = s
	n.merge()
	if err := errors.Join(n.crossCheck()...); err != nil {
		return nil, err
	}
	return n, nil
}

func (c *Config) merge() {
	c.eff = map[string]Setting{}
	for _, s := range c.files {
		for _, set := range s {
			c.eff[set.Name] = set
		}
	}
}

// crossCheck finds problems that involve more than one option.
func (c *Config) crossCheck() []error {
	var errs []error
	fail := func(s Setting, format string, args ...any) {
		errs = append(errs, &Error{File: s.File, Line: s.Line, Option: s.Name, Msg: fmt.Sprintf(format, args...)})
	}
	if p, ok := c.Source("etcd_proxy"); ok && p.Value != "" && c.String("etcd_cluster") != "" {
		fail(p, "cannot be set together with etcd_cluster")
	}
	site := c.String("local_site_name")
	for _, name := range []string{"sprout_registration_store", "sprout_impi_store", "homestead_impu_store", "ralf_session_store"} {
		s, ok := c.Source(name)
		if !ok || s.Value == "" {
			continue
		}
		if sites := storeSites(s.Value); len(sites) > 0 && !slices.Contains(sites, site) {
			fail(s, "no store for the local site %q (local_site_name)", site)
		}
	}
	return errs
}

// Source returns the setting that gave name its value, and false when the
// option was not set in any file (its value is then the default).
func (c *Config) Source(name string) (Setting, bool) {
	option(name)
	s, ok := c.eff[name]
	return s, ok
}

// Settings returns the settings in effect, one per option set, by name.
func (c *Config) Settings() Settings {
	out := make(Settings, 0, len(c.eff))
	for _, s := range c.eff {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Setting) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// option returns the table entry for name. Asking for an option that is not
// in the table is a programming error, not bad input, so it panics.
func option(name string) *Option {
	o, ok := table[name]
	if !ok {
		panic(fmt.Sprintf("config: unknown option %q", name))
	}
	return &o
}

func typed(name string, types ...Type) *Option {
	o := option(name)
	if !slices.Contains(types, o.Type) {
		panic(fmt.Sprintf("config: option %q is of type %s, not %s", name, o.Type, types[0]))
	}
	return o
}

// String returns the value of any option: as set, or else its default, or
// "" when it has neither. An empty value in a file leaves the default.
func (c *Config) String(name string) string {
	o := option(name)
	if s, ok := c.eff[name]; ok && s.Value != "" {
		return s.Value
	}
	if o.derive != nil {
		return o.derive(c)
	}
	return o.Default
}

// Int returns an integer option (TypeInt, or TypeDuration as a count of its
// unit), or 0 when it has no value.
func (c *Config) Int(name string) int {
	typed(name, TypeInt, TypeDuration)
	v := c.String(name)
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		panic(fmt.Sprintf("config: option %q: %v", name, err)) // values are checked on load
	}
	return n
}

// Float returns a TypeFloat option, or 0 when it has no value.
func (c *Config) Float(name string) float64 {
	typed(name, TypeFloat)
	v := c.String(name)
	if v == "" {
		return 0
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		panic(fmt.Sprintf("config: option %q: %v", name, err))
	}
	return f
}

// Bool returns a Y/N option; false when it has no value.
func (c *Config) Bool(name string) bool {
	typed(name, TypeBool)
	b, _ := parseBool(c.String(name))
	return b
}

// Duration returns a TypeDuration option, or 0 when it has no value.
func (c *Config) Duration(name string) time.Duration {
	o := typed(name, TypeDuration)
	return time.Duration(c.Int(name)) * o.Unit
}

// List returns the entries of a list option, or nil when it has no value.
func (c *Config) List(name string) []string {
	typed(name, TypeIPList, TypeHostList, TypeNameList, TypeEnumList, TypeStoreList)
	v := c.String(name)
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// Log levels below slog.LevelInfo for Clearwater's two most detailed ones.
const (
	LevelDetail = slog.LevelInfo - 2  // Clearwater's "info"
	LevelTrace  = slog.LevelDebug - 4 // Clearwater's "debug"
)

// LogLevel returns the least severe slog level to log at, from log_level.
//
// Clearwater's log_level N logs every message of severity N or lower, the
// severities being 0 error, 1 warning, 2 status, 3 info, 4 verbose and 5
// debug. In slog terms they are Error, Warn, Info (status: what an operator
// wants by default), LevelDetail, Debug and LevelTrace, so:
//
//	1 → slog.LevelWarn   errors and warnings
//	2 → slog.LevelInfo   and status (the default)
//	3 → LevelDetail      and info
//	4 → slog.LevelDebug  and verbose
//	5 → LevelTrace       and debug: everything
func (c *Config) LogLevel() slog.Level {
	switch c.Int("log_level") {
	case 1:
		return slog.LevelWarn
	case 2:
		return slog.LevelInfo
	case 3:
		return LevelDetail
	case 4:
		return slog.LevelDebug
	default:
		return LevelTrace
	}
}
