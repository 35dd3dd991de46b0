package bgcf

import (
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/emiago/sipgo/sip"

	"stillwater/sip/proxy"
)

// Service is the BGCF: it sends requests for other networks along the
// route bgcf.json gives for their domain or routing number.
type Service struct {
	routes atomic.Pointer[Routes]
	log    *slog.Logger
}

// NewService creates a BGCF with no routes; SetRoutes installs bgcf.json.
func NewService(log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{log: log.With("component", "bgcf")}
	s.routes.Store(&Routes{})
	return s
}

// SetRoutes puts a parsed bgcf.json in force.
func (s *Service) SetRoutes(r Routes) { s.routes.Store(&r) }

// ServeSIP routes an off-net request. With no route, a SIP URI is sent to
// its own domain (RFC 3263); a telephone number has nowhere to go (404).
func (s *Service) ServeSIP(t *proxy.Txn) {
	req := t.Req
	route, ok := s.routes.Load().Lookup(&req.Recipient, "")
	if ok {
		t.Forward(proxy.Fork{Targets: []proxy.Target{{Routes: route}}})
		return
	}
	if strings.EqualFold(req.Recipient.Scheme, "tel") || req.Recipient.Host == "" {
		t.Reply(404, "Not Found", sip.NewHeader("Warning", `399 - "no BGCF route for this number"`))
		return
	}
	t.Forward(proxy.Fork{Targets: []proxy.Target{{}}})
}
