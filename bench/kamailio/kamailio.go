// Package kamailio runs Kamailio as a reference SIP registrar and proxy with
// digest authentication, so that the SIP acceptance scenarios and benchmarks
// can be checked against a known implementation before Stillwater's own.
package kamailio

import (
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"stillwater/bench/serverproc"
)

//go:embed kamailio.cfg.tmpl
var cfgTemplate string

// Options describe one Kamailio instance.
type Options struct {
	Dir      string            // working directory for kamailio.cfg and the users table (required)
	Addr     string            // listen address; default 127.0.0.1
	Port     int               // UDP and TCP port; 0 picks a free one
	Domain   string            // served domain and digest realm; default example.com
	Users    map[string]string // digest user name → password
	Children int               // UDP and TCP worker processes; default 2
	// NotRegisteredCode answers a request for a known user without a
	// binding; default 480, as an IMS core answers (stock Kamailio says 404).
	NotRegisteredCode int
	MaxTCP            int       // tcp_max_connections; default 4096
	ShmMB             int       // shared memory (-m); default 256
	Binary            string    // default "kamailio" on $PATH
	ModulesDir        string    // default: found under /usr/lib*/kamailio/modules
	Stderr            io.Writer // also receives Kamailio's log, if set
}

// Server is a running Kamailio.
type Server struct {
	Addr   string
	Port   int
	Domain string
	Config string // path of the generated kamailio.cfg

	cmd  *exec.Cmd
	done chan struct{}
	err  error // exit status, valid once done is closed
	log  *serverproc.Tail
	once sync.Once
}

// HostPort is the address SIP clients send to.
func (s *Server) HostPort() string { return net.JoinHostPort(s.Addr, strconv.Itoa(s.Port)) }

// PID is the main process's id, which is also the process group of all of
// Kamailio's processes.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Log returns the tail of Kamailio's log output.
func (s *Server) Log() string { return s.log.String() }

func (o *Options) defaults() error {
	if o.Dir == "" {
		return errors.New("kamailio: Options.Dir is required")
	}
	if o.Addr == "" {
		o.Addr = "127.0.0.1"
	}
	if o.Domain == "" {
		o.Domain = "example.com"
	}
	if o.Children <= 0 {
		o.Children = 2
	}
	if o.NotRegisteredCode == 0 {
		o.NotRegisteredCode = 480
	}
	if o.NotRegisteredCode < 300 || o.NotRegisteredCode > 699 {
		return fmt.Errorf("kamailio: NotRegisteredCode %d is not a final error status", o.NotRegisteredCode)
	}
	if o.MaxTCP <= 0 {
		o.MaxTCP = 4096
	}
	if o.ShmMB <= 0 {
		o.ShmMB = 256
	}
	if o.Binary == "" {
		o.Binary = "kamailio"
	}
	if o.ModulesDir == "" {
		dirs, _ := filepath.Glob("/usr/lib*/*/kamailio/modules")
		more, _ := filepath.Glob("/usr/lib*/kamailio/modules")
		dirs = append(dirs, more...)
		for _, d := range dirs {
			if _, err := os.Stat(filepath.Join(d, "tm.so")); err == nil {
				o.ModulesDir = d
				break
			}
		}
		if o.ModulesDir == "" {
			return errors.New("kamailio: no module directory with tm.so under /usr/lib (is the kamailio package installed?)")
		}
	}
	if o.Port == 0 {
		p, err := serverproc.FreePort(o.Addr)
		if err != nil {
			return err
		}
		o.Port = p
	}
	return nil
}

// WriteConfig fills in defaults and writes kamailio.cfg and the users table
// under o.Dir, returning the configuration's path.
func WriteConfig(o *Options) (string, error) {
	if err := o.defaults(); err != nil {
		return "", err
	}
	dbDir := filepath.Join(o.Dir, "db")
	if err := os.MkdirAll(dbDir, 0o755); err != nil {
		return "", fmt.Errorf("kamailio: %w", err)
	}
	if err := writeUsers(filepath.Join(dbDir, "users"), o.Users); err != nil {
		return "", err
	}
	secret := make([]byte, 16)
	rand.Read(secret)
	tmpl, err := template.New("kamailio.cfg").Parse(cfgTemplate)
	if err != nil {
		return "", fmt.Errorf("kamailio: config template: %w", err)
	}
	var b bytes.Buffer
	err = tmpl.Execute(&b, map[string]any{
		"Addr": o.Addr, "Port": o.Port, "Domain": o.Domain, "Children": o.Children,
		"DBDir": dbDir, "MaxTCP": o.MaxTCP, "ModulesDir": o.ModulesDir, "Secret": hex.EncodeToString(secret),
		"NotRegisteredCode": o.NotRegisteredCode, "NotRegisteredReason": reason(o.NotRegisteredCode),
	})
	if err != nil {
		return "", fmt.Errorf("kamailio: config template: %w", err)
	}
	path := filepath.Join(o.Dir, "kamailio.cfg")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("kamailio: %w", err)
	}
	return path, nil
}

