package config

import (
	"strings"
	"testing"
)

// documented lists every option the Clearwater documentation names, so that
// none is dropped from the table.
var documented = strings.Fields(`
local_ip public_ip public_hostname node_idx etcd_cluster etcd_proxy etcd_cluster_key
remote_cassandra_seeds scscf_node_uri local_site_name signaling_namespace management_local_ip
home_domain sprout_hostname sprout_hostname_mgmt hs_hostname hs_hostname_mgmt
hs_provisioning_hostname ralf_hostname cdf_identity xdms_hostname hss_realm hss_hostname hss_port
signup_key turn_workaround smtp_smarthost smtp_username smtp_password email_recovery_sender
ellis_api_key ellis_hostname memento_hostname sprout_registration_store ralf_session_store
homestead_impu_store memento_auth_store sprout_chronos_callback_uri ralf_chronos_callback_uri
cassandra_hostname chronos_hostname remote_site_names
scscf scscf_prefix scscf_uri icscf icscf_prefix icscf_uri bgcf bgcf_prefix bgcf_uri
gemini gemini_prefix gemini_uri memento memento_prefix memento_uri cdiv cdiv_prefix cdiv_uri
mmtel mmtel_prefix mmtel_uri mangelwurzel mangelwurzel_prefix mangelwurzel_uri
homestead_provisioning_port reg_max_expires sub_max_expires upstream_hostname upstream_port
sprout_rr_level force_hss_peer hss_mar_scheme_unknown hss_mar_scheme_digest hss_mar_scheme_akav1
hss_mar_scheme_akav2 force_third_party_reg_body enforce_user_phone enforce_global_only_lookups
hs_listen_port ralf_listen_port homestead_diameter_watchdog_timer ralf_diameter_watchdog_timer
alias_list bono_alias_list default_session_expires max_session_expires enum_server enum_suffix
enum_file external_icscf_uri additional_home_domains billing_realm diameter_timeout_ms
sprout_homestead_timeout_ms max_peers num_http_threads num_http_worker_threads sprout_http_threads
homestead_http_threads num_worker_threads sprout_worker_threads ralf_diameteridentity
hs_diameteridentity max_call_list_length call_list_store_ttl memento_disk_limit memento_threads
memento_notify_url signaling_dns_server
sprout_target_latency_us sprout_max_tokens sprout_init_token_rate sprout_min_token_rate
sprout_max_token_rate sprout_request_queue_timeout
homestead_target_latency_us ralf_target_latency_us memento_target_latency_us
override_npdi exception_max_ttl check_destination_host astaire_cpu_limit_percentage
sip_blacklist_duration http_blacklist_duration diameter_blacklist_duration snmp_ip
snmp_notification_types impu_cache_ttl sip_tcp_connect_timeout sip_tcp_send_timeout
session_continued_timeout_ms session_terminated_timeout_ms sas_use_signaling_interface pbxes
pbx_service_route non_register_authentication ralf_threads impi_store_mode nonce_count_supported
disable_tcp_switch sprout_impi_store request_shared_ifcs apply_fallback_ifcs
reject_if_no_matching_ifcs dummy_app_server http_acr_logging dns_timeout homestead_cache_threads
ralf_secure_listen_port hs_secure_listen_port ellis_cookie_key stateless_proxies
hss_reregistration_time
log_level log_directory max_log_directory_size upstream_connections trusted_peers ibcf_domain
upstream_recycle_connections authentication
data_dir shard_count site_key consensus_port admin_port chronos_port fault_injection node_id
`)

func TestDocumentedOptions(t *testing.T) {
	for _, name := range documented {
		if _, ok := Lookup(name); !ok {
			t.Errorf("option %s is missing", name)
		}
	}
}

