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

// handle checks and performs one request.
func (l *Listener) handle(ctx context.Context, line []byte) *Response {
	var req Request
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return &Response{Error: &Error{Type: ErrInvalidRequest, Message: "malformed request: " + err.Error()}}
	}
	if dec.More() {
		return &Response{Error: &Error{Type: ErrInvalidRequest, Message: "malformed request: data after the JSON object (one request per line)"}}
	}
	resp := l.authorize(&req)
	if resp != nil {
		resp.ID = req.ID
		return resp
	}
	resp = l.perform(ctx, &req)
	resp.ID = req.ID
	return resp
}

// authorize returns a denial, or nil when the request may proceed.
func (l *Listener) authorize(req *Request) *Response {
	sc, err := requiredScope(req)
	if err != nil {
		return &Response{Error: &Error{Type: ErrInvalidRequest, Message: err.Error()}}
	}
	resource := sc.Kind + ":" + sc.Name
	b := l.binding()
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
	claims, err := token.Verify(req.Token, l.g.cfg.Keys(l.ctx), time.Now())
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
	case b.JobID == "":
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

// perform runs an authorized request.
func (l *Listener) perform(ctx context.Context, req *Request) *Response {
	if len(req.Value) > MaxValueBytes || len(req.Args) > MaxValueBytes {
		return invalid("value larger than %d bytes", MaxValueBytes)
	}
	ctx, cancel := context.WithTimeout(ctx, l.callTimeout(req))
	defer cancel()
	r := l.g.resources
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
		return l.call(ctx, req)
	}
	return invalid("unknown operation %q", clip(req.Op))
}

// callTimeout is what the job asked for, within what is left of its time.
func (l *Listener) callTimeout(req *Request) time.Duration {
	left := time.Until(l.binding().Deadline)
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
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return &Response{Error: &Error{Type: ErrTimeout, Message: "call ran out of time"}}
	case err != nil:
		return &Response{Error: &Error{Type: ErrCallFailed, Message: err.Error()}}
	}
	return &Response{OK: true, Found: found, Value: value}
}
