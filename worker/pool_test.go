package worker

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/brig-dev/brig/schema"
)

// fakeWarm is a warmPool whose containers are counted, not started.
type fakeWarm struct {
	*warmPool
	mu        sync.Mutex
	live      map[*box]schema.RunSpec // made, neither taken nor removed
	peak      int
	discarded map[int64]int // by pids
}

func newFakeWarm(t *testing.T, prewarm, limit int) *fakeWarm {
	f := &fakeWarm{live: map[*box]schema.RunSpec{}, discarded: map[int64]int{}}
	f.warmPool = newWarmPoolWith(context.Background(), prewarm, limit, time.Minute, slog.New(slog.DiscardHandler))
	f.create = func(ctx context.Context, spec schema.RunSpec, _ []string) (*box, error) {
		f.mu.Lock()
		b := &box{id: "c"}
		f.live[b] = spec
		f.peak = max(f.peak, len(f.live))
		f.mu.Unlock()
		time.Sleep(time.Millisecond) // being made counts too
		return b, nil
	}
	f.discard = func(b *box) {
		time.Sleep(time.Millisecond) // being removed counts too
		f.mu.Lock()
		f.discarded[f.live[b].Limits.Pids]++
		delete(f.live, b)
		f.mu.Unlock()
	}
	t.Cleanup(f.stop)
	return f
}

// take takes a container under f.mu, so that one made the moment it
// frees its room is not counted with it (take itself never waits on a
// create or discard).
func (f *fakeWarm) take(pids int64) *box {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.warmPool.take(specWithPids(pids))
	delete(f.live, b)
	return b
}

func specWithPids(pids int64) schema.RunSpec {
	return schema.RunSpec{Image: "brig/python", Limits: schema.Limits{MemoryMB: 256, CPUs: 1, Pids: pids}}
}

// settle waits until every kept template's pool is full and nothing more
// is being made or removed, and returns how many prewarmed containers live.
func (f *fakeWarm) settle(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.mu.Lock()
		n := len(f.live)
		f.mu.Unlock()
		if n == want && f.size() == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("prewarmed containers: %d live, %d ready; want %d", n, f.size(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestWarmPoolCap: however many templates jobs use, at most PrewarmMax
// prewarmed containers exist at once; a new template evicts the least
// recently used one, whose containers are removed; a take never blocks
// and never fails, a miss is just nil.
func TestWarmPoolCap(t *testing.T) {
	f := newFakeWarm(t, 2, 4)
	if f.perTemplate != 2 || f.maxTemplates != 2 {
		t.Fatalf("per template %d, templates %d", f.perTemplate, f.maxTemplates)
	}
	if f.take(9) != nil {
		t.Error("a first job of a template found a container")
	}
	f.settle(t, 2)
	f.take(10)
	f.settle(t, 4)
	if f.take(9) == nil { // 9 is now more recently used than 10
		t.Error("a kept template had no container")
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
		t.Error("a kept template had no container")
	}

	// Many templates at once, from many goroutines: never more than the cap.
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				f.take(int64(12 + (g*50+i)%13))
			}
		}()
	}
	wg.Wait()
	f.mu.Lock()
	peak := f.peak
	f.mu.Unlock()
	if peak > 4 {
		t.Errorf("at most %d prewarmed containers existed at once, cap 4", peak)
	}
	f.warmPool.mu.Lock()
	n := len(f.pools)
	f.warmPool.mu.Unlock()
	if n > 2 {
		t.Errorf("%d templates kept, want ≤ 2", n)
	}

	f.stop()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.live) != 0 || len(f.room) != 0 {
		t.Errorf("after stop: %d containers live, %d room tokens held", len(f.live), len(f.room))
	}
}

// TestWarmPoolCapBelowPrewarm: a cap below Prewarm keeps one template with
// PrewarmMax containers.
func TestWarmPoolCapBelowPrewarm(t *testing.T) {
	f := newFakeWarm(t, 3, 1)
	f.take(9)
	f.settle(t, 1)
	f.take(10)
	f.settle(t, 1)
	if f.take(10) == nil {
		t.Error("the kept template had no container")
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
