// Package baresip runs a real baresip SIP user agent (Debian package
// baresip 1.0.0) as a child process and controls it over its ctrl_tcp
// interface, so end-to-end tests can register, call and hang up while
// waiting on baresip's own events.
//
// Start writes a minimal config (G.711, a sine-tone source and a null
// player, so calls carry RTP without sound devices) and an accounts file
// into the config directory, then creates the account over ctrl_tcp so no
// registration event can fire before the driver listens.
package baresip

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configure one baresip user agent.
type Options struct {
	// Dir is the config directory passed to baresip -f. Empty means a
	// temporary directory that Close removes.
	Dir string
	// User is the user part of the account's AOR sip:User@Domain.
	User string
	// AuthUser is the digest username (IMS private identity); default User.
	AuthUser string
	// Password is the digest password; empty means no credentials.
	Password string
	// Domain is the AOR host and the REGISTER Request-URI; default LocalIP.
	Domain string
	// Outbound is the registrar / outbound proxy URI every request is sent
	// through, e.g. "sip:127.0.0.1:5060;transport=udp". When set, the UA
	// registers every RegInterval; when empty it never registers and is
	// reached directly at URI().
	Outbound string
	// RegInterval is the requested registration expiry in seconds
	// (default 3600).
	RegInterval int
	// LocalIP is the IPv4 address baresip binds SIP and RTP to and puts in
	// Contact and SDP; default 127.0.0.1.
	LocalIP string
	// SIPPort is the SIP port (UDP and TCP); 0 picks a free one.
	SIPPort int
	// Transport is "udp" (default) or "tcp" for requests the UA sends.
	Transport string
	// AutoAnswer makes baresip answer incoming calls itself; it then emits
	// no CALL_INCOMING, only CALL_ESTABLISHED.
	AutoAnswer bool
	// Binary is the baresip executable; default "baresip" from PATH.
	Binary string
	// ModulePath is where baresip's modules live; default DefaultModulePath.
	ModulePath string
	// Logger receives baresip's output at debug level; default slog.Default.
	Logger *slog.Logger
}

// UA is a running baresip process.
type UA struct {
	opts    Options
	log     *slog.Logger
	dir     string
	ownDir  bool
	cmd     *exec.Cmd
	out     *lineRing
	exited  chan struct{} // closed once the process has been reaped
	exitErr error         // valid after exited is closed
	conn    net.Conn
	readErr error         // valid after readDone is closed
	readDne chan struct{} // closed when the ctrl_tcp reader stops

	writeMu sync.Mutex

	mu      sync.Mutex
	events  []Event                 // not yet consumed by WaitEvent
	changed chan struct{}           // closed and replaced on every state change
	pending map[string]chan message // command responses by token
	token   uint64
	reg     regStatus
	regWhy  string // REGISTER_FAIL reason

	closeOnce sync.Once
	closeErr  error
}

// maxQueuedEvents bounds memory when nobody consumes periodic events such
// as CALL_RTCP.
const maxQueuedEvents = 4096

