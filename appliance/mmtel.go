package appliance

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"stillwater/appliance/homer"
	"stillwater/kv"
	"stillwater/sip/mmtel"
)

// mmtelOptions wires the built-in MMTEL AS to Homer's settings documents.
// International calls are told apart by mmtel_national_prefix and
// mmtel_international_prefixes; the diversion limit is Clearwater's five.
func (n *Node) mmtelOptions() mmtel.Options {
	cfg := n.Config()
	o := mmtel.Options{Logger: n.log, NationalPrefix: cfg.String("mmtel_national_prefix"),
		InternationalPrefixes: cfg.List("mmtel_international_prefixes")}
	if n.IMS.Homer != nil {
		o.Store = &mmtelStore{s: n.IMS.Homer, parsed: map[string]parsedSettings{}}
	}
	return o
}

// mmtelStore adapts Homer's store to the AS's view of a subscriber. Every
// call reads the document (so a change applies to the next call), but a
// document is parsed again only when its version changes: the AS runs
// twice per call and the XML parse would otherwise dominate its cost.
type mmtelStore struct {
	s      *homer.Store
	mu     sync.Mutex
	parsed map[string]parsedSettings
}

type parsedSettings struct {
	version kv.Version
	s       *mmtel.Settings
}

// mmtelParsedMax bounds the parse cache; it starts again when full.
const mmtelParsedMax = 100000

// Settings reads impu's simservs document; an identity without one has no
// services.
func (a *mmtelStore) Settings(ctx context.Context, impu string) (*mmtel.Settings, error) {
	doc, err := a.s.Get(ctx, impu)
	if errors.Is(err, homer.ErrNotFound) || errors.Is(err, homer.ErrBadIdentity) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mmtel settings of %s: %w", impu, err)
	}
	a.mu.Lock()
	p, ok := a.parsed[impu]
	a.mu.Unlock()
	if ok && p.version == doc.Version {
		return p.s, nil
	}
	ss, err := homer.Parse(doc.XML)
	if err != nil {
		return nil, fmt.Errorf("mmtel settings of %s: stored document: %w", impu, err)
	}
	s := mmtelSettings(ss)
	a.mu.Lock()
	if len(a.parsed) >= mmtelParsedMax {
		a.parsed = map[string]parsedSettings{}
	}
	a.parsed[impu] = parsedSettings{version: doc.Version, s: s}
	a.mu.Unlock()
	return s, nil
}

// mmtelSettings is the part of a simservs document the AS acts on:
// services that are present and active.
func mmtelSettings(ss *homer.Simservs) *mmtel.Settings {
	s := &mmtel.Settings{}
	if ss.OIR != nil && ss.OIR.Active {
		s.OIR = &mmtel.OIR{Restricted: ss.OIR.Restricted}
	}
	// A document without the OIP element leaves presentation on, as the
	// default document has it.
	s.NoOIP = ss.OIP != nil && !ss.OIP.Active
	s.IncomingBarring = mmtelBarring(ss.IncomingBarring)
	s.OutgoingBarring = mmtelBarring(ss.OutgoingBarring)
	if d := ss.Diversion; d != nil && d.Active {
		s.Diversion = &mmtel.Diversion{NoReplyTimer: time.Duration(d.NoReplyTimer) * time.Second}
		for _, r := range d.Rules {
			s.Diversion.Rules = append(s.Diversion.Rules, mmtel.DiversionRule{
				ID: r.ID, Conditions: mmtelConditions(r.Conditions), Target: r.ForwardTo.Target,
				NotifyCaller: r.ForwardTo.NotifyCaller, NoReplyTimer: time.Duration(r.NoReplyTimer) * time.Second,
			})
		}
	}
	return s
}

func mmtelBarring(b *homer.Barring) *mmtel.Barring {
	if b == nil || !b.Active {
		return nil
	}
	out := &mmtel.Barring{}
	for _, r := range b.Rules {
		out.Rules = append(out.Rules, mmtel.BarringRule{ID: r.ID, Conditions: mmtelConditions(r.Conditions), Allow: r.Allow})
	}
	return out
}

// mmtelConditions maps rule conditions; those the AS cannot evaluate
// (identity, validity, sphere, presence, roaming, home-country exception,
// diverted calls, foreign ones) make the rule inapplicable.
func mmtelConditions(c homer.Conditions) mmtel.Conditions {
	return mmtel.Conditions{
		Busy: c.Busy, NoAnswer: c.NoAnswer, NotReachable: c.NotReachable,
		NotRegistered: c.NotRegistered || c.NotLoggedIn,
		Media:         c.Media, Anonymous: c.Anonymous, International: c.International,
		Deactivated: c.RuleDeactivated,
		Unsupported: len(c.Unsupported) > 0 || c.Identity != nil || len(c.Validity) > 0 || len(c.Sphere) > 0 ||
			len(c.PresenceStatus) > 0 || c.Roaming || c.InternationalExHC || c.CommunicationDiverted,
	}
}
