package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/brig-dev/brig/internal/token"
	"github.com/brig-dev/brig/schema"
)

// call runs a child job of another function and returns its terminal event.
// The child asks for the caller's granted scopes minus every function:
// scope, so it never holds more than its caller (its own function may cap it
// further) and cannot call on in turn: no call chains, no call bombs holding
// every worker slot.
func (l *Listener) call(ctx context.Context, req *Request) *Response {
	if l.g.cfg.Call == nil {
		return &Response{Error: &Error{Type: ErrCallFailed, Message: "function calls are not available on this worker"}}
	}
	claims, _ := token.Verify(req.Token, l.g.cfg.Keys(l.ctx), time.Now()) // checked in authorize
	if claims == nil {
		return &Response{Error: &Error{Type: ErrCallFailed, Message: "token no longer valid"}}
	}
	if len(req.Args) > 0 && !json.Valid(req.Args) {
		return invalid("args are not JSON")
	}
	left := timeLeft(ctx)
	if left < time.Second {
		return &Response{Error: &Error{Type: ErrTimeout, Message: "too little time left for a call"}}
	}
	job := schema.Job{
		ID:       l.childID(),
		Function: req.Name,
		Code:     req.Code,
		Args:     req.Args,
		Timeout:  min((left - 500*time.Millisecond).Milliseconds(), schema.MaxTimeoutMS),
	}
	for _, sc := range claims.Scopes {
		if !strings.HasPrefix(sc, schema.ResourceFunction+":") {
			job.Scopes = append(job.Scopes, sc)
		}
	}
	job.Restricted = schema.Ptr(len(job.Scopes) == 0)
	if err := job.Validate(); err != nil {
		return invalid("call: %v", err)
	}
	ev, err := l.g.cfg.Call(ctx, job)
	if ev == nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return &Response{Error: &Error{Type: ErrTimeout, Message: "call ran out of time"}}
		}
		return &Response{Error: &Error{Type: ErrCallFailed, Message: "call: " + errString(err)}}
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return &Response{Error: &Error{Type: ErrCallFailed, Message: err.Error()}}
	}
	return &Response{OK: true, Found: true, Value: data}
}

// childID derives a child job id from its parent's, within the id limit.
func (l *Listener) childID() string {
	l.mu.Lock()
	l.calls++
	n := l.calls
	l.mu.Unlock()
	suffix := "-c" + strconv.Itoa(n)
	parent := l.binding().JobID
	if len(parent)+len(suffix) > 64 {
		sum := sha256.Sum256([]byte(parent))
		parent = hex.EncodeToString(sum[:12])
	}
	return parent + suffix
}

func timeLeft(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return time.Until(dl)
	}
	return time.Minute
}

func errString(err error) string {
	if err == nil {
		return "no result"
	}
	return err.Error()
}
