package metrics

import (
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/brig-dev/brig/schema"
)

// Worker records a worker's metrics.
type Worker struct {
	jobs       *prometheus.CounterVec
	run        *prometheus.HistogramVec
	total      *prometheus.HistogramVec
	containers *prometheus.CounterVec
	cached     *prometheus.GaugeVec
	slots      *prometheus.GaugeVec
	reg        prometheus.Registerer
}

// NewWorker registers a worker's collectors on reg, each series labelled
// worker=workerID (no such label when workerID is "": then it must be the
// registry's only worker). A nil reg returns a nil *Worker, which records
// nothing.
func NewWorker(reg prometheus.Registerer, workerID string) *Worker {
	if reg == nil {
		return nil
	}
	if workerID != "" {
		reg = prometheus.WrapRegistererWith(prometheus.Labels{"worker": workerID}, reg)
	}
	return &Worker{
		reg: reg,
		jobs: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "jobs_total",
			Help: "Jobs that ended, by pool and terminal status.",
		}, []string{"pool", "status"})),
		run: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "job_run_seconds",
			Help:    "Time from a job's start in its container to its end.",
			Buckets: jobBuckets,
		}, []string{"pool"})),
		total: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "job_total_seconds",
			Help:    "Time from a job's submission to its end.",
			Buckets: jobBuckets,
		}, []string{"pool"})),
		containers: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "container_starts_total",
			Help: "Containers started, by kind: cold (for a job), prewarmed (for the pool), reuse (for reuse mode).",
		}, []string{"kind"})),
		cached: register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "pool_containers",
			Help: "Idle containers ready for a job: prewarmed single-use ones over all templates, and reusable ones.",
		}, []string{"state"})),
		slots: register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "worker_slots",
			Help: "The worker's job slots: total, and free.",
		}, []string{"state"})),
	}
}

// JobEnded counts a job's terminal event by pool and status and observes
// its run time (started → finished) and its end-to-end time (submitted →
// finished).
func (m *Worker) JobEnded(pool string, status schema.Status, run, total time.Duration) {
	if m == nil {
		return
	}
	m.jobs.WithLabelValues(pool, string(status)).Inc()
	m.run.WithLabelValues(pool).Observe(seconds(run))
	m.total.WithLabelValues(pool).Observe(seconds(total))
}

// ContainerStarted counts a container started (kind: cold, made for the
// job in hand; prewarmed, made for the pool; reuse, made for reuse mode).
func (m *Worker) ContainerStarted(kind string) {
	if m == nil {
		return
	}
	m.containers.WithLabelValues(kind).Inc()
}

// SetCacheSizes sets how many prewarmed containers wait in the prewarm
// cache, over all templates, and how many idle ones in the reuse cache.
func (m *Worker) SetCacheSizes(prewarmed, reusable int) {
	if m == nil {
		return
	}
	m.cached.WithLabelValues("prewarmed").Set(float64(prewarmed))
	m.cached.WithLabelValues("reusable").Set(float64(reusable))
}

// SetSlots sets the worker's slots and how many are free.
func (m *Worker) SetSlots(total, free int) {
	if m == nil {
		return
	}
	m.slots.WithLabelValues("total").Set(float64(total))
	m.slots.WithLabelValues("free").Set(float64(free))
}

// WatchBus exports nc's message counters as the worker's
// brig_bus_messages_total{role="worker"}.
func (m *Worker) WatchBus(nc *nats.Conn) {
	if m != nil {
		watchBus(m.reg, "worker", nc)
	}
}
