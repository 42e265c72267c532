package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/events"
	"github.com/brig-dev/brig/internal/gateway"
	"github.com/brig-dev/brig/internal/initproto"
	"github.com/brig-dev/brig/internal/natstest"
	"github.com/brig-dev/brig/internal/sandbox"
	"github.com/brig-dev/brig/schema"
)

// These tests run a real Worker on embedded NATS, with fake Sandboxes in
// place of Docker: what a job's sandbox does is each test's to say.

// fakeSandboxes runs jobs as run says, and records them.
type fakeSandboxes struct {
	run   func(ctx context.Context, job *sandbox.Job) (*sandbox.Outcome, error)
	calls chan *sandbox.Job // every Run, in order

	mu      sync.Mutex
	stopped bool
}

func newFakeSandboxes(run func(context.Context, *sandbox.Job) (*sandbox.Outcome, error)) *fakeSandboxes {
	return &fakeSandboxes{run: run, calls: make(chan *sandbox.Job, 64)}
}

func (f *fakeSandboxes) Run(ctx context.Context, job *sandbox.Job) (*sandbox.Outcome, error) {
	f.calls <- job
	return f.run(ctx, job)
}

func (f *fakeSandboxes) Sizes() (int, int) { return 0, 0 }

func (f *fakeSandboxes) Stop(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped = true
	return nil
}

// ran is a sandbox's side of a job that ran: it announces a cold start in
// container c1, then ended does the rest.
func ran(job *sandbox.Job, exit *initproto.Exit, stdout string) *sandbox.Outcome {
	job.OnStart("c1", schema.SandboxCold)
	return ended(job, exit, stdout)
}

// ended is the end of a job that started: it streams stdout and reports
// exit.
func ended(job *sandbox.Job, exit *initproto.Exit, stdout string) *sandbox.Outcome {
	out := &sandbox.Outcome{Exit: exit, Container: "c1", Release: func() {},
		Stdout: sandbox.NewCapture(job.Work.Spec.Limits.OutputBytes), Stderr: sandbox.NewCapture(job.Work.Spec.Limits.OutputBytes),
		InitLog: sandbox.NewCapture(1 << 10)}
	if stdout != "" {
		job.OnOutput(schema.StreamStdout, out.Stdout.Add([]byte(stdout)))
	}
	return out
}

// exited is ran with an exit code and nothing else.
func exited(job *sandbox.Job, code int) *sandbox.Outcome {
	return ran(job, &initproto.Exit{ExitCode: code}, "")
}

// unitRig is a started Worker whose jobs the rig publishes as a dispatcher
// would, with the tokens of a key it published.
type unitRig struct {
	t    *testing.T
	nc   *nats.Conn
	js   jetstream.JetStream
	keys *natstest.Keys
	sb   *fakeSandboxes
	w    *Worker
}

func newUnitRig(t *testing.T, sb *fakeSandboxes, tune func(*Config)) *unitRig {
	t.Helper()
	_, nc, js := natstest.Start(t)
	keys := natstest.PublishKeys(t, js)
	cfg := Config{
		Conn: nc, ID: "unit", Slots: 2, Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
		PollWait: 100 * time.Millisecond, Backoff: 10 * time.Millisecond, MaxDeliver: 2,
		RuntimeDir: t.TempDir(),
	}
	if tune != nil {
		tune(&cfg)
	}
	w, err := newWorker(cfg, func(context.Context) (Sandboxes, error) { return sb, nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.Stop(context.Background()); err != nil {
			t.Errorf("stop: %v", err)
		}
		sb.mu.Lock()
		defer sb.mu.Unlock()
		if !sb.stopped {
			t.Error("the worker stopped without stopping its sandboxes")
		}
	})
	return &unitRig{t: t, nc: nc, js: js, keys: keys, sb: sb, w: w}
}

