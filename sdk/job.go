package sdk

import (
	"context"
	"fmt"

	"github.com/brig-dev/brig/schema"
)

// Statuses of a JobState that has no terminal event yet; an ended job's
// status is its terminal event's.
const (
	// StatusQueued: brig accepted the job and no attempt has started.
	StatusQueued schema.Status = "queued"
	// StatusRunning: an attempt of the job has started.
	StatusRunning schema.Status = "running"
)

// JobState is where a job is: queued, running, or ended with its terminal
// event (docs/design.md §11).
type JobState struct {
	// ID is the job's id, Key its key <tenant>.<id>.
	ID  string `json:"id"`
	Key string `json:"job_id"`
	// Status is StatusQueued, StatusRunning or the terminal event's status.
	Status schema.Status `json:"status"`
	// Terminal is the job's terminal event, once it has ended.
	Terminal *schema.Event `json:"terminal,omitempty"`
}

// Job returns the state of the client's tenant's job jobID: one question
// to the dispatchers' replay service (a peek, docs/design.md §6.1), which
// writes nothing. A job brig has no event of (never submitted, its
// submission not taken yet, or its events expired) is an error matching
// ErrNotFound. jobID may also be the job's key when it is of the client's
// tenant.
func (c *Client) Job(ctx context.Context, jobID string) (*JobState, error) {
	jobID, err := c.jobID(jobID)
	if err != nil {
		return nil, err
	}
	p, err := c.peekState(ctx, jobID)
	if err != nil {
		return nil, fmt.Errorf("sdk: %w", err)
	}
	st := &JobState{ID: jobID, Key: c.key(jobID), Status: StatusQueued}
	switch {
	case !p.Exists:
		return nil, fmt.Errorf("sdk: job %s: brig has no event of it: %w", jobID, ErrNotFound)
	case p.Terminal && p.Event == nil:
		// A dispatcher older than the terminal event in its answer.
		if p.Event, err = c.terminalOf(ctx, jobID); err != nil {
			return nil, err
		}
	case p.Started:
		st.Status = StatusRunning
	}
	if p.Event != nil {
		st.Status, st.Terminal = p.Event.Status, p.Event
	}
	return st, nil
}

// terminalOf reads an ended job's terminal event by replaying its events.
func (c *Client) terminalOf(ctx context.Context, jobID string) (*schema.Event, error) {
	h, err := c.Watch(ctx, jobID)
	if err != nil {
		return nil, err
	}
	defer h.Stop()
	ev, err := h.Result(ctx)
	if ev == nil {
		return nil, err
	}
	return ev, nil
}
