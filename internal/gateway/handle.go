package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/brig-dev/brig/internal/token"
	"github.com/brig-dev/brig/schema"
)

// handle checks and performs one request under session s. Every line
// counts against the session's request rate, denied and malformed ones too.
func (l *Listener) handle(s *session, line []byte) *Response {
	allowed := s.rate.take(time.Now())
	var req Request
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	err := dec.Decode(&req)
	if !allowed { // answered with the request's id when it has one
		return s.overQuota(&Response{ID: req.ID, Error: &Error{Type: ErrRateLimited, Message: fmt.Sprintf(
			"more than %d requests a second (bursts of %d) to the gateway; slow down", RequestRate, RequestBurst)}})
	}
	if err != nil {
		return &Response{Error: &Error{Type: ErrInvalidRequest, Message: "malformed request: " + err.Error()}}
	}
	if dec.More() {
		return &Response{Error: &Error{Type: ErrInvalidRequest, Message: "malformed request: data after the JSON object (one request per line)"}}
	}
	resp := l.authorize(s, &req)
	if resp == nil {
		resp = l.perform(s, &req)
	}
	resp.ID = req.ID
	if resp.Error != nil && resp.Error.Type == ErrQuotaExceeded {
		s.overQuota(resp)
	}
	return resp
}

// authorize returns a denial, or nil when the request may proceed.
func (l *Listener) authorize(s *session, req *Request) *Response {
	sc, err := requiredScope(req)
	if err != nil {
		return &Response{Error: &Error{Type: ErrInvalidRequest, Message: err.Error()}}
	}
	resource := sc.Kind + ":" + sc.Name
	b := s.b
	deny := func(msg string) *Response {
		ae := schema.AuthError{Resource: resource, Action: sc.Action, Message: msg}
		if b.OnDenied != nil {
			b.OnDenied(ae)
		}
		return &Response{Error: &Error{Type: schema.ErrAuthError, Message: msg, Resource: resource, Action: sc.Action}}
	}
	if req.Token == "" {
		return deny("no token: the request carries no credential")
	}
	claims, err := token.Verify(req.Token, l.g.cfg.Keys(s.ctx), time.Now())
	switch {
	case errors.Is(err, token.ErrExpired):
		return deny("token expired")
	case errors.Is(err, token.ErrSignature), errors.Is(err, token.ErrUnknownKey):
		return deny("token signature invalid")
	case err != nil && errors.Is(err, token.ErrMalformed):
		return deny("token malformed")
	case err != nil:
		// The key store did not answer: not the job's fault, but no proof.
		return &Response{Error: &Error{Type: ErrCallFailed, Message: "cannot verify token now: " + err.Error()}}
	case s.tenant == "": // no binding, or (never from a worker) a binding with no valid key
		return deny("this socket serves no job yet")
	case time.Now().After(b.Deadline):
		return &Response{Error: &Error{Type: ErrTimeout, Message: "the job's time is up"}}
	case claims.JobID != b.JobID:
		return deny("token belongs to another job")
	case !claims.Allows(sc.String()):
		return deny(fmt.Sprintf("scope %s is not granted to this job", sc))
	}
	return nil
}

// perform runs an authorized request, within the session's life.
func (l *Listener) perform(s *session, req *Request) *Response {
	if len(req.Value) > MaxValueBytes || len(req.Args) > MaxValueBytes {
		return invalid("value larger than %d bytes", MaxValueBytes)
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.callTimeout(req))
	defer cancel()
	r := resourceCalls{resources: l.g.resources, s: s}
	switch req.Op {
	case OpDictGet:
		if !kvKeyRe.MatchString(req.Key) || len(req.Key) > MaxKeyLen {
			return invalid("key %q is not valid (letters, digits, - / _ = and inner dots)", clip(req.Key))
		}
		return result(r.dictGet(ctx, req.Name, req.Key))
	case OpDictPut:
		if !kvKeyRe.MatchString(req.Key) || len(req.Key) > MaxKeyLen {
			return invalid("key %q is not valid (letters, digits, - / _ = and inner dots)", clip(req.Key))
		}
		if !json.Valid(req.Value) {
			return invalid("value is not JSON")
		}
		return result(nil, true, r.dictPut(ctx, req.Name, req.Key, req.Value))
	case OpDictDelete:
		if !kvKeyRe.MatchString(req.Key) || len(req.Key) > MaxKeyLen {
			return invalid("key %q is not valid", clip(req.Key))
		}
		return result(nil, true, r.dictDelete(ctx, req.Name, req.Key))
	case OpQueuePut:
		if !json.Valid(req.Value) {
			return invalid("value is not JSON")
		}
		return result(nil, true, r.queuePut(ctx, req.Name, req.Value))
	case OpQueueGet:
		value, settle, err := r.queueGet(ctx, req.Name)
		resp := result(value, settle != nil, err)
		resp.settle = settle
		return resp
	case OpCall:
		return l.call(ctx, s, req)
	}
	return invalid("unknown operation %q", clip(req.Op))
}

// callTimeout is what the job asked for, within what is left of its time.
func (s *session) callTimeout(req *Request) time.Duration {
	left := time.Until(s.b.Deadline)
	if req.TimeoutMS > 0 {
		asked := time.Duration(min(req.TimeoutMS, schema.MaxTimeoutMS)) * time.Millisecond
		return min(asked, left)
	}
	if req.Op == OpQueueGet {
		return min(time.Second, left) // a get without timeout only peeks
	}
	return left
}

func invalid(format string, args ...any) *Response {
	return &Response{Error: &Error{Type: ErrInvalidRequest, Message: fmt.Sprintf(format, args...)}}
}

func result(value []byte, found bool, err error) *Response {
	var qe *quotaError
	switch {
	case errors.As(err, &qe):
		return &Response{Error: &Error{Type: ErrQuotaExceeded, Message: qe.Error()}}
	case errors.Is(err, context.DeadlineExceeded):
		return &Response{Error: &Error{Type: ErrTimeout, Message: "call ran out of time"}}
	case errors.Is(err, context.Canceled):
		return &Response{Error: &Error{Type: ErrTimeout, Message: "call ended: the job's gateway was closed or reset"}}
	case err != nil:
		return &Response{Error: &Error{Type: ErrCallFailed, Message: err.Error()}}
	}
	return &Response{OK: true, Found: found, Value: value}
}
