package e2e

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/brig-dev/brig/schema"
)

// TestCancelDuringCreateRemovesContainer: a job cancelled while its
// worker is creating its container ends `cancelled`, and no container is
// left behind. Docker's create does not stop when the client gives up, so
// the create runs off the job's context and the worker removes a
// container the job no longer wants (internal/sandbox createContainer);
// it used to stay in state "created" until the worker restarted, and a
// tenant submitting and cancelling in a loop piled them up.
//
// The cancellations are spread over the first 400 ms after each job's
// accepted event so that some land while a container is being created
// (on this 2-core box most runs catch one).
func TestCancelDuringCreateRemovesContainer(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	const jobs = 32
	var wg sync.WaitGroup
	ids := make([]string, jobs)
	for i := range ids {
		job := pythonJob("attack-cancel-create", `import time; time.sleep(30)`)
		job.TimeoutMS = 60_000
		ids[i] = job.ID
		h, err := brig.Submit(ctx, job)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer h.Stop()
			for ev := range h.Events() {
				if ev.Type == schema.EventAccepted {
					time.AfterFunc(time.Duration(i)*12*time.Millisecond, func() {
						if _, err := brig.Cancel(ctx, job.ID); err != nil {
							t.Errorf("cancel %s: %v", job.ID, err)
						}
					})
				}
				if schema.IsTerminal(ev.Type) {
					if ev.Status != schema.StatusCancelled {
						t.Errorf("job %s: %s, want cancelled", job.ID, brief(&ev))
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if n := countTerminal(t, keyOf(id)); n != 1 {
			t.Errorf("job %s: %d terminal events, want 1", id, n)
		}
	}
	// Every container of a cancelled job goes, whenever the cancel came.
	eventually(t, pollBudget, func(context.Context) (bool, string) {
		var left []string
		for _, id := range ids {
			for _, c := range containersOf(t, keyOf(id)) {
				left = append(left, id+": "+names([]container.Summary{c}))
			}
		}
		return len(left) == 0, "containers of cancelled jobs still exist: " + strings.Join(left, "; ")
	})
}
