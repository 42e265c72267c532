package sandbox

import (
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
