package sandbox

import (
	"math"
	"time"
)

// The prewarm depth policy (docs/design.md §8): how many started sandboxes
// a template keeps follows its recent arrivals, between the minimum
// (Config.Prewarm) and the worker's free slots, the way Modal's
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
