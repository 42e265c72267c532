package worker

import (
	"context"
	"testing"
	"time"

	"github.com/brig-dev/brig/internal/sandbox"
	"github.com/brig-dev/brig/schema"
)

// TestAttackCancelDropsLastOutputEvents: a cancelled job's terminal event
// keeps its output (issue 13), but the output *events* that were not yet
// published when the cancel came are lost: the output pump publishes
// with the job's context (worker/job.go execute: newOutputPump(ctx …)),
// which the cancellation has just ended, so every later Publish fails
// ("publish event … context canceled") while the emitter still spends
// their sequence numbers. What the job wrote in the pump's gathering
// window (50 ms, 1 s after 100 events) and what the real watch still
// reads from the stream between the kill and its end
// (internal/sandbox/run.go readFrames) never reaches a follower: `brig
// run`, `brig watch` and SDK Events() show less than the terminal event
// holds, and the stored events have a hole in their seq. A timed-out job
// loses nothing (its context is not cancelled).
func TestAttackCancelDropsLastOutputEvents(t *testing.T) {
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