// Start writes a config for o into o.Dir, starts baresip and connects to
// its control socket. ctx bounds start-up only; the process runs until
// Close.
func Start(ctx context.Context, o Options) (*UA, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	if err := checkModules(o.ModulePath); err != nil {
		return nil, err
	}
	bin, err := exec.LookPath(o.Binary)
	if err != nil {
		return nil, fmt.Errorf("baresip: find executable (install the Debian baresip package): %w", err)
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	dir, ownDir := o.Dir, false
	if dir == "" {
		if dir, err = os.MkdirTemp("", "baresip-"+o.User+"-"); err != nil {
			return nil, fmt.Errorf("baresip: create config dir: %w", err)
		}
		ownDir = true
	}
	// A free port picked here can be taken before baresip binds it, so an
	// exit during start-up is retried a few times with fresh ports.
	const attempts = 3
	for i := 1; ; i++ {
		u, err := start(ctx, o, bin, dir, log)
		if err == nil {
			u.ownDir = ownDir
			return u, nil
		}
		if i >= attempts || ctx.Err() != nil || !errors.Is(err, ErrExited) {
			if ownDir {
				_ = os.RemoveAll(dir)
			}
			return nil, err
		}
		log.Debug("baresip exited during start-up, retrying with new ports", "user", o.User, "err", err)
	}
}

// ErrExited is wrapped by errors reporting that the baresip process ended
// while the driver needed it.
var ErrExited = errors.New("baresip exited")

func start(ctx context.Context, o Options, bin, dir string, log *slog.Logger) (*UA, error) {
	if o.SIPPort == 0 {
		p, err := freePort(o.LocalIP, true)
		if err != nil {
			return nil, err
		}
		o.SIPPort = p
	}
	ctrlPort, err := freePort("127.0.0.1", false)
	if err != nil {
		return nil, err
	}
	ctrlAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ctrlPort))
	if err := writeFiles(dir, &o, ctrlAddr); err != nil {
		return nil, err
	}

	u := &UA{
		opts:    o,
		log:     log.With("ua", o.User),
		dir:     dir,
		exited:  make(chan struct{}),
		readDne: make(chan struct{}),
		changed: make(chan struct{}),
		pending: map[string]chan message{},
	}
	u.out = newLineRing(40, u.log)
	u.cmd = exec.Command(bin, "-f", dir, "-v")
	u.cmd.Stdout = u.out
	u.cmd.Stderr = u.out
	setProcAttr(u.cmd)
	if err := u.cmd.Start(); err != nil {
		return nil, fmt.Errorf("baresip: start %s: %w", bin, err)
	}
	go func() {
		u.exitErr = u.cmd.Wait()
		close(u.exited)
	}()

	conn, err := u.dialCtrl(ctx, ctrlAddr)
	if err != nil {
		u.kill()
		return nil, err
	}
	u.conn = conn
	go u.readLoop()

	// The account is created only now, over the control socket, so that
	// every event it causes (REGISTERING, REGISTER_OK/FAIL, ...) reaches us;
	// loading the accounts file at start-up would race with this connection.
	if _, err := u.command(ctx, "uanew", strings.TrimSuffix(renderAccount(&o), "\n")); err != nil {
		_ = u.Close()
		return nil, err
	}
	u.log.Debug("baresip started", "sip", u.URI(), "ctrl", ctrlAddr, "dir", dir)
	return u, nil
}

// dialCtrl connects to ctrl_tcp, retrying until baresip listens, exits or
// ctx ends.
func (u *UA) dialCtrl(ctx context.Context, addr string) (net.Conn, error) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			return conn, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("baresip: waiting for ctrl_tcp on %s: %w%s", addr, ctx.Err(), u.tail())
		case <-u.exited:
			return nil, fmt.Errorf("%w during start-up (%v)%s", ErrExited, u.exitErr, u.tail())
		case <-tick.C:
		}
	}
}

// readLoop delivers ctrl_tcp events and responses until the socket closes.
func (u *UA) readLoop() {
	r := bufio.NewReader(u.conn)
	var err error
	for {
		var b []byte
		if b, err = readNetstring(r); err != nil {
			break
		}
		m, derr := decodeMessage(b)
		if derr != nil {
			u.log.Warn("baresip: bad ctrl_tcp message", "err", derr)
			continue
		}
		u.mu.Lock()
		if m.Event {
			u.addEventLocked(m.ev)
		} else if ch, ok := u.pending[m.Token]; ok {
			delete(u.pending, m.Token)
			ch <- m
		}
		u.mu.Unlock()
	}
	u.mu.Lock()
	u.readErr = err
	u.mu.Unlock()
	close(u.readDne)
}

func (u *UA) addEventLocked(ev Event) {
	u.log.Debug("baresip event", "type", ev.Type, "param", ev.Param, "peer", ev.PeerURI)
	switch ev.Type {
	case EventRegisterOK:
		u.setRegLocked(regOK, "")
	case EventRegisterFail:
		u.setRegLocked(regFailed, ev.Param)
	}
	if len(u.events) >= maxQueuedEvents {
		u.events = u.events[1:]
	}
	u.events = append(u.events, ev)
	u.broadcastLocked()
}

