package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/sandbox"
	"github.com/brig-dev/brig/schema"
)

// terminalPublishBudget is how long a worker keeps trying to store a
// terminal event (the server may be electing a leader) before it hands the
// job back to JetStream, which runs it again. The event itself always fits
// (events.Fit): only brig's own failure gets here.
const terminalPublishBudget = 2 * time.Minute

// handle runs one delivery of a job and settles it with JetStream: ack only
// after the terminal event is stored; NakWithDelay on platform failures
// while the retry budget lasts; a terminal error event after it.
// releaseSlot hands the job's slot back early, for a job that runs no
// container. One job's walk, in this file's order: handle → execute
// (Sandboxes.Run, then the emitter's fromOutcome) → end (publishTerminal,
// ack).
func (w *Worker) handle(ctx context.Context, msg jetstream.Msg, releaseSlot func()) {
	meta, err := msg.Metadata()
	if err != nil {
		w.log.Error("work without metadata", "err", err)
		_ = msg.Term()
		return
	}
	attempt := int(meta.NumDelivered)
	work, err := schema.DecodeWork(msg.Data())
	if err != nil {
		w.rejectWork(ctx, msg, err)
		return
	}
	if work.Spec.Echo {
		w.quick <- struct{}{}
		defer func() { <-w.quick }()
		releaseSlot()
	}
	job := &work.Job
	log := w.log.With("job", job.ID, "attempt", attempt)
	// Tracked before the lookup: a cancellation that comes while the
	// worker looks is not lost (track).
	jobCtx, cancelJob := context.WithCancelCause(ctx)
	defer cancelJob(nil)
	defer w.track(job.ID, work.AcceptedAt, cancelJob)()
	done, err := w.endedAlready(ctx, job.ID, attempt)
	if err != nil {
		w.retry(msg, attempt, log, err)
		return
	}
	if done != nil {
		log.Info("job already ended; acking redelivery", "status", done.Status)
		_ = msg.Ack()
		return
	}

	stopProgress := w.keepAlive(msg)
	em := &emitter{w: w, job: job, attempt: attempt, seq: 1}
	ev, releaseSandbox, err := w.execute(jobCtx, work, em, log)
	defer releaseSandbox()
	stopProgress()
	var failure *jobFailure
	var sbFailure *sandbox.Failure
	switch {
	case err != nil && errors.Is(context.Cause(jobCtx), ErrCancelled):
		// Cancelled before the job had a sandbox: nothing ran to report.
		ev = em.terminal(schema.StatusCancelled, schema.ErrCancelled, cancelledMessage)
	case err == nil && retryable(ev) && attempt <= work.Spec.Retries:
		delay := w.cfg.Backoff << min(attempt-1, 6)
		log.Info("job failed; retrying as it asked", "status", ev.Status, "retries", work.Spec.Retries, "delay", delay)
		_ = msg.NakWithDelay(delay)
		return
	case err == nil:
	case errors.As(err, &failure):
		ev = em.terminal(failure.status, failure.errType, failure.msg)
	case errors.As(err, &sbFailure):
		ev = em.terminal(sbFailure.Status, sbFailure.ErrType, sbFailure.Message)
	case ctx.Err() != nil:
		log.Info("job interrupted by shutdown; handing it back")
		_ = msg.Nak()
		return
	case attempt < w.cfg.MaxDeliver+work.Spec.Retries:
		w.retry(msg, attempt, log, err)
		return
	default:
		ev = em.terminal(schema.StatusError, schema.ErrInfrastructure,
			fmt.Sprintf("brig could not run the job after %d attempts: %v", attempt, err))
	}
	ev.Trace = em.trace(work)
	w.end(ctx, msg, work, em, ev, attempt, log)
}

