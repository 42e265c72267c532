package sandbox

import (
	"slices"
	"testing"
	"time"
)

// TestDemandDepth: the depth a template's arrivals ask for, over arrival
// sequences (offsets from t0), read at a time after the last.
func TestDemandDepth(t *testing.T) {
	ms := time.Millisecond
	every := func(n int, gap time.Duration) []time.Duration {
		var ds []time.Duration
		for i := range n {
			ds = append(ds, time.Duration(i)*gap)
		}
		return ds
	}
	for _, c := range []struct {
		name     string
		arrivals []time.Duration
		at       time.Duration // after the last arrival
		want     int
	}{
		{"one job: the minimum", every(1, 0), 0, 2},
		{"a burst of 8 at once", every(8, 0), 0, 8},
		{"a burst of 8, one half-life on", every(8, 0), demandHalfLife, 4},
		{"a burst of 8, two half-lives on", every(8, 0), 2 * demandHalfLife, 2},
		{"a burst of 8, idle for a minute: the minimum", every(8, 0), time.Minute, 2},
		{"a burst of 20: at most the cap", every(20, 0), 0, 8},
		{"5 a second, refill 1 s: 6 in one refill time", every(20, 200*ms), 0, 6},
		{"one every 2 s: the minimum", every(10, 2*time.Second), 0, 2},
		{"a burst of 8 spread over 8 s", every(8, time.Second), 0, 2},
		{"a burst, then one job later: the burst's decayed peak", append(every(8, 0), demandHalfLife), 0, 4},
	} {
		t0 := time.Unix(1e9, 0)
		d := newDemand(8, demandHalfLife)
		for _, a := range c.arrivals {
			d.arrive(t0.Add(a))
		}
		last := t0.Add(c.arrivals[len(c.arrivals)-1])
		if got := d.wanted(last.Add(c.at), 2, 8); got != c.want {
			t.Errorf("%s: depth %d, want %d", c.name, got, c.want)
		}
	}
}

// TestDemandRefillTime: the arrivals are counted over the measured refill
// time (an EWMA of creates), at most maxRefillWindow.
func TestDemandRefillTime(t *testing.T) {
	t0 := time.Unix(1e9, 0)
	d := newDemand(16, demandHalfLife)
	for range 20 {
		d.created(4 * time.Second)
	}
	if d.refill < 3900*time.Millisecond || d.refill > 4*time.Second {
		t.Fatalf("refill time %v after creates of 4 s", d.refill)
	}
	for i := range 10 { // one every 0.9 s: 5 within 4 s
		d.arrive(t0.Add(time.Duration(i) * 900 * time.Millisecond))
	}
	if got := d.wanted(t0.Add(8100*time.Millisecond), 1, 16); got != 5 {
		t.Errorf("one every 0.9 s, refill 4 s: depth %d, want 5", got)
	}
	d = newDemand(16, demandHalfLife)
	for range 40 {
		d.created(time.Minute)
	}
	for i := range 16 { // one every 2 s: 6 within the 10 s bound
		d.arrive(t0.Add(time.Duration(2*i) * time.Second))
	}
	if got := d.wanted(t0.Add(30*time.Second), 1, 16); got != 6 {
		t.Errorf("one every 2 s, refill a minute: depth %d, want 6 (10 s window)", got)
	}
}

// TestGrowTo: above the minimum, a set grows only into free slots.
func TestGrowTo(t *testing.T) {
	for _, c := range []struct{ wanted, floor, free, want int }{
		{8, 2, 8, 8}, {8, 2, 3, 3}, {8, 2, 0, 2}, {2, 2, 8, 2}, {8, 2, -1, 2},
	} {
		if got := growTo(c.wanted, c.floor, c.free); got != c.want {
			t.Errorf("growTo(%d, %d, %d) = %d, want %d", c.wanted, c.floor, c.free, got, c.want)
		}
	}
}

// TestFloorOf: a template's minimum is the worker's Prewarm or its
// functions' largest prewarm, whichever is more, at most PrewarmMax.
func TestFloorOf(t *testing.T) {
	for _, c := range []struct{ prewarm, asked, limit, want int }{
		{2, 0, 8, 2}, {1, 3, 8, 3}, {2, 1, 8, 2}, {1, 64, 8, 8}, {3, 0, 1, 1},
	} {
		if got := floorOf(c.prewarm, c.asked, c.limit); got != c.want {
			t.Errorf("floorOf(%d, %d, %d) = %d, want %d", c.prewarm, c.asked, c.limit, got, c.want)
		}
	}
}

// TestMinimums: each function's latest ask counts; the largest is the
// template's; an ask of 0 forgets the function.
func TestMinimums(t *testing.T) {
	m := minimums{}
	for _, step := range []struct {
		fn        string
		ask, most int
	}{
		{"a", 0, 0}, {"a", 3, 3}, {"b", 5, 5}, {"b", 0, 3}, {"a", 2, 2}, {"a", 0, 0},
	} {
		m.ask(step.fn, step.ask)
		if got := m.most(); got != step.most {
			t.Errorf("after %s asks %d: most %d, want %d", step.fn, step.ask, got, step.most)
		}
	}
	if len(m) != 0 {
		t.Errorf("functions that ask 0 are remembered: %v", m)
	}
}

