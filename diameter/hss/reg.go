package hss

import (
	"cmp"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"strings"

	"stillwater/kv"
)

// RegState is the registration state of an IRS (TS 29.228).
type RegState int

// Registration states.
const (
	// NotRegistered: no S-CSCF is assigned.
	NotRegistered RegState = iota
	// Unregistered: an S-CSCF is assigned to serve the unregistered user
	// (terminating calls, typically).
	Unregistered
	// Registered: the user registered through the assigned S-CSCF.
	Registered
)

func (r RegState) String() string {
	switch r {
	case Registered:
		return "REGISTERED"
	case Unregistered:
		return "UNREGISTERED"
	}
	return "NOT_REGISTERED"
}

// ReqType is the kind of SIP request behind a registration data change,
// Homestead's reg-data reqtype.
type ReqType string

// Request types.
const (
	ReqReg              ReqType = "reg"
	ReqCall             ReqType = "call"
	ReqDeregUser        ReqType = "dereg-user"
	ReqDeregAdmin       ReqType = "dereg-admin"
	ReqDeregTimeout     ReqType = "dereg-timeout"
	ReqDeregAuthFailed  ReqType = "dereg-auth-failed"
	ReqDeregAuthTimeout ReqType = "dereg-auth-timeout"
)

// ParseReqType checks a reqtype value.
func ParseReqType(s string) (ReqType, error) {
	switch t := ReqType(s); t {
	case ReqReg, ReqCall, ReqDeregUser, ReqDeregAdmin, ReqDeregTimeout, ReqDeregAuthFailed, ReqDeregAuthTimeout:
		return t, nil
	}
	return "", invalid("unknown reqtype %q (want reg, call, dereg-user, dereg-admin, dereg-timeout, dereg-auth-failed or dereg-auth-timeout)", s)
}

func (t ReqType) dereg() bool {
	return t == ReqDeregUser || t == ReqDeregAdmin || t == ReqDeregTimeout
}

// RegRequest is a registration data change.
type RegRequest struct {
	Type ReqType
	// ServerName is the S-CSCF making the request; "" means
	// Options.SCSCF.
	ServerName string
	// PrivateID is the IMPI of the request, if known; it must be able to
	// authenticate the IRS.
	PrivateID string
}

// RegData is the registration data of a public identity's IRS: what the
// S-CSCF needs to serve it.
type RegData struct {
	// IMPU is the identity asked about; Wildcard the wildcarded identity it
	// matched, if any.
	IMPU     string
	Wildcard string
	IRS      string
	State    RegState
	// SCSCF is the assigned S-CSCF ("" when NotRegistered).
	SCSCF string
	// PrivateID is the IMPI named in the IMSSubscription: the request's,
	// else one that registered, else the first that may authenticate.
	PrivateID string
	// PrivateIDs may authenticate the set; RegisteredIMPIs registered it.
	PrivateIDs      []string
	RegisteredIMPIs []string
	// ServiceProfiles are the set's profiles that have public identities.
	ServiceProfiles []RegProfile
}

// RegProfile is a service profile in registration data.
type RegProfile struct {
	ID        string
	PublicIDs []PublicIdentity
	// IFC is the iFC document (a ServiceProfile element), "" if none.
	IFC   string
	parts string
}

// PublicIDs lists every public identity of the set, in profile order.
func (r *RegData) PublicIDs() []PublicIdentity {
	var out []PublicIdentity
	for _, p := range r.ServiceProfiles {
		out = append(out, p.PublicIDs...)
	}
	return out
}

// RegData returns the registration data of impu's IRS without changing it.
func (s *Store) RegData(ctx context.Context, impu string) (*RegData, error) {
	return s.readRegData(ctx, impu)
}

// CachedRegData is RegData read through this node's record cache, for
// routing (the I-CSCF's user-authorization and location queries), where
// any node's S-CSCF serves any subscriber: after a change made through
// another node, it may return the old state until this node's replica has
// applied the change.
func (s *Store) CachedRegData(ctx context.Context, impu string) (*RegData, error) {
	return s.readRegData(ctx, impu, kv.Cached())
}

// readRegData reads impu's registration data, its state read with opts.
func (s *Store) readRegData(ctx context.Context, impu string, opts ...kv.ReadOption) (*RegData, error) {
	r, err := s.resolve(ctx, impu)
	if err != nil {
		return nil, err
	}
	reg, _, err := s.readReg(ctx, r.IRS, opts...)
	if err != nil {
		return nil, err
	}
	return s.regData(ctx, impu, r, reg, "")
}