// execute runs the job and builds its terminal event. releaseSandbox
// removes the job's sandbox, or keeps it for the function's next job; call
// it once the terminal event is out.
func (w *Worker) execute(ctx context.Context, work *schema.Work, em *emitter, log *slog.Logger) (_ *schema.Event, releaseSandbox func(), _ error) {
	releaseSandbox = func() {}
	if err := w.checkCredential(ctx, work); err != nil {
		return nil, releaseSandbox, err
	}
	if work.Spec.Echo {
		return echo(work, em), releaseSandbox, nil
	}
	// The job's events go out off its context: a cancellation ends ctx the
	// moment it kills the container, and the output read until then (and
	// the numbers it was given) must still be stored before the terminal
	// event. Each publish is bounded by JetStream's own request timeout.
	evCtx := context.WithoutCancel(ctx)
	var refused refusals
	onDenied := func(ae schema.AuthError) {
		log.Info("denied a resource call", "resource", ae.Resource, "action", ae.Action, "reason", ae.Message)
		em.publish(evCtx, &schema.Event{Type: schema.EventAuthError, Resource: ae.Resource, Action: ae.Action, Message: ae.Message}, log)
	}
	onEgressDenied := func(d schema.EgressDenial) {
		log.Info("refused a connection", "host", d.Host, "port", d.Port, "reason", d.Reason)
		em.publish(evCtx, &schema.Event{Type: schema.EventEgressDenied, Host: d.Host, Port: d.Port, Reason: d.Reason, Message: d.Message}, log)
	}
	pump := newOutputPump(evCtx, em, log)
	defer pump.close()
	var start time.Time
	out, err := w.sandboxes.Run(ctx, &sandbox.Job{
		Work:    work,
		Binding: refused.binding(work, onDenied),
		OnStart: func(container string, kind schema.SandboxKind) {
			start = time.Now()
			em.startedAt(start)
			em.publish(ctx, &schema.Event{Type: schema.EventStarted, Worker: w.cfg.ID, Container: container, Sandbox: kind}, log)
		},
		OnOutput:       pump.add,
		OnEgressDenied: refused.onEgressDenied(onEgressDenied),
	})
	if err != nil {
		return nil, releaseSandbox, err
	}
	if out.Interrupted != nil && !errors.Is(out.Interrupted, ErrCancelled) {
		// The worker is stopping hard: no event, handle hands the job back.
		return nil, out.Release, fmt.Errorf("job %s interrupted: %w", work.Job.ID, out.Interrupted)
	}
	pump.close() // every output event goes out before the terminal one
	denied, deniedN := refused.authErrors()
	if deniedN > schema.MaxAuthErrorEvents {
		em.publish(ctx, &schema.Event{Type: schema.EventAuthError, AuthErrorCount: deniedN, Message: fmt.Sprintf(
			"%d resource calls denied in all; the first %d were reported one by one", deniedN, schema.MaxAuthErrorEvents)}, log)
	}
	refusedEgress, refusedEgressN, refusedEgressAll := refused.egressDenials()
	if !refusedEgressAll {
		em.publish(ctx, &schema.Event{Type: schema.EventEgressDenied, EgressDeniedCount: refusedEgressN, Message: fmt.Sprintf(
			"%d connections or DNS queries refused in all; the first %d distinct refusals were reported one by one", refusedEgressN, schema.MaxEgressDeniedEvents)}, log)
	}
	ev := em.fromOutcome(out, work.Spec)
	if ev.DurationMS == 0 {
		ev.DurationMS = time.Since(start).Milliseconds()
	}
	blameEgress(ev, refusedEgress, refusedEgressN)
	blameQuota(ev, refused.quotaError())
	blameDenials(ev, denied, deniedN)
	return ev, out.Release, nil
}

// echo is the whole run of a queue-only job: no container, no started
// event; stdout is the job's stdin (within its output cap), output its args.
func echo(work *schema.Work, em *emitter) *schema.Event {
	ev := em.next(&schema.Event{Type: schema.EventResult, Status: schema.StatusSucceeded})
	ev.Stdout = work.Job.Stdin
	if limit := work.Spec.Limits.OutputBytes; int64(len(ev.Stdout)) > limit {
		cut := []byte(ev.Stdout[:limit])
		ev.Stdout, ev.StdoutTruncated = string(cut[:wholeRunes(cut)]), true
	}
	if args := bytes.TrimSpace(work.Job.Args); len(args) > 0 && !bytes.Equal(args, []byte("null")) {
		ev.Output = args
	}
	return ev
}

// end stores the job's terminal event, then acks its work; should the
// event not be stored, the job goes back for a retry.
func (w *Worker) end(ctx context.Context, msg jetstream.Msg, work *schema.Work, em *emitter, ev *schema.Event, attempt int, log *slog.Logger) {
	if err := w.publishTerminal(ctx, msg, em, ev); err != nil {
		w.retry(msg, attempt, log, err)
		return
	}
	// A plain ack, not waited on: one lost (a reconnect) has the job
	// redelivered after AckWait, and the worker that takes it finds the
	// terminal event and acks it unrun (endedAlready; docs/design.md §6).
	if err := msg.Ack(); err != nil {
		log.Warn("ack job", "err", err)
	}
	var run time.Duration
	if !ev.Trace.Started.IsZero() {
		run = ev.Trace.Finished.Sub(ev.Trace.Started)
	}
	w.cfg.Metrics.JobEnded(work.Spec.Pool, ev.Status, run, ev.Trace.Finished.Sub(ev.Trace.Queued))
	log.Info("job ended", "status", ev.Status, "exit_code", ev.ExitCode, "duration_ms", ev.DurationMS,
		"queued_ms", ev.Trace.Dispatched.Sub(ev.Trace.Queued).Milliseconds(), "total_ms", ev.Trace.Finished.Sub(ev.Trace.Queued).Milliseconds())
}

