package worker

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/schema"
)

// ErrCancelled is the cause of a job context cancelled by brig.cancel.<key>.
var ErrCancelled = errors.New("job cancelled")

// Bounds of the cancellations a worker keeps for jobs it does not run
// (docs/design.md §6, §13.7).
const (
	// unclaimedFor is how long a cancellation of a job not running here
	// is kept: a job picked up within it is cancelled as it starts. The
	// dispatcher has ended a job cancelled while queued long before.
	unclaimedFor = time.Minute
	// maxUnclaimed bounds those kept. Every worker hears every
	// cancellation, so past the bound the oldest are forgotten (a flood
	// of cancellations of unknown ids then costs a fixed amount of
	// memory); a job whose cancellation was forgotten still finds its
	// terminal event in endedAlready.
	maxUnclaimed = 4096
)

// track registers a job, by its key, for cancellation, before the worker
// looks whether it ended already: a cancellation heard from then on
// cancels it, and one heard before (kept in unclaimed) cancels it at once
// when it was heard after the job was accepted. So a cancellation that
// reaches this worker is not lost in the window between fetching the job
// and running it, and one of an id brig did not know then (answered
// NotFound, docs/design.md §6) never touches a later job of that id. The
// comparison is of the worker's clock with the accepting dispatcher's: a
// skew between them can misjudge only a cancellation heard within the skew
// of the job's acceptance. The returned func unregisters the job.
func (w *Worker) track(jobID string, accepted time.Time, cancel context.CancelCauseFunc) func() {
	w.mu.Lock()
	w.running[jobID] = cancel
	heardAt, kept := w.unclaimed[jobID]
	delete(w.unclaimed, jobID)
	w.mu.Unlock()
	heard := kept && heardAt.After(accepted)
	if heard {
		w.log.Info("cancelling job: its cancellation came before it", "job", jobID)
		cancel(ErrCancelled)
	}
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
	if !ok {
		w.keepUnclaimed(id, time.Now())
	}
	w.mu.Unlock()
	if ok {
		w.log.Info("cancelling job", "job", id)
		cancel(ErrCancelled)
	}
}

// keepUnclaimed remembers a cancellation of a job not running here, within
// maxUnclaimed: expired ones go first, then the oldest. w.mu is held.
func (w *Worker) keepUnclaimed(id string, now time.Time) {
	if w.unclaimed == nil {
		w.unclaimed = map[string]time.Time{}
	}
	if len(w.unclaimed) >= maxUnclaimed {
		oldest, at := "", now
		for k, t := range w.unclaimed {
			if now.Sub(t) > unclaimedFor {
				delete(w.unclaimed, k)
			} else if t.Before(at) {
				oldest, at = k, t
			}
		}
		if len(w.unclaimed) >= maxUnclaimed {
			delete(w.unclaimed, oldest)
		}
	}
	w.unclaimed[id] = now
}
