package bench

import (
	"context"
	"fmt"
	"math"
	"time"
)

// Windows of the messages figures: how long the bus is watched while brig
// idles (its heartbeats and long polls, subtracted from the jobs' count),
// and after the last job, for what it still sends (the worker's registry
// entry, rewritten soon after a job ends).
const (
	idleWindow      = 6 * time.Second
	quickIdleWindow = 3 * time.Second
	tailWindow      = 750 * time.Millisecond
)

// messages: the bus messages one echo job and one python job cost,
// counted on every subject of the account during N sequential jobs, less
// what brig sends while idle over the same time.
func (r *runner) messages(ctx context.Context) error {
	cnt, err := startCounter(r.cfg.Conn)
	if err != nil {
		return err
	}
	defer cnt.stop()
	window := idleWindow
	if r.cfg.Quick {
		window = quickIdleWindow
	}
	r.cfg.Progress(fmt.Sprintf("bus messages while brig idles (%s)", window))
	idle, err := cnt.watch(ctx, window)
	if err != nil {
		return err
	}
	for _, m := range []struct {
		name string
		fn   func(context.Context) error
	}{
		{"bus messages per job (echo, SDK)", echoJob(r.c)},
		{"bus messages per job (python single-use, SDK)", pythonJob(r.c, "python", true)},
	} {
		r.cfg.Progress(m.name)
		f, err := r.countJobs(ctx, cnt, idle, m.name, m.fn)
		if _, err := r.add(f, err, m.name, "msgs/job", Figure{}, target{}, f.Note); err != nil {
			return err
		}
	}
	return nil
}

// countJobs runs fn once unmeasured, then N times in a row, and counts
// the messages from the first measured job to tailWindow after the last.
func (r *runner) countJobs(ctx context.Context, cnt *msgCounter, idle tally, name string, fn func(context.Context) error) (Figure, error) {
	if err := fn(ctx); err != nil {
		return Figure{}, fmt.Errorf("%s: %w", name, err)
	}
	if _, err := cnt.mark(ctx); err != nil {
		return Figure{}, err
	}
	for range r.cfg.N {
		if err := fn(ctx); err != nil {
			return Figure{}, fmt.Errorf("%s: %w", name, err)
		}
	}
	if err := wait(ctx, tailWindow); err != nil {
		return Figure{}, err
	}
	jobs, err := cnt.mark(ctx)
	if err != nil {
		return Figure{}, err
	}
	return perJob(name, jobs, idle, r.cfg.N), nil
}

// watch returns what the counter sees in the next d.
func (c *msgCounter) watch(ctx context.Context, d time.Duration) (tally, error) {
	if _, err := c.mark(ctx); err != nil {
		return tally{}, err
	}
	if err := wait(ctx, d); err != nil {
		return tally{}, err
	}
	return c.mark(ctx)
}

// wait waits d, or until ctx ends.
func wait(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// perJob is the figure of n jobs' tally, less idle's rate over the jobs'
// time, per job; no class goes below 0.
func perJob(name string, jobs, idle tally, n int) Figure {
	scale := 0.0
	if idle.Elapsed > 0 {
		scale = jobs.Elapsed.Seconds() / idle.Elapsed.Seconds()
	}
	less := func(v, idle int) float64 {
		return round2(max(float64(v)-float64(idle)*scale, 0) / float64(n))
	}
	f := Figure{Name: name, Unit: "msgs/job", N: n, ByClass: map[string]float64{},
		PerJob: less(jobs.Total, idle.Total), RoundTrips: less(jobs.Requests, idle.Requests)}
	for class, v := range jobs.ByClass {
		if pj := less(v, idle.ByClass[class]); pj > 0 {
			f.ByClass[class] = pj
		}
	}
	f.Note = fmt.Sprintf("%.1f round trips; %d jobs in a row, less %.1f msgs/s seen while idle", f.RoundTrips, n,
		float64(idle.Total)/max(idle.Elapsed.Seconds(), 1e-9))
	return f
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }
