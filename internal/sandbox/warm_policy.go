package sandbox

import (
	"math"
	"slices"
	"time"
)

// The prewarm depth policy (docs/design.md §8): how many started sandboxes
// a template keeps follows its recent arrivals, between the minimum
// (Config.Prewarm, or more if its functions ask it: their prewarm, as
// Modal's min_containers) and the worker's free slots, the way Modal's
// buffer_containers does.
const (
	// demandHalfLife: without arrivals, a template's demand estimate halves
	// in this long, so that a set grown by a burst of 8 over a minimum of 2
	// is back at 2 about 30 s after the burst.
	demandHalfLife = 15 * time.Second
	// refillGuess is a template's refill time before one was measured.
	refillGuess = time.Second
	// refillWeight is the weight of the newest create in the refill time's
	// EWMA.
	refillWeight = 0.25
	// maxRefillWindow bounds the refill time the arrivals are counted over
	// (a daemon that takes minutes to start a container would otherwise
	// count every arrival of those minutes as one burst).
	maxRefillWindow = 10 * time.Second
)

// demand is one template's recent arrivals. Pure: every method is given
// the time.
type demand struct {
	arrivals []time.Time   // the newest arrivals, at most keep, oldest first
	peak     float64       // the estimate when last updated, at
	at       time.Time     //
	refill   time.Duration // EWMA of how long a create of the template takes
	keep     int           // arrivals kept: the most the depth can be
	halfLife time.Duration // the estimate's half-life without arrivals
}

func newDemand(keep int, halfLife time.Duration) demand {
	return demand{keep: max(keep, 1), halfLife: halfLife, refill: refillGuess}
}

// arrive records a job of the template at now: the estimate becomes the
// greater of its decayed self and the arrivals within one refill time
// (this one included), i.e. how many jobs came while one sandbox was made.
func (d *demand) arrive(now time.Time) {
	d.arrivals = append(d.arrivals, now)
	if len(d.arrivals) > d.keep {
		d.arrivals = d.arrivals[len(d.arrivals)-d.keep:]
	}
	window := min(d.refill, maxRefillWindow)
	n := 0
	for _, t := range d.arrivals {
		if now.Sub(t) <= window {
			n++
		}
	}
	d.peak, d.at = max(d.estimate(now), float64(n)), now
}

// estimate is the decayed peak of arrivals per refill time at now.
func (d *demand) estimate(now time.Time) float64 {
	if d.peak == 0 {
		return 0
	}
	dt := max(now.Sub(d.at), 0)
	return d.peak * math.Exp2(-float64(dt)/float64(d.halfLife))
}

// created records how long one create of the template took.
func (d *demand) created(took time.Duration) {
	d.refill = time.Duration(refillWeight*float64(took) + (1-refillWeight)*float64(d.refill))
}

// wanted is the depth the template's demand asks for: its estimate
// rounded up (a fraction left by the decay counts as a sandbox only above
// 0.05 of one), at least floor and at most ceiling.
func (d *demand) wanted(now time.Time, floor, ceiling int) int {
	want := int(math.Ceil(d.estimate(now) - 0.05))
	return max(floor, min(want, ceiling))
}

// growTo is the depth a set is filled to: what its demand wants, but above
// the minimum only as far as the worker has free slots (a sandbox no job
// can take before a slot frees only takes memory meanwhile).
func growTo(wanted, floor, free int) int {
	return max(floor, min(wanted, free))
}

// minimums is what the functions whose jobs used one template ask as its
// minimum depth (their prewarm), by function name: each function's latest
// job counts, so a redeploy applies with its next job; a function that
// asks 0 is forgotten.
type minimums map[string]int

// ask records the prewarm of a job of function fn.
func (m minimums) ask(fn string, prewarm int) {
	if prewarm > 0 {
		m[fn] = prewarm
	} else {
		delete(m, fn)
	}
}

// most is the largest minimum asked, 0 when none is.
func (m minimums) most() int {
	n := 0
	for _, v := range m {
		n = max(n, v)
	}
	return n
}

// floorOf is a template's minimum depth: the worker's Prewarm or the
// largest its functions ask, whichever is more, at most PrewarmMax.
func floorOf(prewarm, asked, limit int) int {
	return min(max(prewarm, asked), limit)
}

// keptSet is a kept template as eviction weighs it.
type keptSet struct {
	floor    int       // its minimum depth (floorOf)
	pinned   bool      // a function asks a minimum of it: it never idles out
	lastUsed time.Time // its last job
}

// evictions says which kept templates to drop, in order, so that their
// minimum depths and need (the minimum of a template that is new, or
// whose minimum rose) fit in limit (PrewarmMax): the least recently used
// without a function's minimum first, then the least recently used with
// one. It returns indexes into kept.
func evictions(kept []keptSet, need, limit int) []int {
	total := need
	order := make([]int, len(kept))
	for i, k := range kept {
		total += k.floor
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		ka, kb := kept[a], kept[b]
		if ka.pinned != kb.pinned {
			if kb.pinned {
				return -1
			}
			return 1
		}
		return ka.lastUsed.Compare(kb.lastUsed)
	})
	var drop []int
	for _, i := range order {
		if total <= limit {
			break
		}
		drop = append(drop, i)
		total -= kept[i].floor
	}
	return drop
}
