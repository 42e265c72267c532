package sandbox_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/brig-dev/brig/internal/sandbox"
)

// A burst of jobs raises the prewarm depth above the minimum, refills run
// at most their bound at once, and once the burst's demand decays the
// depth is back at the minimum.
func TestPrewarmFollowsDemand(t *testing.T) {
	rg := newRig(t, func(c *sandbox.Config) { c.Prewarm, c.Slots = 1, 4 })
	sandbox.SetWarmHalfLife(rg.runner, 8*time.Second)
	peak := sandbox.CountWarmCreates(rg.runner)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			r := rg.run(t.Context(), rg.work(fmt.Sprintf("burst%d", i), `print(1)`))
			if r.err != nil {
				t.Error(r.err)
				return
			}
			r.out.Release()
		})
	}
	wg.Wait()
	deadline := time.After(time.Minute)
	for prewarmed, _ := rg.runner.Sizes(); prewarmed < 2; prewarmed, _ = rg.runner.Sizes() {
		select {
		case <-deadline:
			t.Fatalf("%d prewarmed after a burst of 4, want more than the minimum 1", prewarmed)
		case <-time.After(10 * time.Millisecond):
		}
	}
	rg.waitPrewarmed(1) // the demand decayed: trimmed to the minimum
	if p, bound := peak(), sandbox.WarmParallel(rg.runner); p > bound || p < 1 {
		t.Errorf("%d prewarm creates at once, bound %d", p, bound)
	}
}