// publishTerminal stores the terminal event, retrying with backoff for up
// to terminalPublishBudget while telling JetStream the job is in hand. It
// gives up at once when the worker is being stopped hard (ctx) or its
// connection is closed: the job is then handed back.
func (w *Worker) publishTerminal(ctx context.Context, msg jetstream.Msg, em *emitter, ev *schema.Event) error {
	deadline := time.Now().Add(terminalPublishBudget)
	delay := 100 * time.Millisecond
	for {
		_, err := w.pub.Publish(context.WithoutCancel(ctx), ev, em.job.ReplyTo)
		if err == nil || time.Now().After(deadline) || w.cfg.Conn.IsClosed() {
			return err
		}
		w.log.Warn("store terminal event; will retry", "job", em.job.ID, "err", err, "delay", delay)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		_ = msg.InProgress()
		delay = min(2*delay, 5*time.Second)
	}
}

// endedAlready returns the job's terminal event if it has one. Before a
// job's first delivery only its dispatcher and a cancellation write its
// events, and a terminal one is then the last: one lookup of the last event
// suffices. After that, a worker racing a cancellation may have stored
// events behind the terminal one, so every terminal subject is looked up.
func (w *Worker) endedAlready(ctx context.Context, jobID string, attempt int) (*schema.Event, error) {
	if attempt > 1 {
		return w.pub.Terminal(ctx, jobID)
	}
	last, err := w.pub.Find(ctx, jobID, "")
	if err != nil || last == nil || !schema.IsTerminal(last.Type) {
		return nil, err
	}
	return last, nil
}

// retryable reports whether a job's own failure may be retried.
func retryable(ev *schema.Event) bool {
	switch ev.Status {
	case schema.StatusFailed, schema.StatusTimeout, schema.StatusOOM:
		return true
	}
	return false
}

// retry hands the job back after brig's own failure, to come again after
// a backoff that doubles per attempt.
func (w *Worker) retry(msg jetstream.Msg, attempt int, log *slog.Logger, err error) {
	delay := w.cfg.Backoff << min(attempt-1, 6)
	log.Warn("job failed on the platform; will retry", "err", err, "delay", delay)
	_ = msg.NakWithDelay(delay)
}

// keepAlive tells JetStream the job is still being worked on.
func (w *Worker) keepAlive(msg jetstream.Msg) (stop func()) {
	t := time.NewTicker(w.cfg.AckWait / 3)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-t.C:
				_ = msg.InProgress()
			case <-done:
				return
			}
		}
	}()
	return func() { t.Stop(); close(done) }
}

// rejectWork ends a work message that cannot be decoded.
func (w *Worker) rejectWork(ctx context.Context, msg jetstream.Msg, cause error) {
	var peek struct {
		Job struct {
			ID      string `json:"id"`
			ReplyTo string `json:"reply_to"`
		} `json:"job"`
	}
	_ = json.Unmarshal(msg.Data(), &peek)
	key := peek.Job.ID // a work message names its job by its key
	if !schema.ValidJobKey(key) {
		if h := msg.Headers().Get(jetstream.MsgIDHeader); schema.ValidJobKey(h) {
			key, peek.Job.ReplyTo = h, ""
		} else {
			w.log.Error("dropping undecodable work with no usable job key", "err", cause)
			_ = msg.Term()
			return
		}
	}
	tenant, id, _ := schema.SplitJobKey(key)
	job := &schema.Job{ID: id, Function: "x", ReplyTo: peek.Job.ReplyTo}
	if job.Validate() != nil || !schema.ReplyToAllowed(tenant, key, job.ReplyTo) {
		job.ReplyTo = "" // not a subject brig may publish to
	}
	job.ID = key
	em := &emitter{w: w, job: job, attempt: 1, seq: 1}
	ev := em.terminal(schema.StatusRejected, schema.ErrInvalidJob, fmt.Sprintf("invalid work message: %v", cause))
	if err := w.publishTerminal(ctx, msg, em, ev); err != nil {
		_ = msg.NakWithDelay(w.cfg.Backoff)
		return
	}
	_ = msg.Term()
}
