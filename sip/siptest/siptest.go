// Package siptest is the in-process SIP site for the SIP packages' tests:
// one node wired as appliance/sip.go wires it (the proxy core with the
// P-CSCF, I-CSCF, S-CSCF and, when asked, the MMTEL AS over a real kv
// site, the HSS store, sip/auth and the registrar), and the requests a UE
// sends it through the P-CSCF.
package siptest

import (
	"context"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"stillwater/diameter/hss"
	"stillwater/kv/kvtest"
	"stillwater/sip/auth"
	"stillwater/sip/icscf"
	"stillwater/sip/mmtel"
	"stillwater/sip/pcscf"
	"stillwater/sip/proxy"
	"stillwater/sip/registrar"
	"stillwater/sip/scscf"
	"stillwater/sip/siptest/endpoint"
)

// The default subscribers; Alice, Alice2 and Alice3 share an implicit
// registration set and Alice3 is barred.
const (
	Alice  = "sip:6505550001@example.com"
	Alice2 = "sip:6505550002@example.com"
	Alice3 = "sip:6505550003@example.com"
	Bob    = "sip:6505550011@example.com"
	// Nobody is not provisioned.
	Nobody = "sip:6505559999@example.com"
)

// Names of the node's services.
const (
	HomeDomain = "example.com"
	SCSCFID    = "sip:scscf.test;transport=tcp"
	ICSCFID    = "sip:icscf.test;transport=tcp"
	// EdgeHost names the P-CSCF's core side; EdgePort (its TrustedPort)
	// rides along.
	EdgeHost = "pcscf.test"
	EdgePort = 5058
	// MMTELHost names the MMTEL AS when the site has one.
	MMTELHost = "mmtel.example.com"
)

// Options vary the node from appliance/sip.go's wiring.
type Options struct {
	// Auth makes the S-CSCF challenge REGISTERs.
	Auth bool
	// FirstSCSCFs are S-CSCFs the I-CSCF tries before the local one.
	FirstSCSCFs []sip.Uri
	// Session timer limits of the S-CSCF.
	DefaultSE, MaxSE time.Duration
	// Lines replace the default subscribers (Alice's implicit registration
	// set with Alice3 barred, and Bob).
	Lines []hss.Line
	// MMTEL, when set, serves the MMTEL AS as MMTELHost with these
	// settings.
	MMTEL mmtel.Store
}

// Site is the running node. UEs reach the P-CSCF on 127.0.0.1 over UDP or
// TCP; the other services are reached by name, in memory.
type Site struct {
	Ctx  context.Context
	Core *proxy.Core
	UDP  int // the P-CSCF's UDP port
	TCP  int // the P-CSCF's TCP port
	HSS  *hss.Store
	Reg  *registrar.Registrar
}

