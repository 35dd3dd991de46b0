package appliance

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"stillwater/sip/auth"
	"stillwater/sip/bgcf"
	"stillwater/sip/enum"
	"stillwater/sip/icscf"
	"stillwater/sip/ifc"
	"stillwater/sip/mmtel"
	"stillwater/sip/overload"
	"stillwater/sip/pcscf"
	"stillwater/sip/proxy"
	"stillwater/sip/registrar"
	"stillwater/sip/resolve"
	"stillwater/sip/scscf"
)

// sipServices are the SIP functions of the node (Bono and Sprout).
type sipServices struct {
	Core      *proxy.Core
	Registrar *registrar.Registrar
	ICSCF     *icscf.ICSCF
	SCSCF     *scscf.SCSCF
	BGCF      *bgcf.Service
	Resolver  *resolve.Resolver
	enum      enumTranslator

	mu       sync.Mutex
	versions map[string]uint64 // shared documents applied, by version
}

// applySIPConfig puts the site's dns.json and s-cscf.json in force when
// they change. Uploads are validated before they are stored; one that still
// fails here (written by a newer node) leaves the previous one in force.
func (n *Node) applySIPConfig() {
	s := &n.SIP
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Core == nil {
		return
	}
	if s.versions == nil {
		s.versions = map[string]uint64{}
	}
	for _, name := range []string{"shared_config", "dns_json", "scscf_json", "bgcf_json", "enum_json", "shared_ifcs", "fallback_ifcs"} {
		doc, ok := n.cons.Config(name)
		if !ok || doc.Version == s.versions[name] {
			continue
		}
		var err error
		switch name {
		case "shared_config":
			// Options the ENUM and iFC settings are built from.
			var doc []byte
			if d, ok := n.cons.Config("enum_json"); ok {
				doc = d.Content
			}
			err = errors.Join(n.setENUM(doc), n.setIFCConfig())
		case "bgcf_json":
			var routes bgcf.Routes
			if routes, err = bgcf.ParseBGCFJSON(doc.Content); err == nil {
				s.BGCF.SetRoutes(routes)
			}
		case "enum_json":
			err = n.setENUM(doc.Content)
		case "shared_ifcs", "fallback_ifcs":
			err = n.setIFCConfig()
		case "dns_json":
			var ov map[string]string
			if ov, err = resolve.ParseDNSJSON(doc.Content); err == nil {
				err = s.Resolver.SetOverrides(ov)
			}
		case "scscf_json":
			var servers []icscf.Server
			if servers, err = icscf.ParseSCSCFJSON(doc.Content); err == nil {
				s.ICSCF.SetSCSCFs(servers)
			}
		}
		if err != nil {
			n.log.Error("shared document not applied; keeping the previous one", "name", name, "err", err)
			continue
		}
		s.versions[name] = doc.Version
		n.log.Info("shared document applied", "name", name, "version", doc.Version)
	}
}

// setIFCConfig builds the S-CSCF's iFC configuration from shared_config and
// the shared and fallback iFC documents.
func (n *Node) setIFCConfig() error {
	cfg := n.Config()
	c := &ifc.Config{
		ApplyFallback: cfg.Bool("apply_fallback_ifcs"), RejectIfNoMatch: cfg.Bool("reject_if_no_matching_ifcs"),
		DummyAppServer: cfg.String("dummy_app_server"),
	}
	if doc, ok := n.cons.Config("shared_ifcs"); ok && cfg.Bool("request_shared_ifcs") {
		sets, errs := ifc.ParseSet(doc.Content)
		if len(errs) > 0 {
			return fmt.Errorf("shared_ifcs.xml: %w", errors.Join(errs...))
		}
		c.Shared = sets.Shared
	}
	if doc, ok := n.cons.Config("fallback_ifcs"); ok {
		sets, errs := ifc.ParseSet(doc.Content)
		if len(errs) > 0 {
			return fmt.Errorf("fallback_ifcs.xml: %w", errors.Join(errs...))
		}
		c.Fallback = sets.Fallback
	}
	n.SIP.SCSCF.SetIFCConfig(c)
	return nil
}

