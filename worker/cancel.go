package worker

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/schema"
)

// ErrCancelled is the cause of a job context cancelled by brig.cancel.<key>.
var ErrCancelled = errors.New("job cancelled")

// track registers a running job, by its key, for cancellation; the
// returned func unregisters it.
func (w *Worker) track(jobID string, cancel context.CancelCauseFunc) func() {
	w.mu.Lock()
	w.running[jobID] = cancel
	w.mu.Unlock()
	w.changed()
	return func() {
		w.mu.Lock()
		delete(w.running, jobID)
		w.mu.Unlock()
		w.changed()
	}
}

// onCancel cancels the named job if it runs here. Every worker hears every
// cancel; the dispatchers answer the caller and end jobs still queued.
func (w *Worker) onCancel(m *nats.Msg) {
	id, ok := schema.KeyFromSubject(m.Subject, schema.CancelPrefix)
	if !ok {
		return
	}
	w.mu.Lock()
	cancel, ok := w.running[id]
	w.mu.Unlock()
	if ok {
		w.log.Info("cancelling job", "job", id)
		cancel(ErrCancelled)
	}
}
