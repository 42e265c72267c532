// Package metrics exposes each role's Prometheus metrics. A nil *Worker or
// *Dispatcher records nothing, so roles call it unconditionally.
//
// The collectors live on a registry the caller passes in (never the global
// one); Handler and Serve expose it:
//
//	reg := metrics.NewRegistry()
//	cfg.Metrics = metrics.NewWorker(reg, id)
//	addr, err := metrics.Serve(ctx, "127.0.0.1:9464", metrics.Handler(reg), log)
package metrics

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const namespace = "brig"

// SubmitQueue is the pool label of the submission queue in
// brig_queue_jobs (SetQueueDepth's pool "").
const SubmitQueue = "submit"

// Histogram buckets in seconds: jobs take 10ms to 10min; routing takes
// well under a millisecond to seconds when a dispatcher is overloaded.
var (
	jobBuckets      = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
	dispatchBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
)

// NewRegistry returns a registry holding the Go runtime and process
// collectors, for a role's collectors to join.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// register registers c on reg, or returns the equal collector already
// there, so that a role built twice on one registry (a restarted worker in
// one process) shares its series. Other conflicts are programming errors.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}

// seconds is d in seconds; a negative d (clocks of two hosts apart) is 0.
func seconds(d time.Duration) float64 {
	return max(d, 0).Seconds()
}
