package pgentra

import (
	"errors"
	"strconv"
	"strings"
)

// Kind classifies an *Error. The numbers are those of the C API's pgentra_status and are part
// of its ABI (never reused or renumbered): 1 to 7 are the kinds of pgentra's own errors,
// 100 and up are errors of the C boundary.
type Kind int

const (
	// KindConfig: a variable, key or argument is missing, malformed or contradictory (the
	// message names it). PGENTRA_ERR_CONFIG.
	KindConfig Kind = 1
	// KindCredential: no credential applies, or one could not be built or run.
	// PGENTRA_ERR_CREDENTIAL.
	KindCredential Kind = 2
	// KindIdentityService: the identity service answered with an error; Error.ServiceCode
	// carries its code (e.g. AADSTS7000215) when it gave one. PGENTRA_ERR_IDENTITY_SERVICE.
	KindIdentityService Kind = 3
	// KindNetwork: the identity service or the database could not be reached in time.
	// PGENTRA_ERR_NETWORK.
	KindNetwork Kind = 4
	// KindTLSPolicy: a token would travel without TLS (sslmode disable/allow/prefer), or TLS
	// failed. PGENTRA_ERR_TLS_POLICY.
	KindTLSPolicy Kind = 5
	// KindDatabase: the database refused the connection or a query failed.
	// PGENTRA_ERR_DATABASE.
	KindDatabase Kind = 6
	// KindInternal: a bug in pgentra. PGENTRA_ERR_INTERNAL.
	KindInternal Kind = 7
	// KindNullArgument: a required pointer was NULL at the C boundary (a bug in this wrapper
	// if it ever shows). PGENTRA_ERR_NULL_ARGUMENT.
	KindNullArgument Kind = 100
	// KindInvalidUTF8: a string argument was not valid UTF-8 (the message names it).
	// PGENTRA_ERR_INVALID_UTF8.
	KindInvalidUTF8 Kind = 101
	// KindPanic: pgentra panicked; the panic was caught at the boundary and the process is
	// intact. PGENTRA_ERR_PANIC.
	KindPanic Kind = 102
	// KindInvalidArgument: an argument was out of range, e.g. an unknown Format, or (checked
	// by this wrapper) a string containing a NUL byte. PGENTRA_ERR_INVALID_ARGUMENT.
	KindInvalidArgument Kind = 103
)

// String returns a short lower-case name of the kind, e.g. "configuration".
func (k Kind) String() string {
	switch k {
	case KindConfig:
		return "configuration"
	case KindCredential:
		return "credential"
	case KindIdentityService:
		return "identity service"
	case KindNetwork:
		return "network"
	case KindTLSPolicy:
		return "TLS policy"
	case KindDatabase:
		return "database"
	case KindInternal:
		return "internal"
	case KindNullArgument:
		return "null argument"
	case KindInvalidUTF8:
		return "invalid UTF-8"
	case KindPanic:
		return "panic"
	case KindInvalidArgument:
		return "invalid argument"
	default:
		return "status " + strconv.Itoa(int(k))
	}
}

// Error is the error returned by every failing call of this package (except ErrClosed and
// context errors). Message is the core's own message: it names the variable, key or argument
// at fault and never contains a secret.
type Error struct {
	Kind        Kind
	Message     string
	ServiceCode string // the identity service's code (e.g. "AADSTS7000215"), or ""
}

func (e *Error) Error() string {
	s := "pgentra: " + e.Kind.String() + " error"
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.ServiceCode != "" && !strings.Contains(e.Message, e.ServiceCode) {
		s += " (" + e.ServiceCode + ")"
	}
	return s
}

// Is reports whether target is an *Error of the same Kind, so that
// errors.Is(err, pgentra.ErrConfig) matches every configuration error whatever its message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t != nil && t.Kind == e.Kind
}

// Sentinels for errors.Is: each matches every *Error of its Kind.
var (
	ErrConfig          error = &Error{Kind: KindConfig}
	ErrCredential      error = &Error{Kind: KindCredential}
	ErrIdentityService error = &Error{Kind: KindIdentityService}
	ErrNetwork         error = &Error{Kind: KindNetwork}
	ErrTLSPolicy       error = &Error{Kind: KindTLSPolicy}
	ErrDatabase        error = &Error{Kind: KindDatabase}
	ErrInternal        error = &Error{Kind: KindInternal}
	ErrInvalidArgument error = &Error{Kind: KindInvalidArgument}
	ErrInvalidUTF8     error = &Error{Kind: KindInvalidUTF8}
	ErrNullArgument    error = &Error{Kind: KindNullArgument}
	ErrPanic           error = &Error{Kind: KindPanic}
)

// ErrClosed is returned by the methods of a Connector after Close.
var ErrClosed = errors.New("pgentra: connector is closed")