// setENUM (re)builds the ENUM translator: DNS through enum_server when set,
// else the enum.json document (or the enum_file option's file).
func (n *Node) setENUM(doc []byte) error {
	cfg := n.Config()
	opts := enum.Options{
		Suffix: cfg.String("enum_suffix"), GlobalOnly: cfg.Bool("enforce_global_only_lookups"),
		OverrideNPDI: cfg.Bool("override_npdi"), Logger: n.log,
	}
	if list := cfg.List("enum_server"); len(list) > 0 {
		addrs, err := enum.ParseServers(strings.Join(list, ","))
		if err != nil {
			return fmt.Errorf("enum_server: %w", err)
		}
		if opts.Servers, err = enum.NewServers(addrs, resolve.Options{Logger: n.log}, cfg.Duration("dns_timeout")); err != nil {
			return fmt.Errorf("enum_server: %w", err)
		}
	} else if doc == nil && cfg.String("enum_file") != "" {
		b, err := os.ReadFile(cfg.String("enum_file"))
		if err != nil {
			return fmt.Errorf("enum_file: %w", err)
		}
		doc = b
	}
	opts.File = doc
	svc, err := enum.New(opts)
	if errors.Is(err, enum.ErrNotConfigured) {
		n.SIP.enum.p.Store(nil)
		return nil
	}
	if err != nil {
		return err
	}
	n.SIP.enum.p.Store(svc)
	return nil
}

// enumTranslator gives the S-CSCF the ENUM service in force, if any.
type enumTranslator struct{ p atomic.Pointer[enum.Service] }

func (e *enumTranslator) Translate(ctx context.Context, number string) (string, error) {
	svc := e.p.Load()
	if svc == nil {
		return "", enum.ErrNotConfigured
	}
	res, err := svc.Translate(ctx, number)
	if errors.Is(err, enum.ErrUnavailable) {
		return "", fmt.Errorf("%w: %w", scscf.ErrENUMUnavailable, err)
	}
	if err != nil {
		return "", err
	}
	return res.URI, nil
}

// sipURI builds sip:host:port;transport=tcp for a node-local function.
func sipURI(host string, port int) sip.Uri {
	params := sip.NewParams()
	params.Add("transport", "tcp")
	return sip.Uri{Scheme: "sip", Host: hostForURI(host), Port: port, UriParams: params}
}

func hostForURI(h string) string {
	if strings.Contains(h, ":") && !strings.HasPrefix(h, "[") {
		return "[" + h + "]"
	}
	return h
}

// configURI parses a URI option, or returns def when it is unset.
func configURI(v string, def sip.Uri) (sip.Uri, error) {
	if v == "" {
		return def, nil
	}
	var u sip.Uri
	if err := sip.ParseUri(strings.Trim(v, "<>"), &u); err != nil {
		return sip.Uri{}, fmt.Errorf("bad SIP URI %q: %w", v, err)
	}
	return u, nil
}

