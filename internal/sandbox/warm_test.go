package sandbox

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/brig-dev/brig/schema"
)

// fakeWarm is a warmCache whose sandboxes are counted, not started. While
// held, creations and removals wait for release: a sandbox being made or
// removed stays live for as long as the test wants.
type fakeWarm struct {
	*warmCache
	mu        sync.Mutex
	live      map[*Sandbox]schema.RunSpec // made or being made, neither taken nor removed
	peak      int
	making    int           // creates in flight
	peakMake  int           // the most creates in flight at once
	discarded map[int64]int // by pids
	gate      chan struct{} // closed: creations and removals go ahead
}

func newFakeWarm(t *testing.T, prewarm, limit int) *fakeWarm {
	f := &fakeWarm{live: map[*Sandbox]schema.RunSpec{}, discarded: map[int64]int{}, gate: closedChan()}
	l := warmLimits{prewarm: prewarm, max: limit, slots: limit, parallel: 2, idle: time.Minute, halfLife: demandHalfLife}
	f.warmCache = newWarmCacheWith(context.Background(), l, slog.New(slog.DiscardHandler))
	f.create = func(ctx context.Context, spec schema.RunSpec, _ []string) (*Sandbox, error) {
		f.mu.Lock()
		sb := &Sandbox{id: "c"}
		f.live[sb] = spec // being made counts too
		f.peak = max(f.peak, len(f.live))
		f.making++
		f.peakMake = max(f.peakMake, f.making)
		gate := f.gate
		f.mu.Unlock()
		<-gate
		f.mu.Lock()
		f.making--
		f.mu.Unlock()
		return sb, nil
	}
	f.discard = func(sb *Sandbox) {
		f.mu.Lock()
		gate := f.gate
		f.mu.Unlock()
		<-gate // being removed counts too
		f.mu.Lock()
		f.discarded[f.live[sb].Limits.Pids]++
		delete(f.live, sb)
		f.mu.Unlock()
	}
	t.Cleanup(f.stop)
	return f
}

func closedChan() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// hold makes creations and removals wait until the returned release.
func (f *fakeWarm) hold() (release func()) {
	gate := make(chan struct{})
	f.mu.Lock()
	f.gate = gate
	f.mu.Unlock()
	return func() {
		f.mu.Lock()
		f.gate = closedChan()
		f.mu.Unlock()
		close(gate)
	}
}

// take takes a sandbox under f.mu, so that one made the moment it frees
// its room is not counted with it (take itself never waits on a create or
// discard).
func (f *fakeWarm) take(pids int64) *Sandbox { return f.takeSpec(specWithPids(pids)) }

// takeSpec is take for a whole spec.
func (f *fakeWarm) takeSpec(spec schema.RunSpec) *Sandbox {
	f.mu.Lock()
	defer f.mu.Unlock()
	sb := f.warmCache.take(spec)
	delete(f.live, sb)
	return sb
}

// locked reads what fn returns under f.mu.
func (f *fakeWarm) locked(fn func() int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fn()
}

func (f *fakeWarm) liveCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.live)
}

func specWithPids(pids int64) schema.RunSpec {
	return schema.RunSpec{Image: "brig/python", Limits: schema.Limits{MemoryMB: 256, CPUs: 1, Pids: pids}}
}

// waitFor polls cond until it holds, failing the test after 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// settle waits until every kept template's set is full and nothing more
// is being made or removed: want sandboxes live and ready.
func (f *fakeWarm) settle(t *testing.T, want int) {
	t.Helper()
	waitFor(t, "the prewarm cache to settle", func() bool {
		return f.liveCount() == want && f.size() == want
	})
}