func (u *UA) setRegLocked(st regStatus, why string) {
	u.reg, u.regWhy = st, why
	u.broadcastLocked()
}

func (u *UA) broadcastLocked() {
	close(u.changed)
	u.changed = make(chan struct{})
}

// regStatus is the account's registration state as far as the driver knows.
type regStatus int

const (
	regPending regStatus = iota
	regOK
	regFailed
)

// command sends one ctrl_tcp command and returns its response text.
func (u *UA) command(ctx context.Context, name, params string) (string, error) {
	ch := make(chan message, 1)
	u.mu.Lock()
	u.token++
	tok := strconv.FormatUint(u.token, 10)
	u.pending[tok] = ch
	u.mu.Unlock()
	defer func() {
		u.mu.Lock()
		delete(u.pending, tok)
		u.mu.Unlock()
	}()

	b, err := json.Marshal(command{Command: name, Params: params, Token: tok})
	if err != nil {
		return "", fmt.Errorf("baresip: encode %s: %w", name, err)
	}
	u.writeMu.Lock()
	if dl, ok := ctx.Deadline(); ok {
		_ = u.conn.SetWriteDeadline(dl)
	}
	_, err = u.conn.Write(encodeNetstring(b))
	_ = u.conn.SetWriteDeadline(time.Time{})
	u.writeMu.Unlock()
	if err != nil {
		return "", fmt.Errorf("baresip: send %s: %w%s", name, err, u.tail())
	}
	select {
	case m := <-ch:
		if !m.OK {
			return m.Data, fmt.Errorf("baresip: %s %q failed: %s", name, params, strings.TrimSpace(m.Data))
		}
		return m.Data, nil
	case <-ctx.Done():
		return "", fmt.Errorf("baresip: waiting for %s response: %w", name, ctx.Err())
	case <-u.readDne:
		return "", u.goneErr("waiting for " + name + " response")
	}
}

// goneErr describes a control connection that ended, with baresip's last
// output.
func (u *UA) goneErr(what string) error {
	select {
	case <-u.exited:
		return fmt.Errorf("%w while %s (%v)%s", ErrExited, what, u.exitErr, u.tail())
	case <-time.After(2 * time.Second):
		u.mu.Lock()
		rerr := u.readErr
		u.mu.Unlock()
		return fmt.Errorf("baresip: %s: control connection closed (%v)%s", what, rerr, u.tail())
	}
}

// tail formats baresip's last output lines for an error message.
func (u *UA) tail() string {
	lines := u.out.Lines()
	if len(lines) == 0 {
		return ""
	}
	return "; last output:\n\t" + strings.Join(lines, "\n\t")
}

// URI is the address peers dial to reach this UA directly.
func (u *UA) URI() string {
	s := fmt.Sprintf("sip:%s@%s", u.opts.User, net.JoinHostPort(u.opts.LocalIP, strconv.Itoa(u.opts.SIPPort)))
	if u.opts.Transport == "tcp" {
		s += ";transport=tcp"
	}
	return s
}

// SIPPort is the port baresip listens on for SIP (UDP and TCP).
func (u *UA) SIPPort() int { return u.opts.SIPPort }

// Dir is the config directory in use.
func (u *UA) Dir() string { return u.dir }

// WaitRegistered waits until the registrar has accepted the account. A
// REGISTER_FAIL (e.g. "401 Unauthorized") is returned as an error at once.
func (u *UA) WaitRegistered(ctx context.Context) error {
	if u.opts.Outbound == "" {
		return errors.New("baresip: WaitRegistered: no Outbound configured, the UA does not register")
	}
	for {
		u.mu.Lock()
		st, why, ch := u.reg, u.regWhy, u.changed
		u.mu.Unlock()
		switch {
		case st == regOK:
			return nil
		case st == regFailed:
			return fmt.Errorf("baresip: registration of sip:%s@%s via %s failed: %s", u.opts.User, u.opts.Domain, u.opts.Outbound, why)
		}
		if err := u.waitChange(ctx, ch, "registration"); err != nil {
			return err
		}
	}
}