func (n *Node) startSIP() error {
	cfg := n.Config()
	ip, err := netip.ParseAddr(n.settings.LocalIP)
	if err != nil {
		return fmt.Errorf("sip: local_ip %q: %w", n.settings.LocalIP, err)
	}
	local := n.settings.LocalIP
	home := homeDomain(n)
	homes := append([]string{home}, cfg.List("additional_home_domains")...)
	untrusted, trusted := cfg.Int("pcscf_untrusted_port"), cfg.Int("pcscf_trusted_port")
	icscfPort, scscfPort := cfg.Int("icscf"), cfg.Int("scscf")

	scscfURI, err := configURI(cfg.String("scscf_uri"), sipURI(local, scscfPort))
	if err != nil {
		return fmt.Errorf("sip: scscf_uri: %w", err)
	}
	icscfURI, err := configURI(cfg.String("icscf_uri"), sipURI(local, icscfPort))
	if err != nil {
		return fmt.Errorf("sip: icscf_uri: %w", err)
	}
	upstream := icscfURI
	if h := cfg.String("upstream_hostname"); h != "" {
		upstream = sipURI(h, cfg.Int("upstream_port"))
		if cfg.Int("upstream_port") == 0 {
			upstream.Port = 0
		}
	}

	hosts := []string{local, "localhost"}
	for _, o := range []string{"public_ip", "public_hostname", "sprout_hostname"} {
		if v := cfg.String(o); v != "" {
			hosts = append(hosts, v)
		}
	}
	hosts = append(hosts, cfg.List("alias_list")...)
	hosts = append(hosts, cfg.List("bono_alias_list")...)
	names := map[string]string{}
	// The S-CSCF and I-CSCF URIs name the site's function, which every
	// node runs: they are local wherever they resolve to.
	for svc, u := range map[string]sip.Uri{"scscf": scscfURI, "icscf": icscfURI} {
		if _, err := netip.ParseAddr(strings.Trim(u.Host, "[]")); err != nil {
			names[strings.ToLower(u.Host)] = svc
		}
	}
	// The built-in application servers are reached by name in every home
	// domain (sip:mmtel.<home domain>), as the default iFCs name them.
	for _, d := range homes {
		names["mmtel."+strings.ToLower(d)] = "mmtel"
	}
	if h := cfg.String("sprout_hostname"); h != "" {
		names[strings.ToLower(cfg.String("mmtel_prefix")+"."+h)] = "mmtel"
		names[strings.ToLower(cfg.String("bgcf_prefix")+"."+h)] = "bgcf"
	}
	bgcfURI := sipURI(local, cfg.Int("bgcf"))
	ports := map[int]string{untrusted: "pcscf", trusted: "pcscf"}
	var lns []proxy.Listener
	var tlsConf *tls.Config
	if cfg.Int("pcscf_tls_port") != 0 {
		if tlsConf, err = n.sipTLSConfig(hosts); err != nil {
			return err
		}
	}
	add := func(port int, svc string, trust bool, networks ...string) {
		if port == 0 {
			return
		}
		ports[port] = svc
		for _, nw := range networks {
			lns = append(lns, proxy.Listener{Network: nw, Addr: netip.AddrPortFrom(ip, uint16(port)),
				Advertise: hostForURI(local), Service: svc, Trusted: trust, TLS: tlsConf})
		}
	}
	add(untrusted, "pcscf", false, "udp", "tcp")
	add(trusted, "pcscf", true, "udp", "tcp")
	add(icscfPort, "icscf", true, "udp", "tcp")
	add(scscfPort, "scscf", true, "udp", "tcp")
	add(cfg.Int("bgcf"), "bgcf", true, "udp", "tcp")
	add(cfg.Int("mmtel"), "mmtel", true, "udp", "tcp")
	add(cfg.Int("pcscf_tls_port"), "pcscf", false, "tls")
	add(cfg.Int("pcscf_ws_port"), "pcscf", false, "ws")

	res, err := resolve.New(resolve.Options{
		Servers: dnsServers(cfg.List("signaling_dns_server")), Timeout: cfg.Duration("dns_timeout"),
		BlacklistDuration: cfg.Duration("sip_blacklist_duration"), Logger: n.log,
	})
	if err != nil {
		return fmt.Errorf("sip: resolver: %w", err)
	}
	load, err := overload.New(overload.Options{
		TargetLatency: cfg.Duration("sprout_target_latency_us"), MaxTokens: cfg.Int("sprout_max_tokens"),
		InitRate: cfg.Float("sprout_init_token_rate"), MinRate: cfg.Float("sprout_min_token_rate"),
		MaxRate: cfg.Float("sprout_max_token_rate"), QueueTimeout: cfg.Duration("sprout_request_queue_timeout"),
	})
	if err != nil {
		return fmt.Errorf("sip: throttling options: %w", err)
	}
	mac := hmac.New(sha256.New, n.settings.SiteKey)
	mac.Write([]byte("sip flow tokens"))
	core, err := proxy.New(proxy.Config{
		Listeners: lns, Hosts: hosts, Ports: ports, Names: names, FlowKey: mac.Sum(nil),
		Resolver: resolverAdapter{res}, Admitter: admitter{load}, EdgeOnlyInDialog: true, DisableTCPSwitch: cfg.Bool("disable_tcp_switch"),
		Logger: n.log,
	})
	if err != nil {
		return err
	}
	serviceRoute := *scscfURI.Clone()
	if serviceRoute.UriParams == nil {
		serviceRoute.UriParams = sip.NewParams()
	}
	serviceRoute.UriParams.Add("lr", "")
	serviceRoute.UriParams.Add("orig", "")
	reg := registrar.New(registrar.Options{
		KV: n.KV, Timers: n.Timers, HSS: n.IMS.HSS,
		MaxExpires: cfg.Duration("reg_max_expires"), SubMaxExpires: cfg.Duration("sub_max_expires"),
		ServiceRoute: serviceRoute.String(), SCSCFName: scscfURI.String(),
		Logger: n.log, Sender: core,
	})
	authn := auth.New(auth.Options{KV: n.KV, HSS: n.IMS.HSS, Realm: home,
		NonceCountSupported: cfg.Bool("nonce_count_supported"), Logger: n.log})
	challengeNonReg := false
	for _, v := range cfg.List("non_register_authentication") {
		if v == "if_proxy_authorization_present" || v == "initial_req_from_reg_digest_endpoint" {
			challengeNonReg = true
		}
	}
	var pbxes, peers []netip.Addr
	for _, s := range cfg.List("pbxes") {
		if a, err := netip.ParseAddr(s); err == nil {
			pbxes = append(pbxes, a)
		}
	}
	for _, s := range cfg.List("trusted_peers") {
		if a, err := netip.ParseAddr(s); err == nil {
			peers = append(peers, a)
		}
	}
	var pbxRoute *sip.Uri
	if v := cfg.String("pbx_service_route"); v != "" {
		u, err := configURI(v, sip.Uri{})
		if err != nil {
			return fmt.Errorf("sip: pbx_service_route: %w", err)
		}
		pbxRoute = &u
	}
	publicHost := local
	if v := cfg.String("public_hostname"); v != "" {
		publicHost = v
	} else if v := cfg.String("public_ip"); v != "" {
		publicHost = v
	}
	core.Handle("pcscf", pcscf.New(pcscf.Options{
		Upstream: upstream, Host: hostForURI(local), TrustedPort: trusted, PublicHost: hostForURI(publicHost),
		CDF: cfg.String("cdf_identity"), PBXes: pbxes, PBXServiceRoute: pbxRoute, TrustedPeers: peers,
		Logger: n.log,
	}))
	homeSet := map[string]bool{}
	for _, d := range homes {
		homeSet[strings.ToLower(d)] = true
	}
	var icBGCF *sip.Uri
	if cfg.Int("bgcf") != 0 {
		icBGCF = &bgcfURI
	}
	ic := icscf.New(icscf.Options{
		HSS: n.IMS.HSS, Default: scscfURI,
		IsLocal: func(u sip.Uri) bool { _, ok := core.LocalService(&u); return ok },
		ENUM:    &n.SIP.enum, BGCF: icBGCF,
		IsHome: func(h string) bool { return homeSet[strings.ToLower(h)] },
		Logger: n.log,
	})
	core.Handle("icscf", ic)
	icscfRoute := icscfURI
	edge := sipURI(local, trusted)
	odi := hmac.New(sha256.New, n.settings.SiteKey)
	odi.Write([]byte("sip original dialog identifiers"))
	var bgcfRoute *sip.Uri
	if cfg.Int("bgcf") != 0 {
		bgcfRoute = &bgcfURI
	}
	sc := scscf.New(scscf.Options{
		HSS: n.IMS.HSS, Auth: authn, Registrar: reg, HomeDomains: homes, URI: scscfURI,
		ICSCF: &icscfRoute, RecordRoute: true, LocalEdge: &edge, ChallengeNonRegister: challengeNonReg,
		AuthDisabled: cfg.Bool("authentication"), Logger: n.log, ODIKey: odi.Sum(nil),
		DefaultSessionExpires: cfg.Duration("default_session_expires"), MaxSessionExpires: cfg.Duration("max_session_expires"),
		SessionContinuedTimeout:  cfg.Duration("session_continued_timeout_ms"),
		SessionTerminatedTimeout: cfg.Duration("session_terminated_timeout_ms"),
		BGCF:                     bgcfRoute, ENUM: &n.SIP.enum,
		Sender: core, ForceThirdPartyBody: cfg.Bool("force_third_party_reg_body"),
	})
	core.Handle("scscf", sc)
	bg := bgcf.NewService(n.log)
	core.Handle("bgcf", bg)
	core.Handle("mmtel", mmtel.New(n.mmtelOptions()))
	// The core lives until Close, not for the start-up context.
	if err := core.Start(context.Background()); err != nil {
		reg.Close()
		return err
	}
	n.SIP.mu.Lock()
	n.SIP.Core, n.SIP.Registrar, n.SIP.ICSCF, n.SIP.Resolver = core, reg, ic, res
	n.SIP.SCSCF, n.SIP.BGCF = sc, bg
	n.SIP.mu.Unlock()
	n.applySIPConfig()
	for i, l := range lns {
		n.Listens = append(n.Listens, Listener{"SIP " + l.Service + " (" + strings.ToUpper(l.Network) + ")",
			net.JoinHostPort(local, strconv.Itoa(core.Ports()[i]))})
	}
	return n.serve("Sprout management API", cfg.Int("sprout_mgmt_port"), reg.ManagementHandler())
}

func dnsServers(list []string) []netip.AddrPort {
	var out []netip.AddrPort
	for _, s := range list {
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, netip.AddrPortFrom(a, 53))
		}
	}
	return out
}

// resolverAdapter gives the proxy core the resolver's targets as hops.
type resolverAdapter struct{ r *resolve.Resolver }

func (a resolverAdapter) Resolve(ctx context.Context, host string, port int, transport string, secure bool) ([]proxy.Hop, error) {
	ts, err := a.r.Resolve(ctx, host, port, transport, secure)
	if err != nil {
		return nil, err
	}
	out := make([]proxy.Hop, len(ts))
	for i, t := range ts {
		out[i] = proxy.Hop{Transport: t.Transport, Addr: t.Addr.String()}
	}
	return out, nil
}

// admitter puts the latency-driven token bucket in front of the SIP core.
type admitter struct{ m *overload.Monitor }

func (a admitter) Admit() (bool, int, func()) {
	if !a.m.Admit() {
		return false, int((a.m.RetryAfter() + time.Second - 1) / time.Second), nil
	}
	start := a.m.Now()
	return true, 0, func() { a.m.Done(a.m.Now().Sub(start)) }
}
