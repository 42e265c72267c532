package events

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/schema"
)

// Terminal returns the stored terminal event of a job, or nil if it has
// none yet. The four terminal subjects are looked up at once.
func (l *Log) Terminal(ctx context.Context, jobID string) (*schema.Event, error) {
	types := []schema.EventType{schema.EventResult, schema.EventTimeout, schema.EventError, schema.EventCancelled}
	found := make([]*jetstream.RawStreamMsg, len(types))
	errs := make([]error, len(types))
	var wg sync.WaitGroup
	for i, typ := range types {
		wg.Go(func() { found[i], errs[i] = l.lastMsg(ctx, jobID, typ) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, msg := range found {
		if msg != nil {
			return decodeEvent(msg, jobID)
		}
	}
	return nil, nil
}

// Find returns the job's last stored event of the given type, or of any
// type when eventType is "" (one lookup), or nil when there is none.
func (l *Log) Find(ctx context.Context, jobID string, eventType schema.EventType) (*schema.Event, error) {
	msg, err := l.lastMsg(ctx, jobID, eventType)
	if err != nil || msg == nil {
		return nil, err
	}
	return decodeEvent(msg, jobID)
}

// Has reports whether a job has stored an event of the given type
// (accepted: a dispatcher took it; started: a worker runs or ran it), or of
// any type when eventType is "".
func (l *Log) Has(ctx context.Context, jobID string, eventType schema.EventType) (bool, error) {
	msg, err := l.lastMsg(ctx, jobID, eventType)
	return msg != nil, err
}

// lastMsg returns the job's last stored event message of eventType (of
// any type when eventType is ""), or nil when there is none.
func (l *Log) lastMsg(ctx context.Context, jobID string, eventType schema.EventType) (*jetstream.RawStreamMsg, error) {
	stream, err := l.eventsStream(ctx)
	if err != nil {
		return nil, err
	}
	subject := schema.EventsFilter(jobID)
	if eventType != "" {
		subject = schema.EventSubject(jobID, eventType)
	}
	msg, err := stream.GetLastMsgForSubject(ctx, subject)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("look up %s events of %s: %w", orAny(eventType), jobID, err)
	}
	return msg, nil
}

// eventsStream returns the cached handle on BRIG_EVENTS; unlike a
// tenant's stream, it must exist.
func (l *Log) eventsStream(ctx context.Context) (jetstream.Stream, error) {
	s, err := l.stream(ctx, schema.StreamEvents)
	if err == nil && s == nil {
		err = jetstream.ErrStreamNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("open stream %s: %w", schema.StreamEvents, err)
	}
	return s, nil
}

func decodeEvent(msg *jetstream.RawStreamMsg, jobID string) (*schema.Event, error) {
	ev, err := schema.DecodeEvent(msg.Data)
	if err != nil {
		return nil, fmt.Errorf("decode an event of %s: %w", jobID, err)
	}
	return ev, nil
}

func orAny(eventType schema.EventType) schema.EventType {
	if eventType == "" {
		return "any"
	}
	return eventType
}
