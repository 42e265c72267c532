// Package metrics exposes each role's Prometheus metrics. A nil *Worker or
// *Dispatcher records nothing, so roles call it unconditionally.
package metrics

import "time"

// Worker records a worker's metrics.
type Worker struct {
	// TODO(helper): Prometheus collectors, registered on a registry that
	// Handler serves.
}

// JobEnded counts a job's terminal event by pool and status and observes
// its run time (started → finished) and its end-to-end time (submitted →
// finished).
func (m *Worker) JobEnded(pool, status string, run, total time.Duration) {}

// ContainerStarted counts a container started for a job (kind: cold,
// prewarmed as made for the pool, reuse as made for reuse mode).
func (m *Worker) ContainerStarted(kind string) {}

// SetPoolSize sets how many prewarmed containers wait, over all templates,
// and how many idle reuse containers.
func (m *Worker) SetPoolSize(prewarmed, reusable int) {}

// SetSlots sets the worker's slots and how many are free.
func (m *Worker) SetSlots(total, free int) {}

// Dispatcher records a dispatcher's metrics.
type Dispatcher struct{}

// Dispatched counts a submission's outcome: accepted, rejected, duplicate,
// no_worker (refused: its pool has no worker), retry.
func (m *Dispatcher) Dispatched(pool, outcome string) {}

// ObserveDispatch observes the time from submission to routing.
func (m *Dispatcher) ObserveDispatch(d time.Duration) {}

// SetQueueDepth sets the jobs waiting (pending) and running (ack pending)
// in a pool's work queue, and the submissions waiting for a dispatcher
// (pool "").
func (m *Dispatcher) SetQueueDepth(pool string, pending, running int) {}