// TestEvictions: templates are dropped until the kept floors and the
// newcomer's fit in PrewarmMax, those without a function's minimum first,
// least recently used first within each kind.
func TestEvictions(t *testing.T) {
	t0 := time.Unix(1e9, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	plain := func(floor, used int) keptSet { return keptSet{floor: floor, lastUsed: at(used)} }
	pinned := func(floor, used int) keptSet { return keptSet{floor: floor, pinned: true, lastUsed: at(used)} }
	for _, c := range []struct {
		name        string
		kept        []keptSet
		need, limit int
		want        []int
	}{
		{"fits", []keptSet{plain(2, 1)}, 2, 4, nil},
		{"the least recently used", []keptSet{plain(2, 2), plain(2, 1)}, 2, 4, []int{1}},
		{"a newer plain one before an older pinned one", []keptSet{pinned(3, 1), plain(1, 3)}, 1, 4, []int{1}},
		{"minimums over the cap: the least recently used pinned", []keptSet{pinned(4, 1), pinned(4, 2)}, 4, 8, []int{0}},
		{"a plain newcomer when minimums fill the cap", []keptSet{pinned(4, 2), pinned(4, 1)}, 1, 8, []int{1}},
		{"plain ones, then pinned ones", []keptSet{plain(1, 5), plain(1, 4), pinned(3, 1)}, 4, 5, []int{1, 0, 2}},
		{"a newcomer at the cap takes all", []keptSet{plain(2, 1), pinned(3, 2)}, 8, 8, []int{0, 1}},
	} {
		if got := evictions(c.kept, c.need, c.limit); !slices.Equal(got, c.want) {
			t.Errorf("%s: evictions %v, want %v", c.name, got, c.want)
		}
	}
}

// takeOf is fakeWarm.take of a job of function fn asking prewarm.
func (f *fakeWarm) takeOf(fn string, pids int64, prewarm int) *Sandbox {
	spec := specWithPids(pids)
	spec.Function, spec.Prewarm = fn, prewarm
	f.mu.Lock()
	defer f.mu.Unlock()
	sb := f.warmCache.take(spec)
	delete(f.live, sb)
	return sb
}

// TestWarmCacheFunctionMinimum: a function's prewarm raises its template's
// depth above Prewarm after its first job and keeps it past PrewarmIdle,
// while a template without one idles out; once its function asks 0 (a
// redeploy), the template idles out too.
func TestWarmCacheFunctionMinimum(t *testing.T) {
	f := newFakeWarm(t, 1, 6)
	f.idle = 20 * time.Millisecond // before any set's refiller reads it
	discarded := func(pids int64) int { return f.locked(func() int { return f.discarded[pids] }) }
	if f.takeOf("min3", 9, 3) != nil {
		t.Fatal("a first job found a sandbox")
	}
	f.settle(t, 3)
	// A template without a minimum, used after it, idles out twice over
	// while the one with a minimum, idle for longer, keeps its three.
	for round := 1; round <= 2; round++ {
		f.takeOf("plain", 10, 0)
		waitFor(t, "the plain template to idle out", func() bool { return discarded(10) == round })
		f.settle(t, 3)
	}
	if n := discarded(9); n != 0 {
		t.Fatalf("%d of the minimum's sandboxes removed while idle", n)
	}
	if f.takeOf("min3", 9, 3) == nil {
		t.Fatal("the template with a minimum had no sandbox")
	}
	f.settle(t, 3)
	// Redeployed with prewarm 0: its next job takes one, and the template
	// idles out as any other.
	if f.takeOf("min3", 9, 0) == nil {
		t.Fatal("the template with a minimum had no sandbox")
	}
	f.settle(t, 0)
}

// TestWarmCacheMinimumEviction: a new template evicts the least recently
// used one without a minimum before an older one with a minimum; when
// minimums exceed PrewarmMax, the least recently used one with a minimum
// goes.
func TestWarmCacheMinimumEviction(t *testing.T) {
	f := newFakeWarm(t, 1, 4)
	discarded := func(pids int64) int { return f.locked(func() int { return f.discarded[pids] }) }
	f.takeOf("a", 1, 3)
	f.settle(t, 3)
	f.takeOf("b", 2, 0) // 3 + 1 fit in 4
	f.settle(t, 4)
	f.takeOf("c", 3, 0) // evicts b, though a is older
	f.settle(t, 4)
	if discarded(2) != 1 || discarded(1) != 0 {
		t.Errorf("removed: b %d (want 1), a %d (want 0)", discarded(2), discarded(1))
	}
	f.takeOf("d", 4, 2) // 2 + 3 + 1 > 4: evicts c, then a
	f.settle(t, 2)
	if discarded(3) != 1 || discarded(1) != 3 {
		t.Errorf("removed: c %d (want 1), a %d (want 3)", discarded(3), discarded(1))
	}
	if f.takeOf("d", 4, 2) == nil {
		t.Error("the newest template with a minimum had no sandbox")
	}
}
