package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/internal/signing"
	"github.com/brig-dev/brig/internal/token"
	"github.com/brig-dev/brig/schema"
)

// max_running (docs/design.md §10.3). A job of a tenant with max_running
// holds a marker on brig.running.<key> in the tenant's stream
// BRIG_RUNNING_<tenant> from the moment a dispatcher routes it until its
// terminal event is stored (internal/events purges the marker). The
// stream's MaxMsgs is max_running and it discards new messages, so of
// dispatchers racing for the last slot exactly one gets it: the bound is
// JetStream's, across any number of dispatchers and workers. A marker
// means "routed and not ended", so a job waiting in BRIG_WORK for a worker
// slot counts too: a stronger bound than "running".
//
// A job that finds no slot is accepted all the same and waits in
// BRIG_HOLD, as the very Work message it will be routed with. Every
// dispatcher pulls from the shared consumer "held" and looks at each held
// job once every HoldLook: a job that ended meanwhile (cancelled) is
// dropped, one that gets a slot is routed, the others wait another
// HoldLook. A look costs one event lookup and one refused publish; the
// held jobs looked at at once are bounded by HeldMaxPending across the
// fleet (a tenant's max_queued bounds its own), the rest wait in
// BRIG_HOLD in order. Waiting takes no delivery of the submission (it was
// acknowledged when the job was held) and none of the held message's
// (MaxDeliver -1), so a job never ends Infrastructure for waiting.

// Bounds of the held jobs (docs/design.md §13.7).
const (
	// HoldLook is how often a held job looks for a running slot: a slot
	// freed is taken within about this long.
	HoldLook = time.Second
	// MaxHeldLooks bounds the held jobs one dispatcher looks at at once.
	MaxHeldLooks = 16
	// HeldMaxPending bounds the held jobs looked at at once across all
	// dispatchers (the consumer's MaxAckPending): at most this many looks
	// a second in all.
	HeldMaxPending = 1024
	// heldAckWait is how long a look may take before the held job is
	// given to another dispatcher; heldLookWait bounds one look.
	heldAckWait  = 30 * time.Second
	heldLookWait = 10 * time.Second
	// heldBatch is how many held jobs a dispatcher pulls ahead.
	heldBatch = 8
)

var (
	// errNoSlot: the tenant's running stream is full.
	errNoSlot = errors.New("no running slot free")
	// errEnded: the job's terminal event is stored (it was cancelled
	// before it ran); it is dropped, never routed.
	errEnded = errors.New("job ended before it was routed")
)

// heldLoop is a dispatcher's share of the held jobs.
type heldLoop struct {
	consume  jetstream.ConsumeContext
	slots    chan struct{}
	handling sync.WaitGroup
	// ring verifies a held job's credential before it is minted again.
	ring *signing.Ring
}

// admit takes the job's running slot just before it is routed, when its
// tenant has a max_running. It reports whether to route the job now; when
// not, the job is held (or, ended while it was dispatched, dropped) and
// its submission is done with.
func (d *Dispatcher) admit(ctx context.Context, rec *schema.Tenant, out *nats.Msg, since time.Time, log *slog.Logger) (route bool, err error) {
	if rec.MaxRunning <= 0 {
		return true, nil
	}
	key := out.Header.Get(jetstream.MsgIDHeader)
	switch err := d.takeSlot(ctx, rec, key, since); {
	case err == nil:
		return true, nil
	case errors.Is(err, errEnded):
		log.Info("job ended before it was routed; dropped")
		return false, nil
	case !errors.Is(err, errNoSlot):
		return false, err
	}
	held := &nats.Msg{Subject: bus.HoldSubject(rec.Name), Data: out.Data, Header: nats.Header{}}
	held.Header.Set(jetstream.MsgIDHeader, key)
	if _, err := d.js.PublishMsg(ctx, held); err != nil {
		return false, fmt.Errorf("hold job %s for a running slot: %w", key, err)
	}
	pool := out.Subject[len(schema.WorkPrefix):]
	d.cfg.Metrics.Dispatched(pool, "held")
	log.Info("job held: its tenant runs max_running jobs", "pool", pool, "max_running", rec.MaxRunning)
	return false, nil
}

