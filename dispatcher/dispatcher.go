package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/internal/events"
	"github.com/brig-dev/brig/internal/functions"
	"github.com/brig-dev/brig/internal/metrics"
	"github.com/brig-dev/brig/internal/registry"
	"github.com/brig-dev/brig/internal/signing"
	"github.com/brig-dev/brig/internal/token"
	"github.com/brig-dev/brig/schema"
)

// Config of a Dispatcher.
type Config struct {
	// Conn is the NATS connection. Required.
	Conn *nats.Conn
	// Logger receives structured logs (default: discard).
	Logger *slog.Logger
	// Functions resolves function names for a tenant (default:
	// functions.Builtin).
	Functions functions.Resolver
	// NoWorkerWait is how long a job may wait for a live worker of its pool
	// (the registry) before it is refused with a terminal NotFound error
	// (default 1m).
	NoWorkerWait time.Duration
	// Metrics records the dispatcher's Prometheus metrics (nil: none).
	Metrics *metrics.Dispatcher
	// Concurrency is how many submissions one dispatcher handles at once
	// (default 64); each waits on a few JetStream round trips.
	Concurrency int
	// MaxJobBytes caps a submission (default schema.DefaultMaxJobBytes).
	MaxJobBytes int
	// Streams sizes the streams this dispatcher ensures.
	Streams bus.Config
	// MaxDeliver is how often a submission is tried before it ends in a
	// terminal Infrastructure error (default 5).
	MaxDeliver int
	// AckWait is how long a submission may be in flight (default 30s).
	AckWait time.Duration
	// Backoff is the first retry delay on platform errors, doubled per
	// attempt (default 500ms).
	Backoff time.Duration
	// Signer signs job credentials. When nil, the key is loaded from
	// KeyFile (created there on first start); with no KeyFile either, a
	// fresh in-memory key is used. Public keys stay published by id, so
	// jobs signed by an earlier key still verify.
	Signer  *signing.Signer
	KeyFile string
	// QueueAllowance is how long a job may wait in its pool's queue; its
	// credential expires at accepted + QueueAllowance + timeout +
	// TokenGrace (defaults 1h and 30s).
	QueueAllowance time.Duration
	TokenGrace     time.Duration
	// MaxReplays bounds the replay requests in hand (default MaxReplays,
	// docs/design.md §13.7); past it a request is answered busy.
	MaxReplays int

	// advisoryRecheck overrides the package's advisoryRecheck (tests).
	advisoryRecheck time.Duration
	// tenantTTL overrides the package's tenantTTL (tests).
	tenantTTL time.Duration
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Functions == nil {
		c.Functions = functions.Builtin{}
	}
	if c.MaxJobBytes == 0 {
		c.MaxJobBytes = schema.DefaultMaxJobBytes
	}
	if c.Concurrency == 0 {
		c.Concurrency = 64
	}
	if c.NoWorkerWait == 0 {
		c.NoWorkerWait = time.Minute
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = 5
	}
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
	if c.Backoff == 0 {
		c.Backoff = 500 * time.Millisecond
	}
	if c.QueueAllowance == 0 {
		c.QueueAllowance = time.Hour
	}
	if c.TokenGrace == 0 {
		c.TokenGrace = 30 * time.Second
	}
	if c.MaxReplays == 0 {
		c.MaxReplays = MaxReplays
	}
	if c.advisoryRecheck == 0 {
		c.advisoryRecheck = advisoryRecheck
	}
	if c.tenantTTL == 0 {
		c.tenantTTL = tenantTTL
	}
	return c
}

func (c Config) validate() error {
	if c.Conn == nil {
		return errors.New("dispatcher: Conn is required")
	}
	if c.MaxJobBytes < 0 || c.MaxDeliver < 1 || c.Concurrency < 1 || c.MaxReplays < 1 {
		return errors.New("dispatcher: MaxJobBytes, MaxDeliver, Concurrency and MaxReplays must be positive")
	}
	return nil
}

