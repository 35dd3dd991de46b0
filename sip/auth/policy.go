package auth

import (
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"

	"stillwater/sip/header"
)

// NonRegisterPolicy is Clearwater's non_register_authentication option:
// which requests other than REGISTER the S-CSCF challenges with
// Proxy-Authenticate.
type NonRegisterPolicy struct {
	// IfProxyAuthorizationPresent challenges requests that carry a
	// Proxy-Authorization header (PBXs that do not register).
	IfProxyAuthorizationPresent bool
	// InitialReqFromRegDigestEndpoint challenges out-of-dialog requests
	// from endpoints that registered with SIP digest.
	InitialReqFromRegDigestEndpoint bool
}

// ParseNonRegisterPolicy parses the option's comma-separated value; ""
// challenges nothing.
func ParseNonRegisterPolicy(v string) (NonRegisterPolicy, error) {
	var p NonRegisterPolicy
	for _, f := range strings.Split(v, ",") {
		switch strings.TrimSpace(f) {
		case "":
		case "if_proxy_authorization_present":
			p.IfProxyAuthorizationPresent = true
		case "initial_req_from_reg_digest_endpoint":
			p.InitialReqFromRegDigestEndpoint = true
		default:
			return NonRegisterPolicy{}, fmt.Errorf("non_register_authentication: unknown value %q", strings.TrimSpace(f))
		}
	}
	return p, nil
}

// Required reports whether req (not a REGISTER) must be authenticated with
// Authenticate(..., proxy=true). digestEndpoint says whether the sender
// registered with SIP digest, which only the registrar knows. ACK and
// CANCEL cannot be challenged (RFC 3261 §22.1).
func (p NonRegisterPolicy) Required(req *sip.Request, digestEndpoint bool) bool {
	switch req.Method {
	case sip.REGISTER, sip.ACK, sip.CANCEL:
		return false
	}
	if p.IfProxyAuthorizationPresent && header.First(req, "Proxy-Authorization") != nil {
		return true
	}
	if p.InitialReqFromRegDigestEndpoint && digestEndpoint {
		to := req.To()
		return to == nil || !to.Params.Has("tag")
	}
	return false
}