func (s *Store) readReg(ctx context.Context, irs string, opts ...kv.ReadOption) (regRecord, kv.Version, error) {
	reg, ver, err := s.regs.Get(ctx, irs, opts...)
	if errors.Is(err, kv.ErrNotFound) {
		return regRecord{}, 0, nil
	}
	if err != nil {
		return reg, 0, fmt.Errorf("hss: read registration state of IRS %s: %w", irs, err)
	}
	return reg, ver, nil
}

// UpdateRegData changes the registration state of impu's IRS as Homestead
// does for Sprout, with this HSS as the master of the data:
//
//   - reg: the set becomes REGISTERED at the requesting S-CSCF, which is
//     recorded with the registering IMPI.
//   - call: a NOT_REGISTERED set becomes UNREGISTERED at the requesting
//     S-CSCF (unregistered service); otherwise nothing changes.
//   - dereg-user, dereg-admin, dereg-timeout: the set becomes
//     NOT_REGISTERED and its S-CSCF is released, as an HSS does on a
//     deregistering Server-Assignment-Request; deregistering a set that is
//     NOT_REGISTERED is ErrNotRegistered.
//   - dereg-auth-failed, dereg-auth-timeout: nothing changes (a registered
//     user who fails to add a binding stays registered).
//
// It returns the registration data after the change.
func (s *Store) UpdateRegData(ctx context.Context, impu string, req RegRequest) (*RegData, error) {
	if _, err := ParseReqType(string(req.Type)); err != nil {
		return nil, err
	}
	r, err := s.resolve(ctx, impu)
	if err != nil {
		return nil, err
	}
	if req.PrivateID != "" && !contains(r.irs.Privates, req.PrivateID) {
		return nil, mismatch("private identity %q may not authenticate %q", req.PrivateID, impu)
	}
	server := req.ServerName
	if server == "" {
		server = s.opts.SCSCF
	}
	var reg regRecord
	for attempt := 1; ; attempt++ {
		cur, ver, err := s.readReg(ctx, r.IRS)
		if err != nil {
			return nil, err
		}
		next, change := transition(cur, req.Type, server, req.PrivateID)
		if change == errNotRegistered {
			return nil, fmt.Errorf("%w: %s is %s; refusing %s", ErrNotRegistered, impu, cur.State, req.Type)
		}
		switch {
		case change == errUnchanged:
			err = nil
		case next.State == NotRegistered && ver != 0:
			err = s.regs.DeleteIf(ctx, r.IRS, ver)
		case next.State == NotRegistered:
			err = nil
		default:
			_, err = s.regs.CAS(ctx, r.IRS, next, 0, ver)
		}
		if err == nil {
			reg = next
			break
		}
		if !errors.Is(err, kv.ErrConflict) || attempt >= maxAttempts {
			return nil, fmt.Errorf("hss: update registration state of %q: %w", impu, err)
		}
	}
	return s.regData(ctx, impu, r, reg, req.PrivateID)
}

var errNotRegistered = errors.New("not registered")

// transition is the registration state machine; it returns errUnchanged or
// errNotRegistered instead of a new state when there is nothing to write.
func transition(cur regRecord, t ReqType, server, impi string) (regRecord, error) {
	switch {
	case t == ReqReg:
		next := regRecord{State: Registered, SCSCF: server, IMPIs: append([]string{}, cur.IMPIs...)}
		if cur.State != Registered {
			next.IMPIs = nil
		}
		if server == "" {
			next.SCSCF = cur.SCSCF
		}
		if impi != "" && !contains(next.IMPIs, impi) {
			next.IMPIs = append(next.IMPIs, impi)
		}
		if cur.State == Registered && next.SCSCF == cur.SCSCF && len(next.IMPIs) == len(cur.IMPIs) {
			return cur, errUnchanged
		}
		return next, nil
	case t == ReqCall:
		if cur.State != NotRegistered {
			return cur, errUnchanged
		}
		return regRecord{State: Unregistered, SCSCF: server}, nil
	case t.dereg():
		if cur.State == NotRegistered {
			return cur, errNotRegistered
		}
		return regRecord{State: NotRegistered}, nil
	}
	return cur, errUnchanged // auth failure or timeout
}