// work is a python job of the default tenant, as a dispatcher routes it.
func (r *unitRig) work(id string) *schema.Work {
	key := schema.JobKey(schema.DefaultTenant, id)
	now := time.Now().UTC()
	fn := schema.Python()
	return &schema.Work{
		Version: schema.Version,
		Job:     schema.Job{ID: key, Function: fn.Name, Code: "print(1)"},
		Spec: schema.RunSpec{
			Function: fn.Name, Image: fn.Image, Command: fn.Command, CodeFile: "main.py", Pool: schema.DefaultPool,
			TimeoutMS: 30_000, Runtime: schema.RuntimeRunc, SingleUse: true, Restricted: true,
			Limits: schema.Limits{MemoryMB: 256, CPUs: 1, Pids: 128, OutputBytes: 1 << 10},
		},
		Token:       r.keys.Mint(key),
		AcceptedAt:  now,
		SubmittedAt: now,
	}
}

// publish routes work to its pool, as a dispatcher does.
func (r *unitRig) publish(work *schema.Work) {
	r.t.Helper()
	data, err := schema.Marshal(work)
	if err != nil {
		r.t.Fatal(err)
	}
	r.publishRaw(work.Job.ID, data)
}

func (r *unitRig) publishRaw(msgID string, data []byte) {
	r.t.Helper()
	msg := &nats.Msg{Subject: schema.WorkSubject(schema.DefaultPool), Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, msgID)
	if _, err := r.js.PublishMsg(r.t.Context(), msg); err != nil {
		r.t.Fatal(err)
	}
}

// eventTap hears a job's events as they are published.
type eventTap struct {
	t   *testing.T
	key string
	ch  chan *nats.Msg
}

// tap subscribes to key's events; call it before the job is published.
func (r *unitRig) tap(key string) *eventTap {
	r.t.Helper()
	ch := make(chan *nats.Msg, 512)
	sub, err := r.nc.ChanSubscribe(schema.EventsFilter(key), ch)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := r.nc.Flush(); err != nil {
		r.t.Fatal(err)
	}
	return &eventTap{t: r.t, key: key, ch: ch}
}

// next returns the job's next event, of type typ.
func (e *eventTap) next(typ schema.EventType) *schema.Event {
	e.t.Helper()
	select {
	case m := <-e.ch:
		ev, err := schema.DecodeEvent(m.Data)
		if err != nil {
			e.t.Fatalf("undecodable event on %s: %v", m.Subject, err)
		}
		if ev.Type != typ || ev.JobID != e.key {
			e.t.Fatalf("event %s of %s (seq %d, status %q, error %+v); want %s of %s", ev.Type, ev.JobID, ev.Seq, ev.Status, ev.Error, typ, e.key)
		}
		return ev
	case <-time.After(10 * time.Second):
		e.t.Fatalf("no %s event of %s", typ, e.key)
		return nil
	}
}

// wantSeq checks an event's attempt and sequence number.
func wantSeq(t *testing.T, ev *schema.Event, attempt int, seq int64) {
	t.Helper()
	if ev.Attempt != attempt || ev.Seq != seq {
		t.Errorf("%s event: attempt %d, seq %d; want %d, %d", ev.Type, ev.Attempt, ev.Seq, attempt, seq)
	}
}

// wantError checks a terminal event's status and error type.
func wantError(t *testing.T, ev *schema.Event, status schema.Status, errType schema.ErrorType) {
	t.Helper()
	var got schema.ErrorType
	if ev.Error != nil {
		got = ev.Error.Type
	}
	if ev.Status != status || got != errType {
		t.Errorf("terminal: status %q, error %+v; want %q, %q", ev.Status, ev.Error, status, errType)
	}
}

// settled waits until no work is left in BRIG_WORK: every message acked
// (or terminated), none to be delivered again.
func (r *unitRig) settled() {
	r.t.Helper()
	stream, err := r.js.Stream(r.t.Context(), schema.StreamWork)
	if err != nil {
		r.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := stream.Info(r.t.Context())
		if err != nil {
			r.t.Fatal(err)
		}
		if info.State.Msgs == 0 {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%d work messages still in %s", info.State.Msgs, schema.StreamWork)
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-r.t.Context().Done():
			r.t.Fatal(r.t.Context().Err())
		}
	}
}

