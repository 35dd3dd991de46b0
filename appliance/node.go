package appliance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"

	"stillwater/appliance/config"
	"stillwater/consensus"
	"stillwater/consensus/wal"
	"stillwater/kv"
	"stillwater/timerwheel"
)

// Node is a running appliance node.
type Node struct {
	settings *Settings
	log      *slog.Logger
	level    *slog.LevelVar
	cons     *consensus.Node
	wal      *wal.WAL
	KV       *kv.Service
	Timers   *timerwheel.Service
	IMS      imsServices
	SIP      sipServices
	// GeneratedSignupKey is set when this start created the site and made
	// up Ellis's signup key, which the operator then needs to be shown.
	GeneratedSignupKey bool

	cfgMu sync.RWMutex
	cfg   *config.Config // local files merged with the site's shared_config

	servers  []*http.Server
	Listens  []Listener
	shutdown chan struct{} // closed when the node stops or asks to (decommissioned)
	stopOnce sync.Once
	once     sync.Once
}

// Listener names one interface the node serves.
type Listener struct {
	Name string
	Addr string
}

// Start brings up a node from its settings: storage, site membership and
// HTTP interfaces. It returns once the node serves them.
func Start(ctx context.Context, s *Settings, logOut *os.File) (*Node, error) {
	level := new(slog.LevelVar)
	level.Set(s.Config.LogLevel())
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level}))
	if err := os.MkdirAll(s.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory %s: %w", s.DataDir, err)
	}
	if err := s.ensureSiteKey(); err != nil {
		return nil, err
	}
	logs, w, err := consensus.OpenWAL(filepath.Join(s.DataDir, "wal"), log)
	if err != nil {
		if errors.Is(err, wal.ErrCorrupt) {
			return nil, fmt.Errorf("refusing to start: data directory %s is damaged: %w", s.DataDir, err)
		}
		return nil, fmt.Errorf("open write-ahead log: %w", err)
	}
	n := &Node{settings: s, log: log, level: level, wal: w, cfg: s.Config, shutdown: make(chan struct{})}
	cfg := s.Config
	consAddr := net.JoinHostPort(s.LocalIP, strconv.Itoa(cfg.Int("consensus_port")))
	n.cons = consensus.New(consensus.Config{
		NodeID: s.NodeID, Addr: consAddr, Site: cfg.String("local_site_name"), SiteKey: s.SiteKey,
		DataDir: s.DataDir, Seeds: s.Seeds, Bootstrap: s.Bootstrap, Shards: cfg.Int("shard_count"),
		Logs: logs, Logger: log, FaultInjection: cfg.Bool("fault_injection"),
	})
	n.KV = kv.New(n.cons, kv.Options{Logger: log})
	n.Timers = timerwheel.New(n.cons, timerwheel.Options{
		Logger: log,
		View:   func(shard int, fn func(*bolt.Tx) error) error { return n.cons.View(shard, fn) },
	})
	n.cons.SetMachines(n.KV, n.Timers)
	if err := n.cons.Start(ctx); err != nil {
		n.closeServices()
		return nil, err
	}
	if n.cons.Created() {
		if err := n.seedSharedConfig(ctx); err != nil {
			n.Close()
			return nil, err
		}
	}
	if err := n.awaitSharedConfig(ctx); err != nil {
		n.Close()
		return nil, err
	}
	n.applySharedConfig()
	go n.watchSharedConfig()

	n.Listens = append(n.Listens, Listener{"consensus (Raft, site TLS)", consAddr})
	if err := n.serve("timers (Chronos API)", cfg.Int("chronos_port"), n.Timers.HTTPHandler()); err != nil {
		n.Close()
		return nil, err
	}
	if err := n.serve("admin API", cfg.Int("admin_port"), n.adminHandler()); err != nil {
		n.Close()
		return nil, err
	}
	if err := n.startIMS(); err != nil {
		n.Close()
		return nil, err
	}
	if err := n.startSIP(); err != nil {
		n.Close()
		return nil, err
	}
	if n.cons.Created() {
		// A new site starts with a pool of numbers for Ellis to hand out.
		if _, _, err := n.IMS.Ellis.CreateNumbers(ctx, 6505550000, 1000, false, ""); err != nil {
			n.Close()
			return nil, fmt.Errorf("seed Ellis's number pool: %w", err)
		}
	}
	return n, nil
}