// TestWarmCacheCap: however many templates jobs use, at most PrewarmMax
// prewarmed sandboxes exist at once; a new template evicts the least
// recently used one, whose sandboxes are removed; a take never blocks
// and never fails, a miss is just nil.
func TestWarmCacheCap(t *testing.T) {
	f := newFakeWarm(t, 2, 4)
	if f.floor != 2 {
		t.Fatalf("per template %d, want 2", f.floor)
	}
	if f.take(9) != nil {
		t.Error("a first job of a template found a sandbox")
	}
	f.settle(t, 2)
	f.take(10)
	f.settle(t, 4)
	if f.take(9) == nil { // 9 is now more recently used than 10
		t.Error("a kept template had no sandbox")
	}
	f.settle(t, 4)
	f.take(11) // evicts 10
	f.settle(t, 4)
	f.mu.Lock()
	if f.discarded[10] != 2 || f.discarded[9] != 0 {
		t.Errorf("removed by template (pids): %v; want the two of 10, the least recently used", f.discarded)
	}
	f.mu.Unlock()
	if f.take(9) == nil || f.take(11) == nil {
		t.Error("a kept template had no sandbox")
	}

	// Many templates at once, from many goroutines, while every creation
	// and removal is held: the sandboxes being made or removed hold their
	// room, so no more than the cap exist however many templates come and
	// go meanwhile.
	release := f.hold()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				f.take(int64(12 + (g*50+i)%13))
			}
		})
	}
	wg.Wait()
	if n := f.liveCount(); n > 4 {
		t.Errorf("%d prewarmed sandboxes live while held, cap 4", n)
	}
	release()
	// Then, with creations and removals going ahead, from many goroutines.
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				f.take(int64(12 + (g*50+i)%13))
			}
		})
	}
	wg.Wait()
	f.mu.Lock()
	peak := f.peak
	f.mu.Unlock()
	if peak > 4 {
		t.Errorf("at most %d prewarmed sandboxes existed at once, cap 4", peak)
	}
	f.warmCache.mu.Lock()
	n := len(f.sets)
	f.warmCache.mu.Unlock()
	if n > 2 {
		t.Errorf("%d templates kept, want ≤ 2", n)
	}

	f.stop()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.live) != 0 || len(f.room) != 0 {
		t.Errorf("after stop: %d sandboxes live, %d room tokens held", len(f.live), len(f.room))
	}
}

// TestWarmCacheCapBelowPrewarm: a cap below Prewarm keeps one template with
// PrewarmMax sandboxes.
func TestWarmCacheCapBelowPrewarm(t *testing.T) {
	f := newFakeWarm(t, 3, 1)
	f.take(9)
	f.settle(t, 1)
	f.take(10)
	f.settle(t, 1)
	if f.take(10) == nil {
		t.Error("the kept template had no sandbox")
	}
}

// TestPrewarmMaxDefault: PrewarmMax defaults to Slots, at least Prewarm.
func TestPrewarmMaxDefault(t *testing.T) {
	for _, c := range []struct{ slots, prewarm, max, want int }{
		{8, 2, 0, 8}, {1, 2, 0, 2}, {8, 2, 3, 3}, {8, 0, 0, 8},
	} {
		got := Config{Slots: c.slots, Prewarm: c.prewarm, PrewarmMax: c.max}.WithDefaults().PrewarmMax
		if got != c.want {
			t.Errorf("slots %d prewarm %d max %d: PrewarmMax %d, want %d", c.slots, c.prewarm, c.max, got, c.want)
		}
	}
}

// TestWarmCacheParallelRefill: a burst raises a set's depth into the free
// slots, refills run at most parallel creates at once (one at a time
// while every slot is busy), and the set is trimmed back to the minimum
// once its demand decays.
func TestWarmCacheParallelRefill(t *testing.T) {
	f := newFakeWarm(t, 1, 8)
	f.halfLife = time.Hour // decay is TestDemandDepth's; here only trim's
	release := sync.OnceFunc(f.hold())
	t.Cleanup(release) // before f.stop, which waits for the creates
	done := make([]func(), 8)
	for i := range 8 { // every slot busy, then a burst
		done[i] = f.jobRunning()
	}
	for range 8 {
		f.take(9)
	}
	waitFor(t, "a create while every slot is busy", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.making == 1
	})
	if peak := f.locked(func() int { return f.peakMake }); peak != 1 {
		t.Errorf("%d creates at once while every slot is busy, want 1", peak)
	}
	for _, d := range done[:4] { // four slots free
		d()
	}
	waitFor(t, "parallel creates", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.making == 2
	})
	release()
	f.settle(t, 4) // depth 8 asked, 4 free slots
	for _, d := range done[4:] {
		d()
	}
	f.settle(t, 8)
	if peak := f.locked(func() int { return f.peakMake }); peak > 2 {
		t.Errorf("%d creates at once, bound 2", peak)
	}
	// The demand gone (its peak forgotten), a trim leaves the minimum.
	f.warmCache.mu.Lock()
	set := f.sets[templateOf(specWithPids(9))]
	set.demand.peak = 0
	f.warmCache.mu.Unlock()
	f.trim(set)
	f.settle(t, 1)
}

