package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/schema"
)

// Bounds of a cancellation.
const (
	// CancelWait bounds what a Run of a client made WithCancelOnDone does
	// after its context ended: cancelling the job and waiting for its
	// terminal event. A dispatcher gives a running job's worker 5 s to end
	// it with its output before it ends the job itself, so 30 s leaves room
	// for that and for a dispatcher that has yet to take the job.
	CancelWait = 30 * time.Second
	// cancelRetryMax bounds the pause between two cancellations of a job
	// brig has not taken yet (Handle.Cancel).
	cancelRetryMax = time.Second
)

// WithCancelOnDone makes Run and RunNew cancel their job when their
// context ends before the job does; without it the job runs on, to its
// own timeout, after Run has returned. Run then cancels the job
// (Handle.Cancel) and waits for its terminal event, both within
// CancelWait (30 s) of the context's end, and returns:
//   - the terminal event and an error that matches both the context's
//     error (context.DeadlineExceeded or context.Canceled) and the job's
//     (ErrCancelled, or how the job had ended already);
//   - the terminal event and nil when the job had succeeded already;
//   - no event and an error matching the context's error and saying what
//     failed, when the cancellation failed or the terminal event did not
//     come within CancelWait.
//
// It is an option of the client, not of each Run, so that *Client keeps
// the plain Run(ctx, job) that interfaces of its users ask for.
func WithCancelOnDone() Option {
	return func(c *Client) error {
		c.cancelOnDone = true
		return nil
	}
}

// Cancel cancels the client's tenant's job jobID, queued or running, and
// returns its terminal status: cancelled, or how it had already ended. A
// job cancelled while queued never runs; a running one is killed and keeps
// the output it made. A job brig has no event of (never submitted, or its
// submission not yet taken by a dispatcher) is an error matching
// ErrNotFound, and nothing changes; a dispatcher with too many
// cancellations in hand answers ErrBusy. jobID may also be the job's key
// (an event's job_id) when it is of the client's tenant.
func (c *Client) Cancel(ctx context.Context, jobID string) (schema.Status, error) {
	jobID, err := c.jobID(jobID)
	if err != nil {
		return "", err
	}
	msg, err := c.request(ctx, schema.CancelSubject(c.key(jobID)), nil)
	if err != nil {
		return "", fmt.Errorf("sdk: cancel job %s: %w", jobID, err)
	}
	var r struct {
		Status    schema.Status    `json:"status"`
		Error     string           `json:"error"`
		ErrorType schema.ErrorType `json:"error_type"`
	}
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		return "", fmt.Errorf("sdk: cancel job %s: bad answer: %w", jobID, err)
	}
	switch {
	case r.ErrorType == schema.ErrNotFound:
		return "", fmt.Errorf("sdk: cancel job %s: %s: %w", jobID, r.Error, ErrNotFound)
	case r.Error == schema.BusyAnswer:
		return "", fmt.Errorf("sdk: cancel job %s: %w", jobID, ErrBusy)
	case r.Error != "":
		return r.Status, fmt.Errorf("sdk: cancel job %s: %s", jobID, r.Error)
	}
	return r.Status, nil
}

// Cancel cancels the handle's job, as Client.Cancel does, and returns its
// terminal status: cancelled, or how it had already ended. A handle that
// has its terminal event already answers with its status, asking nothing.
//
// brig may not have taken a job that this client just submitted: a
// dispatcher may have a backlog, or be restarting. So for a handle of
// Submit or SubmitNew, an answer that brig has no event of the job
// (ErrNotFound), that it is busy (ErrBusy), or that no dispatcher
// listens, is asked again, pausing from 100 ms up to 1 s, until brig
// answers otherwise, ctx ends, or CancelWait (30 s) has passed; the last
// answer is then returned. A handle of Watch asks once.
func (h *Handle) Cancel(ctx context.Context) (schema.Status, error) {
	h.mu.Lock()
	terminal, submitted := h.terminal, h.submission != nil
	h.mu.Unlock()
	if terminal != nil {
		return terminal.Status, nil
	}
	if !submitted {
		return h.c.Cancel(ctx, h.ID)
	}
	ctx, cancel := context.WithTimeout(ctx, CancelWait)
	defer cancel()
	pause := replayRetryMin
	for {
		status, err := h.c.Cancel(ctx, h.ID)
		if err == nil || !cancelAgain(err) {
			return status, err
		}
		h.c.log.Debug("cancel a job brig has not taken yet; will ask again", "job", h.Key, "err", err)
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-h.done: // its terminal event came meanwhile
			t.Stop()
			return h.Cancel(ctx)
		case <-ctx.Done():
			t.Stop()
			return "", err
		}
		pause = min(2*pause, cancelRetryMax)
	}
}

// cancelAgain reports whether a cancellation of a job this client
// submitted may succeed when asked again.
func cancelAgain(err error) bool {
	return errors.Is(err, ErrNotFound) || errors.Is(err, ErrBusy) || errors.Is(err, nats.ErrNoResponders)
}

// cancelOnDone ends the job of a Run whose context ended (cause) before
// the job did: it cancels the job and waits for its terminal event, within
// CancelWait (see WithCancelOnDone).
func (h *Handle) cancelOnDone(ctx context.Context, cause error) (*schema.Event, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), CancelWait)
	defer cancel()
	status, err := h.Cancel(ctx)
	if err != nil {
		return nil, fmt.Errorf("sdk: job %s: %w; cancelling it failed: %w", h.ID, cause, err)
	}
	ev, err := h.Result(ctx)
	switch {
	case ev == nil:
		return nil, fmt.Errorf("sdk: job %s: %w; cancelled it (brig answered %s), but its terminal event did not come: %w", h.ID, cause, status, err)
	case err != nil:
		return ev, fmt.Errorf("sdk: job %s: %w; cancelled it: %w", h.ID, cause, err)
	}
	return ev, nil
}
