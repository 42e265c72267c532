package sandbox

import "github.com/brig-dev/brig/internal/gatewayproto"

// Types of an *Error.
const (
	// TypeAuth: the job's credential does not allow the call; the error
	// is an *AuthError.
	TypeAuth = gatewayproto.ErrAuthError
	// TypeInvalidRequest: a bad name, key or value, or a request too large.
	TypeInvalidRequest = gatewayproto.ErrInvalidRequest
	// TypeTimeout: the call ran out of time.
	TypeTimeout = gatewayproto.ErrTimeout
	// TypeInfrastructure: brig could not perform the call, or the gateway
	// cannot be reached.
	TypeInfrastructure = gatewayproto.ErrCallFailed
	// TypeQuotaExceeded: the call would go past one of the job's limits,
	// which the message names: a full dict or queue, too many dicts and
	// queues created, too many child calls, too many connections to the
	// gateway. Nothing was written.
	TypeQuotaExceeded = gatewayproto.ErrQuotaExceeded
	// TypeRateLimited: the job sent more than gatewayproto.RequestRate requests
	// a second (after a burst of gatewayproto.RequestBurst); the request was
	// not performed and may be sent again after a pause.
	TypeRateLimited = gatewayproto.ErrRateLimited
)

// Sentinels an *Error matches with errors.Is, by its Type.
var (
	ErrQuotaExceeded = &Error{Type: TypeQuotaExceeded}
	ErrRateLimited   = &Error{Type: TypeRateLimited}
)

// Error is a call the gateway refused or could not perform.
type Error struct {
	Type    string
	Message string
	// Err is the cause of a failure to talk to the gateway, or nil.
	Err error
}

func (e *Error) Error() string { return "brig: " + e.Type + ": " + e.Message }

func (e *Error) Unwrap() error { return e.Err }

// Is matches an *Error of the same Type with no message, such as
// ErrQuotaExceeded and ErrRateLimited.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Err == nil && t.Type == e.Type
}

// AuthError is a call the job's credential does not allow. brig records
// every denial in the job's events. It also matches *Error (of type
// TypeAuth) with errors.As, so that one check catches every gateway error.
type AuthError struct {
	// Resource is "dict:<name>", "queue:<name>" or "function:<name>".
	Resource string
	// Action is read, write, put, get or call.
	Action  string
	Message string
}

func (e *AuthError) Error() string {
	return "brig: AuthError: " + e.Resource + " " + e.Action + ": " + e.Message
}

// Unwrap returns the denial as an *Error of type TypeAuth.
func (e *AuthError) Unwrap() error { return &Error{Type: TypeAuth, Message: e.Message} }

// responseError is the error a failed Response carries.
func responseError(ge *gatewayproto.Error) error {
	if ge == nil {
		return &Error{Type: TypeInfrastructure, Message: "the gateway refused the call without saying why"}
	}
	if ge.Type == TypeAuth {
		return &AuthError{Resource: ge.Resource, Action: ge.Action, Message: ge.Message}
	}
	typ := ge.Type
	if typ == "" {
		typ = TypeInfrastructure
	}
	return &Error{Type: typ, Message: ge.Message}
}