// New starts a site that lasts until the test ends.
func New(t *testing.T, o Options) *Site {
	t.Helper()
	kvs := kvtest.New(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	store := hss.New(kvs.KV, hss.Options{HomeDomain: HomeDomain, SCSCF: SCSCFID, Logger: log, Rand: newRand(1)})
	lines, barred := o.Lines, []string(nil)
	if lines == nil {
		lines = []hss.Line{
			{PrivateID: "6505550001@example.com", PublicIDs: []string{Alice, Alice2, Alice3}, Password: "pw"},
			{PrivateID: "6505550011@example.com", PublicIDs: []string{Bob}, Password: "pw"},
		}
		barred = []string{Alice3}
	}
	for _, l := range lines {
		if err := store.CreateLine(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	for _, impu := range barred {
		pub, err := store.LookupPublicID(ctx, impu)
		if err != nil {
			t.Fatal(err)
		}
		doc := "<PublicIdentity><BarringIndication>1</BarringIndication><Identity>" + impu + "</Identity></PublicIdentity>"
		if err := store.PutPublicID(ctx, pub.IRS, pub.ServiceProfile, impu, []byte(doc)); err != nil {
			t.Fatal(err)
		}
	}

	names := map[string]string{"scscf.test": "scscf", "icscf.test": "icscf", EdgeHost: "pcscf"}
	if o.MMTEL != nil {
		names[MMTELHost] = "mmtel"
	}
	lo := netip.MustParseAddr("127.0.0.1")
	core, err := proxy.New(proxy.Config{
		Listeners: []proxy.Listener{
			{Network: "udp", Addr: netip.AddrPortFrom(lo, 0), Service: "pcscf"},
			{Network: "tcp", Addr: netip.AddrPortFrom(lo, 0), Service: "pcscf"},
		},
		Hosts:   []string{"127.0.0.1", "localhost"},
		Names:   names,
		FlowKey: []byte("test site flow key"),
		Rand:    newRand(2),
		Logger:  log,
	})
	if err != nil {
		t.Fatal(err)
	}
	scscfURI, icscfURI := MustURI(t, SCSCFID), MustURI(t, ICSCFID)
	serviceRoute := *scscfURI.Clone()
	serviceRoute.UriParams.Add("lr", "")
	serviceRoute.UriParams.Add("orig", "")
	reg := registrar.New(registrar.Options{
		KV: kvs.KV, Timers: kvs.Timers, HSS: store,
		ServiceRoute: serviceRoute.String(), SCSCFName: SCSCFID,
		Rand: newRand(3), Logger: log, Sender: core,
	})
	t.Cleanup(reg.Close)
	authn := auth.New(auth.Options{KV: kvs.KV, HSS: store, Realm: HomeDomain, Rand: newRand(4), Logger: log})
	core.Handle("pcscf", pcscf.New(pcscf.Options{
		Upstream: icscfURI, Host: EdgeHost, TrustedPort: EdgePort, PublicHost: "127.0.0.1",
		CDF: "cdf.example.com", Rand: newRand(5), Logger: log,
	}))
	ic := icscf.New(icscf.Options{
		HSS: store, Default: scscfURI, Rand: mrand.New(mrand.NewPCG(1, 2)),
		IsLocal: func(u sip.Uri) bool { _, ok := core.LocalService(&u); return ok },
		Logger:  log,
	})
	if len(o.FirstSCSCFs) > 0 {
		// As an s-cscf.json would: the others by priority, the local one last.
		var servers []icscf.Server
		for i, u := range o.FirstSCSCFs {
			servers = append(servers, icscf.Server{URI: u, Priority: i, Weight: 1})
		}
		ic.SetSCSCFs(append(servers, icscf.Server{URI: scscfURI, Priority: len(servers), Weight: 1}))
	}
	core.Handle("icscf", ic)
	edge := MustURI(t, fmt.Sprintf("sip:%s:%d;transport=tcp", EdgeHost, EdgePort))
	core.Handle("scscf", scscf.New(scscf.Options{
		HSS: store, Auth: authn, Registrar: reg, HomeDomains: []string{HomeDomain}, URI: scscfURI,
		ICSCF: &icscfURI, RecordRoute: true, LocalEdge: &edge, AuthDisabled: !o.Auth, Logger: log,
		DefaultSessionExpires: o.DefaultSE, MaxSessionExpires: o.MaxSE,
		ODIKey: []byte("test site odi key"),
	}))
	if o.MMTEL != nil {
		core.Handle("mmtel", mmtel.New(mmtel.Options{Store: o.MMTEL, Logger: log}))
	}
	cctx, stop := context.WithCancel(context.Background())
	if err := core.Start(cctx); err != nil {
		stop()
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(); core.Close() })
	p := core.Ports()
	return &Site{Ctx: ctx, Core: core, UDP: p[0], TCP: p[1], HSS: store, Reg: reg}
}

// NewUE is a UE endpoint on endpoint.RemoteIP.
func NewUE(t testing.TB) *endpoint.Endpoint {
	t.Helper()
	return endpoint.New(t, endpoint.RemoteIP, "ue")
}

// UDPAddr is the P-CSCF's UDP address.
func (s *Site) UDPAddr() string { return "127.0.0.1:" + strconv.Itoa(s.UDP) }

// EdgeRoute is the outbound-proxy Route a UE puts on its requests.
func (s *Site) EdgeRoute() string { return fmt.Sprintf("Route: <sip:127.0.0.1:%d;lr>", s.UDP) }

// MustURI parses s, failing the test if it does not parse.
func MustURI(t testing.TB, s string) sip.Uri {
	t.Helper()
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return u
}

// Register registers aor from e through the P-CSCF with a Contact carrying
// params, and returns the final response.
func (s *Site) Register(e *endpoint.Endpoint, aor, params string, extra ...string) *sip.Response {
	e.T().Helper()
	return e.Final(s.SendRegister(e, aor, params, extra...), sip.REGISTER)
}

// SendRegister sends the REGISTER Register would and returns its Call-ID.
func (s *Site) SendRegister(e *endpoint.Endpoint, aor, params string, extra ...string) string {
	e.T().Helper()
	callID := e.NextCallID("reg")
	lines := []string{
		"REGISTER sip:example.com SIP/2.0",
		"Via: SIP/2.0/UDP " + e.Addr() + ";branch=z9hG4bK" + callID + ";rport",
		"Max-Forwards: 70",
		"From: <" + aor + ">;tag=r" + callID,
		"To: <" + aor + ">",
		"Call-ID: " + callID,
		"CSeq: 1 REGISTER",
		"Contact: <" + e.URI("ue") + ">" + params,
		"Expires: 300",
	}
	e.Send(s.UDPAddr(), endpoint.ReqText(append(lines, extra...), ""))
	return callID
}

// MustRegister registers aor and fails the test unless it gets 200.
func (s *Site) MustRegister(e *endpoint.Endpoint, aor, params string, extra ...string) *sip.Response {
	e.T().Helper()
	res := s.Register(e, aor, params, extra...)
	if res.StatusCode != 200 {
		e.T().Fatalf("REGISTER %s: %d %s", aor, res.StatusCode, res.Reason)
	}
	return res
}

// Invite sends an INVITE with an audio offer from e (whose identity is
// from) to ruri through the P-CSCF, and returns its Call-ID and text.
func (s *Site) Invite(e *endpoint.Endpoint, from, ruri string, extra ...string) (string, string) {
	e.T().Helper()
	return s.Send(e, sip.INVITE, "<"+from+">", ruri, endpoint.SDP, extra...)
}

// Send sends a request from e to ruri through the P-CSCF and returns its
// Call-ID and text. from is the From header's name-addr, without a tag; a
// body is an SDP offer.
func (s *Site) Send(e *endpoint.Endpoint, method sip.RequestMethod, from, ruri, body string, extra ...string) (string, string) {
	e.T().Helper()
	callID := e.NextCallID(strings.ToLower(string(method)))
	lines := []string{
		string(method) + " " + ruri + " SIP/2.0",
		"Via: SIP/2.0/UDP " + e.Addr() + ";branch=z9hG4bK" + callID + ";rport",
		"Max-Forwards: 70",
		s.EdgeRoute(),
		"From: " + from + ";tag=f" + callID,
		"To: <" + ruri + ">",
		"Call-ID: " + callID,
		"CSeq: 1 " + string(method),
		"Contact: <" + e.URI("ue") + ">",
	}
	if body != "" {
		lines = append(lines, "Content-Type: application/sdp")
	}
	text := endpoint.ReqText(append(lines, extra...), body)
	e.Send(s.UDPAddr(), text)
	return callID, text
}

// AckFailure acknowledges, through the P-CSCF, a non-2xx final response to
// an INVITE e sent.
func (s *Site) AckFailure(e *endpoint.Endpoint, inv string, res *sip.Response) {
	e.T().Helper()
	req := endpoint.ParseReq(e.T(), inv)
	lines := []string{
		"ACK " + req.Recipient.String() + " SIP/2.0",
		"Via: " + req.Via().Value(),
		"Max-Forwards: 70",
		s.EdgeRoute(),
		"From: " + req.From().Value(),
		"To: " + res.To().Value(),
		"Call-ID: " + req.CallID().Value(),
		fmt.Sprintf("CSeq: %d ACK", req.CSeq().SeqNo),
	}
	e.Send(s.UDPAddr(), endpoint.ReqText(lines, ""))
}

// lockedRand is a deterministic source safe for concurrent use.
type lockedRand struct {
	mu sync.Mutex
	r  *mrand.ChaCha8
}

func newRand(seed byte) *lockedRand { return &lockedRand{r: mrand.NewChaCha8([32]byte{seed})} }

func (l *lockedRand) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(p)
}
