package appliance

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"stillwater/sip/auth"
	"stillwater/sip/icscf"
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
	Resolver  *resolve.Resolver

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
	for _, name := range []string{"dns_json", "scscf_json"} {
		doc, ok := n.cons.Config(name)
		if !ok || doc.Version == s.versions[name] {
			continue
		}
		var err error
		switch name {
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
		Resolver: resolverAdapter{res}, Admitter: admitter{load}, DisableTCPSwitch: cfg.Bool("disable_tcp_switch"),
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
	ic := icscf.New(icscf.Options{
		HSS: n.IMS.HSS, Default: scscfURI,
		IsLocal: func(u sip.Uri) bool { _, ok := core.LocalService(&u); return ok },
		Logger:  n.log,
	})
	core.Handle("icscf", ic)
	icscfRoute := icscfURI
	edge := sipURI(local, trusted)
	core.Handle("scscf", scscf.New(scscf.Options{
		HSS: n.IMS.HSS, Auth: authn, Registrar: reg, HomeDomains: homes, URI: scscfURI,
		ICSCF: &icscfRoute, RecordRoute: true, LocalEdge: &edge, ChallengeNonRegister: challengeNonReg,
		AuthDisabled: cfg.Bool("authentication"), Logger: n.log,
		DefaultSessionExpires: cfg.Duration("default_session_expires"), MaxSessionExpires: cfg.Duration("max_session_expires"),
	}))
	// The core lives until Close, not for the start-up context.
	if err := core.Start(context.Background()); err != nil {
		reg.Close()
		return err
	}
	n.SIP.mu.Lock()
	n.SIP.Core, n.SIP.Registrar, n.SIP.ICSCF, n.SIP.Resolver = core, reg, ic, res
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
