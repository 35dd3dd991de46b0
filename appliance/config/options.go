package config

import (
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Type is the kind of value an option takes.
type Type int

// Option types. List types are comma-separated, with no spaces.
const (
	TypeString    Type = iota // free text
	TypeInt                   // decimal integer within Min..Max
	TypeFloat                 // decimal number, at least Min
	TypeBool                  // Y or N (true and false are also accepted)
	TypeDuration              // whole number of Unit within Min..Max
	TypeIP                    // IPv4 or IPv6 address
	TypeIPList                // list of IP addresses
	TypeHost                  // DNS name or IP address
	TypeHostPort              // host, optionally with :port ([v6]:port for IPv6)
	TypeHostList              // list of hosts
	TypeSIPURI                // sip: or sips: URI
	TypeURL                   // http: or https: URL
	TypePath                  // absolute file system path
	TypeName                  // identifier: letters, digits, '.', '_' and '-'
	TypeNameList              // list of identifiers
	TypeEnum                  // one of Choices
	TypeEnumList              // list drawn from Choices
	TypeStoreList             // [<site>=]<host>[:<port>], comma-separated per site
	TypeHex                   // hexadecimal string of at least Min digits
	TypeDiskLimit             // bytes, with optional k, M or G suffix, or a percentage
)

var typeNames = [...]string{
	TypeString:    "string",
	TypeInt:       "integer",
	TypeFloat:     "number",
	TypeBool:      "Y/N",
	TypeDuration:  "duration",
	TypeIP:        "IP address",
	TypeIPList:    "IP address list",
	TypeHost:      "host",
	TypeHostPort:  "host[:port]",
	TypeHostList:  "host list",
	TypeSIPURI:    "SIP URI",
	TypeURL:       "URL",
	TypePath:      "path",
	TypeName:      "name",
	TypeNameList:  "name list",
	TypeEnum:      "choice",
	TypeEnumList:  "choice list",
	TypeStoreList: "store list",
	TypeHex:       "hex string",
	TypeDiskLimit: "disk limit",
}

func (t Type) String() string {
	if t >= 0 && int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "Type(" + strconv.Itoa(int(t)) + ")"
}

func (t Type) isList() bool {
	return t == TypeIPList || t == TypeHostList || t == TypeNameList || t == TypeEnumList || t == TypeStoreList
}

// Files is a set of the name=value files.
type Files uint8

// The name=value files. Clearwater's /etc/clearwater/config sources
// shared_config, then local_config, then user_settings, so a later file
// overrides an earlier one in that order.
const (
	SharedConfig Files = 1 << iota
	LocalConfig
	UserSettings

	AnyFile = SharedConfig | LocalConfig | UserSettings
)

// loadOrder is the order in which the files are read; later ones win.
var loadOrder = [...]Files{SharedConfig, LocalConfig, UserSettings}

// String returns the file names in the set, in load order, joined by " or ".
func (f Files) String() string {
	var names []string
	for _, one := range loadOrder {
		if f&one != 0 {
			names = append(names, fileNames[one])
		}
	}
	return strings.Join(names, " or ")
}

var fileNames = map[Files]string{
	SharedConfig: "shared_config",
	LocalConfig:  "local_config",
	UserSettings: "user_settings",
}

// Option describes one name=value option.
type Option struct {
	Name    string
	Type    Type
	Default string        // as written in a file; "" when unset or derived
	Derived string        // how the default follows from other options, if it does
	Files   Files         // where it may be set
	Min     int64         // TypeInt, TypeDuration, TypeFloat, TypeHex
	Max     int64         // TypeInt, TypeDuration
	Unit    time.Duration // TypeDuration: what the number counts
	Choices []string      // TypeEnum, TypeEnumList
	MaxLen  int           // list types: most entries allowed, 0 for no limit
	Secret  bool          // never shown in messages
	Desc    string

	derive func(c *Config) string
}

// Options returns the table of every option, sorted by name.
func Options() []Option {
	out := make([]Option, 0, len(table))
	for _, o := range table {
		out = append(out, o.clone())
	}
	slices.SortFunc(out, func(a, b Option) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Lookup returns the option called name.
func Lookup(name string) (Option, bool) {
	o, ok := table[name]
	if !ok {
		return Option{}, false
	}
	return o.clone(), true
}

// clone keeps callers from reaching the table's Choices.
func (o Option) clone() Option {
	o.Choices = slices.Clone(o.Choices)
	return o
}

// table is built once, at init (its derived defaults refer back to it), and
// never modified.
var table map[string]Option

func init() { table = buildTable() }

// Builders for the table: each returns a modified copy.

func opt(name string, t Type, def, desc string) Option {
	return Option{Name: name, Type: t, Default: def, Files: AnyFile, Min: math.MinInt64, Max: math.MaxInt64, Desc: desc}
}

func intOpt(name, def string, lo, hi int64, desc string) Option {
	return opt(name, TypeInt, def, desc).rng(lo, hi)
}

func durOpt(name string, unit time.Duration, def string, lo int64, desc string) Option {
	o := opt(name, TypeDuration, def, desc).rng(lo, math.MaxInt64)
	o.Unit = unit
	return o
}

func portOpt(name, def, desc string) Option { return intOpt(name, def, 1, 65535, desc) }

func boolOpt(name, def, desc string) Option { return opt(name, TypeBool, def, desc) }

func floatOpt(name, def, desc string) Option {
	return opt(name, TypeFloat, def, desc).rng(0, math.MaxInt64)
}

func (o Option) rng(lo, hi int64) Option { o.Min, o.Max = lo, hi; return o }
func (o Option) in(f Files) Option       { o.Files = f; return o }
func (o Option) secret() Option          { o.Secret = true; return o }
func (o Option) maxLen(n int) Option     { o.MaxLen = n; return o }
func (o Option) choices(c ...string) Option {
	o.Choices = c
	return o
}
func (o Option) derived(how string, f func(c *Config) string) Option {
	o.Derived, o.derive = how, f
	return o
}

// perCore scales a per-core count by this machine's cores.
func perCore(n int) string { return strconv.Itoa(n * runtime.NumCPU()) }

// withPrefix returns prefix+v, or "" when v is unset.
func withPrefix(prefix, v string) string {
	if v == "" {
		return ""
	}
	return prefix + v
}

// hostOnly strips the port from a host[:port] value.
func hostOnly(v string) string {
	h, _, _ := splitHostPort(v)
	return h
}

// sproutlets are the Sprout components with a port, _prefix and _uri option
// each, with their default ports (0 disables a sproutlet).
var sproutlets = []struct{ name, port, desc string }{
	{"scscf", "5054", "S-CSCF"},
	{"icscf", "5052", "I-CSCF"},
	{"bgcf", "5053", "BGCF"},
	{"mmtel", "5055", "MMTel application server"},
	{"gemini", "0", "Gemini twinning application server"},
	{"memento", "0", "Memento call list application server"},
	{"cdiv", "0", "call diversion application server"},
	{"mangelwurzel", "0", "Mangelwurzel B2BUA"},
}

// throttled are the processes with their own throttling options, with the
// default target latency in microseconds (Sprout ignores network latency, so
// its target is lower).
var throttled = []struct{ name, latency string }{
	{"sprout", "10000"},
	{"bono", "100000"},
	{"homestead", "100000"},
	{"ralf", "100000"},
	{"memento", "100000"},
}

func buildTable() map[string]Option {
	const local = LocalConfig
	opts := []Option{
		// Local config: identity of this node, set once in local_config.
		opt("local_ip", TypeIP, "", "address of this node on the internal network, used to reach other nodes and the HSS").in(local),
		opt("public_ip", TypeIP, "", "address external clients (SIP UEs, web browsers) use to reach this node").in(local),
		opt("public_hostname", TypeHost, "", "hostname resolving to public_ip and to this node only").in(local),
		intOpt("node_idx", "", 0, math.MaxInt64, "index distinguishing this node from others of the same type").in(local),
		opt("etcd_cluster", TypeIPList, "", "IP addresses of the site's nodes this node joins (all of them, this one included, when forming a new site); blank on a proxy").in(local),
		opt("etcd_proxy", TypeIPList, "", "IP addresses of the site's current members, on a node that does not hold consensus state").in(local),
		opt("etcd_cluster_key", TypeName, "", "name of the data store cluster to join; defaults to the node's function").in(local),
		opt("remote_cassandra_seeds", TypeIP, "", "first Vellum of the second site only: address of a Vellum in the first site").in(local),
		opt("scscf_node_uri", TypeSIPURI, "", "SIP URI this S-CSCF advertises to application servers").in(local).
			derived("sip:<local_ip>:<scscf>", func(c *Config) string {
				ip := c.String("local_ip")
				if ip == "" {
					return ""
				}
				if strings.Contains(ip, ":") {
					ip = "[" + ip + "]"
				}
				return "sip:" + ip + ":" + c.String("scscf")
			}),
		opt("local_site_name", TypeName, "site1", "name of this node's site; the same on every node of the site").in(local),
		opt("signaling_namespace", TypeName, "", "network namespace of the signaling network, when traffic is separated").in(local),
		opt("management_local_ip", TypeIP, "", "this node's address on the management network, when traffic is separated").in(local),

		// Stillwater's own node options.
		opt("data_dir", TypePath, "/var/lib/stillwater", "directory holding this node's persistent state").in(local),
		opt("node_id", TypeName, "", "this node's identity within the site").in(local).
			derived("local_ip with '.' and ':' replaced by '-'", func(c *Config) string {
				return strings.NewReplacer(".", "-", ":", "-").Replace(c.String("local_ip"))
			}),
		opt("site_key", TypeHex, "", "secret shared by the nodes of a site, used to authenticate each other").in(local).rng(32, math.MaxInt64).secret(),
		portOpt("consensus_port", "2380", "port for the site's consensus and replication traffic; the same on every node").in(local),
		portOpt("admin_port", "9880", "port of the node's management HTTP interface").in(local),
		portOpt("chronos_port", "7253", "port of the timer service").in(local),
		portOpt("homer_port", "7888", "port of Homer's XCAP interface").in(local),
		portOpt("homestead_port", "8888", "port of Homestead's HTTP interface").in(local),
		portOpt("homestead_prov_port", "8889", "port of Homestead's provisioning interface").in(local),
		portOpt("ellis_port", "80", "port of the Ellis self-service portal and its JSON API").in(local),
		portOpt("pcscf_untrusted_port", "5060", "P-CSCF port facing UEs (UDP and TCP)").in(local),
		portOpt("pcscf_trusted_port", "5058", "P-CSCF port facing the core and application servers (UDP and TCP)").in(local),
		intOpt("pcscf_tls_port", "5061", 0, 65535, "P-CSCF SIP over TLS port facing UEs; 0 disables it").in(local),
		intOpt("pcscf_ws_port", "5062", 0, 65535, "P-CSCF SIP over WebSocket port for WebRTC clients; 0 disables it").in(local),
		portOpt("sprout_mgmt_port", "9886", "port of Sprout's management HTTP API").in(local),
		boolOpt("fault_injection", "N", "enable the test-only fault injection hook; never in production").in(LocalConfig | UserSettings),
		intOpt("shard_count", "16", 1, 256, "number of shards the site's data is split into; fixed when the site is created").in(SharedConfig),

		// Shared config: core options.
		opt("home_domain", TypeHost, "", "main SIP home domain; the default for tel: URIs"),
		opt("sprout_hostname", TypeHost, "", "hostname resolving to the signaling interface of every Sprout node"),
		opt("sprout_hostname_mgmt", TypeHostPort, "", "hostname:9886 resolving to the management interface of every Sprout node"),
		opt("hs_hostname", TypeHostPort, "", "hostname:8888 resolving to the signaling interface of every Dime node; also homestead's Diameter Origin-Realm"),
		opt("hs_hostname_mgmt", TypeHostPort, "", "hostname:8886 resolving to the management interface of every Dime node"),
		opt("hs_provisioning_hostname", TypeHostPort, "", "hostname:port of homestead's provisioning interface; not needed with an external HSS"),
		opt("ralf_hostname", TypeHostPort, "", "hostname:port resolving to every Dime node for ralf; also ralf's Diameter Origin-Realm"),
		opt("cdf_identity", TypeHost, "", "Diameter identity of the online Charging Function put in P-Charging-Function-Addresses"),
		opt("xdms_hostname", TypeHostPort, "", "hostname:port resolving to every Homer node"),
		opt("hss_realm", TypeHost, "", "Destination-Realm of the external HSS; peers found by SRV lookup on it"),
		opt("hss_hostname", TypeHost, "", "Destination-Host of the external HSS"),
		portOpt("hss_port", "3868", "port of the external HSS's Cx interface"),
		opt("signup_key", TypeString, "", "password Ellis requires before self sign-up").secret(),
		opt("turn_workaround", TypeString, "", "extra password authenticating STUN/TURN clients without a correct username").secret(),
		opt("smtp_smarthost", TypeHostPort, "", "SMTP server Ellis sends password recovery mail through"),
		opt("smtp_username", TypeString, "", "user name for the SMTP server"),
		opt("smtp_password", TypeString, "", "password for the SMTP server").secret(),
		opt("email_recovery_sender", TypeString, "", "address password recovery mail is sent from"),
		opt("ellis_api_key", TypeString, "", "key authenticating automated requests to Ellis (X-NGV-API header)").secret(),
		opt("ellis_hostname", TypeHost, "", "hostname of Ellis").
			derived("ellis.<home_domain>", func(c *Config) string { return withPrefix("ellis.", c.String("home_domain")) }),
		opt("memento_hostname", TypeHost, "", "hostname resolving to every Memento").
			derived("memento.<home_domain>", func(c *Config) string { return withPrefix("memento.", c.String("home_domain")) }),
		opt("sprout_registration_store", TypeStoreList, "", "location of Sprout's registration store, per site"),
		opt("ralf_session_store", TypeStoreList, "", "location of ralf's session store, per site"),
		opt("homestead_impu_store", TypeStoreList, "", "location of homestead's IMPU store, per site"),
		opt("memento_auth_store", TypeHostPort, "127.0.0.1", "location of Memento's authorization vector store"),
		opt("sprout_chronos_callback_uri", TypeHostPort, "", "callback host on Sprout's timers; deployment-wide in a multi-site deployment").
			derived("host of sprout_hostname", func(c *Config) string { return hostOnly(c.String("sprout_hostname")) }),
		opt("ralf_chronos_callback_uri", TypeHostPort, "", "callback host on ralf's timers; deployment-wide in a multi-site deployment").
			derived("host of ralf_hostname", func(c *Config) string { return hostOnly(c.String("ralf_hostname")) }),
		opt("cassandra_hostname", TypeHost, "", "hostname resolving to the signaling interface of every Vellum node of the site"),
		opt("chronos_hostname", TypeHost, "", "hostname resolving to the signaling interface of every Vellum node of the site"),
		opt("remote_site_names", TypeNameList, "", "local_site_name of every site of a multi-site deployment"),

		// Advanced options.
		portOpt("homestead_provisioning_port", "8889", "HTTP port of homestead's provisioning interface"),
		durOpt("reg_max_expires", time.Second, "300", 1, "longest registration Sprout grants").rng(1, math.MaxInt32/1000),
		durOpt("sub_max_expires", time.Second, "", 1, "longest subscription Sprout grants").rng(1, math.MaxInt32/1000),
		opt("upstream_hostname", TypeHost, "", "I-CSCF Bono passes requests to").
			derived("icscf.<sprout_hostname>", func(c *Config) string { return withPrefix("icscf.", c.String("sprout_hostname")) }),
		intOpt("upstream_port", "5052", 0, 65535, "port of that I-CSCF; 0 to find it by SRV lookup of upstream_hostname"),
		opt("sprout_rr_level", TypeEnum, "", "where the S-CSCF Record-Routes").choices("pcscf", "pcscf,icscf", "pcscf,icscf,as"),
		opt("force_hss_peer", TypeHost, "", "host homestead connects to for the HSS, keeping hss_realm and hss_hostname in the AVPs"),
		opt("hss_mar_scheme_unknown", TypeString, "Unknown", "authentication scheme requested when the scheme is unknown"),
		opt("hss_mar_scheme_digest", TypeString, "SIP Digest", "authentication scheme requested for SIP digest"),
		opt("hss_mar_scheme_akav1", TypeString, "Digest-AKAv1-MD5", "authentication scheme requested for AKAv1"),
		opt("hss_mar_scheme_akav2", TypeString, "Digest-AKAv2-SHA-256", "authentication scheme requested for AKAv2"),
		boolOpt("force_third_party_reg_body", "N", "act as if the HSS set IncludeRegisterRequest/IncludeRegisterResponse"),
		boolOpt("enforce_user_phone", "N", "do ENUM lookups only for URIs with user=phone"),
		boolOpt("enforce_global_only_lookups", "N", "do ENUM lookups only for global numbers"),
		portOpt("hs_listen_port", "3868", "Diameter port homestead listens on"),
		portOpt("ralf_listen_port", "3869", "Diameter port ralf listens on"),
		durOpt("homestead_diameter_watchdog_timer", time.Second, "6", 6, "delay before homestead sends a watchdog on an idle Diameter connection"),
		durOpt("ralf_diameter_watchdog_timer", time.Second, "6", 6, "delay before ralf sends a watchdog on an idle Diameter connection"),
		opt("alias_list", TypeHostList, "", "further hosts Sprout and Bono treat as local for SIP routing"),
		opt("bono_alias_list", TypeHostList, "", "further hosts Bono treats as local for SIP routing"),
		durOpt("default_session_expires", time.Second, "", 90, "Session-Expires Sprout adds to INVITEs"),
		durOpt("max_session_expires", time.Second, "", 90, "largest Session-Expires/Min-SE Sprout accepts"),
		opt("enum_server", TypeIPList, "", "DNS servers for ENUM queries, tried in order").maxLen(3),
		opt("enum_suffix", TypeHost, "e164.arpa", "DNS suffix of ENUM queries"),
		opt("enum_file", TypePath, "", "JSON ENUM rules used when enum_server is unset"),
		opt("external_icscf_uri", TypeSIPURI, "", "SIP URI of an external I-CSCF"),
		opt("additional_home_domains", TypeHostList, "", "further SIP home domains"),
		opt("billing_realm", TypeHost, "", "Diameter realm of the CDFs ralf connects to, found by SRV lookup"),
		durOpt("diameter_timeout_ms", time.Millisecond, "200", 1, "how long homestead waits for the HSS"),
		durOpt("sprout_homestead_timeout_ms", time.Millisecond, "", 1, "how long Sprout waits for homestead").
			derived("550 + 2 × diameter_timeout_ms", func(c *Config) string {
				return strconv.Itoa(550 + 2*c.Int("diameter_timeout_ms"))
			}),
		intOpt("max_peers", "", 1, math.MaxInt32, "most Diameter peers ralf or homestead connects to at once"),
		intOpt("num_http_threads", "", 1, math.MaxInt32, "HTTP threads; unset, homestead and memento use one per core, sprout and ralf 50 per core"),
		intOpt("num_http_worker_threads", "", 1, math.MaxInt32, "threads processing parsed HTTP requests (memento)"),
		intOpt("sprout_http_threads", "", 1, math.MaxInt32, "HTTP threads on Sprout").
			derived("num_http_threads, or 50 × CPU cores", func(c *Config) string {
				if v := c.String("num_http_threads"); v != "" {
					return v
				}
				return perCore(50)
			}),
		intOpt("homestead_http_threads", "", 1, math.MaxInt32, "HTTP threads on homestead").
			derived("num_http_threads, or CPU cores", func(c *Config) string {
				if v := c.String("num_http_threads"); v != "" {
					return v
				}
				return perCore(1)
			}),
		intOpt("num_worker_threads", "", 1, math.MaxInt32, "SIP worker threads on Sprout and Bono").
			derived("50 × CPU cores", func(*Config) string { return perCore(50) }),
		intOpt("sprout_worker_threads", "", 1, math.MaxInt32, "SIP worker threads on Sprout").
			derived("num_worker_threads", func(c *Config) string { return c.String("num_worker_threads") }),
		opt("ralf_diameteridentity", TypeHost, "", "Origin-Host of ralf's Diameter messages").
			derived("public_hostname", func(c *Config) string { return c.String("public_hostname") }),
		opt("hs_diameteridentity", TypeHost, "", "Origin-Host of homestead's Diameter messages").
			derived("public_hostname", func(c *Config) string { return c.String("public_hostname") }),
		intOpt("max_call_list_length", "0", 0, math.MaxInt32, "most complete calls kept in a subscriber's call list; 0 for no limit"),
		durOpt("call_list_store_ttl", time.Second, "604800", 1, "how long a call list fragment is kept"),
		opt("memento_disk_limit", TypeDiskLimit, "20%", "most disk the call lists may use"),
		intOpt("memento_threads", "25", 1, math.MaxInt32, "threads adding fragments to the call list store"),
		opt("memento_notify_url", TypeURL, "", "URL Memento POSTs to when a call list changes; empty for none"),
		opt("signaling_dns_server", TypeIPList, "127.0.0.1", "DNS servers for non-ENUM queries, tried in order").maxLen(3),
		boolOpt("override_npdi", "N", "look up number portability even on requests already marked npdi"),
		durOpt("exception_max_ttl", time.Second, "600", 1, "longest a process waits before exiting after a crash"),
		boolOpt("check_destination_host", "Y", "check Destination-Host before processing a Diameter request"),
		intOpt("astaire_cpu_limit_percentage", "5", 1, 100, "most CPU, in percent, Astaire uses when resynchronising"),
		durOpt("sip_blacklist_duration", time.Second, "30", 0, "how long an unresponsive SIP peer is blacklisted"),
		durOpt("http_blacklist_duration", time.Second, "30", 0, "how long an unresponsive HTTP peer is blacklisted"),
		durOpt("diameter_blacklist_duration", time.Second, "30", 0, "how long an unresponsive Diameter peer is blacklisted"),
		opt("snmp_ip", TypeIPList, "", "addresses SNMP alarms are sent to"),
		opt("snmp_notification_types", TypeEnumList, "", "formats SNMP alarms are sent in").choices("rfc3877", "enterprise"),
		durOpt("impu_cache_ttl", time.Second, "0", 0, "how long homestead caches the SIP digest from a Multimedia-Auth-Request"),
		durOpt("sip_tcp_connect_timeout", time.Millisecond, "2000", 1, "how long to wait for a SIP TCP connection to be established"),
		durOpt("sip_tcp_send_timeout", time.Millisecond, "2000", 1, "how long to wait for sent SIP data to be acknowledged by TCP"),
		durOpt("session_continued_timeout_ms", time.Millisecond, "2000", 1, "how long to wait for an unresponsive 'continue session' AS before skipping it"),
		durOpt("session_terminated_timeout_ms", time.Millisecond, "4000", 1, "how long to wait for an unresponsive 'terminate session' AS before ending the session"),
		boolOpt("sas_use_signaling_interface", "N", "send SAS traffic over the signaling network"),
		opt("pbxes", TypeIPList, "", "addresses of PBXes that cannot register"),
		opt("pbx_service_route", TypeSIPURI, "", "SIP URI Bono routes originating requests from PBXes to"),
		opt("non_register_authentication", TypeEnumList, "", "when Sprout challenges non-REGISTER requests").
			choices("if_proxy_authorization_present", "initial_req_from_reg_digest_endpoint"),
		intOpt("ralf_threads", "25", 1, math.MaxInt32, "threads on Sprout sending requests to ralf"),
		opt("impi_store_mode", TypeEnum, "impi", "how Sprout stores authentication challenges").choices("impi", "av-impi"),
		boolOpt("nonce_count_supported", "N", "accept authentication responses with a nonce-count above 1"),
		boolOpt("disable_tcp_switch", "N", "disable UDP-to-TCP uplift of SIP messages on Sprout"),
		opt("sprout_impi_store", TypeStoreList, "", "location of Sprout's IMPI store").
			derived("sprout_registration_store", func(c *Config) string { return c.String("sprout_registration_store") }),
		boolOpt("request_shared_ifcs", "N", "request shared iFC sets from the HSS"),
		boolOpt("apply_fallback_ifcs", "N", "apply the fallback iFCs to initial requests no iFC applies to"),
		boolOpt("reject_if_no_matching_ifcs", "N", "reject initial requests no iFC applies to"),
		opt("dummy_app_server", TypeString, "", "application server name in an iFC that invokes no application server"),
		opt("mmtel_national_prefix", TypeString, "+1", "the MMTEL AS's national prefix: a number starting with + and anything else is international (outgoing barring)"),
		opt("mmtel_international_prefixes", TypeNameList, "011,00", "dialled prefixes the MMTEL AS treats as international access codes"),
		boolOpt("http_acr_logging", "N", "log the bodies of HTTP requests to ralf to SAS"),
		durOpt("dns_timeout", time.Millisecond, "200", 1, "how long to wait for the DNS server"),
		intOpt("homestead_cache_threads", "", 1, math.MaxInt32, "threads homestead uses for its subscriber cache").
			derived("50 × CPU cores", func(*Config) string { return perCore(50) }),

		// Experimental options.
		portOpt("ralf_secure_listen_port", "", "port ralf listens on for TLS Diameter"),
		portOpt("hs_secure_listen_port", "", "port homestead listens on for TLS Diameter"),
		opt("ellis_cookie_key", TypeString, "", "string telling Ellis nodes they belong to the same cluster").secret(),
		opt("stateless_proxies", TypeHostList, "", "SIP stateless proxies, which are not blacklisted on timeouts"),
		durOpt("hss_reregistration_time", time.Second, "", 1, "how long homestead waits before re-registering a subscriber with the HSS").
			derived("half of reg_max_expires", func(c *Config) string { return strconv.Itoa(c.Int("reg_max_expires") / 2) }),

		// User settings: tunables that may differ between nodes.
		intOpt("log_level", "2", 1, 5, "how verbose logging is, from 1 (errors) to 5 (debug); see Config.LogLevel"),
		opt("log_directory", TypePath, "/var/log", "directory logs are written to"),
		intOpt("max_log_directory_size", "1073741824", 1, math.MaxInt64, "most bytes a process's log directory may hold"),
		intOpt("upstream_connections", "50", 1, math.MaxInt32, "most TCP connections Bono opens to the I-CSCF"),
		opt("trusted_peers", TypeIPList, "", "IBCF: SIP trunk peers Bono accepts traffic from and to"),
		opt("ibcf_domain", TypeHost, "", "IBCF: domain alias for the IBCF"),
		durOpt("upstream_recycle_connections", time.Second, "600", 0, "average time before Bono re-creates a connection to Sprout"),
		boolOpt("authentication", "N", "Y accepts every REGISTER without a challenge; never in production"),
	}

	for _, s := range sproutlets {
		name := s.name
		opts = append(opts,
			intOpt(name, s.port, 0, 65535, "port the "+s.desc+" listens on; 0 disables it"),
			opt(name+"_prefix", TypeName, name, "prefix of the "+s.desc+"'s URI"),
			opt(name+"_uri", TypeSIPURI, "", "URI the "+s.desc+" is reached at").
				derived("sip:<"+name+"_prefix>.<sprout_hostname>;transport=tcp", func(c *Config) string {
					h := c.String("sprout_hostname")
					if h == "" {
						return ""
					}
					return "sip:" + c.String(name+"_prefix") + "." + h + ";transport=tcp"
				}),
		)
	}
	for _, p := range throttled {
		name := p.name
		opts = append(opts,
			durOpt(name+"_target_latency_us", time.Microsecond, p.latency, 1, "target latency above which "+name+" throttles"),
			intOpt(name+"_max_tokens", "1000", 1, math.MaxInt32, "size of "+name+"'s throttling token bucket"),
			floatOpt(name+"_init_token_rate", "", "initial refill rate, tokens per second, of "+name+"'s token bucket").
				derived("250 × CPU cores", func(*Config) string { return perCore(250) }),
			floatOpt(name+"_min_token_rate", "10.0", "lowest refill rate of "+name+"'s token bucket"),
			floatOpt(name+"_max_token_rate", "0.0", "highest refill rate of "+name+"'s token bucket; 0 for none"),
			durOpt(name+"_request_queue_timeout", time.Millisecond, "4000", 1, "longest a request waits to be processed by "+name),
		)
	}

	t := make(map[string]Option, len(opts))
	for _, o := range opts {
		if _, dup := t[o.Name]; dup {
			panic("config: option " + o.Name + " defined twice")
		}
		t[o.Name] = o
	}
	return t
}
