package ifc

import (
	"regexp"
	"strconv"
)

// SessionCase is the session case of TS 29.228 (tDirectionOfRequest), as an
// SPT names it and as the S-CSCF serves a request.
type SessionCase uint8

// Session cases; the values are those of the XML schema.
const (
	OriginatingRegistered   SessionCase = 0
	TerminatingRegistered   SessionCase = 1
	TerminatingUnregistered SessionCase = 2
	OriginatingUnregistered SessionCase = 3
	OriginatingCDIV         SessionCase = 4
)

func (c SessionCase) String() string {
	switch c {
	case OriginatingRegistered:
		return "ORIGINATING_REGISTERED"
	case TerminatingRegistered:
		return "TERMINATING_REGISTERED"
	case TerminatingUnregistered:
		return "TERMINATING_UNREGISTERED"
	case OriginatingUnregistered:
		return "ORIGINATING_UNREGISTERED"
	case OriginatingCDIV:
		return "ORIGINATING_CDIV"
	}
	return "SessionCase(" + strconv.Itoa(int(c)) + ")"
}

// RegistrationType is the kind of REGISTER an SPT may select
// (tRegistrationType).
type RegistrationType uint8

// Registration types; the values are those of the XML schema.
const (
	InitialRegistration RegistrationType = 0
	ReRegistration      RegistrationType = 1
	DeRegistration      RegistrationType = 2
)

func (t RegistrationType) String() string {
	switch t {
	case InitialRegistration:
		return "INITIAL_REGISTRATION"
	case ReRegistration:
		return "RE-REGISTRATION"
	case DeRegistration:
		return "DE-REGISTRATION"
	}
	return "RegistrationType(" + strconv.Itoa(int(t)) + ")"
}

// DefaultHandling says what the S-CSCF does when the AS cannot be reached.
type DefaultHandling uint8

// Default handlings; the values are those of the XML schema.
const (
	SessionContinued  DefaultHandling = 0
	SessionTerminated DefaultHandling = 1
)

func (d DefaultHandling) String() string {
	switch d {
	case SessionContinued:
		return "SESSION_CONTINUED"
	case SessionTerminated:
		return "SESSION_TERMINATED"
	}
	return "DefaultHandling(" + strconv.Itoa(int(d)) + ")"
}

// ProfilePart is an iFC's ProfilePartIndicator: the registration state it
// applies in.
type ProfilePart int8

// Profile parts. PartAny stands for an absent ProfilePartIndicator: the iFC
// applies whether or not the served user is registered.
const (
	PartAny          ProfilePart = -1
	PartRegistered   ProfilePart = 0
	PartUnregistered ProfilePart = 1
)

func (p ProfilePart) String() string {
	switch p {
	case PartAny:
		return "ANY"
	case PartRegistered:
		return "REGISTERED"
	case PartUnregistered:
		return "UNREGISTERED"
	}
	return "ProfilePart(" + strconv.Itoa(int(p)) + ")"
}

// Condition is the kind of condition a service point trigger holds.
type Condition uint8

// Conditions, named after their XML elements.
const (
	CondRequestURI Condition = iota + 1
	CondMethod
	CondSIPHeader
	CondSessionCase
	CondSessionDescription
)

func (c Condition) String() string {
	switch c {
	case CondRequestURI:
		return "RequestURI"
	case CondMethod:
		return "Method"
	case CondSIPHeader:
		return "SIPHeader"
	case CondSessionCase:
		return "SessionCase"
	case CondSessionDescription:
		return "SessionDescription"
	}
	return "Condition(" + strconv.Itoa(int(c)) + ")"
}

// Profile is what a ServiceProfile document holds for the S-CSCF.
type Profile struct {
	// IFCs are in evaluation order: Priority ascending, document order
	// among equal priorities.
	IFCs []IFC
	// SharedIFCSetIDs name shared iFC sets (shared_ifcs.xml) that apply
	// too, in document order.
	SharedIFCSetIDs []uint32
}

// IFC is one initial filter criterion. IFCs come from Parse or ParseSet,
// which also prepare what evaluation needs; one built by hand does not
// evaluate its triggers correctly.
type IFC struct {
	Priority int32
	// Trigger is nil when the iFC has no TriggerPoint: it then matches
	// every request (TS 29.228 §B.2.2).
	Trigger *TriggerPoint
	AS      ApplicationServer
	// ProfilePart is the ProfilePartIndicator, PartAny when absent.
	ProfilePart ProfilePart
	// Line is where the iFC starts in its document, for diagnostics.
	Line int
}

// TriggerPoint is a boolean expression of service point triggers.
type TriggerPoint struct {
	// CNF selects conjunctive normal form: SPTs of a group are ORed and
	// the groups ANDed. Otherwise (DNF) SPTs of a group are ANDed and the
	// groups ORed.
	CNF  bool
	SPTs []SPT
	// groups is how many distinct Group values the SPTs use; each SPT's
	// slots index them, so evaluation needs no map.
	groups int
}

// SPT is a service point trigger. Exactly one condition is set, as Kind
// says.
type SPT struct {
	Negated bool
	// Groups are the groups the SPT belongs to (at least one).
	Groups []int32
	slots  []int

	Kind Condition
	// RequestURI is searched for in the Request-URI (see Match).
	RequestURI *regexp.Regexp
	// Method is compared with the request's method, case-sensitively.
	Method string
	// RegistrationTypes, for a Method of REGISTER, restrict the SPT to
	// these kinds of REGISTER; empty means every REGISTER.
	RegistrationTypes []RegistrationType
	Header            *HeaderCondition
	SessionCase       SessionCase
	SessionDesc       *SDPCondition
}

// HeaderCondition is a SIPHeader SPT.
type HeaderCondition struct {
	// Header is the header's name as written in the iFC.
	Header string
	// Content, if set, is searched for in each value of the header;
	// without it the SPT tests the header's presence.
	Content *regexp.Regexp

	long, compact string         // lower-case names the header goes by
	nameRE        *regexp.Regexp // when Header is a pattern rather than a name
}

// SDPCondition is a SessionDescription SPT.
type SDPCondition struct {
	// Line matches the type of an SDP line (the letter before '=').
	Line *regexp.Regexp
	// Content, if set, is searched for in the line's value (after '=').
	Content *regexp.Regexp
}

// ApplicationServer is the AS an iFC invokes.
type ApplicationServer struct {
	ServerName      string
	DefaultHandling DefaultHandling
	ServiceInfo     string
	// IncludeRegisterRequest and IncludeRegisterResponse ask for the
	// REGISTER and its response in the body of third-party registrations
	// (TS 24.229 §5.4.1.7A).
	IncludeRegisterRequest  bool
	IncludeRegisterResponse bool
}