// Dispatcher routes submitted jobs to worker pools.
type Dispatcher struct {
	cfg Config
	log *slog.Logger
	js  jetstream.JetStream
	// events publishes and looks up the jobs' events.
	events *events.Log

	mu      sync.Mutex
	consume jetstream.ConsumeContext
	subs    []*nats.Subscription
	ctx     context.Context
	cancel  context.CancelFunc

	// slots bounds the submissions in hand; handling waits for them all.
	slots    chan struct{}
	handling sync.WaitGroup
	// jobs serialises the submissions of one job id (resubmissions) within
	// this process; across dispatchers, the first event of a job is
	// published conditionally (events.Log.PublishFirst).
	jobs keyedMutex
	// cancels and advisories bound the cancellations (MaxCancels) and
	// max-deliveries advisories (MaxAdvisories) in hand.
	cancels    chan struct{}
	advisories chan struct{}
	// replays bounds the replay requests in hand (Config.MaxReplays), and
	// tenantReplays each tenant's share (MaxTenantReplays).
	replays       chan struct{}
	tenantReplays tenantCounts
	// rate bounds each tenant's requests (ratelimit.go).
	rate tenantRate
	// advisoryKeys holds the stream/seq of each advisory being checked.
	advisoryKeys sync.Map

	// tenantKV is the tenants bucket; tenants caches its records and the
	// state of each tenant's active stream (tenants.go).
	tenantKV jetstream.KeyValue
	tenants  tenantCache
	// held looks at the jobs waiting for a running slot (running.go).
	held heldLoop

	registry *registry.Registry
	seenMu   sync.Mutex
	seen     []registry.Worker
	seenAt   time.Time
}

// New validates cfg and returns a Dispatcher ready to Start.
func New(cfg Config) (*Dispatcher, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(cfg.Conn)
	if err != nil {
		return nil, fmt.Errorf("dispatcher: jetstream: %w", err)
	}
	if cfg.Signer == nil {
		if cfg.KeyFile != "" {
			cfg.Signer, err = signing.LoadOrCreate(cfg.KeyFile)
		} else {
			cfg.Signer, err = signing.Generate()
		}
		if err != nil {
			return nil, fmt.Errorf("dispatcher: signing key: %w", err)
		}
	}
	return &Dispatcher{
		cfg:    cfg,
		log:    cfg.Logger.With("role", "dispatcher"),
		js:     js,
		events: events.NewLog(cfg.Conn, js, cfg.Logger.With("role", "dispatcher")),
		slots:  make(chan struct{}, cfg.Concurrency),

		cancels:    make(chan struct{}, MaxCancels),
		advisories: make(chan struct{}, MaxAdvisories),
		replays:    make(chan struct{}, cfg.MaxReplays), tenantReplays: tenantCounts{limit: MaxTenantReplays},
	}, nil
}

// Start ensures the streams and the shared consumer and begins dispatching.
// Calling it on a started dispatcher is a no-op.
func (d *Dispatcher) Start(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.consume != nil {
		return nil
	}
	d.cfg.Metrics.WatchBus(d.cfg.Conn)
	if err := bus.EnsureStreams(ctx, d.js, d.cfg.Streams); err != nil {
		return fmt.Errorf("dispatcher: %w", err)
	}
	if err := signing.Publish(ctx, d.js, d.cfg.Streams.WithDefaults().Replicas, d.cfg.Signer); err != nil {
		return fmt.Errorf("dispatcher: %w", err)
	}
	reg, err := registry.Open(ctx, d.js, d.cfg.Streams.WithDefaults().Replicas)
	if err != nil {
		return fmt.Errorf("dispatcher: %w", err)
	}
	d.registry = reg
	if d.tenantKV, err = bus.OpenTenants(ctx, d.js, d.cfg.Streams.WithDefaults().Replicas); err != nil {
		return fmt.Errorf("dispatcher: %w", err)
	}
	cons, err := d.js.CreateOrUpdateConsumer(ctx, schema.StreamSubmit, bus.SubmitConsumerConfig(d.cfg.AckWait, d.cfg.MaxDeliver+d.noWorkerLooks()))
	if err != nil {
		return fmt.Errorf("dispatcher: consumer: %w", err)
	}
	// Handlers outlive the Start call: they run until Stop.
	d.ctx, d.cancel = context.WithCancel(context.WithoutCancel(ctx))
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		d.slots <- struct{}{}
		d.handling.Add(1)
		go func() {
			defer func() { <-d.slots; d.handling.Done() }()
			d.handle(d.ctx, msg)
		}()
	}, jetstream.PullMaxMessages(2*d.cfg.Concurrency))
	if err != nil {
		d.cancel()
		return fmt.Errorf("dispatcher: consume: %w", err)
	}
	d.consume = cc
	for subject, handler := range map[string]nats.MsgHandler{
		schema.CancelPrefix + "*.*":               d.onCancel,
		schema.ReplayPrefix + "*.*":               d.onReplay,
		schema.StatusPrefix + "*":                 d.statusService(),
		schema.FunctionsPrefix + "*":              d.functionsService(),
		maxDeliveriesSubject(schema.StreamSubmit): d.onMaxDeliveries,
		maxDeliveriesSubject(schema.StreamWork):   d.onMaxDeliveries,
	} {
		sub, err := d.cfg.Conn.QueueSubscribe(subject, CancelQueue, handler)
		if err != nil {
			d.unsubscribe()
			cc.Stop()
			d.cancel()
			return fmt.Errorf("dispatcher: subscribe to %s: %w", subject, err)
		}
		d.subs = append(d.subs, sub)
	}
	if err := d.startHeld(ctx); err != nil { // max_running (running.go)
		d.unsubscribe()
		cc.Stop()
		d.consume = nil
		d.cancel()
		return fmt.Errorf("dispatcher: %w", err)
	}
	d.log.Info("dispatcher started")
	return nil
}