// stored counts the events stored for key.
func (r *unitRig) stored(key string) uint64 {
	r.t.Helper()
	stream, err := r.js.Stream(r.t.Context(), schema.StreamEvents)
	if err != nil {
		r.t.Fatal(err)
	}
	info, err := stream.Info(r.t.Context(), jetstream.WithSubjectFilter(schema.EventsFilter(key)))
	if err != nil {
		r.t.Fatal(err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}

// calls is how many jobs the sandboxes were given.
func (r *unitRig) calls() int { return len(r.sb.calls) }

// A job that succeeds: started, output and result events numbered from 2,
// the sandbox released only once the terminal event is stored, then the
// work acked.
func TestJobSucceeds(t *testing.T) {
	t.Parallel()
	var r *unitRig
	released := make(chan *schema.Event, 1)
	r = newUnitRig(t, newFakeSandboxes(func(ctx context.Context, job *sandbox.Job) (*sandbox.Outcome, error) {
		out := ran(job, &initproto.Exit{ExitCode: 0, Result: []byte(`{"a":1}`), DurationNS: 5e6}, "hello\n")
		out.Release = func() {
			ev, err := events.NewLog(r.nc, r.js, nil).Terminal(context.Background(), job.Work.Job.ID)
			if err != nil {
				t.Error(err)
			}
			released <- ev
		}
		return out, nil
	}), nil)
	work := r.work("ok")
	events := r.tap(work.Job.ID)
	r.publish(work)

	started := events.next(schema.EventStarted)
	wantSeq(t, started, 1, 2)
	if started.Worker != "unit" || started.Container != "c1" || started.Sandbox != schema.SandboxCold || started.ExitCode != -1 {
		t.Errorf("started: worker %q, container %q, sandbox %q, exit code %d", started.Worker, started.Container, started.Sandbox, started.ExitCode)
	}
	output := events.next(schema.EventOutput)
	wantSeq(t, output, 1, 3)
	if output.Stream != schema.StreamStdout || output.Data != "hello\n" {
		t.Errorf("output: %s %q", output.Stream, output.Data)
	}
	result := events.next(schema.EventResult)
	wantSeq(t, result, 1, 4)
	wantError(t, result, schema.StatusSucceeded, "")
	if result.ExitCode != 0 || result.Stdout != "hello\n" || string(result.Output) != `{"a":1}` || result.DurationMS != 5 {
		t.Errorf("result: exit %d, stdout %q, output %s, duration %d ms", result.ExitCode, result.Stdout, result.Output, result.DurationMS)
	}
	if result.Trace == nil || result.Trace.Started.IsZero() || result.Trace.Finished.Before(result.Trace.Started) {
		t.Errorf("result trace %+v", result.Trace)
	}
	select {
	case ev := <-released:
		if ev == nil || ev.Type != schema.EventResult {
			t.Errorf("sandbox released before the terminal event was stored (found %+v)", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sandbox never released")
	}
	r.settled()
	if got := r.sb.calls; len(got) != 1 {
		t.Errorf("%d runs, want 1", len(got))
	}
	if job := <-r.sb.calls; job.Binding.JobID != work.Job.ID {
		t.Errorf("gateway binding for %q, want the job's key %q", job.Binding.JobID, work.Job.ID)
	}
}

// A job that fails and asked for retries runs again after a delay, and
// its last failure is its end.
func TestJobRetriesItsOwnFailure(t *testing.T) {
	t.Parallel()
	const backoff = 300 * time.Millisecond
	var mu sync.Mutex
	var at []time.Time
	r := newUnitRig(t, newFakeSandboxes(func(ctx context.Context, job *sandbox.Job) (*sandbox.Outcome, error) {
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
		return exited(job, 3), nil
	}), func(c *Config) { c.Backoff = backoff })
	work := r.work("flaky")
	work.Spec.Retries = 1
	events := r.tap(work.Job.ID)
	r.publish(work)

	wantSeq(t, events.next(schema.EventStarted), 1, 2)
	wantSeq(t, events.next(schema.EventStarted), 2, 2)
	end := events.next(schema.EventResult)
	wantSeq(t, end, 2, 3)
	wantError(t, end, schema.StatusFailed, schema.ErrNonZeroExit)
	if end.ExitCode != 3 {
		t.Errorf("exit code %d, want 3", end.ExitCode)
	}
	r.settled()
	mu.Lock()
	defer mu.Unlock()
	if len(at) != 2 {
		t.Fatalf("%d runs, want 2", len(at))
	}
	if gap := at[1].Sub(at[0]); gap < backoff {
		t.Errorf("retried after %s, want the backoff of %s at least", gap, backoff)
	}
}

// brig's own failure is retried up to MaxDeliver times, then ends the job
// as Infrastructure.
func TestJobPlatformFailure(t *testing.T) {
	t.Parallel()
	r := newUnitRig(t, newFakeSandboxes(func(context.Context, *sandbox.Job) (*sandbox.Outcome, error) {
		return nil, errors.New("create container: the daemon is down")
	}), nil)
	work := r.work("down")
	events := r.tap(work.Job.ID)
	r.publish(work)

	end := events.next(schema.EventError)
	wantSeq(t, end, 2, 2)
	wantError(t, end, schema.StatusError, schema.ErrInfrastructure)
	if !strings.Contains(end.Error.Message, "after 2 attempts") || !strings.Contains(end.Error.Message, "the daemon is down") {
		t.Errorf("message %q", end.Error.Message)
	}
	r.settled()
	if n := r.calls(); n != 2 {
		t.Errorf("%d runs, want MaxDeliver (2)", n)
	}
}

// A *sandbox.Failure ends the job at once with its type: no retry fixes a
// missing image.
func TestJobSandboxFailure(t *testing.T) {
	t.Parallel()
	r := newUnitRig(t, newFakeSandboxes(func(context.Context, *sandbox.Job) (*sandbox.Outcome, error) {
		return nil, fmt.Errorf("create: %w", &sandbox.Failure{ErrType: schema.ErrNotFound, Status: schema.StatusError, Message: "image not found"})
	}), nil)
	work := r.work("noimage")
	events := r.tap(work.Job.ID)
	r.publish(work)

	end := events.next(schema.EventError)
	wantSeq(t, end, 1, 2)
	wantError(t, end, schema.StatusError, schema.ErrNotFound)
	if end.Error.Message != "image not found" {
		t.Errorf("message %q", end.Error.Message)
	}
	r.settled()
	if n := r.calls(); n != 1 {
		t.Errorf("%d runs, want 1", n)
	}
}

// brig.cancel.<key> interrupts the running job, which ends cancelled
// with what it had written (within output_bytes, truncation flagged) and
// its duration, as a timed-out job's event does; its sandbox is released
// only once that event is stored.
func TestJobCancelledWhileRunning(t *testing.T) {
	t.Parallel()
	var r *unitRig
	startedAt := make(chan time.Time, 1)
	released := make(chan *schema.Event, 1)
	r = newUnitRig(t, newFakeSandboxes(func(ctx context.Context, job *sandbox.Job) (*sandbox.Outcome, error) {
		startedAt <- time.Now()
		out := ran(job, nil, "so far\n")
		job.OnOutput(schema.StreamStderr, out.Stderr.Add([]byte(strings.Repeat("e", 2000)))) // over the 1 KiB cap
		<-ctx.Done()
		out.Interrupted = context.Cause(ctx) // what sandbox.Runner.Run returns
		out.Release = func() {
			ev, err := events.NewLog(r.nc, r.js, nil).Terminal(context.Background(), job.Work.Job.ID)
			if err != nil {
				t.Error(err)
			}
			released <- ev
		}
		return out, nil
	}), nil)
	work := r.work("long")
	events := r.tap(work.Job.ID)
	r.publish(work)

	events.next(schema.EventStarted)
	events.next(schema.EventOutput)
	events.next(schema.EventOutput)
	ran := time.Since(<-startedAt)
	if err := r.nc.Publish(schema.CancelSubject(work.Job.ID), nil); err != nil {
		t.Fatal(err)
	}
	end := events.next(schema.EventCancelled)
	wantSeq(t, end, 1, 5)
	wantError(t, end, schema.StatusCancelled, schema.ErrCancelled)
	if end.Stdout != "so far\n" || end.StdoutTruncated || end.Stderr != strings.Repeat("e", 1<<10) || !end.StderrTruncated {
		t.Errorf("cancelled: stdout %q (truncated %v), stderr of %d bytes (truncated %v); want what the job wrote, within output_bytes",
			end.Stdout, end.StdoutTruncated, len(end.Stderr), end.StderrTruncated)
	}
	if end.Trace == nil || end.DurationMS < ran.Milliseconds() || end.DurationMS > end.Trace.Finished.Sub(end.Trace.Started).Milliseconds() {
		t.Errorf("cancelled: duration %d ms, trace %+v; the job ran %s before the cancel", end.DurationMS, end.Trace, ran)
	}
	select {
	case ev := <-released:
		if ev == nil || ev.Type != schema.EventCancelled {
			t.Errorf("sandbox released before the terminal event was stored (found %+v)", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sandbox never released")
	}
	r.settled()
	if n := r.calls(); n != 1 {
		t.Errorf("%d runs, want 1", n)
	}
}

// A job cancelled while its sandbox is being made has nothing to report:
// it ends cancelled at once.
func TestJobCancelledBeforeItsSandbox(t *testing.T) {
	t.Parallel()
	r := newUnitRig(t, newFakeSandboxes(func(ctx context.Context, job *sandbox.Job) (*sandbox.Outcome, error) {
		<-ctx.Done()
		return nil, fmt.Errorf("create container for job %s: %w", job.Work.Job.ID, context.Cause(ctx))
	}), nil)
	work := r.work("making")
	events := r.tap(work.Job.ID)
	r.publish(work)

	<-r.sb.calls // tracked for cancellation before its Run
	if err := r.nc.Publish(schema.CancelSubject(work.Job.ID), nil); err != nil {
		t.Fatal(err)
	}
	end := events.next(schema.EventCancelled)
	wantSeq(t, end, 1, 2)
	wantError(t, end, schema.StatusCancelled, schema.ErrCancelled)
	if end.Stdout != "" || end.DurationMS != 0 {
		t.Errorf("cancelled: stdout %q, duration %d ms; want nothing: it never ran", end.Stdout, end.DurationMS)
	}
	r.settled()
}

// A worker stopping hard interrupts its running job (Run's Outcome is
// Interrupted, but not by a cancellation): the job is handed back to
// JetStream without a terminal event, and its sandbox is still released.
func TestJobInterruptedByShutdown(t *testing.T) {
	t.Parallel()
	released := make(chan struct{}, 1)
	r := newUnitRig(t, newFakeSandboxes(func(ctx context.Context, job *sandbox.Job) (*sandbox.Outcome, error) {
		out := ran(job, nil, "so far\n")
		<-ctx.Done()
		out.Interrupted = context.Cause(ctx)
		out.Release = func() { released <- struct{}{} }
		return out, nil
	}), nil)
	work := r.work("stopped")
	tap := r.tap(work.Job.ID)
	r.publish(work)

	tap.next(schema.EventStarted)
	tap.next(schema.EventOutput)
	past, cancel := context.WithCancel(t.Context())
	cancel() // no grace: interrupt at once
	if err := r.w.Stop(past); err != nil {
		t.Fatal(err)
	}
	select {
	case <-released:
	default:
		t.Error("the interrupted job's sandbox was not released")
	}
	if ev, err := events.NewLog(r.nc, r.js, nil).Terminal(t.Context(), work.Job.ID); err != nil || ev != nil {
		t.Errorf("terminal event %+v (%v); want none: the job goes back to JetStream", ev, err)
	}
	stream, err := r.js.Stream(t.Context(), schema.StreamWork)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := stream.Info(t.Context()); err != nil || info.State.Msgs != 1 {
		t.Errorf("work stream: %+v (%v); want the job's message kept for another worker", info, err)
	}
}

// An echo job runs no sandbox: its stdin is its stdout, its args its
// output.
func TestEchoJob(t *testing.T) {
	t.Parallel()
	r := newUnitRig(t, newFakeSandboxes(func(context.Context, *sandbox.Job) (*sandbox.Outcome, error) {
		return nil, errors.New("an echo job must not run a sandbox")
	}), nil)
	work := r.work("echo")
	work.Spec.Echo = true
	work.Job.Stdin, work.Job.Args = "ping", json.RawMessage(`{"a":[1]}`)
	events := r.tap(work.Job.ID)
	r.publish(work)

	end := events.next(schema.EventResult)
	wantSeq(t, end, 1, 2)
	wantError(t, end, schema.StatusSucceeded, "")
	if end.Stdout != "ping" || string(end.Output) != `{"a":[1]}` {
		t.Errorf("stdout %q, output %s", end.Stdout, end.Output)
	}
	r.settled()
	if n := r.calls(); n != 0 {
		t.Errorf("%d runs, want none", n)
	}
}

// Work that does not decode is rejected under the key its message id
// names, and never run.
func TestUndecodableWorkRejected(t *testing.T) {
	t.Parallel()
	r := newUnitRig(t, newFakeSandboxes(func(context.Context, *sandbox.Job) (*sandbox.Outcome, error) {
		return nil, errors.New("undecodable work must not run")
	}), nil)
	key := schema.JobKey(schema.DefaultTenant, "garbled")
	events := r.tap(key)
	r.publishRaw(key, []byte(`{"version":1,"job":{"id":"`+key+`"},"surprise":true}`))

	end := events.next(schema.EventError)
	wantSeq(t, end, 1, 2)
	wantError(t, end, schema.StatusRejected, schema.ErrInvalidJob)
	r.settled()
	if n := r.calls(); n != 0 {
		t.Errorf("%d runs, want none", n)
	}
}

// A job delivered again after it ended (here: cancelled while queued) is
// acked without running and without another event.
func TestEndedJobRedelivered(t *testing.T) {
	t.Parallel()
	r := newUnitRig(t, newFakeSandboxes(func(context.Context, *sandbox.Job) (*sandbox.Outcome, error) {
		return nil, errors.New("an ended job must not run again")
	}), nil)
	work := r.work("ended")
	end := &schema.Event{JobID: work.Job.ID, Type: schema.EventCancelled, Seq: 2, Status: schema.StatusCancelled, ExitCode: -1,
		Error: &schema.ErrorInfo{Type: schema.ErrCancelled, Message: "cancelled while queued"}}
	if _, err := events.NewLog(r.nc, r.js, nil).Publish(t.Context(), end, ""); err != nil {
		t.Fatal(err)
	}
	r.publish(work)
	r.settled()
	if n := r.calls(); n != 0 {
		t.Errorf("%d runs, want none", n)
	}
	if n := r.stored(work.Job.ID); n != 1 {
		t.Errorf("%d events stored, want only the terminal one", n)
	}
}

// Denied gateway calls are published as auth_error events, the first
// schema.MaxAuthErrorEvents one by one and then a summary, and a job
// that then fails is blamed on them.
func TestDenialsBlameFailedJob(t *testing.T) {
	t.Parallel()
	const denials = schema.MaxAuthErrorEvents + 5
	r := newUnitRig(t, newFakeSandboxes(func(ctx context.Context, job *sandbox.Job) (*sandbox.Outcome, error) {
		job.OnStart("c1", schema.SandboxCold)
		for i := range denials {
			job.Binding.OnDenied(schema.AuthError{Resource: fmt.Sprintf("dict:d%d", i), Action: "write", Message: "not granted"})
		}
		job.Binding.OnQuotaExceeded(&gateway.Error{Type: string(schema.ErrQuotaExceeded), Message: "dict is full"})
		return ended(job, &initproto.Exit{ExitCode: 1}, ""), nil
	}), nil)
	work := r.work("denied")
	events := r.tap(work.Job.ID)
	r.publish(work)

	events.next(schema.EventStarted)
	for i := range schema.MaxAuthErrorEvents {
		ev := events.next(schema.EventAuthError)
		wantSeq(t, ev, 1, int64(3+i))
		if want := fmt.Sprintf("dict:d%d", i); ev.Resource != want || ev.Action != "write" {
			t.Fatalf("auth_error %d: %s %s, want %s write", i, ev.Resource, ev.Action, want)
		}
	}
	summary := events.next(schema.EventAuthError)
	if summary.AuthErrorCount != denials {
		t.Errorf("summary counts %d denials, want %d", summary.AuthErrorCount, denials)
	}
	end := events.next(schema.EventResult)
	wantError(t, end, schema.StatusFailed, schema.ErrAuthError)
	if end.AuthErrorCount != denials || len(end.AuthErrors) != schema.MaxTerminalAuthErrors || end.AuthErrors[0].Resource != "dict:d0" {
		t.Errorf("terminal: %d denials, %d listed (first %+v)", end.AuthErrorCount, len(end.AuthErrors), end.AuthErrors)
	}
	r.settled()
}

// A job that fails after a call was refused for a quota, with no denial,
// is blamed on the quota.
func TestQuotaBlamesFailedJob(t *testing.T) {
	t.Parallel()
	r := newUnitRig(t, newFakeSandboxes(func(ctx context.Context, job *sandbox.Job) (*sandbox.Outcome, error) {
		job.Binding.OnQuotaExceeded(&gateway.Error{Type: string(schema.ErrQuotaExceeded), Message: "dict d is full"})
		return exited(job, 1), nil
	}), nil)
	work := r.work("quota")
	events := r.tap(work.Job.ID)
	r.publish(work)

	events.next(schema.EventStarted)
	end := events.next(schema.EventResult)
	wantError(t, end, schema.StatusFailed, schema.ErrQuotaExceeded)
	if !strings.Contains(end.Error.Message, "dict d is full") {
		t.Errorf("message %q", end.Error.Message)
	}
	r.settled()
}

// The worker runs only jobs whose credential a dispatcher minted for them
// and that has not expired.
func TestJobCredential(t *testing.T) {
	t.Parallel()
	r := newUnitRig(t, newFakeSandboxes(func(context.Context, *sandbox.Job) (*sandbox.Outcome, error) {
		return nil, errors.New("a job without a valid credential must not run")
	}), nil)
	for _, tt := range []struct {
		id      string
		status  schema.Status
		errType schema.ErrorType
		token   func(key string) string
	}{
		{"expired", schema.StatusTimeout, schema.ErrTimeout, func(key string) string { return r.keys.MintUntil(key, time.Now().Add(-time.Second)) }},
		{"others", schema.StatusError, schema.ErrInfrastructure, func(string) string { return r.keys.Mint("default.other") }},
		{"forged", schema.StatusError, schema.ErrInfrastructure, func(key string) string { return r.keys.Mint(key) + "x" }},
	} {
		work := r.work(tt.id)
		work.Token = tt.token(work.Job.ID)
		events := r.tap(work.Job.ID)
		r.publish(work)
		end := events.next(schema.TerminalType(tt.status))
		wantError(t, end, tt.status, tt.errType)
	}
	r.settled()
	if n := r.calls(); n != 0 {
		t.Errorf("%d runs, want none", n)
	}
}

// A cancellation heard before the worker picks its job up (the job was
// on its way from the stream) cancels the job as it starts: it never runs.
// Before track kept such cancellations, one that came in the window
// between the fetch and the job's registration was lost, and the job ran
// in full after its client was told it was cancelled.
func TestJobCancelledBeforePickup(t *testing.T) {
	t.Parallel()
	r := newUnitRig(t, newFakeSandboxes(func(ctx context.Context, job *sandbox.Job) (*sandbox.Outcome, error) {
		if err := context.Cause(ctx); err != nil {
			return nil, fmt.Errorf("create container for job %s: %w", job.Work.Job.ID, err)
		}
		t.Errorf("job %s ran although its cancellation came first", job.Work.Job.ID)
		return exited(job, 0), nil
	}), nil)
	work := r.work("early-cancel")
	events := r.tap(work.Job.ID)
	if err := r.nc.Publish(schema.CancelSubject(work.Job.ID), nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !r.w.heardCancel(work.Job.ID) {
		if time.Now().After(deadline) {
			t.Fatal("the worker did not keep the cancellation of a job it does not run")
		}
		time.Sleep(10 * time.Millisecond) // poll with a deadline
	}
	r.publish(work)
	end := events.next(schema.EventCancelled)
	wantError(t, end, schema.StatusCancelled, schema.ErrCancelled)
	r.settled()
	if r.w.heardCancel(work.Job.ID) {
		t.Error("the kept cancellation outlived the job it cancelled")
	}
}

// A cancellation of an id brig did not know yet (answered NotFound, and
// kept by the worker all the same) never touches a job of that id accepted
// after it: the job runs.
func TestCancelOfUnknownIDSparesLaterJob(t *testing.T) {
	t.Parallel()
	r := newUnitRig(t, newFakeSandboxes(func(ctx context.Context, job *sandbox.Job) (*sandbox.Outcome, error) {
		if err := context.Cause(ctx); err != nil {
			return nil, fmt.Errorf("create container for job %s: %w", job.Work.Job.ID, err)
		}
		return exited(job, 0), nil
	}), nil)
	key := schema.JobKey(schema.DefaultTenant, "typo")
	if err := r.nc.Publish(schema.CancelSubject(key), nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !r.w.heardCancel(key) {
		if time.Now().After(deadline) {
			t.Fatal("the worker did not keep the cancellation of a job it does not run")
		}
		time.Sleep(10 * time.Millisecond) // poll with a deadline
	}
	work := r.work("typo") // accepted now, after the cancellation
	events := r.tap(work.Job.ID)
	r.publish(work)
	events.next(schema.EventStarted)
	end := events.next(schema.EventResult)
	if end.Status != schema.StatusSucceeded {
		t.Errorf("the later job ended %s (%v); want succeeded: the cancellation came before brig knew it", end.Status, end.Error)
	}
	r.settled()
}

// keepUnclaimed stays within maxUnclaimed: expired cancellations go
// first, then the oldest.
func TestKeepUnclaimedBounded(t *testing.T) {
	t.Parallel()
	w := &Worker{unclaimed: map[string]time.Time{}}
	now := time.Now()
	w.keepUnclaimed("expired", now.Add(-2*unclaimedFor))
	w.keepUnclaimed("oldest", now.Add(-time.Second))
	for i := range maxUnclaimed - 2 {
		w.keepUnclaimed(fmt.Sprintf("k%d", i), now)
	}
	w.keepUnclaimed("new", now) // full: the expired one goes
	if _, ok := w.unclaimed["expired"]; ok || len(w.unclaimed) != maxUnclaimed {
		t.Fatalf("%d kept, expired kept %v; want %d and the expired one gone", len(w.unclaimed), ok, maxUnclaimed)
	}
	w.keepUnclaimed("newer", now) // full, none expired: the oldest goes
	if _, ok := w.unclaimed["oldest"]; ok || len(w.unclaimed) != maxUnclaimed {
		t.Fatalf("%d kept, oldest kept %v; want %d and the oldest one gone", len(w.unclaimed), ok, maxUnclaimed)
	}
}

// heardCancel reports whether a cancellation of jobID is kept for a job
// not running here (tests).
func (w *Worker) heardCancel(jobID string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.unclaimed[jobID]
	return ok
}

// A sandbox killed with SIGKILL under gVisor may have run out of memory
// (the kernel ended the whole sandbox): the message says so there, and
// only there.
func TestInitKilledMessage(t *testing.T) {
	t.Parallel()
	const oom = "ran out of memory"
	if m := initKilledMessage(137, schema.RuntimeRunsc); !strings.Contains(m, oom) {
		t.Errorf("runsc, 137: %q; want it to say the sandbox may have %s", m, oom)
	}
	for _, c := range []struct {
		code    int
		runtime string
	}{{137, schema.RuntimeRunc}, {134, schema.RuntimeRunsc}} {
		if m := initKilledMessage(c.code, c.runtime); strings.Contains(m, oom) {
			t.Errorf("%s, %d: %q; want no word of memory", c.runtime, c.code, m)
		}
	}
}
