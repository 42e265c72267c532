// Package bench measures brig against the floors it is built on (DESIGN
// §8), in one run on one machine: the raw Engine API, raw JetStream, and
// brig's own paths through the SDK. `brig bench` prints the result.
package bench

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Figure is one measurement.
type Figure struct {
	Name string `json:"name"`
	// Unit is "ms" (latency percentiles) or "jobs/s".
	Unit string  `json:"unit"`
	P50  float64 `json:"p50,omitempty"`
	P95  float64 `json:"p95,omitempty"`
	P99  float64 `json:"p99,omitempty"`
	Rate float64 `json:"rate,omitempty"`
	N    int     `json:"n"`
	// Floor names the figure this one is compared with; Ratio is
	// this/floor for latencies and this/floor for rates.
	Floor string  `json:"floor,omitempty"`
	Ratio float64 `json:"ratio,omitempty"`
	Note  string  `json:"note,omitempty"`
}

// latency runs fn n times (after one warm-up) and returns its percentiles.
func latency(ctx context.Context, name string, n int, fn func(context.Context) error) (Figure, error) {
	if err := fn(ctx); err != nil {
		return Figure{}, fmt.Errorf("%s: %w", name, err)
	}
	ds := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if err := fn(ctx); err != nil {
			return Figure{}, fmt.Errorf("%s: %w", name, err)
		}
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	pct := func(p float64) float64 {
		i := min(int(p*float64(len(ds))), len(ds)-1)
		return float64(ds[i].Microseconds()) / 1000
	}
	return Figure{Name: name, Unit: "ms", P50: pct(0.50), P95: pct(0.95), P99: pct(0.99), N: n}, nil
}

// rate runs fn n times with the given concurrency and returns runs/s.
func rate(ctx context.Context, name string, n, concurrency int, fn func(context.Context) error) (Figure, error) {
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
	for range concurrency {
		if err := <-errs; err != nil {
			return Figure{}, fmt.Errorf("%s: %w", name, err)
		}
	}
	return Figure{Name: name, Unit: "jobs/s", Rate: float64(n) / time.Since(start).Seconds(), N: n}, nil
}

// compare sets f's floor and ratio.
func compare(f *Figure, floor Figure) {
	f.Floor = floor.Name
	switch {
	case f.Unit == "ms" && floor.P50 > 0:
		f.Ratio = f.P50 / floor.P50
	case f.Unit == "jobs/s" && floor.Rate > 0:
		f.Ratio = f.Rate / floor.Rate
	}
}