// Stop stops pulling and waits for the submission in hand, or until ctx
// ends. Safe to call twice.
func (d *Dispatcher) Stop(ctx context.Context) error {
	d.mu.Lock()
	cc := d.consume
	d.consume = nil
	d.mu.Unlock()
	if cc == nil {
		return nil
	}
	d.unsubscribe()
	cc.Drain()
	handled := make(chan struct{})
	go func() { <-cc.Closed(); d.handling.Wait(); close(handled) }()
	select {
	case <-handled:
	case <-ctx.Done():
	}
	d.stopHeld(ctx) // max_running (running.go)
	d.cancel()
	d.waitReplays(ctx) // each follow deletes its consumer as it ends
	d.log.Info("dispatcher stopped")
	return nil
}

// handle dispatches one submission and settles it with JetStream.
func (d *Dispatcher) handle(ctx context.Context, msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		d.log.Error("submission without metadata", "err", err)
		_ = msg.Term()
		return
	}
	err = d.dispatch(ctx, msg, meta)
	var rej *rejection
	var dup *duplicate
	var idle *noWorker
	switch {
	case errors.As(err, &idle):
		d.cfg.Metrics.Dispatched(idle.pool, "waiting")
		d.log.Info("no live worker serves the job's pool; it waits", "job", idle.jobID, "pool", idle.pool, "retry_in", idle.delay)
		_ = msg.NakWithDelay(idle.delay)
	case errors.As(err, &dup):
		d.cfg.Metrics.Dispatched("", "duplicate")
		d.log.Warn("dropping a submission for a job id brig already knows", "job", dup.jobID, "subject", msg.Subject())
		_ = msg.TermWithReason(dup.Error())
	case err == nil:
		// A plain ack, not waited on: one lost (a reconnect) has the
		// submission redelivered after AckWait, and claim finds it
		// accepted, its Work a duplicate by message id (docs/design.md §6).
		if err := msg.Ack(); err != nil {
			d.log.Warn("ack submission", "err", err)
		}
	case errors.As(err, &rej):
		d.cfg.Metrics.Dispatched(rej.pool, "rejected")
		d.reject(ctx, msg, meta, rej)
	case meta.NumDelivered >= uint64(d.cfg.MaxDeliver):
		d.reject(ctx, msg, meta, &rejection{
			errType: schema.ErrInfrastructure, status: schema.StatusError,
			msg: fmt.Sprintf("dispatch failed after %d attempts: %v", meta.NumDelivered, err),
		})
	default:
		delay := d.cfg.Backoff << min(meta.NumDelivered-1, 6)
		d.log.Warn("dispatch failed, will retry", "err", err, "attempt", meta.NumDelivered, "delay", delay)
		_ = msg.NakWithDelay(delay)
	}
}

// noWorker is a job whose pool has no live worker yet: it is offered
// again after delay.
type noWorker struct {
	jobID, pool string
	delay       time.Duration
}

func (n *noWorker) Error() string { return "no live worker serves pool " + n.pool }

