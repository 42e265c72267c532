package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// ErrorType is a problem's error_type (docs/design.md §11): the last part
// of its type URI, and what a client branches on.
type ErrorType string

// Problem types and the status each answers with.
const (
	TypeInvalidJob           ErrorType = "InvalidJob"           // 400
	TypeInvalidFunction      ErrorType = "InvalidFunction"      // 400
	TypeInvalidRequest       ErrorType = "InvalidRequest"       // 400: a query, path or header
	TypeUnauthorized         ErrorType = "Unauthorized"         // 401
	TypeForbidden            ErrorType = "Forbidden"            // 403
	TypeNotFound             ErrorType = "NotFound"             // 404
	TypeMethodNotAllowed     ErrorType = "MethodNotAllowed"     // 405, with Allow
	TypeRequestTimeout       ErrorType = "RequestTimeout"       // 408: the body came too slowly
	TypeTooLarge             ErrorType = "TooLarge"             // 413
	TypeUnsupportedMediaType ErrorType = "UnsupportedMediaType" // 415
	TypeQuotaExceeded        ErrorType = "QuotaExceeded"        // 429, with Retry-After
	TypeBusy                 ErrorType = "Busy"                 // 503, with Retry-After
	TypeInfrastructure       ErrorType = "Infrastructure"       // 502: brig or NATS failed
)

// titles are the problems' short human titles.
var titles = map[ErrorType]string{
	TypeInvalidJob: "Invalid job", TypeInvalidFunction: "Invalid function", TypeInvalidRequest: "Invalid request",
	TypeUnauthorized: "Unauthorized", TypeForbidden: "Forbidden", TypeNotFound: "Not found",
	TypeMethodNotAllowed: "Method not allowed", TypeRequestTimeout: "Request timeout", TypeTooLarge: "Too large",
	TypeUnsupportedMediaType: "Unsupported media type", TypeQuotaExceeded: "Quota exceeded", TypeBusy: "Busy",
	TypeInfrastructure: "Infrastructure",
}

// problemTypePrefix prefixes an ErrorType in a problem's type URI.
const problemTypePrefix = "urn:brig:error:"

// Problem is an application/problem+json answer (RFC 9457). It is an
// error, so handlers return it.
type Problem struct {
	Type      string    `json:"type"`
	Title     string    `json:"title"`
	Status    int       `json:"status"`
	Detail    string    `json:"detail"`
	ErrorType ErrorType `json:"error_type"`
	Field     string    `json:"field,omitempty"`

	// retryAfter (seconds) and allow become headers.
	retryAfter int
	allow      string
}

func (p *Problem) Error() string { return string(p.ErrorType) + ": " + p.Detail }

// problem makes a Problem of type t.
func problem(status int, t ErrorType, format string, args ...any) *Problem {
	return &Problem{Type: problemTypePrefix + string(t), Title: titles[t], Status: status,
		Detail: fmt.Sprintf(format, args...), ErrorType: t}
}

// withField names the field to blame.
func (p *Problem) withField(field string) *Problem { p.Field = field; return p }

// busy is a 503 that asks the client to come back in a second.
func busy(format string, args ...any) *Problem {
	p := problem(http.StatusServiceUnavailable, TypeBusy, format, args...)
	p.retryAfter = 1
	return p
}

func invalidRequest(field, format string, args ...any) *Problem {
	return problem(http.StatusBadRequest, TypeInvalidRequest, format, args...).withField(field)
}

// write sends the problem.
func (p *Problem) write(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	if p.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(p.retryAfter))
	}
	if p.allow != "" {
		h.Set("Allow", p.allow)
	}
	if p.Status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="brig"`)
	}
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// asProblem maps an error of a handler (a Problem, or the SDK's) to the
// problem the client gets. subject names what was asked about ("job x").
func asProblem(err error, subject string) *Problem {
	var p *Problem
	var fe *sdk.FunctionError
	switch {
	case errors.As(err, &p):
		return p
	case errors.Is(err, sdk.ErrRejected): // an invalid function definition
		p := problem(http.StatusBadRequest, TypeInvalidFunction, "%v", err)
		if errors.As(err, &fe) {
			p.Detail, p.Field = fe.Message, fe.Field
		}
		return p
	case errors.Is(err, sdk.ErrForbidden):
		p := problem(http.StatusForbidden, TypeForbidden, "%s: %v", subject, err)
		if errors.As(err, &fe) {
			p.Field = fe.Field
		}
		return p
	case errors.As(err, &fe) && fe.Type == schema.ErrQuotaExceeded:
		return problem(http.StatusTooManyRequests, TypeQuotaExceeded, "%s: %s", subject, fe.Message)
	case errors.Is(err, sdk.ErrNotFound):
		return problem(http.StatusNotFound, TypeNotFound, "%s: brig has none in this tenant", subject)
	case errors.Is(err, sdk.ErrBusy):
		return busy("%s: brig is busy; ask again", subject)
	case errors.Is(err, sdk.ErrNoTenant):
		return problem(http.StatusForbidden, TypeForbidden, "the token's tenant has no record: brig refuses its requests")
	case errors.Is(err, nats.ErrNoResponders):
		return problem(http.StatusBadGateway, TypeInfrastructure, "%s: no dispatcher answered", subject)
	case errors.Is(err, context.DeadlineExceeded):
		return problem(http.StatusBadGateway, TypeInfrastructure, "%s: brig did not answer in time", subject)
	}
	return problem(http.StatusBadGateway, TypeInfrastructure, "%s: %v", subject, err)
}
