package gateway

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/brig-dev/brig/internal/gatewayproto"
	"github.com/brig-dev/brig/internal/token"
	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// call runs a child job of another function and returns its terminal event.
// The child is a job of the caller's tenant: submitted, followed and
// cancelled there, and its events are the tenant's. It asks for the
// caller's granted scopes minus every function: scope, so it never holds
// more than its caller (its own function may cap it further) and cannot call
// on in turn: no call chains, no call bombs holding every worker slot. Its
// id is new and unguessable (childID), so its answer can come from no other
// job. When the call ends before the child does (it timed out, or the job's
// binding was reset or closed), the child is cancelled, queued or running.
func (l *Listener) call(ctx context.Context, s *session, req *gatewayproto.Request) *gatewayproto.Response {
	if l.g.cfg.Call == nil {
		return &gatewayproto.Response{Error: &gatewayproto.Error{Type: gatewayproto.ErrCallFailed, Message: "function calls are not available on this worker"}}
	}
	claims, _ := token.Verify(req.Token, l.g.cfg.Keys(ctx), time.Now()) // checked in authorize
	if claims == nil {
		return &gatewayproto.Response{Error: &gatewayproto.Error{Type: gatewayproto.ErrCallFailed, Message: "token no longer valid"}}
	}
	if len(req.Args) > 0 && !json.Valid(req.Args) {
		return invalid("args are not JSON")
	}
	left := timeLeft(ctx)
	if left < time.Second {
		return &gatewayproto.Response{Error: &gatewayproto.Error{Type: gatewayproto.ErrTimeout, Message: "too little time left for a call"}}
	}
	_, parent, _ := schema.SplitJobKey(s.b.JobID) // valid: authorize checked the token's key against it
	job := schema.Job{
		ID:        childID(parent),
		Function:  req.Name,
		Code:      req.Code,
		Args:      req.Args,
		TimeoutMS: min((left - 500*time.Millisecond).Milliseconds(), schema.MaxTimeoutMS),
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
	if err := s.takeChild(); err != nil {
		return result(nil, false, err)
	}
	ev, err := l.g.cfg.Call(ctx, s.tenant, job)
	if ev == nil {
		// No terminal event: the child may be queued or running still. A
		// call refused as a duplicate started nothing of its own, and what
		// holds its id was planted there; cancelling it harms no one.
		l.cancelChild(ctx, s.tenant, job.ID)
		if ctx.Err() != nil {
			return result(nil, false, ctx.Err())
		}
		return &gatewayproto.Response{Error: &gatewayproto.Error{Type: gatewayproto.ErrCallFailed, Message: "call: " + errString(err)}}
	}
	data, err := schema.MarshalEvent(ev)
	if err != nil {
		return &gatewayproto.Response{Error: &gatewayproto.Error{Type: gatewayproto.ErrCallFailed, Message: err.Error()}}
	}
	return &gatewayproto.Response{OK: true, Found: true, Value: data}
}

// CancelTimeout bounds the cancellation of a child whose call ended first.
const CancelTimeout = 15 * time.Second

// cancelChild cancels tenant's child job id in the background, on a
// context detached from the call's (which has ended): Reset and Close need
// not wait for it. While brig has no event of the child, the cancellation
// finds nothing (sdk.ErrNotFound) and changes nothing, yet the child's
// submission may still be on its way to a dispatcher: it asks again, until
// CancelTimeout. A child submitted later than that runs to its own timeout,
// which is within the parent's.
func (l *Listener) cancelChild(ctx context.Context, tenant, id string) {
	if !l.g.startCancel() {
		l.g.cfg.Logger.Warn("child job of an ended call not cancelled: the gateway has stopped", "job", schema.JobKey(tenant, id))
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), CancelTimeout)
	go func() {
		defer l.g.cancels.Done()
		defer cancel()
		pause := cancelRetryMin
		for {
			err := l.g.cfg.Cancel(ctx, tenant, id)
			if err == nil {
				return
			}
			if !errors.Is(err, sdk.ErrNotFound) || !sleepCtx(ctx, pause) {
				l.g.cfg.Logger.Warn("cancel a child job whose call ended first", "job", schema.JobKey(tenant, id), "err", err)
				return
			}
			pause = min(2*pause, cancelRetryMax)
		}
	}()
}

// The pauses between the cancellations of a child brig has no event of.
const (
	cancelRetryMin = 50 * time.Millisecond
	cancelRetryMax = 2 * time.Second
)

// sleepCtx waits for d, reporting false when ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Child ids: a readable prefix of the parent's id, then 128 random bits
// (26 base32 characters), within schema's 64-character id limit.
const (
	childPrefixLen = 24
	childSep       = "-c"
)

// childID returns a new child job id of parent. It is unguessable, so no
// client can submit it ahead of the call, and new at every call, so a
// retried parent gets its own children.
func childID(parent string) string {
	if len(parent) > childPrefixLen {
		parent = parent[:childPrefixLen]
	}
	return parent + childSep + rand.Text()
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