// rejection is a submission brig will not run. When the submission was
// accepted first, the rejection is the job's terminal event.
type rejection struct {
	jobID   string // the job's key, when known
	replyTo string
	pool    string // when known, for metrics
	errType schema.ErrorType
	status  schema.Status
	msg     string
}

func (r *rejection) Error() string { return r.msg }

// duplicate is a submission for a job key that another submission took (it
// was accepted or rejected under that key), or for a job that has ended.
// It must not touch that job's events.
type duplicate struct{ jobID string }

func (d *duplicate) Error() string { return "job " + d.jobID + " is already taken" }

// invalid is a rejection of job, which carries its key as its ID (a
// submission as dispatch reads it: see decode).
func invalid(job *schema.Job, errType schema.ErrorType, format string, args ...any) *rejection {
	r := &rejection{errType: errType, status: schema.StatusRejected, msg: fmt.Sprintf(format, args...)}
	if job != nil {
		r.jobID, r.replyTo = job.ID, job.ReplyTo
	}
	return r
}

// brokenFunction ends a job whose function's definition cannot be used.
// The job is not at fault, brig's store is, so the status is error and the
// type Infrastructure (docs/design.md §2.4, which operators alert on); but
// reading the definition again gives the same answer, so it ends at once
// rather than after MaxDeliver attempts.
func brokenFunction(job *schema.Job, err error) *rejection {
	r := invalid(job, schema.ErrInfrastructure, "%v; redeploy it with brig deploy", err)
	r.status = schema.StatusError
	return r
}

// dispatch validates, resolves and routes one submission. It returns a
// *rejection for anything that must not run, a *duplicate for a job key
// brig already knows, another error for platform failures worth retrying.
// A job whose work message cannot fit, or whose tenant is at its
// max_queued, is rejected before it is accepted.
func (d *Dispatcher) dispatch(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata) error {
	job, tenant, err := d.decode(msg)
	if err != nil {
		return err
	}
	key := job.ID // decode made it the key
	log := d.log.With("job", key, "function", job.Function)
	defer d.jobs.lock(key)()
	accepted, err := d.claim(ctx, key, meta)
	if err != nil {
		return err
	}
	rec, err := d.tenant(ctx, job, tenant)
	if err != nil {
		return err
	}
	fn, err := d.cfg.Functions.Resolve(ctx, tenant, job.Function)
	if errors.Is(err, functions.ErrNotFound) {
		return invalid(job, schema.ErrNotFound, "function %q not found", job.Function)
	}
	if errors.Is(err, functions.ErrInvalidStored) {
		return brokenFunction(job, err)
	}
	if err != nil {
		return fmt.Errorf("resolve function %q: %w", job.Function, err)
	}
	spec := buildSpec(job, fn)
	if err := errors.Join(checkEgress(job, fn), spec.Validate(), job.ValidateFor(&spec)); err != nil {
		return invalid(job, schema.ErrInvalidJob, "invalid job for function %q: %v", fn.Name, err)
	}
	if spec.Restricted && len(job.Scopes) > 0 {
		// Restricted by its function's default: the same refusal a client
		// makes of a job that says restricted: true (docs/design.md §4.1).
		return invalid(job, schema.ErrInvalidJob, "invalid job for function %q: restricted: %s (function %q is restricted by default)",
			fn.Name, schema.ScopesNeedUnrestricted, fn.Name)
	}
	now := time.Now().UTC()
	out, err := d.workMessage(job, &spec, meta, now)
	if err != nil {
		return err
	}
	if !accepted {
		// The job's place in its tenant's max_queued comes first: a job
		// refused for it was never accepted.
		fresh, err := d.hold(ctx, job, rec, key)
		if err != nil {
			return err
		}
		if err := d.accept(ctx, job, meta, fresh); err != nil {
			return err
		}
	}
	if err := d.awaitWorker(ctx, job, spec.Pool, meta); err != nil {
		return err
	}
	// max_running (running.go): without a slot the job waits in BRIG_HOLD.
	if route, err := d.admit(ctx, rec, out, meta.Timestamp, log); !route || err != nil {
		return err
	}
	if err := d.route(ctx, out, log); err != nil {
		return err
	}
	d.cfg.Metrics.Dispatched(spec.Pool, "routed")
	d.cfg.Metrics.ObserveDispatch(now.Sub(meta.Timestamp))
	return nil
}

