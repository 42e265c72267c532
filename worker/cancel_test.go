package worker

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/schema"
)

// A cancellation names its job by key: only the job of that key in that
// tenant is cancelled; the same id in another tenant, and subjects that are
// not keys, cancel nothing.
func TestOnCancelByKey(t *testing.T) {
	t.Parallel()
	w := &Worker{log: slog.New(slog.DiscardHandler), running: map[string]context.CancelCauseFunc{}, entryChanged: make(chan struct{}, 1)}
	ctxs := map[string]context.Context{}
	for _, key := range []string{"default.j1", "acme.j1"} {
		ctx, cancel := context.WithCancelCause(t.Context())
		ctxs[key] = ctx
		defer w.track(key, time.Time{}, cancel)()
	}
	for _, subject := range []string{"brig.cancel.j1", "brig.cancel.other.j1", "brig.cancel.Acme.j1", "brig.cancel.acme.j1.x"} {
		w.onCancel(&nats.Msg{Subject: subject})
	}
	for key, ctx := range ctxs {
		if ctx.Err() != nil {
			t.Fatalf("%s cancelled by another subject", key)
		}
	}
	w.onCancel(&nats.Msg{Subject: schema.CancelSubject("acme.j1")})
	if !errors.Is(context.Cause(ctxs["acme.j1"]), ErrCancelled) || ctxs["default.j1"].Err() != nil {
		t.Errorf("after brig.cancel.acme.j1: acme %v, default %v", context.Cause(ctxs["acme.j1"]), ctxs["default.j1"].Err())
	}
}
