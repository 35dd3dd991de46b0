package appliance

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"stillwater/appliance/config"
)

// Settings are the node-local facts derived from the configuration files
// that both the node and the stillwater command need.
type Settings struct {
	Config    *config.Config
	ConfigDir string
	DataDir   string
	LocalIP   string
	NodeID    string
	SiteKey   []byte
	Seeds     []string // consensus addresses of the other nodes in etcd_cluster
	Bootstrap bool     // this node creates the site when it has no state
}

// LoadSettings reads the configuration directory. dataDir, when not empty,
// overrides data_dir. A node without a configured site_key keeps a generated
// one in its data directory, which is how an all-in-one node starts with no
// files at all.
func LoadSettings(configDir, dataDir string) (*Settings, error) {
	cfg, err := config.Load(configDir)
	if err != nil {
		return nil, err
	}
	s := &Settings{Config: cfg, ConfigDir: configDir, DataDir: dataDir}
	if s.DataDir == "" {
		s.DataDir = cfg.String("data_dir")
	}
	s.LocalIP = cfg.String("local_ip")
	if s.LocalIP == "" {
		s.LocalIP = "127.0.0.1"
	}
	s.NodeID = cfg.String("node_id")
	if s.NodeID == "" {
		s.NodeID = strings.NewReplacer(".", "-", ":", "-").Replace(s.LocalIP)
	}
	if k := cfg.String("site_key"); k != "" {
		if s.SiteKey, err = hex.DecodeString(k); err != nil {
			return nil, fmt.Errorf("%s: option \"site_key\": not hex: %w", filepath.Join(configDir, "local_config"), err)
		}
	}
	cluster := cfg.List("etcd_cluster")
	s.Bootstrap = len(cluster) == 0 || cluster[0] == s.LocalIP
	for _, ip := range cluster {
		if ip != s.LocalIP {
			s.Seeds = append(s.Seeds, net.JoinHostPort(ip, strconv.Itoa(cfg.Int("consensus_port"))))
		}
	}
	return s, nil
}

// ensureSiteKey loads or, for a node that creates its site, generates the key
// kept in the data directory when local_config names none.
func (s *Settings) ensureSiteKey() error {
	if len(s.SiteKey) > 0 {
		return nil
	}
	path := filepath.Join(s.DataDir, "site.key")
	b, err := os.ReadFile(path)
	if err == nil {
		s.SiteKey, err = hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(s.SiteKey) < 16 {
			return fmt.Errorf("data directory %s is damaged: %s does not hold a site key", s.DataDir, path)
		}
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if !s.Bootstrap {
		return fmt.Errorf("%s: option \"site_key\" must be set on a node joining a site (etcd_cluster=%s)",
			filepath.Join(s.ConfigDir, "local_config"), strings.Join(s.Config.List("etcd_cluster"), ","))
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	if err := os.MkdirAll(s.DataDir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(path, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		return err
	}
	s.SiteKey = key
	return nil
}

// AdminAddr is where this node's admin API listens.
func (s *Settings) AdminAddr() string {
	return net.JoinHostPort(s.LocalIP, strconv.Itoa(s.Config.Int("admin_port")))
}

// AdminToken authenticates the stillwater command to the node's admin API:
// only someone who can read the site key may use it.
func (s *Settings) AdminToken() (string, error) {
	if err := s.loadKeyOnly(); err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, s.SiteKey)
	m.Write([]byte("stillwater admin"))
	return hex.EncodeToString(m.Sum(nil)), nil
}

func (s *Settings) loadKeyOnly() error {
	if len(s.SiteKey) > 0 {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(s.DataDir, "site.key"))
	if err != nil {
		return fmt.Errorf("no site_key in local_config and no key in %s: %w", s.DataDir, err)
	}
	s.SiteKey, err = hex.DecodeString(strings.TrimSpace(string(b)))
	return err
}
