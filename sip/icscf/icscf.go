// Package icscf is the I-CSCF: the entry to the home network. It picks the
// S-CSCF for a registering user (the one the HSS names, else one from
// s-cscf.json by capability, priority and weight, retrying the next if one
// fails) and finds the S-CSCF serving the callee of a terminating request,
// mapping the HSS's answers to Clearwater's SIP errors.
package icscf

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/emiago/sipgo/sip"

	"stillwater/diameter/hss"
	"stillwater/sip/header"
	"stillwater/sip/proxy"
)

// HSS is what the I-CSCF asks of the subscriber store.
type HSS interface {
	CachedRegData(ctx context.Context, impu string) (*hss.RegData, error)
}

// Options configures the I-CSCF.
type Options struct {
	HSS HSS
	// Default is the S-CSCF chosen when the HSS names none and no
	// s-cscf.json is in force (scscf_uri).
	Default sip.Uri
	// Rand orders servers of equal priority by weight; nil seeds one.
	Rand *rand.Rand
	// ENUM, if set, translates numbers the HSS does not know; the result
	// goes to the BGCF unless IsHome says its domain is ours.
	ENUM interface {
		Translate(ctx context.Context, number string) (string, error)
	}
	BGCF   *sip.Uri
	IsHome func(host string) bool
	// IsLocal reports whether an S-CSCF URI is served by this site's nodes
	// (any of which can serve any subscriber).
	IsLocal func(sip.Uri) bool
	Logger  *slog.Logger
}

// ICSCF is the I-CSCF service.
type ICSCF struct {
	o       Options
	log     *slog.Logger
	servers atomic.Pointer[[]Server]
	randMu  sync.Mutex
}

