package bench

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// The burst figure (docs/design.md §8): burstJobs jobs at once onto an
// idle worker of the bench's own with burstJobs slots and prewarm depth
// burstJobs, whose warm cache had time to fill.
const (
	burstJobs = 8
	// burstRounds bursts are measured (one in a quick run); the warm
	// cache refills between them.
	burstRounds = 3
	// burstWarmWait bounds each wait for a full warm cache: burstJobs
	// cold starts, one at a time, on a loaded machine.
	burstWarmWait = 2 * time.Minute
	// burstTarget: the burst's p50 against the worker's own one job at a
	// time.
	burstTarget = 2
)

// burst: brig's warm path on the burst worker one job at a time, each with
// the warm cache full (the floor), then the bursts.
func (r *runner) burst(ctx context.Context) (err error) {
	r.cfg.Progress(fmt.Sprintf("brig burst: a worker of the bench's own, %d slots, prewarm %d", burstJobs, burstJobs))
	pool, err := startOwnPool(ctx, r.cfg, "burst", burstJobs, burstJobs)
	if err != nil {
		return fmt.Errorf("brig burst: %w", err)
	}
	defer r.stopPool(pool, "brig burst", &err)
	job := pythonJob(r.c, pool.Function, true)
	full := func(ctx context.Context) error {
		wctx, cancel := context.WithTimeout(ctx, burstWarmWait)
		defer cancel()
		return pool.waitWarm(wctx, burstJobs)
	}
	// latencyAfter's first, unmeasured job makes the template known to the
	// warm cache, which fills before every measured one.
	name := fmt.Sprintf("brig single-use, one job at a time (burst worker, %d prewarmed)", burstJobs)
	f, err := latencyAfter(ctx, name, r.cfg.N, full, job)
	floor, err := r.add(f, err, name, "ms", Figure{}, target{}, "the burst's floor: brig's own warm p50")
	if err != nil || floor.N == 0 {
		return err
	}
	rounds := burstRounds
	if r.cfg.Quick {
		rounds = 1
	}
	name = fmt.Sprintf("brig burst: %d jobs at once onto %d slots, %d prewarmed", burstJobs, burstJobs, burstJobs)
	r.cfg.Progress(name)
	var ds []time.Duration
	for range rounds {
		if err := full(ctx); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		got, err := burstOnce(ctx, burstJobs, job)
		if err != nil {
			_, err = r.add(Figure{}, fmt.Errorf("%s: %w", name, err), name, "ms", floor, target{}, "")
			return err
		}
		ds = append(ds, got...)
	}
	note := "one burst, after the warm cache filled"
	if rounds > 1 {
		note = fmt.Sprintf("%d bursts, each after the warm cache refilled", rounds)
	}
	_, err = r.add(latencyFigure(name, ds), nil, name, "ms", floor, target{Max: burstTarget}, note)
	return err
}

// burstOnce starts k runs of fn at once and returns how long each took;
// the first error is returned once all have ended.
func burstOnce(ctx context.Context, k int, fn func(context.Context) error) ([]time.Duration, error) {
	ds := make([]time.Duration, k)
	errs := make([]error, k)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			t := time.Now()
			errs[i] = fn(ctx)
			ds[i] = time.Since(t)
		}()
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return ds, nil
}
