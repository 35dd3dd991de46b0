package baresip

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// DefaultModulePath is where Debian's baresip package installs its modules.
const DefaultModulePath = "/usr/lib/baresip/modules"

// modules are the only baresip modules the driver loads: G.711 for media,
// a sine generator as the audio source and the audio bridge as a sink so a
// call carries real RTP without any sound device, the menu (which provides
// dial/accept/hangup/uanew) and the TCP control interface. account.so is
// left out on purpose: the driver creates the account from the accounts
// file with "uanew" once its control connection is up.
func modules() []struct{ kind, name string } {
	return []struct{ kind, name string }{
		{"module", "g711.so"},
		{"module", "ausine.so"},
		{"module", "aubridge.so"},
		{"module_app", "menu.so"},
		{"module_app", "ctrl_tcp.so"},
	}
}

// checkModules reports the first module the config needs that is missing
// from dir, so a partial install fails with a clear message instead of an
// early baresip exit.
func checkModules(dir string) error {
	for _, m := range modules() {
		p := filepath.Join(dir, m.name)
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("baresip: module %s not found in %s (is the Debian baresip package installed?): %w", m.name, dir, err)
		}
	}
	return nil
}

// renderConfig returns the contents of the baresip "config" file.
func renderConfig(o *Options, ctrlAddr string) string {
	var b strings.Builder
	w := func(k, v string) { fmt.Fprintf(&b, "%-20s %s\n", k, v) }
	b.WriteString("# baresip config written by the stillwater bench driver\n")
	w("poll_method", "epoll")
	w("sip_listen", net.JoinHostPort(o.LocalIP, fmt.Sprint(o.SIPPort)))
	// net_interface takes an address too; it keeps SDP and Contact on
	// LocalIP instead of the host's default-route address.
	w("net_interface", o.LocalIP)
	w("call_local_timeout", "120")
	w("call_max_calls", "4")
	// ausine produces 48 kHz stereo only; baresip resamples it to 8 kHz mono.
	w("audio_source", "ausine,440")
	w("audio_player", "aubridge,nil")
	w("audio_alert", "aubridge,nil")
	w("ausrc_srate", "48000")
	w("ausrc_channels", "2")
	w("audio_level", "no")
	w("rtp_stats", "no")
	w("statmode_default", "off")
	w("ringback_disabled", "yes")
	w("module_path", o.ModulePath)
	for _, m := range modules() {
		w(m.kind, m.name)
	}
	w("ctrl_tcp_listen", ctrlAddr)
	return b.String()
}

// renderAccount returns the single line of the baresip "accounts" file.
func renderAccount(o *Options) string {
	aor := fmt.Sprintf("sip:%s@%s", o.User, o.Domain)
	if o.Transport == "tcp" {
		aor += ";transport=tcp"
	}
	params := []string{}
	if o.Password != "" {
		params = append(params, "auth_user="+o.AuthUser, "auth_pass="+o.Password)
	}
	if o.Outbound != "" {
		params = append(params, fmt.Sprintf("outbound=%q", o.Outbound), fmt.Sprintf("regint=%d", o.RegInterval))
	} else {
		params = append(params, "regint=0")
	}
	mode := "manual"
	if o.AutoAnswer {
		mode = "auto"
	}
	params = append(params, "answermode="+mode, "audio_codecs=PCMU,PCMA")
	return "<" + aor + ">;" + strings.Join(params, ";") + "\n"
}

// writeFiles writes config and accounts into dir.
func writeFiles(dir string, o *Options, ctrlAddr string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("baresip: create config dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config"), []byte(renderConfig(o, ctrlAddr)), 0o644); err != nil {
		return fmt.Errorf("baresip: write config: %w", err)
	}
	// The accounts file holds the digest password: keep it private.
	if err := os.WriteFile(filepath.Join(dir, "accounts"), []byte(renderAccount(o)), 0o600); err != nil {
		return fmt.Errorf("baresip: write accounts: %w", err)
	}
	return nil
}

// validate fills defaults and rejects options baresip would misread.
func (o *Options) validate() error {
	if o.User == "" {
		return fmt.Errorf("baresip: Options.User is required")
	}
	if o.LocalIP == "" {
		o.LocalIP = "127.0.0.1"
	}
	ip := net.ParseIP(o.LocalIP)
	if ip == nil || ip.To4() == nil {
		return fmt.Errorf("baresip: Options.LocalIP %q is not an IPv4 address", o.LocalIP)
	}
	if o.Domain == "" {
		o.Domain = o.LocalIP
	}
	switch o.Transport {
	case "":
		o.Transport = "udp"
	case "udp", "tcp":
	default:
		return fmt.Errorf("baresip: Options.Transport %q: want udp or tcp", o.Transport)
	}
	if o.SIPPort < 0 || o.SIPPort > 65535 {
		return fmt.Errorf("baresip: Options.SIPPort %d out of range", o.SIPPort)
	}
	if o.AuthUser == "" {
		o.AuthUser = o.User
	}
	if o.RegInterval <= 0 {
		o.RegInterval = 3600
	}
	if o.ModulePath == "" {
		o.ModulePath = DefaultModulePath
	}
	if o.Binary == "" {
		o.Binary = "baresip"
	}
	// These values end up unquoted in baresip's line-oriented accounts
	// file, where whitespace, '<', '>' and '"' would corrupt the entry and
	// ';' would start a new parameter (the outbound URI is quoted, so it
	// may carry URI parameters).
	fields := []struct{ name, v, bad string }{
		{"User", o.User, " \t\r\n<>\";"},
		{"AuthUser", o.AuthUser, " \t\r\n<>\";"},
		{"Password", o.Password, " \t\r\n<>\";"},
		{"Domain", o.Domain, " \t\r\n<>\";"},
		{"Outbound", o.Outbound, " \t\r\n<>\""},
	}
	for _, f := range fields {
		if strings.ContainsAny(f.v, f.bad) {
			return fmt.Errorf("baresip: Options.%s %q contains characters baresip's accounts file cannot hold", f.name, f.v)
		}
	}
	if o.Outbound != "" && !strings.HasPrefix(o.Outbound, "sip:") {
		return fmt.Errorf("baresip: Options.Outbound %q: want a sip: URI", o.Outbound)
	}
	return nil
}
