package e2e

import (
	"context"
	"strings"
	"testing"

	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// TestCancelKeepsOutput: a running job cancelled after its output went out
// ends with a `cancelled` event that keeps that output, within
// output_bytes and with the truncation flagged, and the job's duration, as
// a timed-out job's event does (docs/design.md §6); its container is still
// removed.
func TestCancelKeepsOutput(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	const outputBytes = 64
	job := pythonJob("cancel-output", `import sys, time
print("before the cancel", flush=True)
sys.stderr.write("e" * 100)
sys.stderr.flush()
time.sleep(60)
print("never")
`)
	job.TimeoutMS = 30_000 // bounds the test should cancellation not work
	job.Limits = &schema.Limits{OutputBytes: outputBytes}
	h, err := brig.Submit(ctx, job)
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	defer h.Stop()
	wantStdout, wantStderr := "before the cancel\n", strings.Repeat("e", outputBytes)
	streamed := map[schema.OutputStream]string{}
	for streamed[schema.StreamStdout] != wantStdout || streamed[schema.StreamStderr] != wantStderr {
		ev := waitForEvent(ctx, t, h.Events(), schema.EventOutput)
		streamed[ev.Stream] += ev.Data
	}
	if status, err := brig.Cancel(ctx, job.ID); err != nil || status != schema.StatusCancelled {
		t.Fatalf("Cancel = %q, %v; want cancelled", status, err)
	}
	ev, err := h.Result(ctx)
	if ev == nil {
		t.Fatalf("no terminal event: %v", err)
	}
	wantIs(t, err, sdk.ErrCancelled)
	// The stored event, as a replay reads it, is the one the handle got.
	evs := events(t, job.ID)
	stored := evs[len(evs)-1]
	for _, got := range []*schema.Event{ev, &stored} {
		wantStatus(t, got, schema.EventCancelled, schema.StatusCancelled, schema.ErrCancelled)
		if got.Stdout != wantStdout || got.StdoutTruncated || got.Stderr != wantStderr || !got.StderrTruncated {
			t.Errorf("cancelled event (seq %d): stdout %q (truncated %v), stderr %q (truncated %v); want %q and %q, the latter truncated",
				got.Seq, got.Stdout, got.StdoutTruncated, got.Stderr, got.StderrTruncated, wantStdout, wantStderr)
		}
		if got.DurationMS <= 0 || got.DurationMS >= job.TimeoutMS {
			t.Errorf("cancelled event (seq %d): duration %d ms; want the time it ran until the cancel", got.Seq, got.DurationMS)
		}
	}
	eventually(t, pollBudget, func(context.Context) (bool, string) {
		left := containersOf(t, keyOf(job.ID))
		return len(left) == 0, "containers of the cancelled job still exist: " + names(left)
	})
}
