package e2e

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/brig-dev/brig/internal/devstack"
	"github.com/brig-dev/brig/internal/sandbox"
	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/worker"
)

// restSamples is how often the prewarm cap test samples the pools at rest
// (about every 20 ms, a sample taking a container list).
const restSamples = 50

// TestPrewarmCapBoundsIdleContainers: jobs of many distinct container
// templates (limits.pids 9-16) never make a worker hold more than
// PrewarmMax prewarmed containers that no job runs in; new templates evict
// old ones, and every job still succeeds.
func TestPrewarmCapBoundsIdleContainers(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*jobBudget)
	defer cancel()
	dir := t.TempDir()
	id := workerID + "-prewarmcap"
	const prewarmMax = 4
	st, err := devstack.Start(ctx, devstack.Config{
		Listen: "127.0.0.1:0", DataDir: filepath.Join(dir, "jetstream"), SkipImage: true, Logger: logger,
		Worker: worker.Config{ID: id, InitBinary: brigBin, RuntimeDir: filepath.Join(dir, "run"), Slots: 2, Prewarm: 2, PrewarmMax: prewarmMax},
	})
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	t.Cleanup(func() { stopWithin(t, "prewarm cap stack", st.Stop) })
	c := tenantClient(t, st)

	// jobContainers are the containers jobs ran in (a prewarmed one keeps
	// its label while it serves its job and is being removed).
	var mu sync.Mutex
	jobContainers := map[string]bool{}
	idle := func(ctx context.Context) ([]string, error) {
		list, err := docker.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
			filters.Arg("label", sandbox.LabelWorker+"="+id), filters.Arg("label", sandbox.LabelJob+"=prewarmed"))})
		if err != nil {
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		var ids []string
		for _, s := range list {
			if !jobContainers[s.ID] {
				ids = append(ids, s.ID[:12])
			}
		}
		return ids, nil
	}

	// warm counts the idle prewarmed containers by template: under runc
	// (these jobs' runtime) a container's pids limit is its template's
	// limits.pids plus the init's headroom, the same for every template.
	warm := func(ctx context.Context) (map[int64]int, error) {
		ids, err := idle(ctx)
		if err != nil {
			return nil, err
		}
		byLimit := map[int64]int{}
		for _, id := range ids {
			info, err := docker.ContainerInspect(ctx, id)
			if cerrdefs.IsNotFound(err) {
				continue // removed since it was listed
			}
			if err != nil {
				return nil, err
			}
			if info.HostConfig.PidsLimit == nil {
				return nil, fmt.Errorf("prewarmed container %s has no pids limit", id)
			}
			byLimit[*info.HostConfig.PidsLimit]++
		}
		return byLimit, nil
	}

	// Sample all along: one job runs at a time, in a container not yet
	// known while it runs, so at most prewarmMax + 1 are unaccounted for.
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var peak int
	var peakIDs []string
	var samples atomic.Int64
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if ids, err := idle(sampleCtx); err == nil && len(ids) > peak {
				peak, peakIDs = len(ids), ids
			}
			samples.Add(1)
			select {
			case <-sampleCtx.Done():
				return
			case <-tick.C:
			}
		}
	}()

	var headroom int64 // the pids limit of a template's containers less its limits.pids
	jobPids := []int64{9, 10, 11, 12, 13, 14, 15, 16, 9, 16}
	for i, pids := range jobPids {
		j := pythonJob(fmt.Sprintf("prewarmcap-%d", pids), "print('ok')")
		j.Limits = &schema.Limits{Pids: pids}
		ev, err := c.Run(ctx, j)
		if err != nil {
			t.Fatalf("job %d (pids %d): %v (%s)", i, pids, err, brief(ev))
		}
		started := startedOn(t, c, j.ID)
		mu.Lock()
		jobContainers[started.Container] = true
		mu.Unlock()
		// Between jobs: no more than the cap wait.
		if ids, err := idle(ctx); err != nil {
			t.Fatal(err)
		} else if len(ids) > prewarmMax {
			t.Errorf("after job %d: %d prewarmed containers wait, cap %d: %v", i, len(ids), prewarmMax, ids)
		}
		// Before the next job, refills and evictions settle: the pool
		// holds this job's template and, from the second job on, the one
		// used before it (prewarmMax / Prewarm = 2 templates are kept;
		// the least recently used goes), each with Prewarm = 2 containers.
		eventually(t, pollBudget, func(ctx context.Context) (bool, string) {
			byLimit, err := warm(ctx)
			if err != nil {
				return false, err.Error()
			}
			if i == 0 && len(byLimit) == 1 {
				for limit := range byLimit {
					headroom = limit - pids
				}
			}
			want := map[int64]int{pids + headroom: 2}
			if i > 0 {
				want[jobPids[i-1]+headroom] = 2
			}
			return maps.Equal(byLimit, want), fmt.Sprintf("after job %d (pids %d): idle prewarmed containers by pids limit %v, want %v", i, pids, byLimit, want)
		})
	}
	// The pools fill up to the cap (so the bound above was tested) and stay there.
	eventually(t, pollBudget, func(ctx context.Context) (bool, string) {
		ids, err := idle(ctx)
		return err == nil && len(ids) == prewarmMax, fmt.Sprintf("prewarmed containers: %v (%v), want %d", ids, err, prewarmMax)
	})
	// And stay there: the sampler watches the pools at rest for a while,
	// counted in samples so that a slow machine does not shorten it.
	atRest := samples.Load()
	eventually(t, pollBudget, func(context.Context) (bool, string) {
		n := samples.Load() - atRest
		return n >= restSamples, fmt.Sprintf("%d samples at rest, want %d", n, restSamples)
	})
	stopSampling()
	<-sampled
	if ids, _ := idle(ctx); len(ids) > prewarmMax {
		t.Errorf("at rest: %d prewarmed containers, cap %d: %v", len(ids), prewarmMax, ids)
	}
	if peak > prewarmMax+1 {
		t.Errorf("at most %d prewarmed containers existed at once while one job ran; cap %d (+1 for the job's): %v", peak, prewarmMax, peakIDs)
	}
	t.Logf("peak of idle prewarmed containers sampled: %d (cap %d)", peak, prewarmMax)
}
