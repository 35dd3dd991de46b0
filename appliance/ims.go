package appliance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"

	"stillwater/appliance/ellis"
	"stillwater/appliance/homer"
	"stillwater/diameter/homestead"
	"stillwater/diameter/hss"
)

// imsServices are the subscriber-facing functions built on the storage:
// Homestead (HSS and provisioning), Homer (XCAP) and Ellis (portal).
type imsServices struct {
	HSS   *hss.Store
	Homer *homer.Store
	Ellis *ellis.Server
}

// homeDomain is the configured home domain, or the all-in-one default.
func homeDomain(n *Node) string {
	if d := n.Config().String("home_domain"); d != "" {
		return d
	}
	return "example.com"
}

func (n *Node) startIMS() error {
	cfg := n.Config()
	domain := homeDomain(n)
	n.IMS.Homer = homer.New(n.KV, homer.Options{Logger: n.log})
	n.IMS.HSS = hss.New(n.KV, hss.Options{
		HomeDomain: domain, SCSCF: cfg.String("scscf_node_uri"), Simservs: n.IMS.Homer,
		ShardOf: func(k string) int { return n.cons.ShardOf([]byte(k)) }, Logger: n.log,
	})
	var err error
	n.IMS.Ellis, err = ellis.New(ellis.Options{
		HomeDomain: domain, Hostname: cfg.String("ellis_hostname"),
		SignupKey: cfg.String("signup_key"), APIKey: cfg.String("ellis_api_key"), CookieKey: cfg.String("ellis_cookie_key"),
		SMTPSmarthost: cfg.String("smtp_smarthost"), SMTPUsername: cfg.String("smtp_username"),
		SMTPPassword: cfg.String("smtp_password"), MailFrom: cfg.String("email_recovery_sender"),
		AppServersPath: filepath.Join(n.settings.ConfigDir, "app-servers.json"),
		Subscribers:    ellisSubscribers{n.IMS.HSS}, Simservs: ellisSimservs{n.IMS.Homer},
		KV: n.KV, Logger: n.log,
	})
	if err != nil {
		return fmt.Errorf("ellis: %w", err)
	}
	for _, l := range []struct {
		name string
		port int
		h    http.Handler
	}{
		{"homestead (HSS)", cfg.Int("homestead_port"), homestead.NewHandler(n.IMS.HSS, homestead.WithLogger(n.log))},
		{"homestead-prov", cfg.Int("homestead_prov_port"), homestead.NewProvHandler(n.IMS.HSS, homestead.WithLogger(n.log))},
		{"homer (XCAP)", cfg.Int("homer_port"), homer.NewHandler(n.IMS.Homer)},
		{"ellis (portal and API)", cfg.Int("ellis_port"), n.IMS.Ellis},
	} {
		if err := n.serve(l.name, l.port, l.h); err != nil {
			return err
		}
	}
	return nil
}

// ensureEllisSecrets gives a new site the secrets Ellis needs when
// shared_config names none: a signup key (printed for the operator) and a
// cookie key. They are stored in the site's shared_config, so every node's
// Ellis accepts the same codes and cookies.
func ensureEllisSecrets(shared []byte, has func(name string) bool) ([]byte, error) {
	for _, name := range []string{"signup_key", "ellis_cookie_key"} {
		if has(name) {
			continue
		}
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		if len(shared) > 0 && shared[len(shared)-1] != '\n' {
			shared = append(shared, '\n')
		}
		shared = append(shared, []byte(name+"="+hex.EncodeToString(b)+"\n")...)
	}
	return shared, nil
}

// ellisSubscribers adapts the HSS store to Ellis's view of it.
type ellisSubscribers struct{ s *hss.Store }

func ellisErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, hss.ErrNotFound), errors.Is(err, homer.ErrNotFound):
		return fmt.Errorf("%w: %v", ellis.ErrNotFound, err)
	case errors.Is(err, hss.ErrConflict):
		return fmt.Errorf("%w: %v", ellis.ErrConflict, err)
	case errors.Is(err, hss.ErrInvalid), errors.Is(err, hss.ErrMismatch), errors.Is(err, homer.ErrInvalid):
		return fmt.Errorf("%w: %v", ellis.ErrInvalid, err)
	}
	return err
}

func (a ellisSubscribers) Create(ctx context.Context, l ellis.Line) error {
	return ellisErr(a.s.CreateLine(ctx, hss.Line{PrivateID: l.PrivateID, PublicIDs: l.PublicIDs, Realm: l.Realm, Password: l.Password, IFC: l.IFC}))
}
func (a ellisSubscribers) Delete(ctx context.Context, impu string) error {
	return ellisErr(a.s.DeleteLine(ctx, impu))
}
func (a ellisSubscribers) SetPassword(ctx context.Context, impi, realm, password string) error {
	return ellisErr(a.s.SetPassword(ctx, impi, realm, password))
}
func (a ellisSubscribers) IFC(ctx context.Context, impu string) (string, error) {
	x, err := a.s.LineIFC(ctx, impu)
	return x, ellisErr(err)
}
func (a ellisSubscribers) SetIFC(ctx context.Context, impu, xml string) error {
	return ellisErr(a.s.SetLineIFC(ctx, impu, xml))
}

// ellisSimservs adapts Homer's store to Ellis's view of it.
type ellisSimservs struct{ s *homer.Store }

func (a ellisSimservs) Get(ctx context.Context, impu string) ([]byte, error) {
	d, err := a.s.Get(ctx, impu)
	return d.XML, ellisErr(err)
}
func (a ellisSimservs) Put(ctx context.Context, impu string, doc []byte) error {
	_, err := a.s.Put(ctx, impu, doc)
	return ellisErr(err)
}
func (a ellisSimservs) Delete(ctx context.Context, impu string) error {
	if err := a.s.Delete(ctx, impu); err != nil && !errors.Is(err, homer.ErrNotFound) {
		return ellisErr(err)
	}
	return nil
}
func (ellisSimservs) Default() []byte { return homer.DefaultDocument() }
