package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/internal/events"
	"github.com/brig-dev/brig/internal/gateway"
	"github.com/brig-dev/brig/internal/registry"
	"github.com/brig-dev/brig/internal/signing"
	"github.com/brig-dev/brig/schema"
)

// quickJobs bounds the queue-only jobs (no container) a worker handles at
// once; they hand their slot back as soon as they are decoded.
const quickJobs = 256

// gatewayStopBudget bounds the gateway's last cancellations of child jobs
// when the worker stops.
const gatewayStopBudget = 30 * time.Second

// ErrStopped is returned by Start on a worker that was stopped.
var ErrStopped = errors.New("worker stopped")

// Worker runs jobs from its pools in sandboxes.
type Worker struct {
	cfg Config
	log *slog.Logger
	js  jetstream.JetStream
	pub *events.Log

	slots chan struct{}
	quick chan struct{} // queue-only jobs in hand, which hold no slot
	// entryChanged wakes the heartbeat when the running jobs change.
	entryChanged chan struct{}
	ring         *signing.Ring
	gw           *gateway.Gateway
	// newSandboxes makes and starts the sandboxes at Start: a
	// sandbox.Runner on cfg.Docker, or a test's fake.
	newSandboxes func(context.Context) (Sandboxes, error)
	sandboxes    Sandboxes

	mu      sync.Mutex
	started bool
	stopped bool
	running map[string]context.CancelCauseFunc // by job key
	// unclaimed holds cancellations heard for jobs not running here yet
	// (cancel.go), so that one heard while the job is being picked up is
	// not lost.
	unclaimed map[string]time.Time
	cancels   *nats.Subscription
	// fetchCancel stops the fetch loops; jobCancel interrupts running jobs.
	fetchCancel     context.CancelFunc
	jobCancel       context.CancelFunc
	heartbeatCancel context.CancelFunc
	registry        *registry.Registry
	startedAt       time.Time
	loops           sync.WaitGroup
	jobs            sync.WaitGroup
}

// New validates cfg and returns a Worker ready to Start.
func New(cfg Config) (*Worker, error) { return newWorker(cfg, nil) }

// newWorker is New with the sandboxes newSandboxes makes instead of a
// sandbox.Runner on cfg.Docker (nil: the Runner).
func newWorker(cfg Config, newSandboxes func(context.Context) (Sandboxes, error)) (*Worker, error) {
	cfg = cfg.WithDefaults()
	cfg.ID = sanitizeID(cfg.ID)
	if err := cfg.validate(newSandboxes == nil); err != nil {
		return nil, err
	}
	js, err := jetstream.New(cfg.Conn)
	if err != nil {
		return nil, fmt.Errorf("worker: jetstream: %w", err)
	}
	w := &Worker{
		cfg:          cfg,
		log:          cfg.Logger.With("role", "worker", "worker", cfg.ID),
		js:           js,
		pub:          events.NewLog(cfg.Conn, js, nil),
		slots:        make(chan struct{}, cfg.Slots),
		quick:        make(chan struct{}, quickJobs),
		entryChanged: make(chan struct{}, 1),
		running:      map[string]context.CancelCauseFunc{},
		unclaimed:    map[string]time.Time{},
		newSandboxes: newSandboxes,
	}
	if w.newSandboxes == nil {
		w.newSandboxes = w.startRunner
	}
	return w, nil
}

// ID is the worker's id, as its containers' brig.worker label
// (sandbox.LabelWorker) carries it.
func (w *Worker) ID() string { return w.cfg.ID }

// Start prepares the sandboxes (the init binary; removing containers an
// earlier run of this worker left behind), ensures streams and consumers,
// and begins fetching.
func (w *Worker) Start(ctx context.Context) (err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return ErrStopped
	}
	if w.started {
		return nil
	}
	w.cfg.Metrics.WatchBus(w.cfg.Conn)
	// A terminal event at every bound fits in MinServerPayload (events.Fit).
	if mp := w.cfg.Conn.MaxPayload(); mp < schema.MinServerPayload {
		return fmt.Errorf("worker: the NATS server's max_payload is %d bytes; brig needs at least %d", mp, schema.MinServerPayload)
	}
	if w.sandboxes, err = w.newSandboxes(ctx); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	defer func() {
		if err != nil { // a later Start begins afresh
			_ = w.sandboxes.Stop(ctx)
			w.sandboxes = nil
		}
	}()
	if err := bus.EnsureStreams(ctx, w.js, w.cfg.Streams); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	if err := w.setupGateway(ctx); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	consumers := make([]jetstream.Consumer, 0, len(w.cfg.Pools))
	for _, pool := range w.cfg.Pools {
		// The job's own retries come on top of MaxDeliver; the pool's
		// limit caps its running jobs over all its workers.
		cons, err := w.js.CreateOrUpdateConsumer(ctx, schema.StreamWork,
			bus.WorkConsumerConfig(pool, w.cfg.AckWait, w.cfg.MaxDeliver+schema.MaxRetries, poolLimit(w.cfg.PoolLimits[pool])))
		if err != nil {
			return fmt.Errorf("worker: consumer for pool %s: %w", pool, err)
		}
		consumers = append(consumers, cons)
	}
	if w.registry, err = registry.Open(ctx, w.js, w.cfg.Streams.WithDefaults().Replicas); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	w.startedAt = time.Now().UTC()
	if err := w.registry.Put(ctx, w.entryLocked()); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	// Last: a Start that failed before leaves no subscription behind.
	if w.cancels, err = w.cfg.Conn.Subscribe(schema.CancelPrefix+"*.*", w.onCancel); err != nil {
		return fmt.Errorf("worker: subscribe to cancellations: %w", err)
	}
	base := context.WithoutCancel(ctx)
	fetchCtx, fetchCancel := context.WithCancel(base)
	jobCtx, jobCancel := context.WithCancel(base)
	w.fetchCancel, w.jobCancel = fetchCancel, jobCancel
	for i, cons := range consumers {
		w.loops.Add(1)
		go func() {
			defer w.loops.Done()
			w.fetchLoop(fetchCtx, jobCtx, w.cfg.Pools[i], cons)
		}()
	}
	hbCtx, hbCancel := context.WithCancel(base)
	w.heartbeatCancel = hbCancel
	w.loops.Add(1)
	go func() {
		defer w.loops.Done()
		w.heartbeat(hbCtx)
	}()
	w.started = true
	w.log.Info("worker started", "pools", w.cfg.Pools, "slots", w.cfg.Slots)
	return nil
}