// decode strictly decodes a submission and checks that it names its job
// the way it was published (subject, Nats-Msg-Id, reply_to). The tenant is
// the subject's, never the payload's (docs/design.md §10.3). The job it
// returns carries its key as its ID, the way every event, token and
// subject names it from here on.
func (d *Dispatcher) decode(msg jetstream.Msg) (*schema.Job, string, error) {
	tenant, fn, ok := schema.ParseSubmitSubject(msg.Subject())
	if !ok {
		// No tenant: no event can name the job.
		return nil, "", invalid(nil, schema.ErrInvalidJob, "invalid job: submitted on %s, not on %s<tenant>.<function>", msg.Subject(), schema.SubmitPrefix)
	}
	job, err := schema.DecodeJob(msg.Data(), d.cfg.MaxJobBytes)
	if err != nil {
		return nil, "", invalid(nil, schema.ErrInvalidJob, "invalid job: %v", err)
	}
	id := job.ID
	job.ID = schema.JobKey(tenant, id)
	if hdr := msg.Headers().Get(jetstream.MsgIDHeader); hdr != "" && hdr != job.ID {
		r := invalid(job, schema.ErrInvalidJob, "invalid job: id %q: the Nats-Msg-Id must be %s, got %q", id, job.ID, hdr)
		if t, _, ok := schema.SplitJobKey(hdr); ok && t == tenant {
			r.jobID, r.replyTo = hdr, "" // the dedup key the client published under
		}
		if !schema.ReplyToAllowed(tenant, r.jobID, r.replyTo) {
			r.replyTo = ""
		}
		return nil, "", r
	}
	if job.Function != fn {
		r := invalid(job, schema.ErrInvalidJob, "invalid job: function: %q was submitted on %s, expected %s", job.Function, msg.Subject(), schema.SubmitSubject(tenant, job.Function))
		if !schema.ReplyToAllowed(tenant, job.ID, job.ReplyTo) {
			r.replyTo = ""
		}
		return nil, "", r
	}
	if !schema.ReplyToAllowed(tenant, job.ID, job.ReplyTo) {
		r := invalid(job, schema.ErrInvalidJob, "invalid job: reply_to: must lie under %s. (the inboxes of tenant %s) or be this job's own %s",
			schema.InboxPrefix(tenant), tenant, strings.TrimSuffix(schema.EventsFilter(job.ID), ">"))
		r.replyTo = "" // never a subject brig publishes to for another tenant
		return nil, "", r
	}
	return job, tenant, nil
}

// claim decides whether this submission may dispatch job id (a key): it reports
// whether this very submission was accepted already (an earlier delivery
// published the accepted event), and returns a *duplicate when the id
// belongs to another submission or the job has ended.
//
// A first delivery (as the consumer counts) looks nothing up: the
// submission owns the id when no event names it yet, which the accepted
// event's PublishFirst checks atomically, and accept looks into a
// refusal (claimTaken). That saves the common case a lookup.
func (d *Dispatcher) claim(ctx context.Context, id string, meta *jetstream.MsgMetadata) (accepted bool, err error) {
	if meta.NumDelivered == 1 {
		return false, nil
	}
	return d.claimTaken(ctx, id, meta)
}

// claimTaken is claim for an id that may have events already.
func (d *Dispatcher) claimTaken(ctx context.Context, id string, meta *jetstream.MsgMetadata) (accepted bool, err error) {
	acc, err := d.events.Find(ctx, id, schema.EventAccepted)
	if err != nil {
		return false, err
	}
	if acc == nil && meta.NumDelivered == 1 {
		return false, &duplicate{jobID: id} // rejected under this id before
	}
	if acc != nil && !acceptedFrom(acc, meta) {
		return false, &duplicate{jobID: id}
	}
	if done, err := d.events.Terminal(ctx, id); err != nil {
		return false, err
	} else if done != nil {
		return false, &duplicate{jobID: id}
	}
	return acc != nil, nil
}