// WaitEvent returns the oldest not yet returned event of type typ, waiting
// for one if needed. Events of other types stay queued.
func (u *UA) WaitEvent(ctx context.Context, typ string) (Event, error) {
	for {
		u.mu.Lock()
		for i, ev := range u.events {
			if ev.Type == typ {
				u.events = append(u.events[:i], u.events[i+1:]...)
				u.mu.Unlock()
				return ev, nil
			}
		}
		ch := u.changed
		u.mu.Unlock()
		if err := u.waitChange(ctx, ch, "event "+typ); err != nil {
			return Event{}, err
		}
	}
}

// waitChange blocks until ch is closed, ctx ends or baresip goes away.
func (u *UA) waitChange(ctx context.Context, ch chan struct{}, what string) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("baresip %s: waiting for %s: %w", u.opts.User, what, ctx.Err())
	case <-u.readDne:
		// Events read before the socket closed are already queued; let
		// the caller rescan once, then report the exit.
		u.mu.Lock()
		changedSince := ch != u.changed
		u.mu.Unlock()
		if changedSince {
			return nil
		}
		return u.goneErr("waiting for " + what)
	}
}

// Dial starts a call to uri; wait for CALL_ESTABLISHED or CALL_CLOSED.
func (u *UA) Dial(ctx context.Context, uri string) error {
	if uri == "" || strings.ContainsAny(uri, "\r\n") {
		return fmt.Errorf("baresip: Dial: invalid URI %q", uri)
	}
	_, err := u.command(ctx, "dial", uri)
	return err
}

// Answer accepts the current incoming call; call it after CALL_INCOMING.
func (u *UA) Answer(ctx context.Context) error {
	_, err := u.command(ctx, "accept", "")
	return err
}

// Hangup ends (or rejects) the current call.
func (u *UA) Hangup(ctx context.Context) error {
	_, err := u.command(ctx, "hangup", "")
	return err
}

// Close asks baresip to quit, kills it if it does not exit promptly, and
// removes a temporary config directory.
func (u *UA) Close() error {
	u.closeOnce.Do(func() {
		select {
		case <-u.exited:
		default:
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			_, qerr := u.command(ctx, "quit", "")
			cancel()
			if qerr != nil {
				u.log.Debug("baresip quit command failed", "err", qerr)
			}
			select {
			case <-u.exited:
			case <-time.After(5 * time.Second):
				u.log.Warn("baresip did not quit, killing it", "ua", u.opts.User)
			}
		}
		u.kill()
		if u.conn != nil {
			_ = u.conn.Close()
			<-u.readDne
		}
		if u.ownDir {
			if err := os.RemoveAll(u.dir); err != nil {
				u.closeErr = fmt.Errorf("baresip: remove %s: %w", u.dir, err)
			}
		}
	})
	return u.closeErr
}

// kill ends the process and waits until it is reaped.
func (u *UA) kill() {
	select {
	case <-u.exited:
		return
	default:
	}
	_ = u.cmd.Process.Kill()
	<-u.exited
}

// freePort finds a port free on ip for TCP (and UDP when both is set).
func freePort(ip string, both bool) (int, error) {
	var lastErr error
	for range 20 {
		l, err := net.Listen("tcp4", net.JoinHostPort(ip, "0"))
		if err != nil {
			return 0, fmt.Errorf("baresip: pick a free port on %s: %w", ip, err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		if !both {
			_ = l.Close()
			return port, nil
		}
		pc, err := net.ListenPacket("udp4", net.JoinHostPort(ip, strconv.Itoa(port)))
		_ = l.Close()
		if err != nil {
			lastErr = err
			continue
		}
		_ = pc.Close()
		return port, nil
	}
	return 0, fmt.Errorf("baresip: no port free for both UDP and TCP on %s: %w", ip, lastErr)
}