// takeSlot publishes the job's running marker (Nats-Msg-Id its key, so a
// retry takes no second slot). A full stream is errNoSlot; a job whose
// terminal event is stored by the time it has the slot gives it back and
// is errEnded. since is a time before any marker of the job was published.
func (d *Dispatcher) takeSlot(ctx context.Context, rec *schema.Tenant, key string, since time.Time) error {
	if err := d.ensureRunning(ctx, rec); err != nil {
		return err
	}
	msg := &nats.Msg{Subject: bus.RunningSubject(key), Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, key)
	_, err := d.js.PublishMsg(ctx, msg)
	switch {
	case bus.IsMaxMessages(err):
		// Past the dedup window a retry is no duplicate, and a clustered
		// stream refuses it even though it would only replace the job's
		// own marker: look whether the job has its slot already.
		if time.Since(since) < bus.RunningDedupWindow {
			return errNoSlot
		}
		if mine, err := d.hasSlot(ctx, rec.Name, key); err != nil || !mine {
			return errors.Join(err, errNoSlot)
		}
	case errors.Is(err, jetstream.ErrNoStreamResponse), isStreamNotFound(err):
		d.forgetStream(rec.Name, bus.RunningStream(rec.Name))
		return fmt.Errorf("take a running slot for job %s: %w", key, err)
	case err != nil:
		return fmt.Errorf("take a running slot for job %s: %w", key, err)
	}
	// A cancellation that stored the terminal event before the marker was
	// stored purged nothing: the slot is given back here, or it would be
	// lost until the stream's MaxAge.
	ended, err := d.events.Terminal(ctx, key)
	if err != nil {
		return err
	}
	if ended != nil {
		d.giveBack(ctx, rec.Name, key)
		return errEnded
	}
	return nil
}

// hasSlot reports whether the job's marker is in its tenant's stream.
func (d *Dispatcher) hasSlot(ctx context.Context, tenant, key string) (bool, error) {
	stream, err := d.js.Stream(ctx, bus.RunningStream(tenant))
	if err != nil {
		return false, fmt.Errorf("look up job %s's running slot: %w", key, err)
	}
	_, err = stream.GetLastMsgForSubject(ctx, bus.RunningSubject(key))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil
	}
	return err == nil, err
}

// giveBack purges a job's marker (best effort: MaxAge is the backstop).
func (d *Dispatcher) giveBack(ctx context.Context, tenant, key string) {
	stream, err := d.js.Stream(ctx, bus.RunningStream(tenant))
	if err == nil {
		err = stream.Purge(ctx, jetstream.WithPurgeSubject(bus.RunningSubject(key)))
	}
	if err != nil {
		d.log.Warn("give back an ended job's running slot", "job", key, "err", err)
	}
}

// ensureRunning creates the tenant's running stream, or sets its MaxMsgs
// to the record's max_running, when this dispatcher has not yet done so
// for that value. Lowering the limit drops no marker: the stream refuses
// new ones until enough jobs end. A limit set (or raised from none)
// counts the jobs routed from then on.
func (d *Dispatcher) ensureRunning(ctx context.Context, rec *schema.Tenant) error {
	return d.ensureStream(ctx, rec.Name, bus.RunningConfig(rec.Name, rec.MaxRunning, d.cfg.Streams.WithDefaults().Replicas))
}

// startHeld ensures BRIG_HOLD and its consumer and begins looking at the
// held jobs. Its handlers run on d.ctx.
func (d *Dispatcher) startHeld(ctx context.Context) error {
	replicas := d.cfg.Streams.WithDefaults().Replicas
	if _, err := d.js.CreateOrUpdateStream(ctx, bus.HoldConfig(d.cfg.Streams)); err != nil {
		return fmt.Errorf("ensure stream %s: %w", bus.StreamHold, err)
	}
	ring, err := signing.OpenRing(ctx, d.js, replicas)
	if err != nil {
		return err
	}
	cons, err := d.js.CreateOrUpdateConsumer(ctx, bus.StreamHold, bus.HeldConsumerConfig(heldAckWait, HeldMaxPending))
	if err != nil {
		return fmt.Errorf("consumer %s: %w", bus.HeldConsumer, err)
	}
	h := &d.held
	h.ring, h.slots = ring, make(chan struct{}, MaxHeldLooks)
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		h.slots <- struct{}{}
		h.handling.Add(1)
		go func() {
			defer func() { <-h.slots; h.handling.Done() }()
			d.look(d.ctx, msg)
		}()
	}, jetstream.PullMaxMessages(heldBatch))
	if err != nil {
		return fmt.Errorf("consume %s: %w", bus.StreamHold, err)
	}
	h.consume = cc
	return nil
}

