package events

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/schema"
)

// ErrNotFirst is returned by PublishFirst when the job already has an event
// (another submission, or a cancellation, got there first).
var ErrNotFirst = errors.New("the job already has events")

// PublishFirst stores ev only if it is the first event of its job: the
// publish carries JetStream's optimistic-concurrency headers
// (Nats-Expected-Last-Subject-Sequence: 0 checked against the wildcard
// brig.events.<job_id>.>), so the server refuses it atomically when any
// event names the job. Of several writers racing for one job id, exactly
// one wins (docs/design.md §6). A refusal, or a store dropped as a
// duplicate by message id, is ErrNotFirst; nothing is copied to replyTo
// then.
func (l *Log) PublishFirst(ctx context.Context, ev *schema.Event, replyTo string) error {
	stored, err := l.publish(ctx, ev, replyTo, func(h nats.Header) {
		h.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
		h.Set(jetstream.ExpectedLastSubjSeqSubjHeader, schema.EventsFilter(ev.JobID))
	})
	switch {
	case IsWrongLastSequence(err), err == nil && !stored:
		return fmt.Errorf("publish %s event of job %s: %w", ev.Type, ev.JobID, ErrNotFirst)
	}
	return err
}

// IsWrongLastSequence reports whether err is JetStream refusing a publish
// whose expected last sequence did not hold (10071, or 10164 on a
// replicated stream).
func IsWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}
