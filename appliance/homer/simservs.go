package homer

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// Namespaces and media type of simservs documents.
const (
	// NamespaceSimservs is the namespace of <simservs> and its services (TS 24.623).
	NamespaceSimservs = "http://uri.etsi.org/ngn/params/xml/simservs/xcap"
	// NamespaceCommonPolicy is the namespace of rulesets (RFC 4745).
	NamespaceCommonPolicy = "urn:ietf:params:xml:ns:common-policy"
	// ContentType is the MIME type of a simservs document (TS 24.623).
	ContentType = "application/simservs+xml"
)

// Limits and defaults.
const (
	// MaxDocumentSize bounds a document. Real ones are a few kilobytes; the
	// margin is for long identity lists in barring rules.
	MaxDocumentSize = 128 << 10
	// MinNoReplyTimer and MaxNoReplyTimer bound NoReplyTimer, in seconds (TS 24.604).
	MinNoReplyTimer = 5
	MaxNoReplyTimer = 180
	// DefaultNoReplyTimer is the no-reply timer when a document sets none,
	// as in Clearwater.
	DefaultNoReplyTimer = 20 * time.Second
)

// ErrInvalid matches every *ValidationError (errors.Is).
var ErrInvalid = errors.New("invalid simservs document")

// ValidationError says why a document was refused.
type ValidationError struct {
	// Path locates the problem: the service, then the rule, e.g.
	// ["communication-diversion", `rule "cfb"`]. Empty for problems with the
	// document as a whole.
	Path []string
	// Reason says what is wrong.
	Reason string
	// Line is the line of the offending element, 0 when not known.
	Line int
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("simservs.xml: ")
	for _, p := range e.Path {
		b.WriteString(p)
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// Is makes errors.Is(err, ErrInvalid) hold.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// Simservs is the typed view of a simservs document: the services it
// configures, each nil when the document does not mention it.
type Simservs struct {
	OIP                  *Service     // originating-identity-presentation (TS 24.607)
	OIR                  *Restriction // originating-identity-presentation-restriction (TS 24.607)
	TIP                  *Service     // terminating-identity-presentation (TS 24.608)
	TIR                  *Restriction // terminating-identity-presentation-restriction (TS 24.608)
	CommunicationWaiting *Service     // communication-waiting (TS 24.615)
	Diversion            *Diversion   // communication-diversion (TS 24.604)
	IncomingBarring      *Barring     // incoming-communication-barring (TS 24.611)
	OutgoingBarring      *Barring     // outgoing-communication-barring (TS 24.611)
}

// Service is a service with no settings beyond whether it is active.
type Service struct {
	Active bool
}

// Restriction is OIR or TIR.
type Restriction struct {
	Active bool
	// Restricted is the default behaviour: true for presentation-restricted
	// (also the schema's default when the document does not say), false for
	// presentation-not-restricted.
	Restricted bool
}

// Diversion is the communication diversion service.
type Diversion struct {
	Active bool
	// NoReplyTimer is the service's no-reply timer in seconds, 0 when the
	// document sets none. See NoReplyTimeout.
	NoReplyTimer int
	// Rules in document order, which is the order they are evaluated in.
	Rules []DiversionRule
}

// NoReplyTimeout is how long to ring before a no-answer rule applies: the
// rule's own timer, else the service's, else DefaultNoReplyTimer. r may be nil.
func (d *Diversion) NoReplyTimeout(r *DiversionRule) time.Duration {
	switch {
	case r != nil && r.NoReplyTimer != 0:
		return time.Duration(r.NoReplyTimer) * time.Second
	case d.NoReplyTimer != 0:
		return time.Duration(d.NoReplyTimer) * time.Second
	}
	return DefaultNoReplyTimer
}

// DiversionRule is one rule of the diversion ruleset.
type DiversionRule struct {
	ID         string
	Conditions Conditions
	ForwardTo  ForwardTo
	// NoReplyTimer is the rule's own no-reply timer in seconds, 0 when none.
	NoReplyTimer int
}

// Active reports whether the rule is in force (it has no rule-deactivated
// condition).
func (r *DiversionRule) Active() bool { return !r.Conditions.RuleDeactivated }

// ForwardTo is the forward-to action of a diversion rule. The booleans hold
// the schema's defaults when the document leaves them out.
type ForwardTo struct {
	// Target is a sip, sips or tel URI; empty only in a deactivated rule.
	Target                           string
	NotifyCaller                     bool // default true
	RevealIdentityToCaller           bool // default true
	RevealServedUserIdentityToCaller bool // default true
	NotifyServedUser                 bool // default false
	NotifyServedUserOnOutboundCall   bool // default false
	RevealIdentityToTarget           bool // default true
}

// Barring is incoming or outgoing communication barring.
type Barring struct {
	Active bool
	Rules  []BarringRule
}

// BarringRule is one rule of a barring ruleset: when its conditions hold,
// Allow says whether the communication may proceed.
type BarringRule struct {
	ID         string
	Conditions Conditions
	Allow      bool
}

// Active reports whether the rule is in force.
func (r *BarringRule) Active() bool { return !r.Conditions.RuleDeactivated }

// Conditions of a rule; a rule applies when all of them hold (RFC 4745). The
// zero value has no conditions and always holds.
type Conditions struct {
	// Diversion conditions (TS 24.604).
	Busy, NoAnswer, NotReachable, NotRegistered, NotLoggedIn bool
	// Anonymous: the caller's identity is restricted (diversion, incoming barring).
	Anonymous bool
	// CommunicationDiverted: the call was diverted to the served user (incoming barring).
	CommunicationDiverted bool
	// Roaming: the served user is roaming (barring).
	Roaming bool
	// International, InternationalExHC: outgoing calls abroad, the second
	// excepting the home country (outgoing barring).
	International, InternationalExHC bool
	// RuleDeactivated keeps a rule in the document without applying it.
	RuleDeactivated bool
	// Media lists the media the communication must offer (e.g. "audio", "video").
	Media []string
	// PresenceStatus lists presence activities the served user must have.
	PresenceStatus []string
	// Identity restricts the rule to callers (or callees) it matches; nil
	// when the rule has no identity condition.
	Identity *Identity
	// Sphere lists common-policy sphere values.
	Sphere []string
	// Validity lists the periods the rule applies in; empty means always.
	Validity []Interval
	// Unsupported names conditions from other namespaces as "{namespace}name".
	// They cannot be evaluated here, and RFC 4745 makes an unknown condition
	// false, so a rule that has any never applies.
	Unsupported []string
}

// Identity is a common-policy identity condition: it matches if any of One
// or Many does.
type Identity struct {
	One  []string // identities (URIs)
	Many []Many
}

// Many matches every identity in Domain (all identities when empty), except
// those listed.
type Many struct {
	Domain string
	Except []Except
}

// Except excludes a domain or one identity from a Many.
type Except struct {
	Domain string
	ID     string
}

// Interval is a common-policy validity period.
type Interval struct {
	From, Until time.Time
}

// Parse validates doc and returns its typed view. A document that fails
// validation returns a *ValidationError.
func Parse(doc []byte) (*Simservs, error) {
	if len(doc) > MaxDocumentSize {
		return nil, &ValidationError{Reason: "document is larger than " + strconv.Itoa(MaxDocumentSize) + " bytes"}
	}
	root, err := readTree(doc)
	if err != nil {
		return nil, err
	}
	return parseSimservs(root)
}

// Validate reports whether doc is a valid simservs document, with a
// *ValidationError when it is not.
func Validate(doc []byte) error {
	_, err := Parse(doc)
	return err
}

// defaultDocument is what a new line starts with. Like Ellis's, it has OIP
// on and OIR on in temporary mode with presentation not restricted, so the
// caller's identity is shown unless the user withholds it per call, and it
// has diversion and barring active but with no rules, so a UE that adds a
// rule over Ut gets it applied without having to switch the service on too.
// The no-reply timer is the documented 20 s default.
const defaultDocument = `<?xml version="1.0" encoding="UTF-8"?>
<simservs xmlns="http://uri.etsi.org/ngn/params/xml/simservs/xcap" xmlns:cp="urn:ietf:params:xml:ns:common-policy">
  <originating-identity-presentation active="true"/>
  <originating-identity-presentation-restriction active="true">
    <default-behaviour>presentation-not-restricted</default-behaviour>
  </originating-identity-presentation-restriction>
  <communication-diversion active="true">
    <NoReplyTimer>20</NoReplyTimer>
    <cp:ruleset/>
  </communication-diversion>
  <incoming-communication-barring active="true">
    <cp:ruleset/>
  </incoming-communication-barring>
  <outgoing-communication-barring active="true">
    <cp:ruleset/>
  </outgoing-communication-barring>
</simservs>
`

// DefaultDocument returns the document a newly provisioned line gets.
func DefaultDocument() []byte { return []byte(defaultDocument) }
