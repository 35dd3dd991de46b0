package hss

import (
	"errors"
	"fmt"
)

// Errors callers act on; match them with errors.Is. The HTTP interfaces map
// them to 404, 403, 409, 400 and 400 respectively.
var (
	// ErrNotFound means an identity, set or profile does not exist.
	ErrNotFound = errors.New("hss: not found")
	// ErrMismatch means two identities that must agree do not: a public
	// identity whose XML names another identity, an IMPI that may not
	// authenticate an IMPU, a public identity outside the service profile.
	ErrMismatch = errors.New("hss: identity mismatch")
	// ErrConflict means a create collides with existing data, such as a
	// public identity that already belongs to another IRS.
	ErrConflict = errors.New("hss: conflict")
	// ErrInvalid means malformed input; the error says what is wrong.
	ErrInvalid = errors.New("hss: invalid input")
	// ErrNotRegistered means a deregistration of a subscriber that is not
	// registered, which Homestead refuses to stop deregistration loops.
	ErrNotRegistered = errors.New("hss: not registered")
	// ErrAuthFailed means an AKA resynchronisation whose AUTS does not
	// verify (MAC-S mismatch).
	ErrAuthFailed = errors.New("hss: authentication failed")
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

func notFound(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrNotFound, fmt.Sprintf(format, args...))
}

func mismatch(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMismatch, fmt.Sprintf(format, args...))
}

func conflict(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrConflict, fmt.Sprintf(format, args...))
}