// regData assembles registration data: the other public identities of the
// set and the iFC documents are read in parallel.
func (s *Store) regData(ctx context.Context, impu string, r resolved, reg regRecord, impi string) (*RegData, error) {
	rd := &RegData{
		IMPU: impu, Wildcard: r.Wildcard, IRS: r.IRS, State: reg.State, SCSCF: reg.SCSCF,
		PrivateIDs: append([]string{}, r.irs.Privates...), RegisteredIMPIs: append([]string{}, reg.IMPIs...),
	}
	switch {
	case impi != "":
		rd.PrivateID = impi
	case len(reg.IMPIs) > 0:
		rd.PrivateID = reg.IMPIs[0]
	case len(r.irs.Privates) > 0:
		rd.PrivateID = r.irs.Privates[0]
	}
	// The identity already read needs no second look.
	var others []string
	for _, p := range r.irs.Publics {
		if p != r.Identity {
			others = append(others, p)
		}
	}
	pubs := []PublicIdentity{r.PublicIdentity}
	docs := make([]serviceProfileDoc, len(r.irs.Profiles))
	err := parallel(ctx, 1+len(docs), 8, func(ctx context.Context, i int) error {
		if i == 0 {
			more, err := s.confirmPublics(ctx, r.IRS, others)
			pubs = append(pubs, more...)
			return err
		}
		if key := r.irs.Profiles[i-1].IFC; key != "" {
			doc, err := s.ifcDoc(ctx, key)
			docs[i-1] = doc
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Keep the set's order: its first identity is the default one.
	order := map[string]int{}
	for i, p := range r.irs.Publics {
		order[p] = i
	}
	slices.SortStableFunc(pubs, func(a, b PublicIdentity) int { return cmp.Compare(order[a.Identity], order[b.Identity]) })
	for i, p := range r.irs.Profiles {
		rp := RegProfile{ID: p.ID, parts: docs[i].parts}
		for _, pub := range pubs {
			if pub.ServiceProfile == p.ID {
				rp.PublicIDs = append(rp.PublicIDs, pub)
			}
		}
		if len(rp.PublicIDs) == 0 {
			continue // TS 29.228: a ServiceProfile has at least one PublicIdentity
		}
		rp.IFC = docs[i].raw
		rd.ServiceProfiles = append(rd.ServiceProfiles, rp)
	}
	return rd, nil
}

// IMSSubscription renders the set as a TS 29.228 IMSSubscription document:
// the provisioned PublicIdentity elements and iFCs, verbatim.
func (r *RegData) IMSSubscription() string {
	var b strings.Builder
	r.writeIMSSubscription(&b, "")
	return b.String()
}

func (r *RegData) writeIMSSubscription(b *strings.Builder, indent string) {
	b.WriteString(indent + `<IMSSubscription xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:noNamespaceSchemaLocation="CxDataType.xsd">` + "\n")
	b.WriteString(indent + "\t<PrivateID>")
	xml.EscapeText(b, []byte(r.PrivateID))
	b.WriteString("</PrivateID>\n")
	for _, p := range r.ServiceProfiles {
		b.WriteString(indent + "\t<ServiceProfile>\n")
		for _, pub := range p.PublicIDs {
			b.WriteString(indent + "\t\t" + pub.XML + "\n")
		}
		if p.parts != "" {
			b.WriteString(indent + "\t\t" + strings.TrimSpace(p.parts) + "\n")
		}
		b.WriteString(indent + "\t</ServiceProfile>\n")
	}
	b.WriteString(indent + "</IMSSubscription>\n")
}

// XML renders Homestead's ClearwaterRegData document: the registration
// state and the IMSSubscription.
func (r *RegData) XML() string {
	var b strings.Builder
	b.WriteString("<ClearwaterRegData>\n\t<RegistrationState>" + r.State.String() + "</RegistrationState>\n")
	r.writeIMSSubscription(&b, "\t")
	b.WriteString("</ClearwaterRegData>\n")
	return b.String()
}

// ServerInfo answers the I-CSCF's questions (Homestead's
// registration-status and location): a Diameter result code and either the
// S-CSCF to use or the capabilities to choose one by.
type ServerInfo struct {
	ResultCode int
	SCSCF      string
	// Capabilities is set when SCSCF is not.
	Capabilities *Capabilities
	// Wildcard is the wildcarded identity that matched, if any.
	Wildcard string
}

// Capabilities are S-CSCF capabilities (none are configured here).
type Capabilities struct {
	Mandatory []int
	Optional  []int
}

// Diameter result codes the I-CSCF queries return (TS 29.229).
const (
	DiameterSuccess                = 2001
	DiameterFirstRegistration      = 2001
	DiameterSubsequentRegistration = 2002
	DiameterUnregisteredService    = 2003
)

// AuthType is the User-Authorization-Type of a registration-status query.
type AuthType string

// Authorization types, as Homestead's auth-type parameter.
const (
	AuthReg   AuthType = "REG"
	AuthDereg AuthType = "DEREG"
	AuthCapab AuthType = "CAPAB"
)

func (s *Store) serverOrCapabilities(code int, assigned string) ServerInfo {
	switch {
	case assigned != "":
		return ServerInfo{ResultCode: code, SCSCF: assigned}
	case s.opts.SCSCF != "":
		return ServerInfo{ResultCode: code, SCSCF: s.opts.SCSCF}
	}
	return ServerInfo{ResultCode: code, Capabilities: &Capabilities{Mandatory: []int{}, Optional: []int{}}}
}

// RegistrationStatus authorizes a registration (a User-Authorization
// request): impi must be able to authenticate impu (else ErrNotFound, as an
// HSS answers identities that do not match), and a barred identity may only
// register with an unbarred one in its set (else ErrMismatch).
func (s *Store) RegistrationStatus(ctx context.Context, impi, impu string, t AuthType) (ServerInfo, error) {
	switch t {
	case "", AuthReg, AuthDereg, AuthCapab:
	default:
		return ServerInfo{}, invalid("unknown auth-type %q (want REG, DEREG or CAPAB)", t)
	}
	r, err := s.resolve(ctx, impu)
	if err != nil {
		return ServerInfo{}, err
	}
	if !contains(r.irs.Privates, impi) {
		return ServerInfo{}, notFound("private identity %q may not authenticate %q", impi, impu)
	}
	if r.Barred && t != AuthDereg {
		pubs, err := s.confirmPublics(ctx, r.IRS, r.irs.Publics)
		if err != nil {
			return ServerInfo{}, err
		}
		ok := false
		for _, p := range pubs {
			ok = ok || !p.Barred
		}
		if !ok {
			return ServerInfo{}, mismatch("%q is barred and has no unbarred identity in its set", impu)
		}
	}
	reg, _, err := s.readReg(ctx, r.IRS)
	if err != nil {
		return ServerInfo{}, err
	}
	var info ServerInfo
	switch {
	case t == AuthCapab:
		info = ServerInfo{ResultCode: DiameterSuccess, Capabilities: &Capabilities{Mandatory: []int{}, Optional: []int{}}}
	case t == AuthDereg:
		info = s.serverOrCapabilities(DiameterSuccess, reg.SCSCF)
	case reg.SCSCF != "":
		info = ServerInfo{ResultCode: DiameterSubsequentRegistration, SCSCF: reg.SCSCF}
	default:
		info = s.serverOrCapabilities(DiameterFirstRegistration, "")
	}
	info.Wildcard = r.Wildcard
	return info, nil
}

// Location answers a Location-Info request: the S-CSCF serving impu, or,
// when none is assigned, DIAMETER_UNREGISTERED_SERVICE with the configured
// S-CSCF (or empty capabilities) so that the I-CSCF can pick one.
func (s *Store) Location(ctx context.Context, impu string, originating bool, t AuthType) (ServerInfo, error) {
	r, err := s.resolve(ctx, impu)
	if err != nil {
		return ServerInfo{}, err
	}
	reg, _, err := s.readReg(ctx, r.IRS)
	if err != nil {
		return ServerInfo{}, err
	}
	var info ServerInfo
	switch {
	case t == AuthCapab:
		info = ServerInfo{ResultCode: DiameterSuccess, Capabilities: &Capabilities{Mandatory: []int{}, Optional: []int{}}}
	case reg.SCSCF != "":
		info = ServerInfo{ResultCode: DiameterSuccess, SCSCF: reg.SCSCF}
	default:
		info = s.serverOrCapabilities(DiameterUnregisteredService, "")
	}
	info.Wildcard = r.Wildcard
	return info, nil
}