// accept stores the job's accepted event, which must be its first: of
// two submissions racing for one key (on this dispatcher or another), the
// one whose first event is stored owns it; the other is a duplicate. A
// refused first event is looked into (claimTaken): the job may still be
// this very submission's, accepted on a delivery the consumer no longer
// counts (a consumer created again starts NumDelivered at 1), and then it
// goes on to be routed. fresh says the submission's max_queued marker is
// new, to be given back when the submission turns out a duplicate.
func (d *Dispatcher) accept(ctx context.Context, job *schema.Job, meta *jetstream.MsgMetadata, fresh bool) error {
	key := job.ID
	ev := &schema.Event{JobID: key, Type: schema.EventAccepted, Seq: 1, ExitCode: -1, ReplyTo: job.ReplyTo, SubmitSeq: meta.Sequence.Stream}
	err := d.events.PublishFirst(ctx, ev, job.ReplyTo)
	if !errors.Is(err, events.ErrNotFirst) {
		return err
	}
	accepted, err := d.claimTaken(ctx, key, meta)
	var dup *duplicate
	switch {
	case accepted:
		return nil
	case err != nil && !errors.As(err, &dup):
		return err
	}
	if fresh {
		d.unhold(ctx, key)
	}
	return &duplicate{jobID: key}
}

// acceptedFrom reports whether the accepted event acc was published for
// the submission that meta describes: the one stored at acc.SubmitSeq.
// Stream sequences are never reused while BRIG_SUBMIT exists, so no other
// submission of the same id can pass for it. An accepted event of an older
// brig carries no sequence; a redelivery then counts as its own, as that
// brig assumed.
func acceptedFrom(acc *schema.Event, meta *jetstream.MsgMetadata) bool {
	if acc.SubmitSeq == 0 {
		return meta.NumDelivered > 1
	}
	return acc.SubmitSeq == meta.Sequence.Stream
}

// awaitWorker returns nil when a live worker serves pool, a *noWorker while
// the job may still wait for one, and a *rejection once it waited
// NoWorkerWait (or would outlast its deliveries).
func (d *Dispatcher) awaitWorker(ctx context.Context, job *schema.Job, pool string, meta *jetstream.MsgMetadata) error {
	workers, err := d.workers(ctx)
	if err != nil {
		return err
	}
	if registry.Serves(workers, pool) {
		return nil
	}
	waited := time.Since(meta.Timestamp)
	left := d.cfg.NoWorkerWait - waited
	if left <= 0 || meta.NumDelivered+1 >= uint64(d.cfg.MaxDeliver+d.noWorkerLooks()) {
		r := invalid(job, schema.ErrNotFound, "no worker serves pool %q: the job waited %s for one (NoWorkerWait %s); start a worker with --pools %s",
			pool, waited.Round(time.Second), d.cfg.NoWorkerWait, pool)
		r.status, r.pool = schema.StatusError, pool
		return r
	}
	return &noWorker{jobID: job.ID, pool: pool, delay: max(min(left, noWorkerLook), 100*time.Millisecond)}
}

// noWorkerLook is how often a job waiting for a worker of its pool looks
// again.
const noWorkerLook = 2 * time.Second

// noWorkerLooks is how many deliveries waiting for a worker may take; the
// submission consumer allows them on top of MaxDeliver.
func (d *Dispatcher) noWorkerLooks() int {
	return int(d.cfg.NoWorkerWait/noWorkerLook) + 2
}

// workers returns the live workers, read from the registry at most once a
// second. When the registry cannot be read, the last list read within
// staleWorkers stands in: listing the bucket takes a consumer, and while a
// NATS node of a cluster is down JetStream refuses that with "insufficient
// resources" for as long as the node stays down (seen for over a minute in
// the cluster test), while routing itself works. A stale list routes a job
// to a pool that had a worker moments ago; its Work then waits there.
func (d *Dispatcher) workers(ctx context.Context) ([]registry.Worker, error) {
	d.seenMu.Lock()
	defer d.seenMu.Unlock()
	if time.Since(d.seenAt) < time.Second && d.seen != nil {
		return d.seen, nil
	}
	ws, err := d.registry.List(ctx)
	if err != nil {
		if d.seen != nil && time.Since(d.seenAt) < staleWorkers {
			d.log.Debug("registry unreadable; routing on the last list read", "age", time.Since(d.seenAt), "err", err)
			return d.seen, nil
		}
		return nil, err
	}
	d.seen, d.seenAt = ws, time.Now()
	return ws, nil
}

// staleWorkers bounds how old a list of workers may be to stand in for an
// unreadable registry (docs/design.md §13.7).
const staleWorkers = 5 * time.Minute