// New creates the I-CSCF.
func New(o Options) *ICSCF {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Rand == nil {
		o.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return &ICSCF{o: o, log: o.Logger.With("component", "icscf")}
}

// SetSCSCFs puts an s-cscf.json in force; nil returns to the default.
func (c *ICSCF) SetSCSCFs(servers []Server) { c.servers.Store(&servers) }

// ServeSIP routes a REGISTER or a terminating request to an S-CSCF.
func (c *ICSCF) ServeSIP(t *proxy.Txn) {
	if t.Req.Method == sip.REGISTER {
		c.register(t)
		return
	}
	c.terminating(t)
}

func (c *ICSCF) register(t *proxy.Txn) {
	to := t.Req.To()
	impu := header.Canonical(to.Address)
	// One registration-data read answers the UAR: the identity exists, is
	// not barred, and which S-CSCF (if any) serves it.
	rd, err := c.o.HSS.CachedRegData(t.Context(), impu)
	switch {
	case errors.Is(err, hss.ErrNotFound):
		t.Reply(403, "Forbidden", warning("unknown public identity "+impu))
		return
	case err != nil:
		c.log.Warn("HSS lookup failed", "impu", impu, "err", err)
		t.Reply(504, "Server Time-out", warning("subscriber store unavailable"))
		return
	}
	for _, p := range rd.PublicIDs() {
		if p.Identity == impu && p.Barred {
			t.Reply(403, "Forbidden", warning("barred public identity"))
			return
		}
	}
	c.forward(t, c.candidates(rd), rd)
}

func (c *ICSCF) terminating(t *proxy.Txn) { c.locate(t, true) }

// locate finds the S-CSCF serving the Request-URI; withENUM allows one ENUM
// translation of a number the HSS does not know.
func (c *ICSCF) locate(t *proxy.Txn, withENUM bool) {
	impu := header.Canonical(t.Req.Recipient)
	if t.Req.Recipient.UriParams != nil {
		if v, ok := t.Req.Recipient.UriParams.Get("user"); ok && strings.EqualFold(v, "phone") {
			impu = "tel:" + t.Req.Recipient.User
		}
	}
	rd, err := c.o.HSS.CachedRegData(t.Context(), impu)
	switch {
	case errors.Is(err, hss.ErrNotFound) && strings.HasPrefix(impu, "tel:") && c.o.ENUM != nil && withENUM:
		// A number the HSS does not know may belong to another network
		// (ENUM guide: the I-CSCF translates it and routes the result).
		c.enumRoute(t, strings.TrimPrefix(impu, "tel:"))
		return
	case errors.Is(err, hss.ErrNotFound):
		t.Reply(404, "Not Found")
		return
	case err != nil:
		c.log.Warn("HSS lookup failed", "impu", impu, "err", err)
		t.Reply(504, "Server Time-out", warning("subscriber store unavailable"))
		return
	}
	for _, p := range rd.PublicIDs() {
		if p.Identity == impu && p.Barred {
			t.Reply(404, "Not Found")
			return
		}
	}
	c.forward(t, c.candidates(rd), rd)
}

// enumRoute translates a number by ENUM: a home result is looked up again,
// anything else goes to the BGCF; no translation is 404.
func (c *ICSCF) enumRoute(t *proxy.Txn, number string) {
	uri, err := c.o.ENUM.Translate(t.Context(), number)
	if err != nil {
		t.Reply(404, "Not Found", warning("number not found by ENUM"))
		return
	}
	var u sip.Uri
	if sip.ParseUri(uri, &u) != nil {
		t.Reply(404, "Not Found", warning("ENUM gave no SIP URI"))
		return
	}
	t.Req.Recipient = u
	if c.o.IsHome != nil && c.o.IsHome(u.Host) {
		c.locate(t, false)
		return
	}
	if c.o.BGCF == nil {
		t.Forward(proxy.Fork{Targets: []proxy.Target{{}}})
		return
	}
	b := *c.o.BGCF.Clone()
	if b.UriParams == nil {
		b.UriParams = sip.NewParams()
	}
	b.UriParams.Add("lr", "")
	t.Forward(proxy.Fork{Targets: []proxy.Target{{Routes: []sip.Uri{b}}}})
}

// candidates lists the S-CSCFs to try: the assigned one, then the site's.
func (c *ICSCF) candidates(rd *hss.RegData) []sip.Uri {
	var out []sip.Uri
	if rd.SCSCF != "" {
		var u sip.Uri
		if sip.ParseUri(strings.Trim(rd.SCSCF, "<>"), &u) == nil && (c.o.IsLocal == nil || !c.o.IsLocal(u)) {
			out = append(out, u)
		}
	}
	var servers []Server
	if p := c.servers.Load(); p != nil {
		servers = *p
	}
	if len(servers) == 0 {
		return append(out, c.o.Default)
	}
	c.randMu.Lock()
	defer c.randMu.Unlock()
	return append(out, order(servers, c.o.Rand)...)
}

// forward sends the request to the first S-CSCF, moving to the next when
// one does not answer or is unavailable; an S-CSCF of this node receives rd
// with it rather than reading it again.
func (c *ICSCF) forward(t *proxy.Txn, candidates []sip.Uri, rd *hss.RegData) {
	if len(candidates) == 0 {
		t.Reply(480, "Temporarily Unavailable", warning("no S-CSCF available"))
		return
	}
	next := 1
	route := func(u sip.Uri) proxy.Target {
		u = *u.Clone()
		if u.UriParams == nil {
			u.UriParams = sip.NewParams()
		}
		u.UriParams.Add("lr", "")
		return proxy.Target{Routes: []sip.Uri{u}, Carry: rd}
	}
	t.Forward(proxy.Fork{
		Targets: []proxy.Target{route(candidates[0])},
		OnFinal: func(best *sip.Response) []proxy.Target {
			if next >= len(candidates) || !retriable(best.StatusCode) {
				return nil
			}
			u := candidates[next]
			next++
			return []proxy.Target{route(u)}
		},
	})
}

// retriable answers mean the S-CSCF could not serve the request at all.
func retriable(code int) bool { return code == 408 || code == 503 || code == 504 }

func warning(text string) sip.Header {
	return sip.NewHeader("Warning", `399 - "`+strings.ReplaceAll(text, `"`, "'")+`"`)
}
