package sandbox

import (
	"context"
	"sync"
	"time"

	"github.com/brig-dev/brig/schema"
)

// ZygoteHeadroomMB is what a zygote's container adds to memory_mb.
const ZygoteHeadroomMB = zygoteHeadroomMB

// SetWarmHalfLife sets the demand half-life of templates first used from
// now on.
func SetWarmHalfLife(r *Runner, d time.Duration) {
	r.warm.mu.Lock()
	defer r.warm.mu.Unlock()
	r.warm.halfLife = d
}

// WarmParallel is the bound on the runner's creates at once.
func WarmParallel(r *Runner) int { return r.warm.parallel }

// CountWarmCreates counts the runner's prewarm creates in flight; peak is
// the most at once so far.
func CountWarmCreates(r *Runner) (peak func() int) {
	var mu sync.Mutex
	n, most := 0, 0
	create := r.warm.create
	r.warm.mu.Lock()
	defer r.warm.mu.Unlock()
	r.warm.create = func(ctx context.Context, spec schema.RunSpec, warmup []string) (*Sandbox, error) {
		mu.Lock()
		n++
		most = max(most, n)
		mu.Unlock()
		defer func() {
			mu.Lock()
			n--
			mu.Unlock()
		}()
		return create(ctx, spec, warmup)
	}
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		return most
	}
}