// workMessage builds the work message of a job, its credential minted at
// now, and checks its size on the very bytes that will be sent: decoding
// and encoding again can grow a job (an invalid UTF-8 byte becomes the
// three of U+FFFD), so the submission's size says little. A message that
// cannot fit is a *rejection naming the limit.
func (d *Dispatcher) workMessage(job *schema.Job, spec *schema.RunSpec, meta *jetstream.MsgMetadata, now time.Time) (*nats.Msg, error) {
	tok, err := d.mint(job.ID, spec, now)
	if err != nil {
		return nil, err
	}
	work := schema.Work{Version: schema.Version, Job: *job, Spec: *spec, Token: tok, AcceptedAt: now, SubmittedAt: meta.Timestamp.UTC()}
	data, err := schema.Marshal(&work)
	if err != nil {
		return nil, fmt.Errorf("encode work for %s: %w", job.ID, err)
	}
	out := &nats.Msg{Subject: schema.WorkSubject(spec.Pool), Data: data, Header: nats.Header{}}
	out.Header.Set(jetstream.MsgIDHeader, job.ID)
	limit, name := d.workLimit()
	if size := out.Size() - len(out.Subject); size > limit {
		r := invalid(job, schema.ErrInvalidJob, "invalid job: its work message (the job as brig encodes it, with its run spec "+
			"and credential) is %d bytes, over the limit of %d bytes (%s); send less code, files, stdin, args or env", size, limit, name)
		r.pool = spec.Pool
		return nil, r
	}
	return out, nil
}

// workLimit is the largest work message, headers included, that a worker
// takes and the server carries, and the name of that limit.
func (d *Dispatcher) workLimit() (int, string) {
	if payload := int(d.cfg.Conn.MaxPayload()); payload > 0 && payload < schema.MaxWorkBytes {
		return payload, "the NATS server's max_payload"
	}
	return schema.MaxWorkBytes, "MaxWorkBytes"
}

func (d *Dispatcher) route(ctx context.Context, out *nats.Msg, log *slog.Logger) error {
	id, pool := out.Header.Get(jetstream.MsgIDHeader), strings.TrimPrefix(out.Subject, schema.WorkPrefix)
	ack, err := d.js.PublishMsg(ctx, out)
	if err != nil {
		return fmt.Errorf("route job %s to pool %s: %w", id, pool, err)
	}
	log.Info("job routed", "pool", pool, "duplicate", ack.Duplicate)
	return nil
}

// reject publishes the terminal event of a job that will not run, then
// terminates the submission. When the job's key cannot be read from the
// payload (and the subject's tenant) it is taken from the Nats-Msg-Id
// header. A rejection names its
// job by what the payload claims, so it ends a job that brig accepted only
// when this very submission was accepted as that job: then it is the job's
// own end, whatever failed after acceptance. Before acceptance the
// rejection must be the id's first event (PublishFirst): when another
// submission got there first, this one is a duplicate and writes nothing.
func (d *Dispatcher) reject(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata, r *rejection) {
	if r.jobID == "" {
		r.jobID, r.replyTo = peekSubmission(msg.Subject(), msg.Data(), msg.Headers())
	}
	log := d.log.With("job", r.jobID, "subject", msg.Subject())
	if r.jobID == "" {
		log.Warn("rejected a submission with no usable job id; no event can name it", "reason", r.msg)
		_ = msg.TermWithReason(r.msg)
		return
	}
	acc, err := d.events.Find(ctx, r.jobID, schema.EventAccepted)
	if err != nil {
		log.Error("look up job; will retry", "err", err)
		_ = msg.NakWithDelay(d.cfg.Backoff)
		return
	}
	if acc != nil && !acceptedFrom(acc, meta) {
		log.Warn("rejected a submission that reuses an accepted job id; no event published", "reason", r.msg)
		_ = msg.TermWithReason(r.msg)
		return
	}
	if acc != nil && r.replyTo == "" {
		r.replyTo = acc.ReplyTo
	}
	ev := &schema.Event{
		JobID: r.jobID, Type: schema.EventError, Seq: 2, Status: r.status, ExitCode: -1,
		Error: &schema.ErrorInfo{Type: r.errType, Message: r.msg},
	}
	if acc == nil {
		err = d.events.PublishFirst(ctx, ev, r.replyTo)
	} else {
		_, err = d.events.Publish(ctx, ev, r.replyTo)
	}
	if errors.Is(err, events.ErrNotFirst) {
		d.cfg.Metrics.Dispatched("", "duplicate")
		log.Warn("rejected a submission for a job id another submission took; no event published", "reason", r.msg)
		_ = msg.TermWithReason(r.msg)
		return
	}
	if err != nil {
		log.Error("publish rejection; will retry", "err", err)
		_ = msg.NakWithDelay(d.cfg.Backoff)
		return
	}
	log.Info("job rejected", "type", r.errType, "reason", r.msg)
	_ = msg.TermWithReason(r.msg)
}