func reason(code int) string {
	switch code {
	case 404:
		return "Not Found"
	case 480:
		return "Temporarily Unavailable"
	}
	return "Not Registered"
}

// writeUsers writes the htable "users" as a db_text table: one row per user
// with the password as a string value.
func writeUsers(path string, users map[string]string) error {
	var b strings.Builder
	b.WriteString("id(int,auto) key_name(string) key_type(int) value_type(int) key_value(string) expires(int)\n")
	names := make([]string, 0, len(users))
	for n := range users {
		names = append(names, n)
	}
	slices.Sort(names)
	esc := strings.NewReplacer(`\`, `\\`, ":", `\:`)
	for i, n := range names {
		pw := users[n]
		if n == "" || strings.ContainsAny(n+pw, "\r\n\x00") {
			return fmt.Errorf("kamailio: user %q: empty name or control characters in name or password", n)
		}
		fmt.Fprintf(&b, "%d:%s:0:0:%s:0\n", i+1, esc.Replace(n), esc.Replace(pw))
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("kamailio: users table: %w", err)
	}
	return nil
}

// Check writes the configuration and has Kamailio check it (kamailio -c).
func Check(ctx context.Context, o Options) error {
	cfg, err := WriteConfig(&o)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, o.Binary, "-c", "-f", cfg).CombinedOutput()
	if err != nil {
		return fmt.Errorf("kamailio -c -f %s: %w\n%s", cfg, err, tail(out, 4000))
	}
	return nil
}

// Start writes the configuration, runs Kamailio in the foreground and returns
// once it answers on its UDP and TCP sockets (at most 15 s). Close stops it.
func Start(ctx context.Context, o Options) (*Server, error) {
	cfg, err := WriteConfig(&o)
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: o.Addr, Port: o.Port, Domain: o.Domain, Config: cfg, done: make(chan struct{}), log: serverproc.NewTail(64 << 10)}
	cmd := exec.Command(o.Binary, "-DD", "-E", "-m", strconv.Itoa(o.ShmMB), "-f", cfg)
	cmd.Dir = o.Dir
	var w io.Writer = s.log
	if o.Stderr != nil {
		w = io.MultiWriter(s.log, o.Stderr)
	}
	cmd.Stdout, cmd.Stderr = w, w
	// Kamailio forks its workers: a process group lets Close stop them all.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("kamailio: start %s: %w", o.Binary, err)
	}
	s.cmd = cmd
	go func() {
		s.err = cmd.Wait()
		close(s.done)
	}()
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := s.waitReady(wctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("kamailio on %s: %w\n%s", s.HostPort(), err, s.Log())
	}
	return s, nil
}

// StartTest starts Kamailio for a test in a temporary directory (unless
// o.Dir is set) and stops it when the test ends.
func StartTest(t testing.TB, o Options) *Server {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// waitReady polls the TCP listener, then sends OPTIONS over UDP until any
// SIP response comes back.
func (s *Server) waitReady(ctx context.Context) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	wait := func() error {
		select {
		case <-s.done:
			return fmt.Errorf("exited: %v", s.err)
		case <-ctx.Done():
			return fmt.Errorf("not answering: %w", ctx.Err())
		case <-tick.C:
			return nil
		}
	}
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", s.HostPort())
		if err == nil {
			c.Close()
			break
		}
		if err := wait(); err != nil {
			return err
		}
	}
	conn, err := net.ListenPacket("udp", net.JoinHostPort(s.Addr, "0"))
	if err != nil {
		return err
	}
	defer conn.Close()
	dst, err := net.ResolveUDPAddr("udp", s.HostPort())
	if err != nil {
		return err
	}
	lport := conn.LocalAddr().(*net.UDPAddr).Port
	probe := fmt.Sprintf("OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/UDP %s:%d;branch=z9hG4bK-ready-%d\r\n"+
		"From: <sip:probe@%s>;tag=ready\r\nTo: <sip:%s>\r\nCall-ID: ready-%d@%s\r\nCSeq: 1 OPTIONS\r\n"+
		"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n", s.HostPort(), s.Addr, lport, lport, s.Domain, s.HostPort(), lport, s.Addr)
	buf := make([]byte, 4096)
	for {
		if _, err := conn.WriteTo([]byte(probe), dst); err != nil {
			return err
		}
		conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, _, err := conn.ReadFrom(buf)
		if err == nil && bytes.HasPrefix(buf[:n], []byte("SIP/2.0 ")) {
			return nil
		}
		if err := wait(); err != nil {
			return err
		}
	}
}

// Close stops Kamailio: SIGTERM to its main process (which stops the
// workers), then SIGKILL to the process group if it has not exited in 5 s.
func (s *Server) Close() error {
	s.once.Do(func() {
		pid := s.cmd.Process.Pid
		syscall.Kill(pid, syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
		}
		// Workers that outlive the main process would keep the port.
		syscall.Kill(-pid, syscall.SIGKILL)
		<-s.done
	})
	return nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
