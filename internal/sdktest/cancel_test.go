package sdktest

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/internal/natstest"
	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// ran is what a Run returned.
type ran struct {
	ev  *schema.Event
	err error
}

// runUntilRouted runs job on c, cancels the Run's context once the
// dispatcher has routed the job (it is accepted and waits for its
// worker), and returns what Run returned.
func runUntilRouted(t *testing.T, f *fakeBrig, c *sdk.Client, job schema.Job) ran {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan ran, 1)
	go func() {
		ev, err := c.Run(ctx, job)
		done <- ran{ev, err}
	}()
	f.next()
	cancel()
	return <-done
}

// A client made WithCancelOnDone cancels a Run's job when the Run's
// context ends first, and returns the job's terminal event with an error
// matching both the context's error and ErrCancelled; a client made
// without it leaves the job to run on.
func TestRunCancelOnDone(t *testing.T) {
	f, nc := startFake(t)
	c, err := sdk.New(nc, sdk.WithCancelOnDone())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := runUntilRouted(t, f, c, schema.Job{ID: "cod-1", Function: "python", Code: "x"})
	if r.ev == nil || r.ev.Status != schema.StatusCancelled {
		t.Fatalf("Run = %+v, %v; want the cancelled terminal event", r.ev, r.err)
	}
	if !errors.Is(r.err, context.Canceled) || !errors.Is(r.err, sdk.ErrCancelled) {
		t.Errorf("Run's error %v matches not both context.Canceled and ErrCancelled", r.err)
	}

	plain, err := sdk.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	r = runUntilRouted(t, f, plain, schema.Job{ID: "cod-2", Function: "python", Code: "x"})
	if r.ev != nil || !errors.Is(r.err, context.Canceled) {
		t.Fatalf("Run without WithCancelOnDone = %+v, %v; want no event and context.Canceled", r.ev, r.err)
	}
	// The job was left alone: it is cancelled only now.
	if status, err := plain.Cancel(t.Context(), "cod-2"); err != nil || status != schema.StatusCancelled {
		t.Errorf("Cancel after a plain Run = %q, %v; want cancelled (the job still waited)", status, err)
	}
}

// Handle.Cancel ends a queued job; asked again once the job has ended, it
// answers with the job's status.
func TestHandleCancel(t *testing.T) {
	f, nc := startFake(t)
	c, err := sdk.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h, err := c.Submit(t.Context(), schema.Job{ID: "hc-1", Function: "python", Code: "x"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	f.next()
	if status, err := h.Cancel(t.Context()); err != nil || status != schema.StatusCancelled {
		t.Fatalf("Cancel = %q, %v; want cancelled", status, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), waitBudget)
	defer cancel()
	if ev, err := h.Result(ctx); ev == nil || ev.Status != schema.StatusCancelled || !errors.Is(err, sdk.ErrCancelled) {
		t.Fatalf("Result = %+v, %v; want cancelled", ev, err)
	}
	if status, err := h.Cancel(t.Context()); err != nil || status != schema.StatusCancelled {
		t.Errorf("Cancel of an ended job = %q, %v; want cancelled", status, err)
	}
}

// signalLog sends on said each record whose message contains its text.
type signalLog struct {
	slog.Handler
	text string
	said chan struct{}
}

func (l *signalLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *signalLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *signalLog) WithGroup(string) slog.Handler            { return l }

func (l *signalLog) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, l.text) {
		select {
		case l.said <- struct{}{}:
		default:
		}
	}
	return nil
}

// Handle.Cancel of a job brig has not taken yet (no dispatcher runs) asks
// again until a dispatcher has taken it, and then cancels it: the job
// never runs. Asked once, the cancellation would find no job and the job
// would run once a dispatcher took it.
func TestHandleCancelBeforeAccepted(t *testing.T) {
	_, nc, js := natstest.Start(t)
	f := newFake(t, nc, js) // no dispatcher yet
	log := &signalLog{Handler: slog.DiscardHandler, text: "cancel a job brig has not taken yet", said: make(chan struct{}, 1)}
	c, err := sdk.New(nc, sdk.WithLogger(slog.New(log)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h, err := c.Submit(t.Context(), schema.Job{ID: "hc-early", Function: "python", Code: "x"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	done := make(chan ran, 1)
	go func() {
		status, err := h.Cancel(t.Context())
		done <- ran{&schema.Event{Status: status}, err}
	}()
	select {
	case <-log.said: // the first answer: no dispatcher
	case r := <-done:
		t.Fatalf("Cancel with no dispatcher = %q, %v; want it to ask again", r.ev.Status, r.err)
	}
	f.startDispatcher()
	r := <-done
	if r.err != nil || r.ev.Status != schema.StatusCancelled {
		t.Fatalf("Cancel = %q, %v; want cancelled", r.ev.Status, r.err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), waitBudget)
	defer cancel()
	if ev, err := h.Result(ctx); ev == nil || ev.Status != schema.StatusCancelled || !errors.Is(err, sdk.ErrCancelled) {
		t.Fatalf("Result = %+v, %v; want cancelled", ev, err)
	}
}

// A dispatcher with too many cancellations in hand answers busy; Cancel
// returns an error matching ErrBusy.
func TestCancelBusy(t *testing.T) {
	t.Parallel()
	_, nc, _ := natstest.Start(t)
	sub, err := nc.Subscribe(schema.CancelPrefix+">", func(m *nats.Msg) {
		_ = m.Respond([]byte(`{"job_id":"default.j","error":"` + schema.BusyAnswer + `"}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	c, err := sdk.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Cancel(t.Context(), "j"); !errors.Is(err, sdk.ErrBusy) {
		t.Fatalf("Cancel answered busy: %v, want ErrBusy", err)
	}
}