// stopHeld stops pulling held jobs and waits for the looks in hand, or
// until ctx ends.
func (d *Dispatcher) stopHeld(ctx context.Context) {
	cc := d.held.consume
	d.held.consume = nil
	if cc == nil {
		return
	}
	cc.Drain()
	done := make(chan struct{})
	go func() { <-cc.Closed(); d.held.handling.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// look settles one held job: routed or dropped (ack), or still waiting
// (NakWithDelay HoldLook; platform errors the same after Backoff).
func (d *Dispatcher) look(ctx context.Context, msg jetstream.Msg) {
	ctx, cancel := context.WithTimeout(ctx, heldLookWait)
	defer cancel()
	key := msg.Headers().Get(jetstream.MsgIDHeader)
	work, err := schema.DecodeWork(msg.Data())
	if err != nil || work.Job.ID != key {
		// Only dispatchers publish there; this is no job of theirs.
		d.log.Error("dropping a held message that is not a job's Work", "subject", msg.Subject(), "key", key, "err", err)
		_ = msg.TermWithReason("not a held job's Work")
		return
	}
	log := d.log.With("job", key, "pool", work.Spec.Pool)
	switch err := d.release(ctx, work, msg.Data(), log); {
	case err == nil:
		d.cfg.Metrics.Dispatched(work.Spec.Pool, "routed")
		_ = msg.Ack()
	case errors.Is(err, errEnded):
		log.Info("held job ended while it waited; dropped")
		_ = msg.Ack()
	case errors.Is(err, errNoSlot):
		_ = msg.NakWithDelay(HoldLook)
	default:
		log.Warn("look at a held job; will look again", "err", err)
		_ = msg.NakWithDelay(max(d.cfg.Backoff, HoldLook))
	}
}

// release routes a held job that has not ended, once it gets a slot.
func (d *Dispatcher) release(ctx context.Context, work *schema.Work, held []byte, log *slog.Logger) error {
	key := work.Job.ID
	// Cheap first: a cancelled held job's last event is its terminal one.
	if last, err := d.events.Find(ctx, key, ""); err != nil {
		return err
	} else if last != nil && schema.IsTerminal(last.Type) {
		return errEnded
	}
	tenant, _, _ := schema.SplitJobKey(key)
	rec, err := d.tenant(ctx, &work.Job, tenant)
	var rej *rejection
	switch {
	case errors.As(err, &rej):
		// Removed since it was held (brig tenant rm): it ends here; a
		// removed tenant's jobs must not run, least of all with no limit.
		return d.endRemoved(ctx, work, tenant, log)
	case err != nil:
		return err
	}
	if rec.MaxRunning > 0 {
		if err := d.takeSlot(ctx, rec, key, work.AcceptedAt); err != nil {
			return err
		}
	}
	return d.route(ctx, d.reissue(ctx, work, held, log), log)
}

// reissue is the Work message of a held job, its credential minted again
// now: the job waited for its slot, not in its pool's queue, so its
// QueueAllowance starts when it is routed. The held credential must verify
// and match the Work (job, function, scopes) first, so that only what a
// dispatcher signed is signed again; otherwise, or when the new message
// would not fit, the held bytes go as they are.
func (d *Dispatcher) reissue(ctx context.Context, work *schema.Work, held []byte, log *slog.Logger) *nats.Msg {
	out := &nats.Msg{Subject: schema.WorkSubject(work.Spec.Pool), Data: held, Header: nats.Header{}}
	out.Header.Set(jetstream.MsgIDHeader, work.Job.ID)
	claims, err := token.Verify(work.Token, d.held.ring.Func(ctx), work.AcceptedAt)
	if err != nil || claims.JobID != work.Job.ID || claims.Function != work.Spec.Function || !slices.Equal(claims.Scopes, work.Spec.Scopes) {
		log.Warn("a held job's credential does not match its Work; routed as it was", "err", err)
		return out
	}
	fresh := *work
	if fresh.Token, err = d.mint(work.Job.ID, &work.Spec, time.Now().UTC()); err != nil {
		return out
	}
	data, err := schema.Marshal(&fresh)
	if err != nil {
		return out
	}
	out.Data = data
	if limit, _ := d.workLimit(); out.Size()-len(out.Subject) > limit {
		out.Data = held
	}
	return out
}

// endRemoved ends a held job whose tenant was removed while it waited: a
// terminal error (NotFound) instead of a run, so removing a tenant never
// releases its held jobs with no limit left (docs/design.md §10.3).
func (d *Dispatcher) endRemoved(ctx context.Context, work *schema.Work, tenant string, log *slog.Logger) error {
	ev := &schema.Event{JobID: work.Job.ID, Type: schema.EventError, Status: schema.StatusRejected, ExitCode: -1,
		Error: &schema.ErrorInfo{Type: schema.ErrNotFound, Message: fmt.Sprintf("tenant %s was removed while the job waited for a running slot", tenant)}}
	if _, err := d.events.Publish(ctx, ev, work.Job.ReplyTo); err != nil {
		return err
	}
	log.Info("held job of a removed tenant ended", "tenant", tenant)
	return errEnded
}