// TestWarmMissSkipsWarming: refills made right after a job found its set
// empty skip the warm-up and start their zygote without its preload (the
// CPU goes to containers); others get both.
func TestWarmMissSkipsWarming(t *testing.T) {
	f := newFakeWarm(t, 1, 2)
	type made struct {
		preload, warmup int
	}
	var mu sync.Mutex
	var got []made
	create := f.create
	f.create = func(ctx context.Context, spec schema.RunSpec, warmup []string) (*Sandbox, error) {
		mu.Lock()
		got = append(got, made{len(spec.Preload), len(warmup)})
		mu.Unlock()
		return create(ctx, spec, warmup)
	}
	spec := specWithPids(9)
	spec.Preload, spec.Warmup = []string{"json", "re"}, []string{"python3", "-c", "pass"}
	last := func() made {
		mu.Lock()
		defer mu.Unlock()
		if len(got) == 0 {
			return made{-1, -1}
		}
		return got[len(got)-1]
	}
	if f.warmCache.take(spec) != nil { // the template's first job: no miss yet
		t.Fatal("a first job found a sandbox")
	}
	f.settle(t, 1)
	if m := last(); m != (made{2, 3}) {
		t.Errorf("first refill: preload %d, warm-up %d args; want the function's", m.preload, m.warmup)
	}
	takeOne := func() *Sandbox { return f.takeSpec(spec) }
	release := f.hold()
	if takeOne() == nil {
		t.Fatal("a full set had no sandbox")
	}
	if takeOne() != nil { // its refill is held: a miss
		t.Fatal("two takes in a row found two sandboxes in a set of one")
	}
	if m := last(); m != (made{2, 3}) {
		t.Errorf("refill before the miss: preload %d, warm-up %d args; want the function's", m.preload, m.warmup)
	}
	release()
	waitFor(t, "a sandbox to take", func() bool { return takeOne() != nil })
	waitFor(t, "a refill after the miss", func() bool { return last() == made{0, 0} })
}

// TestWarmRefillHold: a take holds refills until the jobs that took
// prewarmed sandboxes end (freshDone), at most refillHold.
func TestWarmRefillHold(t *testing.T) {
	f := newFakeWarm(t, 2, 2)
	spec := specWithPids(9)
	takeOne := func() *Sandbox { return f.takeSpec(spec) }
	takeOne() // the template's first job makes it known
	f.settle(t, 2)
	if takeOne() == nil || takeOne() == nil {
		t.Fatal("a full set of two had no sandbox")
	}
	time.Sleep(100 * time.Millisecond)
	if n := f.liveCount(); n != 0 {
		t.Fatalf("%d refills made while the jobs that took their sandboxes ran", n)
	}
	f.freshDone()
	time.Sleep(100 * time.Millisecond)
	if n := f.liveCount(); n != 0 {
		t.Fatalf("%d refills made while one job that took its sandbox ran", n)
	}
	f.freshDone()
	f.settle(t, 2) // both ended: the refills go ahead

	// A job that runs long holds them refillHold at most.
	if takeOne() == nil {
		t.Fatal("no sandbox")
	}
	start := time.Now()
	f.settle(t, 2)
	if d := time.Since(start); d < refillHold/2 {
		t.Errorf("refilled after %v, while the job still ran (hold %v)", d, refillHold)
	}
}
