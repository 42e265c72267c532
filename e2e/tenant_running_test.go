package e2e

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/schema"
)

// TestTenantRunning: a tenant's max_running bounds its jobs running at
// once (docs/design.md §10.3). A burst of 6 jobs of a tenant with
// max_running 2 all succeed, and the intervals from each job's started
// event to its terminal event never overlap more than 2 deep; afterwards
// the tenant holds no running marker and no job waits in BRIG_HOLD. The
// same burst in a tenant without the limit is run too, to show what the
// limit changes (it shares the suite's worker slots with the other tests,
// so its overlap is only logged).
func TestTenantRunning(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	const maxRunning, burst = 2, 6
	limited := newTenant(ctx, t, schema.Tenant{Name: "run-" + randomHex(3), MaxRunning: maxRunning})
	free := newTenant(ctx, t, schema.Tenant{Name: "free-" + randomHex(3)})

	var wg sync.WaitGroup
	var overlap [2]int
	for i, u := range []*tenantUser{limited, free} {
		wg.Go(func() { overlap[i] = runBurst(ctx, t, u, burst) })
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if overlap[0] > maxRunning {
		t.Errorf("tenant with max_running %d: %d of its jobs ran at once", maxRunning, overlap[0])
	}
	t.Logf("jobs running at once: %d with max_running %d, %d without a limit", overlap[0], maxRunning, overlap[1])

	// The ended jobs gave their slots back; nothing of the tenant waits.
	eventually(t, pollBudget, func(ctx context.Context) (bool, string) {
		n, err := streamMsgs(ctx, bus.RunningStream(limited.name), "")
		held, herr := streamMsgs(ctx, bus.StreamHold, bus.HoldSubject(limited.name))
		return err == nil && herr == nil && n == 0 && held == 0,
			fmt.Sprintf("%d running markers (%v), %d held jobs (%v)", n, err, held, herr)
	})
}

// runBurst submits n python jobs of u at once, each sleeping 2 s, checks
// that all succeed and returns the largest number of them that ran at
// once: the deepest overlap of their [started, terminal] intervals, by
// the events' times.
func runBurst(ctx context.Context, t *testing.T, u *tenantUser, n int) int {
	t.Helper()
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			job := pythonJob(fmt.Sprintf("running%02d", i), "import time; time.sleep(2); print('ran')")
			h, err := u.c.Submit(ctx, job)
			if err != nil {
				t.Errorf("tenant %s: submit %d: %v", u.name, i, err)
				return
			}
			defer h.Stop()
			ev, err := h.Result(ctx)
			if ev == nil || ev.Status != schema.StatusSucceeded || ev.Stdout != "ran\n" {
				t.Errorf("tenant %s: job %s: %s (%v)", u.name, job.ID, brief(ev), err)
			}
			ids[i] = job.ID
		})
	}
	wg.Wait()
	if t.Failed() {
		return 0
	}
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, id := range ids {
		var started, ended time.Time
		for _, ev := range eventsOn(t, u.c, id) {
			switch {
			case ev.Type == schema.EventStarted && started.IsZero():
				started = ev.Time
			case schema.IsTerminal(ev.Type):
				ended = ev.Time
			}
		}
		if started.IsZero() || ended.IsZero() {
			t.Fatalf("tenant %s: job %s has no started or terminal event", u.name, id)
		}
		edges = append(edges, edge{started, +1}, edge{ended, -1})
	}
	// Ends sort before starts at the same instant: touching is no overlap.
	slices.SortFunc(edges, func(a, b edge) int { return cmp.Or(a.at.Compare(b.at), a.delta-b.delta) })
	depth, deepest := 0, 0
	for _, e := range edges {
		depth += e.delta
		deepest = max(deepest, depth)
	}
	return deepest
}

// streamMsgs counts the messages of a stream (on subject, unless "").
func streamMsgs(ctx context.Context, name, subject string) (uint64, error) {
	js, err := jetstream.New(stack.Conn)
	if err != nil {
		return 0, err
	}
	s, err := js.Stream(ctx, name)
	if err != nil {
		return 0, err
	}
	if subject == "" {
		info, err := s.Info(ctx)
		if err != nil {
			return 0, err
		}
		return info.State.Msgs, nil
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, err
	}
	return info.State.Subjects[subject], nil
}
