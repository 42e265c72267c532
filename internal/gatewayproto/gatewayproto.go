// Package gatewayproto is the wire between a job's code and its gateway
// (docs/design.md §4.3): the unix socket the worker bind-mounts into every
// container at Socket, served by internal/gateway and spoken by the
// in-container clients, sdk/sandbox (Go) and internal/pyclient (Python).
//
// The job writes one JSON Request per line; the gateway answers each with
// one JSON Response per line, in order, carrying the request's ID. A
// Response with ID 0 answers a line the gateway could not read at all, or
// refuses a connection past MaxConns. Both sides encode without HTML
// escaping, so a stored value comes back byte for byte.
//
// It imports the standard library only, like internal/initproto, so that
// the in-container Go client does not drag in the server stack (NATS,
// Docker) that implements the other side.
//
//	line, err := gatewayproto.EncodeRequest(&gatewayproto.Request{ID: 1, Token: tok,
//		Op: gatewayproto.OpDictGet, Name: "cache", Key: "count"})
package gatewayproto

import (
	"bytes"
	"encoding/json"
	"errors"
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

// Error types of a Response (Error.Type). The two that also name a job's
// terminal error equal schema.ErrAuthError and schema.ErrQuotaExceeded; they
// are spelled out here to keep this package a leaf, and a test holds them
// equal.
const (
	// ErrAuthError: the job's token does not allow the call (a denial,
	// recorded in the job's events); Resource and Action say what was
	// asked for.
	ErrAuthError      = "AuthError"
	ErrInvalidRequest = "InvalidRequest"
	// ErrCallFailed: brig could not perform the call (JetStream failed, or
	// the key store did not answer: no proof either way, so no denial).
	ErrCallFailed = "Infrastructure"
	ErrTimeout    = "Timeout"
	// ErrQuotaExceeded: the call would go past one of the job's quotas
	// (a dict or queue full, too many dicts and queues created, too many
	// child calls) or MaxConns; the message names the limit.
	ErrQuotaExceeded = "QuotaExceeded"
	// ErrRateLimited: the job sent more than RequestRate requests a
	// second (after a burst of RequestBurst); the request was not
	// performed and may be sent again later.
	ErrRateLimited = "RateLimited"
)

// Caps on what a job may send (docs/design.md §13.5). Each refusal is a
// typed error for the job, never brig's failure.
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
	// answered with a QuotaExceeded response (ID 0) and closed.
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
}

// Error says why a call failed.
type Error struct {
	Type     string `json:"type"`
	Message  string `json:"message"`
	Resource string `json:"resource,omitempty"`
	Action   string `json:"action,omitempty"`
}

// ErrTrailingData is a request line holding more than one JSON value.
var ErrTrailingData = errors.New("data after the JSON object (one request per line)")

// DecodeRequest decodes one request line (without its newline) strictly:
// a field the protocol does not have, or anything after the object, is an
// error. On an error the Request holds what was decoded before it, so that
// a refusal may still carry the request's ID when it came first.
func DecodeRequest(line []byte) (Request, error) {
	var req Request
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, err
	}
	if dec.More() {
		return req, ErrTrailingData
	}
	return req, nil
}

// EncodeRequest returns req as one line: JSON without HTML escaping, then a
// newline. It fails only when Value or Args is not JSON.
func EncodeRequest(req *Request) ([]byte, error) { return encodeLine(req) }

// EncodeResponse returns resp as one line: JSON without HTML escaping (what
// the job stored comes back byte for byte), then a newline. It fails only
// when Value is not JSON.
func EncodeResponse(resp *Response) ([]byte, error) { return encodeLine(resp) }

func encodeLine(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil { // Encode ends the line
		return nil, err
	}
	return buf.Bytes(), nil
}
