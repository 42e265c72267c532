package sandbox_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/brig-dev/brig/internal/sandbox"
	"github.com/brig-dev/brig/schema"
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

// A function's prewarm above the worker's --prewarm: its first job leaves
// that many prewarmed containers, and they stay past PrewarmIdle, through
// which a template without a minimum idles out (twice, so that the
// minimum's template, used before, has been idle past it for a while).
func TestPrewarmFunctionMinimum(t *testing.T) {
	rg := newRig(t, func(c *sandbox.Config) { c.Prewarm, c.Slots, c.PrewarmIdle = 1, 4, 4*time.Second })
	runOne := func(id string, edit func(*schema.RunSpec)) *run {
		w := rg.work(id, `print(1)`)
		edit(&w.Spec)
		r := rg.run(t.Context(), w)
		if r.err != nil {
			t.Fatal(r.err)
		}
		r.out.Release()
		return r
	}
	minimum := func(s *schema.RunSpec) { s.Prewarm = 3 }
	runOne("min1", minimum)
	rg.waitPrewarmed(3)
	for i := range 2 {
		runOne(fmt.Sprintf("plain%d", i), func(s *schema.RunSpec) { s.Limits.Pids = 64 })
		rg.waitPrewarmed(4) // its own one
		rg.waitPrewarmed(3) // idled out
	}
	if r := runOne("min2", minimum); r.kind != schema.SandboxPrewarmed {
		t.Errorf("a job of the template with a minimum, idle past PrewarmIdle, ran %s", r.kind)
	}
	rg.waitPrewarmed(3)
}
