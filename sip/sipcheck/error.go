// Package sipcheck validates received SIP messages beyond what sipgo's parser
// checks, and is the panic-free parse entry point of the receive path.
//
// Parse turns a datagram (or one framed stream message) into a sip.Message:
// it checks the raw syntax sipgo lets through (quoting and angle brackets in
// To, From and Contact), folds continuation lines and removes the optional
// whitespace around separators that sipgo's header parsers mistake for
// content (RFC 4475 wsinv), restores the case of the request method, and
// converts any parser failure or panic into an *Error. CheckRequest applies
// the RFC 3261 §8.2 and §16.3 request validation a proxy or registrar does
// before processing, naming the response to send; CheckResponse says which
// received responses to drop.
package sipcheck

import (
	"errors"
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Error is a rejected message: the status a UAS or proxy answers a request
// with (400, 416, 420, 415, 505) and the reason phrase, which names the
// offending header.
type Error struct {
	Code   int
	Reason string
	// Unsupported lists the option tags for the Unsupported header of a 420.
	Unsupported []string
	// Accept lists the media types for the Accept header of a 415 caused by
	// Content-Type; AcceptEncoding the codings for one caused by
	// Content-Encoding.
	Accept         []string
	AcceptEncoding []string
	// Err is the underlying parser error, if any.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("sip %d %s: %v", e.Code, e.Reason, e.Err)
	}
	return fmt.Sprintf("sip %d %s", e.Code, e.Reason)
}

func (e *Error) Unwrap() error { return e.Err }

func badRequest(format string, args ...any) *Error {
	return &Error{Code: 400, Reason: "Bad Request (" + fmt.Sprintf(format, args...) + ")"}
}

// ErrUnanswerable is returned by Response for a request lacking the headers a
// response copies; such a request is dropped.
var ErrUnanswerable = errors.New("sipcheck: request lacks Via, From, To, Call-ID or CSeq; drop it")

// Response builds the error response to req, with the Unsupported, Accept or
// Accept-Encoding header the status needs. toTag is the To tag to add when
// the request has none; empty lets sipgo generate one.
func (e *Error) Response(req *sip.Request, toTag string) (*sip.Response, error) {
	if req == nil || req.Via() == nil || req.From() == nil || req.To() == nil || req.CallID() == nil || req.CSeq() == nil {
		return nil, ErrUnanswerable
	}
	if req.IsAck() {
		return nil, errors.New("sipcheck: an ACK is never answered")
	}
	res := sip.NewResponseFromRequest(req, e.Code, e.Reason, nil)
	res.SipVersion = "SIP/2.0" // a 505 is still sent in our version
	if _, tagged := req.To().Params.Get("tag"); !tagged && toTag != "" {
		if to := res.To(); to != nil {
			to.Params.Add("tag", toTag)
		}
	}
	if len(e.Unsupported) > 0 {
		res.AppendHeader(sip.NewHeader("Unsupported", strings.Join(e.Unsupported, ", ")))
	}
	if len(e.Accept) > 0 {
		res.AppendHeader(sip.NewHeader("Accept", strings.Join(e.Accept, ", ")))
	}
	if len(e.AcceptEncoding) > 0 {
		res.AppendHeader(sip.NewHeader("Accept-Encoding", strings.Join(e.AcceptEncoding, ", ")))
	}
	return res, nil
}
