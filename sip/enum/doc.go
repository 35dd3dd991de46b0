// Package enum translates telephone numbers into SIP (or tel) URIs by ENUM
// (RFC 3761, RFC 4769): over DNS NAPTR records from up to three ENUM servers
// tried in order, or from Clearwater's enum.json number blocks when no server
// is configured, carrying number portability data (RFC 4694 rn/npdi) to the
// caller.
//
// A Service is built once from the enum_server, enum_suffix, enum_file,
// enforce_global_only_lookups and override_npdi options and is safe for
// concurrent use. Translate returns an error wrapping ErrNotFound when the
// number has no translation (SIP: 404 Not Found), ErrUnavailable when every
// ENUM server failed or timed out (SIP: 480/503 depending on the function),
// ErrLoop when non-terminal rules do not converge, ErrInvalidAnswer when the
// answer is not a usable URI, and ErrNotNumber / ErrNotGlobal when the input
// is not eligible for a lookup at all.
package enum
