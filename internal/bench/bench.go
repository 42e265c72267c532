// Package bench measures brig against the floors it is built on (docs/design.md
// §8), in one run on one machine: the raw Engine API, raw JetStream, and
// brig's own paths through the SDK. `brig bench` prints the result.
package bench

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"
)

// Figure is one measurement.
type Figure struct {
	Name string `json:"name"`
	// Unit is "ms" (latency percentiles), "jobs/s" or "msgs/job".
	Unit string  `json:"unit"`
	P50  float64 `json:"p50,omitempty"`
	P95  float64 `json:"p95,omitempty"`
	P99  float64 `json:"p99,omitempty"`
	Rate float64 `json:"rate,omitempty"`
	// PerJob is the bus messages one job costs (unit "msgs/job"),
	// RoundTrips the requests among them that wait for an answer, and
	// ByClass the messages per job by subject class (classify).
	PerJob     float64            `json:"per_job,omitempty"`
	RoundTrips float64            `json:"round_trips,omitempty"`
	ByClass    map[string]float64 `json:"by_class,omitempty"`
	// N is the number of samples or jobs; 0 on a skipped figure.
	N int `json:"n"`
	// Floor names the figure this one is compared with; Ratio is
	// this/floor: p50 over p50 for latencies, rate over rate for rates.
	Floor string  `json:"floor,omitempty"`
	Ratio float64 `json:"ratio,omitempty"`
	// Note says what the figure is held to, or why it was skipped.
	Note string `json:"note,omitempty"`
}

// latency runs fn n times (after one warm-up) and returns its percentiles.
func latency(ctx context.Context, name string, n int, fn func(context.Context) error) (Figure, error) {
	return latencyAfter(ctx, name, n, nil, fn)
}

// latencyAfter is latency with before (nil: nothing) run before each
// measured run, off the clock: a pause, or a wait for a condition.
func latencyAfter(ctx context.Context, name string, n int, before, fn func(context.Context) error) (Figure, error) {
	if err := fn(ctx); err != nil {
		return Figure{}, fmt.Errorf("%s: %w", name, err)
	}
	ds := make([]time.Duration, 0, n)
	for range n {
		if before != nil {
			if err := before(ctx); err != nil {
				return Figure{}, fmt.Errorf("%s: %w", name, err)
			}
		}
		start := time.Now()
		if err := fn(ctx); err != nil {
			return Figure{}, fmt.Errorf("%s: %w", name, err)
		}
		ds = append(ds, time.Since(start))
	}
	return latencyFigure(name, ds), nil
}

// latencyFigure is the percentiles of samples ds, which it sorts.
func latencyFigure(name string, ds []time.Duration) Figure {
	slices.Sort(ds)
	return Figure{Name: name, Unit: "ms", P50: percentile(ds, 0.50), P95: percentile(ds, 0.95), P99: percentile(ds, 0.99), N: len(ds)}
}

// percentile is the nearest-rank p-th percentile of sorted samples, in
// milliseconds; 0 without samples.
func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := min(max(int(math.Ceil(p*float64(len(sorted))))-1, 0), len(sorted)-1)
	return float64(sorted[i].Microseconds()) / 1000
}

// rate runs fn n times with the given concurrency and returns runs/s. The
// first error stops the other runners and is returned.
func rate(ctx context.Context, name string, n, concurrency int, fn func(context.Context) error) (Figure, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan struct{}, n)
	for range n {
		work <- struct{}{}
	}
	close(work)
	errs := make(chan error, concurrency)
	start := time.Now()
	for range concurrency {
		go func() {
			for range work {
				if err := fn(ctx); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	var first error
	for range concurrency {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	if first != nil {
		return Figure{}, fmt.Errorf("%s: %w", name, first)
	}
	return Figure{Name: name, Unit: "jobs/s", Rate: float64(n) / time.Since(start).Seconds(), N: n}, nil
}

// target is the ratio to its floor a brig figure is held to (docs/design.md §8):
// at most Max for latencies, at least Min for rates; the zero target holds
// it to nothing.
type target struct {
	Max, Min float64
}

// String is the target as the table shows it.
func (t target) String() string {
	if t.Max > 0 {
		return fmt.Sprintf("target ≤ %g×", t.Max)
	}
	return fmt.Sprintf("target ≥ %g×", t.Min)
}

// met reports whether ratio meets the target.
func (t target) met(ratio float64) bool {
	if t.Max > 0 {
		return ratio > 0 && ratio <= t.Max
	}
	return ratio >= t.Min
}

// compare sets f's floor and ratio, and notes its target and whether the
// ratio meets it, after what the note already says.
func compare(f *Figure, floor Figure, t target) {
	f.Floor = floor.Name
	switch {
	case f.Unit == "ms" && floor.P50 > 0:
		f.Ratio = f.P50 / floor.P50
	case f.Unit == "jobs/s" && floor.Rate > 0:
		f.Ratio = f.Rate / floor.Rate
	}
	if t == (target{}) {
		return
	}
	verdict := "missed"
	switch {
	case f.Ratio == 0:
		verdict = "floor not measured"
	case t.met(f.Ratio):
		verdict = "met"
	}
	note := fmt.Sprintf("%s: %s", t, verdict)
	if f.Note != "" {
		note = f.Note + "; " + note
	}
	f.Note = note
}
