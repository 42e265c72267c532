// Package gateway is a job's only door to shared resources. The worker
// serves one unix socket per job, bind-mounted into the container at
// /run/brig/gateway.sock; the job's code sends JSON-line requests carrying
// its token (BRIG_TOKEN). Every request is checked for the token's
// signature, its expiry, that it belongs to the socket's job, and that it
// grants the scope the operation needs; only then does the gateway perform
// the call on NATS itself. The container never holds a NATS credential.
//
// Protocol: one JSON Request per line, one JSON Response per line, in order.
package gateway

import (
	"encoding/json"
	"fmt"
	"regexp"

	"github.com/brig-dev/brig/schema"
)

// Socket is where the gateway socket appears inside a container.
const Socket = "/run/brig/gateway.sock"

// Operations.
const (
	OpDictGet    = "dict.get"
	OpDictPut    = "dict.put"
	OpDictDelete = "dict.delete"
	OpQueuePut   = "queue.put"
	OpQueueGet   = "queue.get"
	OpCall       = "function.call"
)

// Error types of a Response besides schema.ErrAuthError.
const (
	ErrInvalidRequest = "InvalidRequest"
	ErrCallFailed     = "Infrastructure"
	ErrTimeout        = "Timeout"
	// ErrQuotaExceeded: the call would go past one of the job's quotas
	// (schema.Quotas: a dict or queue full, too many dicts and queues
	// created, too many child calls) or MaxConns; the message names the
	// limit.
	ErrQuotaExceeded = schema.ErrQuotaExceeded
	// ErrRateLimited: the job sent more than RequestRate requests a
	// second (after a burst of RequestBurst); the request was not
	// performed and may be sent again later.
	ErrRateLimited = "RateLimited"
)

// Caps on what a job may send (docs/design.md §13). Each refusal is
// a typed error for the job, never brig's failure.
const (
	// MaxLineBytes caps one request line (InvalidRequest, and the
	// connection is closed: the rest of the line is not read).
	MaxLineBytes = 1 << 20
	// MaxValueBytes caps a dict value, a queue value and a call's args
	// (InvalidRequest).
	MaxValueBytes = 256 << 10
	// MaxKeyLen caps a dict key (InvalidRequest).
	MaxKeyLen = 256
	// MaxConns caps a job's open connections to its gateway; one more is
	// answered with a QuotaExceeded response (id 0) and closed.
	MaxConns = 16
	// RequestRate and RequestBurst bound a job's requests: a token bucket
	// of RequestBurst requests refilled at RequestRate a second. A request
	// over it, denied and malformed ones included, gets RateLimited.
	RequestRate  = 200
	RequestBurst = 400
)

// Request is one call from a job.
type Request struct {
	ID    int64           `json:"id"`
	Token string          `json:"token"`
	Op    string          `json:"op"`
	Name  string          `json:"name"`
	Key   string          `json:"key,omitempty"`
	Value json.RawMessage `json:"value,omitempty"`
	// TimeoutMS bounds queue.get and function.call.
	TimeoutMS int64           `json:"timeout_ms,omitempty"`
	Code      string          `json:"code,omitempty"`
	Args      json.RawMessage `json:"args,omitempty"`
}

// Response answers one Request.
type Response struct {
	ID    int64           `json:"id"`
	OK    bool            `json:"ok"`
	Found bool            `json:"found,omitempty"`
	Value json.RawMessage `json:"value,omitempty"`
	Error *Error          `json:"error,omitempty"`

	// settle, when set, is told whether the response reached the job: a
	// queue value is acked only then, and offered again otherwise.
	settle func(delivered bool)
}

// Error says why a call failed.
type Error struct {
	Type     string `json:"type"`
	Message  string `json:"message"`
	Resource string `json:"resource,omitempty"`
	Action   string `json:"action,omitempty"`
}

// kvKeyRe is what JetStream KV accepts as a key.
var kvKeyRe = regexp.MustCompile(`^[-/_=a-zA-Z0-9]+(\.[-/_=a-zA-Z0-9]+)*$`)

// requiredScope is the scope an operation needs, or an error for a request
// that names no valid resource.
func requiredScope(req *Request) (schema.Scope, error) {
	var sc schema.Scope
	switch req.Op {
	case OpDictGet:
		sc = schema.Scope{Kind: schema.ResourceDict, Action: "read"}
	case OpDictPut, OpDictDelete:
		sc = schema.Scope{Kind: schema.ResourceDict, Action: "write"}
	case OpQueuePut:
		sc = schema.Scope{Kind: schema.ResourceQueue, Action: "put"}
	case OpQueueGet:
		sc = schema.Scope{Kind: schema.ResourceQueue, Action: "get"}
	case OpCall:
		sc = schema.Scope{Kind: schema.ResourceFunction, Action: "call"}
	default:
		return sc, fmt.Errorf("unknown operation %q", clip(req.Op))
	}
	if !schema.ValidName(req.Name) {
		return sc, fmt.Errorf("%s name %q is not valid", sc.Kind, clip(req.Name))
	}
	sc.Name = req.Name
	return sc, nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
