package ifc

import (
	"slices"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Config is the S-CSCF's iFC configuration from shared_config and the
// shared_ifcs.xml and fallback_ifcs.xml files.
type Config struct {
	// Shared are the shared iFC sets by SetID (shared_ifcs.xml), which a
	// profile names when request_shared_ifcs is on.
	Shared map[uint32][]IFC
	// Fallback are the fallback iFCs (fallback_ifcs.xml), in evaluation
	// order.
	Fallback []IFC
	// ApplyFallback is apply_fallback_ifcs: the fallback iFCs are
	// evaluated when none of the served user's matched.
	ApplyFallback bool
	// RejectIfNoMatch is reject_if_no_matching_ifcs (see Reject).
	RejectIfNoMatch bool
	// DummyAppServer is dummy_app_server: an iFC naming this AS matches
	// (so fallback iFCs do not apply and the request is not rejected) but
	// invokes nothing.
	DummyAppServer string
}

// IFCs returns the served user's iFCs: the profile's and those of the
// shared sets it names, in evaluation order (Priority ascending; among
// equal priorities the profile's first, then each set's in the order the
// profile names them). A set missing from the configuration is reported
// and contributes nothing.
func (c *Config) IFCs(p Profile) ([]IFC, []error) {
	if len(p.SharedIFCSetIDs) == 0 {
		return p.IFCs, nil
	}
	out := slices.Clone(p.IFCs)
	var errs []error
	for _, id := range p.SharedIFCSetIDs {
		set, ok := c.Shared[id]
		if !ok {
			errs = append(errs, errorf("shared iFC set %d is not configured (shared_ifcs.xml)", id))
			continue
		}
		out = append(out, set...)
	}
	Sort(out)
	return out, errs
}

// Position is where the evaluation of a served user's iFCs stands between
// AS invocations (TS 24.229 §5.4.3.2 step 4, §5.4.3.3 step 3: the request
// an AS returns is checked against the iFCs after the one that sent it
// there). The zero Position is the start.
type Position struct {
	// Fallback is set once the fallback iFCs are being walked.
	Fallback bool
	// Next is the index of the next iFC to evaluate.
	Next int
	// Matched is set once any iFC has matched, including one naming the
	// dummy AS.
	Matched bool
}

// Next evaluates ifcs (in evaluation order, as IFCs returns them) from pos
// against req and returns the next iFC whose AS is to be invoked, with the
// position to resume from when the request comes back. ok is false when no
// AS is left to invoke; the returned position then tells Reject whether
// anything matched. When nothing of ifcs matched from the start and
// ApplyFallback is on, the fallback iFCs are walked the same way. iFCs
// naming DummyAppServer count as matched but are passed over.
func (c *Config) Next(ifcs []IFC, pos Position, req *sip.Request, cs Case) (f IFC, next Position, ok bool) {
	m := message{req: req}
	for {
		list := ifcs
		if pos.Fallback {
			list = c.Fallback
		}
		for pos.Next < len(list) {
			f := list[pos.Next]
			pos.Next++
			if !f.matches(&m, cs) {
				continue
			}
			pos.Matched = true
			if c.isDummy(f.AS.ServerName) {
				continue
			}
			return f, pos, true
		}
		if pos.Fallback || pos.Matched || !c.ApplyFallback {
			return IFC{}, pos, false
		}
		pos = Position{Fallback: true}
	}
}

// Reject reports whether a request whose evaluation ended at pos (Next
// returned ok false) is to be rejected because no iFC matched it,
// reject_if_no_matching_ifcs.
func (c *Config) Reject(pos Position) bool {
	return c.RejectIfNoMatch && !pos.Matched
}

// Invocations returns, in order, every iFC whose AS req invokes, with
// fallback and dummy handling as Next, evaluating all iFCs against the
// same request, as third-party registration does (TS 24.229 §5.4.1.7).
// matched reports whether any iFC matched.
func (c *Config) Invocations(ifcs []IFC, req *sip.Request, cs Case) (invoke []IFC, matched bool) {
	var pos Position
	for {
		f, next, ok := c.Next(ifcs, pos, req, cs)
		pos = next
		if !ok {
			return invoke, pos.Matched
		}
		invoke = append(invoke, f)
	}
}

func (c *Config) isDummy(server string) bool {
	d := strings.TrimSpace(c.DummyAppServer)
	return d != "" && strings.EqualFold(strings.TrimSpace(server), d)
}
