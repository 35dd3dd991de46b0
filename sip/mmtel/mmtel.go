// Package mmtel is the built-in MMTEL telephony application server
// (mmtel.<home domain>): the supplementary services of IR.92 applied from
// each subscriber's settings — identity presentation and restriction
// (OIP/OIR, TS 24.607, with RFC 3323/3325 privacy), communication diversion
// (TS 24.604) and communication barring (TS 24.611). The S-CSCF invokes it
// in memory through the ordinary iFC chain; it acts as a proxying AS and
// hands the request back to the S-CSCF by the Route the S-CSCF gave it.
package mmtel

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"stillwater/sip/header"
	"stillwater/sip/proxy"
)

// Settings are one subscriber's MMTEL services, as the AS acts on them.
// The zero value has no services: the call goes through untouched.
type Settings struct {
	// OIR is originating identity presentation restriction; nil when the
	// subscriber does not have it (or has it deactivated).
	OIR *OIR
	// NoOIP says the subscriber does not get callers' identities
	// presented (originating identity presentation not subscribed).
	NoOIP bool
	// IncomingBarring and OutgoingBarring are nil when inactive.
	IncomingBarring, OutgoingBarring *Barring
	// Diversion is nil when communication diversion is inactive.
	Diversion *Diversion
}

// OIR is the restriction service in temporary mode: Restricted is its
// default, which a caller overrides per call with a Privacy header.
type OIR struct {
	Restricted bool
}

// Barring is a barring ruleset (TS 24.611): a communication is barred when
// an active rule's conditions hold and none of the rules that hold allows
// it.
type Barring struct {
	Rules []BarringRule
}

// BarringRule is one barring rule.
type BarringRule struct {
	ID         string
	Conditions Conditions
	Allow      bool
}

// Diversion is the communication diversion service (TS 24.604).
type Diversion struct {
	// NoReplyTimer is the service's no-reply timer; 0 means
	// Options.DefaultNoReplyTimer.
	NoReplyTimer time.Duration
	// Rules in evaluation order: the first whose conditions hold applies.
	Rules []DiversionRule
}

// DiversionRule is one diversion rule.
type DiversionRule struct {
	ID         string
	Conditions Conditions
	// Target is the forward-to URI (sip, sips or tel).
	Target string
	// NotifyCaller sends the caller 181 Call Is Being Forwarded.
	NotifyCaller bool
	// NoReplyTimer overrides the service's timer for this rule; 0 keeps it.
	NoReplyTimer time.Duration
}

// Conditions of a rule; a rule applies when every condition it has holds.
// The zero value always holds.
type Conditions struct {
	// Diversion conditions.
	Busy, NoAnswer, NotReachable, NotRegistered bool
	// Media lists media every one of which the offer must contain
	// ("audio", "video").
	Media []string
	// Anonymous holds when the caller's identity is restricted.
	Anonymous bool
	// International holds for calls to numbers abroad (outgoing barring).
	International bool
	// Deactivated keeps a rule in the settings without applying it.
	Deactivated bool
	// Unsupported marks a rule with a condition this AS cannot evaluate
	// (identity, validity, roaming, presence ...). RFC 4745 makes an
	// unknown condition false, so such a rule never applies.
	Unsupported bool
}

// Store reads a subscriber's settings. A subscriber without settings is
// (nil, nil).
type Store interface {
	// The AS treats the returned settings as read-only, so a store may
	// hand the same value to many calls.
	Settings(ctx context.Context, impu string) (*Settings, error)
}

// Options configures the MMTEL AS.
type Options struct {
	// Store is where settings come from; nil applies no subscriber
	// services (RFC 3323 privacy is still honoured).
	Store Store
	// NationalPrefix is the home country code with its plus, e.g. "+1":
	// numbers beginning "+" and anything else are international.
	NationalPrefix string
	// InternationalPrefixes are the dialled international access codes,
	// e.g. "011", "00".
	InternationalPrefixes []string
	// DefaultNoReplyTimer applies when the settings give none (20 s).
	DefaultNoReplyTimer time.Duration
	// MaxDiversions is how many times a call may be diverted before a
	// further diversion rejects it (5).
	MaxDiversions int
	Logger        *slog.Logger
}

// Defaults of Options.
const (
	DefaultNationalPrefix      = "+1"
	DefaultNoReplyTimer        = 20 * time.Second
	DefaultMaxDiversions       = 5
	defaultInternationalPrefix = "011,00"
)

