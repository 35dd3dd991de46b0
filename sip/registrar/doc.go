// Package registrar is the S-CSCF's registrar: it keeps the contact bindings
// of every registered public identity, serves RFC 3680 registration-event
// subscriptions, and exposes Sprout's management API (port 9886).
//
// # State
//
// All state lives in one kv record per registration set (table "scscf.aor"),
// keyed by the set's default public identity, so every identity of an
// implicit registration set shares one list of bindings. The record holds the
// bindings and the reg-event subscriptions together: a REGISTER, the
// NOTIFYs it causes (their CSeq and reginfo version) and the expiry of what
// it replaces are one compare-and-set, so concurrent requests on any nodes
// never lose a binding and never reuse a NOTIFY CSeq.
//
// # Expiry
//
// Each record has one replicated timer (timerwheel type "reg-expiry", with
// an id derived from the record's key) due at the earliest expiry of its
// bindings and subscriptions. A pop removes only what has expired by the
// registrar's clock, so a refresh that raced the timer wins, and re-arms the
// timer for what remains. The timer lives in the site's shards: a binding
// expires even when the node that accepted its REGISTER is gone. Writers set
// the timer after their compare-and-set and then check the record again, so
// the timer follows the latest record whatever order writers finish in.
//
// # What the caller does
//
// The SIP core authenticates REGISTERs and authorizes SUBSCRIBEs before
// handing them over, sends the responses returned, and sends the NOTIFY
// requests given to Options.Sender (adding its Via, routing by the
// Request-URI and Route headers set here).
package registrar
