package worker

import (
	"context"
	"testing"
	"time"

	"github.com/brig-dev/brig/internal/sandbox"
	"github.com/brig-dev/brig/schema"
)

// TestCancelStoresLastOutputEvents: a cancelled job's output events are
// all stored, numbered without a gap, before its terminal event, which
// holds the same output. The events go out off the job's context, which
// the cancellation ends (worker/job.go execute); they used to be dropped
// while their sequence numbers were spent, so `brig run`, `brig watch` and
// SDK Events() showed less than the terminal event held.
func TestCancelStoresLastOutputEvents(t *testing.T) {
	t.Parallel()
	r := newUnitRig(t, newFakeSandboxes(func(ctx context.Context, job *sandbox.Job) (*sandbox.Outcome, error) {
		out := ran(job, nil, "before\n")
		<-ctx.Done()
		// What the init had written before the kill, read after it.
		job.OnOutput(schema.StreamStdout, out.Stdout.Add([]byte("last words\n")))
		out.Interrupted = context.Cause(ctx)
		return out, nil
	}), nil)
	work := r.work("tail")
	tap := r.tap(work.Job.ID)
	r.publish(work)

	tap.next(schema.EventStarted)
	if ev := tap.next(schema.EventOutput); ev.Data != "before\n" {
		t.Fatalf("first output %q", ev.Data)
	}
	if err := r.nc.Publish(schema.CancelSubject(work.Job.ID), nil); err != nil {
		t.Fatal(err)
	}
	var streamed string
	var end *schema.Event
	for end == nil {
		select {
		case m := <-tap.ch:
			ev, err := schema.DecodeEvent(m.Data)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case ev.Type == schema.EventOutput:
				streamed += ev.Data
			case schema.IsTerminal(ev.Type):
				end = ev
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no terminal event")
		}
	}
	wantError(t, end, schema.StatusCancelled, schema.ErrCancelled)
	if end.Stdout != "before\nlast words\n" {
		t.Fatalf("terminal stdout %q", end.Stdout)
	}
	if streamed != "last words\n" {
		t.Errorf("after the cancel, output events carried %q; want %q, as the terminal event's stdout has it (seq of the terminal event %d: events before it were numbered and never stored)",
			streamed, "last words\n", end.Seq)
	}
	r.settled()
	// Seq 1 is the dispatcher's accepted event, which this rig has not.
	if n := r.stored(work.Job.ID); int64(n) != end.Seq-1 {
		t.Errorf("%d events stored, numbered 2 to %d: a hole in the job's events", n, end.Seq)
	}
}