// legParam marks the Route by which the AS sends itself a callee leg that
// the no-reply timer governs (see divert.go).
const legParam = "mmtel-leg"

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
	if o.NationalPrefix == "" {
		o.NationalPrefix = DefaultNationalPrefix
	}
	if o.InternationalPrefixes == nil {
		o.InternationalPrefixes = strings.Split(defaultInternationalPrefix, ",")
	}
	if o.DefaultNoReplyTimer <= 0 {
		o.DefaultNoReplyTimer = DefaultNoReplyTimer
	}
	if o.MaxDiversions <= 0 {
		o.MaxDiversions = DefaultMaxDiversions
	}
	return &MMTEL{o: o, log: o.Logger.With("component", "mmtel")}
}

// servedUser is what the S-CSCF's P-Served-User says of the request.
type servedUser struct {
	impu    string
	sescase string // "orig", "term", "orig-cdiv"
	unreg   bool
}

// parseServedUser reads P-Served-User; ok is false without one.
func parseServedUser(req *sip.Request) (servedUser, bool) {
	h := header.First(req, "P-Served-User")
	if h == nil {
		return servedUser{}, false
	}
	v := strings.TrimSpace(h.Value())
	var su servedUser
	params := ""
	if strings.HasPrefix(v, "<") {
		end := strings.IndexByte(v, '>')
		if end < 0 {
			return servedUser{}, false
		}
		su.impu, params = v[1:end], v[end+1:]
	} else {
		su.impu, params, _ = strings.Cut(v, ";")
		params = ";" + params
	}
	for p := range strings.SplitSeq(params, ";") {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch strings.ToLower(k) {
		case "sescase":
			su.sescase = strings.ToLower(val)
		case "regstate":
			su.unreg = strings.EqualFold(val, "unreg")
		case "orig-cdiv":
			su.sescase = "orig-cdiv"
		}
	}
	su.impu = strings.TrimSpace(su.impu)
	return su, su.impu != ""
}

// ServeSIP applies the served user's services and returns the request to
// the S-CSCF.
func (m *MMTEL) ServeSIP(t *proxy.Txn) {
	req := t.Req
	if t.Route != nil && t.Src.Local && t.Src.From == "mmtel" && t.Route.UriParams != nil {
		if v, ok := t.Route.UriParams.Get(legParam); ok {
			m.timedLeg(t, v)
			return
		}
	}
	su, ok := parseServedUser(req)
	if !ok || !serviced(req.Method) {
		// Other methods (SUBSCRIBE/NOTIFY for MWI and conferencing,
		// OPTIONS ...) and requests not sent by an S-CSCF pass through.
		pass(t)
		return
	}
	switch su.sescase {
	case "orig":
		if m.diverting(req, su) {
			m.originatingCDIV(t, su)
			return
		}
		m.originating(t, su)
	case "orig-cdiv":
		m.originatingCDIV(t, su)
	case "term":
		m.terminating(t, su)
	default:
		m.log.Debug("P-Served-User without a session case; passed through", "served", su.impu)
		pass(t)
	}
}

// serviced are the methods the services act on: sessions and pager-mode
// messages (barring and privacy; diversion is for INVITE only).
func serviced(m sip.RequestMethod) bool {
	return m == sip.INVITE || m == sip.MESSAGE
}

func pass(t *proxy.Txn) {
	t.Forward(proxy.Fork{Targets: []proxy.Target{{}}})
}

// settings reads the served user's settings. A store failure leaves the
// call without services rather than failing it.
func (m *MMTEL) settings(ctx context.Context, impu string) *Settings {
	if m.o.Store == nil {
		return nil
	}
	s, err := m.o.Store.Settings(ctx, impu)
	if err != nil {
		m.log.Warn("settings unavailable; call proceeds without MMTEL services", "impu", impu, "err", err)
		return nil
	}
	return s
}

// warning is a Warning header naming this AS's reason.
func warning(text string) sip.Header {
	return sip.NewHeader("Warning", `399 mmtel "`+strings.ReplaceAll(text, `"`, "'")+`"`)
}

// removeAll removes every header called name, whatever its case.
func removeAll(req *sip.Request, name string) {
	for _, h := range header.Get(req, name) {
		req.RemoveHeader(h.Name())
	}
}