// peekSubmission reads a job key and reply subject from a submission that
// failed strict decoding: the tenant from the subject, the id and reply_to
// from the payload when they are valid there, else the key from the
// Nats-Msg-Id header when it is of the subject's tenant. A reply_to
// outside the tenant's inboxes is dropped.
func peekSubmission(subject string, data []byte, hdr nats.Header) (key, replyTo string) {
	tenant, _, ok := schema.ParseSubmitSubject(subject)
	if !ok {
		return "", ""
	}
	id, replyTo := peekJob(data)
	if schema.ValidID(id) {
		key = schema.JobKey(tenant, id)
	} else if h := hdr.Get(jetstream.MsgIDHeader); h != "" {
		replyTo = "" // the payload's, not the header's job's
		if t, _, ok := schema.SplitJobKey(h); ok && t == tenant {
			key = h
		}
	}
	if key == "" {
		return "", ""
	}
	if !schema.ReplyToAllowed(tenant, key, replyTo) {
		replyTo = ""
	}
	return key, replyTo
}

// peekWork reads a job key and reply subject from a work message: its
// job's id is the key (or, failing that, its Nats-Msg-Id).
func peekWork(data []byte, hdr nats.Header) (key, replyTo string) {
	var work struct {
		Job json.RawMessage `json:"job"`
	}
	_ = json.Unmarshal(data, &work)
	key, replyTo = peekJob(work.Job)
	if !schema.ValidJobKey(key) {
		key, replyTo = "", ""
		if h := hdr.Get(jetstream.MsgIDHeader); schema.ValidJobKey(h) {
			key = h
		}
	}
	if key == "" {
		return "", ""
	}
	tenant, _, _ := schema.SplitJobKey(key)
	if !schema.ReplyToAllowed(tenant, key, replyTo) {
		replyTo = ""
	}
	return key, replyTo
}

// peekJob reads the id (a client's id or a key) and the reply subject of a
// job that failed strict decoding, each when it is valid.
func peekJob(data []byte) (id, replyTo string) {
	var loose struct {
		ID      any `json:"id"`
		ReplyTo any `json:"reply_to"`
	}
	if len(data) <= schema.DefaultMaxJobBytes*4 {
		_ = json.Unmarshal(data, &loose)
	}
	s, ok := loose.ID.(string)
	if !ok || !schema.ValidID(s) && !schema.ValidJobKey(s) {
		return "", ""
	}
	// Job.Validate checks a client's id: a key's id stands in for it, and
	// the caller checks the tenant (schema.ReplyToAllowed).
	probe := schema.Job{ID: s, Function: "x"}
	if _, id, ok := schema.SplitJobKey(s); ok {
		probe.ID = id
	}
	if rt, ok := loose.ReplyTo.(string); ok {
		probe.ReplyTo = rt
		if probe.Validate() == nil {
			replyTo = rt
		}
	}
	return s, replyTo
}

// mint signs the job's credential: its key, function and granted scopes,
// valid until it could at the latest have finished.
func (d *Dispatcher) mint(jobID string, spec *schema.RunSpec, now time.Time) (string, error) {
	exp := now.Add(d.cfg.QueueAllowance + spec.Timeout() + d.cfg.TokenGrace)
	tok, err := token.Mint(d.cfg.Signer.Key, token.Claims{
		JobID: jobID, Function: spec.Function, Scopes: spec.Scopes,
		IssuedAt: now.UnixMilli(), Expiry: exp.UnixMilli(), KeyID: d.cfg.Signer.ID,
	})
	if err != nil {
		return "", fmt.Errorf("credential for job %s: %w", jobID, err)
	}
	return tok, nil
}

func (d *Dispatcher) unsubscribe() {
	for _, sub := range d.subs {
		_ = sub.Unsubscribe()
	}
	d.subs = nil
}
