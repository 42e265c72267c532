package e2e

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/brig-dev/brig/dispatcher"
	"github.com/brig-dev/brig/internal/auth"
	"github.com/brig-dev/brig/internal/registry"
	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/worker"

	"github.com/nats-io/nats.go/jetstream"
)

func pooled(name, pool string) schema.Function {
	fn := schema.Python()
	fn.Name, fn.Pool = name, pool
	return fn
}

// TestRoutingByPool: a job runs on a worker of its function's pool; a job
// whose pool has no live worker waits for one and runs when one starts; a
// job whose pool gets none within the dispatcher's NoWorkerWait ends with a
// terminal NotFound error that names the pool. Workers appear in the
// registry with their pools and labels while they run, and leave it when
// they stop.
func TestRoutingByPool(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	fe := newFaultEnv(ctx, t)
	fe.startDispatcher(ctx, fe.roleConn(auth.RoleDispatcher), func(c *dispatcher.Config) { c.NoWorkerWait = 4 * time.Second })
	cpu := fe.startWorker(ctx, worker.Config{ID: workerID + "-route-cpu", Pools: []string{"cpu"}, Labels: map[string]string{"zone": "a"}})
	deployOn(ctx, t, fe.nc, pooled("on-cpu", "cpu"))
	deployOn(ctx, t, fe.nc, pooled("on-late", "late"))
	deployOn(ctx, t, fe.nc, pooled("on-ghost", "ghost"))

	js, err := jetstream.New(fe.nc)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.Open(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := reg.List(ctx)
	if err != nil || len(ws) != 1 || ws[0].ID != cpu.ID() || !slices.Equal(ws[0].Pools, []string{"cpu"}) || ws[0].Labels["zone"] != "a" || ws[0].Slots != 2 {
		t.Fatalf("registry = %+v, %v; want the cpu worker with its pool and label", ws, err)
	}

	job := func(fn string) schema.Job {
		j := pythonJob("route-"+fn, `import os; print(os.environ["BRIG_JOB_ID"])`)
		j.Function = fn
		return j
	}
	ev, err := fe.client.Run(ctx, job("on-cpu"))
	if err != nil {
		t.Fatalf("job on pool cpu: %v (%s)", err, brief(ev))
	}
	if started := startedOn(t, fe.client, idOf(t, ev.JobID)); started.Worker != cpu.ID() {
		t.Errorf("pool cpu job ran on %q", started.Worker)
	}
	tr := ev.Trace
	if tr == nil || tr.Queued.IsZero() || tr.Dispatched.Before(tr.Queued) || tr.Started.Before(tr.Dispatched) || tr.Finished.Before(tr.Started) {
		t.Errorf("trace %+v: want queued ≤ dispatched ≤ started ≤ finished", tr)
	}

	// No worker yet: the job is accepted and waits; a worker of its pool
	// starts and runs it.
	late, err := fe.client.Submit(ctx, job("on-late"))
	if err != nil {
		t.Fatal(err)
	}
	defer late.Stop()
	waitHeldBack(t, fe.nc)
	fe.startWorker(ctx, worker.Config{ID: workerID + "-route-late", Pools: []string{"late", "other"}})
	if ev, err := late.Result(ctx); err != nil || ev.Status != schema.StatusSucceeded {
		t.Errorf("job that waited for its pool's worker: %v %s", err, brief(ev))
	}

	// Never a worker: refused after NoWorkerWait, with the pool named.
	start := time.Now()
	ev, err = fe.client.Run(ctx, job("on-ghost"))
	wantStatus(t, ev, schema.EventError, schema.StatusError, schema.ErrNotFound)
	if !strings.Contains(errMessage(ev), `pool "ghost"`) {
		t.Errorf("refusal %q does not name the pool", errMessage(ev))
	}
	if waited := time.Since(start); waited < 3*time.Second || waited > 30*time.Second {
		t.Errorf("refused after %s, want about the 4s NoWorkerWait", waited)
	}

	// A stopped worker leaves the registry at once.
	if err := cpu.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	ws, err = reg.List(ctx)
	if err != nil || len(ws) != 1 || ws[0].ID != workerID+"-route-late" {
		t.Errorf("registry after the cpu worker stopped: %+v, %v", ws, err)
	}
}

// TestPoolConcurrencyLimit: a pool limited to one running job never runs
// two at once, however many slots its workers have.
func TestPoolConcurrencyLimit(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	fe := newFaultEnv(ctx, t)
	fe.startDispatcher(ctx, fe.roleConn(auth.RoleDispatcher))
	fe.startWorker(ctx, worker.Config{ID: workerID + "-limit", Pools: []string{"narrow"}, Slots: 3, PoolLimits: map[string]int{"narrow": 1}})
	deployOn(ctx, t, fe.nc, pooled("narrow-fn", "narrow"))

	var mu sync.Mutex
	var traces []*schema.Trace
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j := pythonJob("narrow", "import time; time.sleep(0.5)")
			j.Function = "narrow-fn"
			ev, err := fe.client.Run(ctx, j)
			if err != nil {
				t.Errorf("narrow job: %v (%s)", err, brief(ev))
				return
			}
			mu.Lock()
			traces = append(traces, ev.Trace)
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.SortFunc(traces, func(a, b *schema.Trace) int { return a.Started.Compare(b.Started) })
	for i := 1; i < len(traces); i++ {
		if traces[i].Started.Before(traces[i-1].Finished) {
			t.Errorf("jobs overlapped in a pool limited to 1: %+v then %+v", traces[i-1], traces[i])
		}
	}
}