func TestTable(t *testing.T) {
	opts := Options()
	if len(opts) != len(table) {
		t.Fatalf("Options() has %d entries, table %d", len(opts), len(table))
	}
	for i, o := range opts {
		if i > 0 && opts[i-1].Name >= o.Name {
			t.Errorf("Options() not sorted at %s", o.Name)
		}
		if o.Name == "" || o.Desc == "" || o.Files == 0 {
			t.Errorf("%s: incomplete entry %+v", o.Name, o)
		}
		if msg := o.check(o.Default); msg != "" {
			t.Errorf("%s: default %s", o.Name, msg)
		}
		if o.Default != "" && o.Derived != "" {
			t.Errorf("%s: both a default and a derived default", o.Name)
		}
		if (o.Type == TypeEnum || o.Type == TypeEnumList) != (len(o.Choices) > 0) {
			t.Errorf("%s: choices do not match type %s", o.Name, o.Type)
		}
		if (o.Type == TypeDuration) != (o.Unit > 0) {
			t.Errorf("%s: unit does not match type %s", o.Name, o.Type)
		}
	}
	o, _ := Lookup("sprout_rr_level")
	o.Choices[0] = "changed"
	if o2, _ := Lookup("sprout_rr_level"); o2.Choices[0] != "pcscf" {
		t.Error("Lookup shares the table's choices")
	}
	// Clearwater's local config options stay in local_config.
	for _, name := range []string{"local_ip", "public_ip", "public_hostname", "etcd_cluster", "local_site_name", "site_key", "node_id"} {
		if o, _ := Lookup(name); o.Files != LocalConfig {
			t.Errorf("%s may be set in %s", name, o.Files)
		}
	}
}

// TestDerivedDefaults checks that every derived default of a fully
// configured node is itself a valid value.
func TestDerivedDefaults(t *testing.T) {
	c, err := Load("testdata/load/gr_node")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range Options() {
		if o.Derived == "" {
			continue
		}
		v := c.String(o.Name)
		if v == "" {
			t.Errorf("%s: derived default is empty", o.Name)
		}
		if msg := o.check(v); msg != "" {
			t.Errorf("%s: derived default %s", o.Name, msg)
		}
	}
}

func TestValueChecks(t *testing.T) {
	tests := []struct {
		name, value string
		ok          bool
	}{
		{"local_ip", "2001:db8::1", true},
		{"local_ip", "fe80::1%eth0", false},
		{"home_domain", "example.com.", true},
		{"home_domain", "-bad.example.com", false},
		{"home_domain", "10.0.0.1", true},
		{"hs_hostname", "[2001:db8::1]:8888", true},
		{"hs_hostname", "2001:db8::1", true},
		{"hs_hostname", "[2001:db8::1]8888", false},
		{"hs_hostname", "hs.example.com:", false},
		{"hs_hostname", "hs.example.com:+80", false},
		{"scscf_uri", "sips:scscf.example.com", true},
		{"scscf_uri", "SIP:user@[2001:db8::1]:5054;transport=tcp?h=v", true},
		{"scscf_uri", "sip:scscf.example.com;", false},
		{"scscf_uri", "sip:scscf example.com", false},
		{"scscf_uri", "<sip:scscf.example.com", false},
		{"memento_disk_limit", "10240", true},
		{"memento_disk_limit", "100k", true},
		{"memento_disk_limit", "100M", true},
		{"memento_disk_limit", "100G", true},
		{"memento_disk_limit", "100%", true},
		{"memento_disk_limit", "101%", false},
		{"memento_disk_limit", "10kM", false},
		{"sprout_registration_store", "vellum.example.com:11211", true},
		{"sprout_registration_store", "site1=vellum.example.com", true},
		{"sprout_registration_store", "site 1=vellum.example.com", false},
		{"sprout_registration_store", "a=vellum.example.com,b=bad..example.com", false},
		{"sprout_rr_level", "pcscf,icscf", true},
		{"non_register_authentication", "initial_req_from_req_digest_endpoint", false},
		{"reg_max_expires", "2147483", true},
		{"reg_max_expires", "99999999999999999999", false},
		{"sprout_init_token_rate", "NaN", false},
		{"site_key", "00112233445566778899aabbccddeef", false},
		{"site_key", "00112233445566778899aabbccddeeff0", false},
		{"site_key", "00112233445566778899aabbccddeeff00", true},
		{"sprout_target_latency_us", "10ms", false},
		{"trusted_peers", "10.0.0.1,peer.example.com", false},
		{"alias_list", "a.example.com,10.0.0.1,2001:db8::1", true},
		{"alias_list", "a.example.com,b..example.com", false},
		{"snmp_notification_types", "enterprise", true},
		{"remote_site_names", "siteA,siteB", true},
		{"remote_site_names", "siteA,", false},
	}
	for _, tt := range tests {
		o, _ := Lookup(tt.name)
		if msg := o.check(tt.value); (msg == "") != tt.ok {
			t.Errorf("%s=%q: %q, want ok=%v", tt.name, tt.value, msg, tt.ok)
		}
	}
}
