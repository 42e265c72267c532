package worker

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/brig-dev/brig/internal/events"
	"github.com/brig-dev/brig/internal/initproto"
	"github.com/brig-dev/brig/internal/sandbox"
	"github.com/brig-dev/brig/schema"
)

// TestGuardReleaseOncePerRun guards the worker's side of the move of the
// container side into internal/sandbox: every Outcome is released exactly
// once, after its attempt is settled (a retry handed back, or the terminal
// event stored), and an attempt's refused calls are that attempt's alone.
func TestGuardReleaseOncePerRun(t *testing.T) {
	t.Parallel()
	var r *unitRig
	var mu sync.Mutex
	releases := map[int]int{}           // by attempt
	terminalAtRelease := map[int]bool{} // by attempt: was the terminal event stored?
	attempt := 0
	r = newUnitRig(t, newFakeSandboxes(func(ctx context.Context, job *sandbox.Job) (*sandbox.Outcome, error) {
		mu.Lock()
		attempt++
		n := attempt
		mu.Unlock()
		var out *sandbox.Outcome
		if n == 1 {
			// The first attempt is refused a call, then fails: it is
			// retried, and its denial must not follow the job.
			job.OnStart("c1", schema.SandboxCold)
			job.Binding.OnDenied(schema.AuthError{Resource: "dict:d", Action: "read", Message: "scope dict:d:read is not granted to this job"})
			out = ended(job, &initproto.Exit{ExitCode: 3}, "")
		} else {
			out = exited(job, 0)
		}
		out.Release = func() {
			ev, err := events.NewLog(r.nc, r.js, nil).Terminal(context.Background(), job.Work.Job.ID)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			releases[n]++
			terminalAtRelease[n] = ev != nil
			mu.Unlock()
		}
		return out, nil
	}), func(c *Config) { c.Backoff = 50 * time.Millisecond })
	work := r.work("release-once")
	work.Spec.Retries = 1
	tap := r.tap(work.Job.ID)
	r.publish(work)

	tap.next(schema.EventStarted)
	tap.next(schema.EventAuthError)
	tap.next(schema.EventStarted)
	end := tap.next(schema.EventResult)
	wantError(t, end, schema.StatusSucceeded, "")
	if end.AuthErrorCount != 0 || len(end.AuthErrors) != 0 {
		t.Errorf("the second attempt's terminal event carries the first's denials: %d, %+v", end.AuthErrorCount, end.AuthErrors)
	}
	r.settled()
	// Once the worker has stopped, every job's handling has returned: the
	// releases are all there is.
	if err := r.w.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if releases[1] != 1 || releases[2] != 1 || len(releases) != 2 {
		t.Errorf("releases by attempt %v; want each of the two attempts' sandboxes released once", releases)
	}
	if terminalAtRelease[1] {
		t.Error("the retried attempt's sandbox was released after a terminal event: the job should not have ended then")
	}
	if !terminalAtRelease[2] {
		t.Error("the last attempt's sandbox was released before its terminal event was stored")
	}
}
