package metrics

import (
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// Dispatcher records a dispatcher's metrics.
type Dispatcher struct {
	dispatched *prometheus.CounterVec
	latency    prometheus.Histogram
	queue      *prometheus.GaugeVec
	reg        prometheus.Registerer
}

// NewDispatcher registers a dispatcher's collectors on reg. A nil reg
// returns a nil *Dispatcher, which records nothing.
func NewDispatcher(reg prometheus.Registerer) *Dispatcher {
	if reg == nil {
		return nil
	}
	return &Dispatcher{
		reg: reg,
		dispatched: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "dispatch_total",
			Help: "Submissions handled, by pool and outcome (routed, waiting for a worker of the pool, rejected, duplicate).",
		}, []string{"pool", "outcome"})),
		latency: register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "dispatch_seconds",
			Help:    "Time from a job's submission to its routing to a pool.",
			Buckets: dispatchBuckets,
		})),
		queue: register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "queue_jobs",
			Help: `Jobs in a pool's work queue: pending (waiting for a worker) and running (delivered, not acked); pool "submit" is the submission queue.`,
		}, []string{"pool", "state"})),
	}
}

// Dispatched counts a submission's outcome: routed, waiting (its pool has
// no live worker yet), rejected (a no-worker refusal included), duplicate.
func (m *Dispatcher) Dispatched(pool, outcome string) {
	if m == nil {
		return
	}
	m.dispatched.WithLabelValues(pool, outcome).Inc()
}

// ObserveDispatch observes the time from submission to routing.
func (m *Dispatcher) ObserveDispatch(d time.Duration) {
	if m == nil {
		return
	}
	m.latency.Observe(seconds(d))
}

// SetQueueDepth sets the jobs waiting (pending) and running (ack pending)
// in a pool's work queue, and the submissions waiting for a dispatcher
// (pool "").
func (m *Dispatcher) SetQueueDepth(pool string, pending, running int) {
	if m == nil {
		return
	}
	pool = queueLabel(pool)
	m.queue.WithLabelValues(pool, "pending").Set(float64(pending))
	m.queue.WithLabelValues(pool, "running").Set(float64(running))
}

// forgetQueue drops a queue's series, for a pool whose consumer is gone.
func (m *Dispatcher) forgetQueue(pool string) {
	if m == nil {
		return
	}
	m.queue.DeletePartialMatch(prometheus.Labels{"pool": queueLabel(pool)})
}

func queueLabel(pool string) string {
	if pool == "" {
		return SubmitQueue
	}
	return pool
}

// WatchBus exports nc's message counters as the dispatcher's
// brig_bus_messages_total{role="dispatcher"}.
func (m *Dispatcher) WatchBus(nc *nats.Conn) {
	if m != nil {
		watchBus(m.reg, "dispatcher", nc)
	}
}
