package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/brig-dev/brig/internal/gatewayproto"
	"github.com/brig-dev/brig/internal/token"
	"github.com/brig-dev/brig/schema"
)

// reply is a wire response and what the server does once it is written.
type reply struct {
	*gatewayproto.Response
	// settle, when set, is told whether the response reached the job: a
	// queue value is acked only then, and offered again otherwise. It
	// returns once the ack is done (settleGet); ctx is the session's.
	settle func(ctx context.Context, delivered bool)
}

// handle checks and performs one request under session s. Every line
// counts against the session's request rate, denied and malformed ones too.
func (l *Listener) handle(s *session, line []byte) reply {
	allowed := s.rate.take(l.g.now())
	req, err := gatewayproto.DecodeRequest(line)
	if !allowed { // answered with the request's id when it has one
		return reply{Response: s.overQuota(&gatewayproto.Response{ID: req.ID, Error: &gatewayproto.Error{Type: gatewayproto.ErrRateLimited, Message: fmt.Sprintf(
			"more than %d requests a second (bursts of %d) to the gateway; slow down", gatewayproto.RequestRate, gatewayproto.RequestBurst)}})}
	}
	if err != nil {
		return reply{Response: &gatewayproto.Response{Error: &gatewayproto.Error{Type: gatewayproto.ErrInvalidRequest, Message: "malformed request: " + err.Error()}}}
	}
	r := reply{Response: l.authorize(s, &req)}
	if r.Response == nil {
		r.Response, r.settle = l.perform(s, &req)
	}
	r.ID = req.ID
	if r.Error != nil && r.Error.Type == gatewayproto.ErrQuotaExceeded {
		s.overQuota(r.Response)
	}
	return r
}

// authorize returns a denial, or nil when the request may proceed.
func (l *Listener) authorize(s *session, req *gatewayproto.Request) *gatewayproto.Response {
	sc, err := requiredScope(req)
	if err != nil {
		return &gatewayproto.Response{Error: &gatewayproto.Error{Type: gatewayproto.ErrInvalidRequest, Message: err.Error()}}
	}
	resource := sc.Kind + ":" + sc.Name
	b := s.b
	deny := func(msg string) *gatewayproto.Response {
		ae := schema.AuthError{Resource: resource, Action: sc.Action, Message: msg}
		if b.OnDenied != nil {
			b.OnDenied(ae)
		}
		return &gatewayproto.Response{Error: &gatewayproto.Error{Type: gatewayproto.ErrAuthError, Message: msg, Resource: resource, Action: sc.Action}}
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
		return &gatewayproto.Response{Error: &gatewayproto.Error{Type: gatewayproto.ErrCallFailed, Message: "cannot verify token now: " + err.Error()}}
	case s.tenant == "": // no binding, or (never from a worker) a binding with no valid key
		return deny("this socket serves no job yet")
	case time.Now().After(b.Deadline):
		return &gatewayproto.Response{Error: &gatewayproto.Error{Type: gatewayproto.ErrTimeout, Message: "the job's time is up"}}
	case claims.JobID != b.JobID:
		return deny("token belongs to another job")
	case !claims.Allows(sc.String()):
		return deny(fmt.Sprintf("scope %s is not granted to this job", sc))
	}
	return nil
}

// perform runs an authorized request, within the session's life. The func
// it returns with a queue value is the reply's settle.
func (l *Listener) perform(s *session, req *gatewayproto.Request) (*gatewayproto.Response, func(context.Context, bool)) {
	if len(req.Value) > gatewayproto.MaxValueBytes || len(req.Args) > gatewayproto.MaxValueBytes {
		return invalid("value larger than %d bytes", gatewayproto.MaxValueBytes), nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.callTimeout(req))
	defer cancel()
	r := resourceCalls{resources: l.g.resources, s: s}
	switch req.Op {
	case gatewayproto.OpDictGet:
		if !kvKeyRe.MatchString(req.Key) || len(req.Key) > gatewayproto.MaxKeyLen {
			return invalid("key %q is not valid (letters, digits, - / _ = and inner dots)", clip(req.Key)), nil
		}
		return result(r.dictGet(ctx, req.Name, req.Key)), nil
	case gatewayproto.OpDictPut:
		if !kvKeyRe.MatchString(req.Key) || len(req.Key) > gatewayproto.MaxKeyLen {
			return invalid("key %q is not valid (letters, digits, - / _ = and inner dots)", clip(req.Key)), nil
		}
		if !json.Valid(req.Value) {
			return invalid("value is not JSON"), nil
		}
		return result(nil, true, r.dictPut(ctx, req.Name, req.Key, req.Value)), nil
	case gatewayproto.OpDictDelete:
		if !kvKeyRe.MatchString(req.Key) || len(req.Key) > gatewayproto.MaxKeyLen {
			return invalid("key %q is not valid", clip(req.Key)), nil
		}
		return result(nil, true, r.dictDelete(ctx, req.Name, req.Key)), nil
	case gatewayproto.OpQueuePut:
		if !json.Valid(req.Value) {
			return invalid("value is not JSON"), nil
		}
		return result(nil, true, r.queuePut(ctx, req.Name, req.Value)), nil
	case gatewayproto.OpQueueGet:
		value, settle, err := r.queueGet(ctx, req.Name)
		return result(value, settle != nil, err), settle
	case gatewayproto.OpCall:
		return l.call(ctx, s, req), nil
	}
	return invalid("unknown operation %q", clip(req.Op)), nil
}

// callTimeout is what the job asked for, within what is left of its time.
func (s *session) callTimeout(req *gatewayproto.Request) time.Duration {
	left := time.Until(s.b.Deadline)
	if req.TimeoutMS > 0 {
		asked := time.Duration(min(req.TimeoutMS, schema.MaxTimeoutMS)) * time.Millisecond
		return min(asked, left)
	}
	if req.Op == gatewayproto.OpQueueGet {
		return min(time.Second, left) // a get without timeout only peeks
	}
	return left
}

func invalid(format string, args ...any) *gatewayproto.Response {
	return &gatewayproto.Response{Error: &gatewayproto.Error{Type: gatewayproto.ErrInvalidRequest, Message: fmt.Sprintf(format, args...)}}
}

func result(value []byte, found bool, err error) *gatewayproto.Response {
	var qe *quotaError
	switch {
	case errors.As(err, &qe):
		return &gatewayproto.Response{Error: &gatewayproto.Error{Type: gatewayproto.ErrQuotaExceeded, Message: qe.Error()}}
	case errors.Is(err, context.DeadlineExceeded):
		return &gatewayproto.Response{Error: &gatewayproto.Error{Type: gatewayproto.ErrTimeout, Message: "call ran out of time"}}
	case errors.Is(err, context.Canceled):
		return &gatewayproto.Response{Error: &gatewayproto.Error{Type: gatewayproto.ErrTimeout, Message: "call ended: the job's gateway was closed or reset"}}
	case err != nil:
		return &gatewayproto.Response{Error: &gatewayproto.Error{Type: gatewayproto.ErrCallFailed, Message: err.Error()}}
	}
	return &gatewayproto.Response{OK: true, Found: found, Value: value}
}