// Stop stops fetching, lets running jobs finish until ctx ends, then
// interrupts the rest, which hands them back to JetStream for another
// worker. Safe to call twice.
func (w *Worker) Stop(ctx context.Context) error {
	w.mu.Lock()
	if w.stopped || !w.started {
		w.stopped = true
		w.mu.Unlock()
		return nil
	}
	w.stopped = true
	w.mu.Unlock()

	w.fetchCancel()
	w.heartbeatCancel()
	w.loops.Wait()
	defer func() { _ = w.cancels.Unsubscribe() }()
	done := make(chan struct{})
	go func() { w.jobs.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		w.log.Warn("grace period over; interrupting running jobs")
		w.jobCancel()
		<-done
	}
	w.jobCancel()
	// Every job has ended: the caches are emptied and a last sweep removes
	// any container of this worker that is left.
	if err := w.sandboxes.Stop(ctx); err != nil {
		w.log.Warn("final sweep of containers", "err", err)
	}
	// Every sandbox's socket is closed: the gateway sends its pending
	// cancellations of child jobs and closes its per-tenant clients.
	gctx, gcancel := context.WithTimeout(context.WithoutCancel(ctx), gatewayStopBudget)
	if err := w.gw.Stop(gctx); err != nil {
		w.log.Warn("stop the gateway", "err", err)
	}
	gcancel()
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := w.registry.Remove(rctx, w.cfg.ID); err != nil {
		w.log.Warn("leave the registry", "err", err)
	}
	w.log.Info("worker stopped")
	return nil
}

// fetchLoop pulls only as many jobs as there are free slots.
func (w *Worker) fetchLoop(fetchCtx, jobCtx context.Context, pool string, cons jetstream.Consumer) {
	for {
		n := w.acquire(fetchCtx)
		if n == 0 {
			return
		}
		batch, err := cons.Fetch(n, jetstream.FetchMaxWait(w.cfg.PollWait))
		if err != nil {
			w.release(n)
			w.log.Warn("fetch work", "pool", pool, "err", err)
			select {
			case <-fetchCtx.Done():
				return
			case <-time.After(w.cfg.Backoff):
			}
			continue
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			w.jobs.Add(1)
			go func() {
				defer w.jobs.Done()
				var once sync.Once
				release := func() { once.Do(func() { w.release(1) }) }
				defer release()
				w.handle(jobCtx, msg, release)
			}()
		}
		w.release(n - got)
	}
}

// acquire blocks for one free slot, then takes every other free one too.
// It returns 0 when ctx ends.
func (w *Worker) acquire(ctx context.Context) int {
	select {
	case w.slots <- struct{}{}:
	case <-ctx.Done():
		return 0
	}
	if ctx.Err() != nil { // select picks at random when both are ready
		w.release(1)
		return 0
	}
	n := 1
	for {
		select {
		case w.slots <- struct{}{}:
			n++
		default:
			return n
		}
	}
}

func (w *Worker) release(n int) {
	for range n {
		<-w.slots
	}
}

// poolLimit is a pool consumer's MaxAckPending: the configured cap, or none
// (JetStream's default would cap every pool at 1000 running jobs).
func poolLimit(n int) int {
	if n > 0 {
		return n
	}
	return -1
}

// NormalizeID is the id a worker configured with id runs under: the
// hostname when id is empty, made a valid name.
func NormalizeID(id string) string {
	return sanitizeID(Config{ID: id}.WithDefaults().ID)
}

// sanitizeID makes a hostname usable as a worker id: a valid name, or ""
// for an empty one (which validation then refuses).
func sanitizeID(id string) string {
	if id == "" {
		return ""
	}
	out := []byte(id)
	for i, c := range out {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			out[i] = '-'
		}
	}
	if c := out[0]; c == '-' || c == '_' {
		out = append([]byte("w"), out...)
	}
	return string(out[:min(len(out), 64)])
}