// serve listens on the node's address and serves h there.
func (n *Node) serve(name string, port int, h http.Handler) error {
	addr := net.JoinHostPort(n.settings.LocalIP, strconv.Itoa(port))
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EACCES) && port < 1024 {
		// A node run by an unprivileged user (make run) cannot bind the
		// portal's port 80; it serves on 8080 instead and says so.
		alt := net.JoinHostPort(n.settings.LocalIP, strconv.Itoa(port+8000))
		n.log.Warn("no permission for a privileged port; serving elsewhere", "interface", name, "wanted", addr, "using", alt)
		addr = alt
		ln, err = net.Listen("tcp", addr)
	}
	if err != nil {
		return fmt.Errorf("%s: listen on %s: %w", name, addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	n.servers = append(n.servers, srv)
	n.Listens = append(n.Listens, Listener{name, addr})
	go srv.Serve(ln)
	return nil
}

// seedSharedConfig stores the node's shared_config file in the meta group
// when the site has none yet, as Clearwater's first upload did.
func (n *Node) seedSharedConfig(ctx context.Context) error {
	if _, ok := n.cons.Config("shared_config"); ok {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(n.settings.ConfigDir, "shared_config"))
	if errors.Is(err, os.ErrNotExist) {
		b = nil
	} else if err != nil {
		return err
	}
	cfg, err := n.settings.Config.With(b)
	if err != nil {
		return err
	}
	hadKey := cfg.String("signup_key") != ""
	b, err = ensureEllisSecrets(b, func(name string) bool { return cfg.String(name) != "" })
	if err != nil {
		return err
	}
	n.GeneratedSignupKey = !hadKey
	return n.cons.SetConfig(ctx, "shared_config", b)
}

// awaitSharedConfig waits until this node's replica of the meta group holds
// the site's shared_config (a joining or restarting node replays it first),
// so that the functions start on the site's settings rather than the local
// file's.
func (n *Node) awaitSharedConfig(ctx context.Context) error {
	for {
		changed := n.cons.MetaChanged()
		if _, ok := n.cons.Config("shared_config"); ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the site's shared_config: %w", ctx.Err())
		case <-changed:
		}
	}
}

// Config is the configuration in force: the node's files with the site's
// shared_config.
func (n *Node) Config() *config.Config {
	n.cfgMu.RLock()
	defer n.cfgMu.RUnlock()
	return n.cfg
}

func (n *Node) watchSharedConfig() {
	for {
		select {
		case <-n.shutdown:
			return
		case <-n.cons.MetaChanged():
			n.applySharedConfig()
			n.applySIPConfig()
		}
	}
}

// applySharedConfig puts the site's shared_config into force on this node
// without a restart.
func (n *Node) applySharedConfig() {
	doc, ok := n.cons.Config("shared_config")
	if !ok {
		return
	}
	cfg, err := n.settings.Config.With(doc.Content)
	if err != nil {
		// Uploads are validated first; a document that no longer parses
		// (an older node) leaves the previous configuration in force.
		n.log.Error("shared_config from the site does not parse; keeping the previous one", "err", err)
		return
	}
	n.cfgMu.Lock()
	changed := n.cfg != cfg
	n.cfg = cfg
	n.cfgMu.Unlock()
	if changed {
		n.level.Set(cfg.LogLevel())
		n.log.Info("shared configuration applied", "version", doc.Version)
	}
}

// Done is closed when the node has left its site and should stop.
func (n *Node) Done() <-chan struct{} { return n.shutdown }

func (n *Node) stop() { n.stopOnce.Do(func() { close(n.shutdown) }) }

func (n *Node) closeServices() {
	n.Timers.Close()
	n.KV.Close()
}

// Close stops the node.
func (n *Node) Close() error {
	var err error
	n.once.Do(func() {
		n.stop()
		for _, s := range n.servers {
			s.Close()
		}
		if n.IMS.Ellis != nil {
			n.IMS.Ellis.Close()
		}
		if n.SIP.Core != nil {
			n.SIP.Core.Close()
			n.SIP.Registrar.Close()
		}
		n.closeServices()
		err = errors.Join(n.cons.Close(), n.wal.Close())
	})
	return err
}
