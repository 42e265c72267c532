package e2e

import (
	"context"
	"testing"

	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// TestCancelRunningJob publishes on brig.cancel.<key> (docs/design.md §6) while
// the job runs: it must end at once with a terminal `cancelled` event.
func TestCancelRunningJob(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	job := pythonJob("cancel", "import time\ntime.sleep(60)")
	job.TimeoutMS = 10_000 // bounds the test should cancellation not work
	h, err := brig.Submit(ctx, job)
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	defer h.Stop()
	waitForEvent(ctx, t, h.Events(), schema.EventStarted)
	// On the tenant's client connection: a client may cancel (§10).
	if err := clientNC.Publish(schema.CancelSubject(keyOf(job.ID)), nil); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	ev, err := h.Result(ctx)
	if ev == nil {
		t.Fatalf("no terminal event: %v", err)
	}
	wantStatus(t, ev, schema.EventCancelled, schema.StatusCancelled, schema.ErrCancelled)
	wantIs(t, err, sdk.ErrCancelled)
	if ev.DurationMS >= job.TimeoutMS {
		t.Errorf("job ran %d ms, its whole timeout: the cancel had no effect", ev.DurationMS)
	}
	eventually(t, pollBudget, func(context.Context) (bool, string) {
		left := containersOf(t, keyOf(job.ID))
		return len(left) == 0, "containers of the cancelled job still exist: " + names(left)
	})
}

// TestCancelQueuedJob: a job cancelled before any worker runs it never
// runs, and the SDK's Cancel reports the status.
func TestCancelQueuedJob(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	// A function whose pool has no worker: the job stays queued.
	fn := schema.Function{Name: "idle-" + randomHex(4), Image: "brig/python:latest", Command: []string{"python3", "/work/main.py"}, Pool: "nobody-" + randomHex(4)}
	deploy(ctx, t, fn)
	job := schema.Job{ID: newID("cancel-queued"), Function: fn.Name, Code: `print("must not run")`}
	h, err := brig.Submit(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	waitForEvent(ctx, t, h.Events(), schema.EventAccepted)
	status, err := brig.Cancel(ctx, job.ID)
	if err != nil || status != schema.StatusCancelled {
		t.Fatalf("Cancel = %q, %v; want cancelled", status, err)
	}
	ev, err := h.Result(ctx)
	if ev == nil {
		t.Fatalf("no terminal event: %v", err)
	}
	wantStatus(t, ev, schema.EventCancelled, schema.StatusCancelled, schema.ErrCancelled)
	if got := countStored(t, schema.EventSubject(keyOf(job.ID), schema.EventStarted)); got != 0 {
		t.Errorf("a cancelled queued job started %d times", got)
	}
	// Cancelling a finished job reports how it ended and changes nothing.
	done, _ := runJob(t, pythonJob("cancel-done", `print(1)`))
	if status, err := brig.Cancel(ctx, idOf(t, done.JobID)); err != nil || status != schema.StatusSucceeded {
		t.Errorf("Cancel of a finished job = %q, %v; want succeeded", status, err)
	}
}

// TestRetries: a job that asks for retries runs again after failing, and
// ends with its last attempt's outcome.
func TestRetries(t *testing.T) {
	t.Parallel()
	job := pythonJob("retry", `import os, sys
print("attempt")
sys.exit(3)`)
	job.Retries = 2
	ev, err := runJob(t, job)
	wantIs(t, err, sdk.ErrFailed)
	if ev.Attempt != 3 || ev.ExitCode != 3 {
		t.Errorf("terminal attempt %d exit %d, want attempt 3 (1 + 2 retries) exit 3", ev.Attempt, ev.ExitCode)
	}
	if got := countStored(t, schema.EventSubject(keyOf(job.ID), schema.EventStarted)); got != 3 {
		t.Errorf("started %d times, want 3", got)
	}
	if got := countStored(t, schema.EventSubject(keyOf(job.ID), schema.EventResult)); got != 1 {
		t.Errorf("%d terminal events, want 1", got)
	}
}
