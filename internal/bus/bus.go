// Package bus declares brig's JetStream layout: the three streams of
// DESIGN §1 and the durable consumers that dispatchers and workers share.
// Every role calls EnsureStreams at start-up; it is idempotent, so
// whichever starts first creates them.
package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/schema"
)

// Config sizes the streams. Zero values take the documented defaults.
type Config struct {
	// Replicas per stream: 1 (default) on a single server, 3 on a cluster.
	Replicas int
	// DedupWindow for job ids on submission and routing (default 10m).
	DedupWindow time.Duration
	// EventsMaxAge is how long events stay replayable (default 24h).
	EventsMaxAge time.Duration
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.DedupWindow == 0 {
		c.DedupWindow = 10 * time.Minute
	}
	if c.EventsMaxAge == 0 {
		c.EventsMaxAge = 24 * time.Hour
	}
	return c
}

// Consumer names.
const (
	DispatcherConsumer = "dispatchers"
)

// WorkConsumer is the durable consumer all workers of one pool share.
func WorkConsumer(pool string) string { return "pool-" + pool }

// Streams returns the stream configurations for cfg.
func Streams(cfg Config) []jetstream.StreamConfig {
	cfg = cfg.WithDefaults()
	return []jetstream.StreamConfig{
		{
			Name:       schema.StreamSubmit,
			Subjects:   []string{schema.SubmitPrefix + ">"},
			Retention:  jetstream.WorkQueuePolicy,
			Storage:    jetstream.FileStorage,
			Replicas:   cfg.Replicas,
			Duplicates: cfg.DedupWindow,
		},
		{
			Name:       schema.StreamWork,
			Subjects:   []string{schema.WorkPrefix + ">"},
			Retention:  jetstream.WorkQueuePolicy,
			Storage:    jetstream.FileStorage,
			Replicas:   cfg.Replicas,
			Duplicates: cfg.DedupWindow,
		},
		{
			Name:        schema.StreamEvents,
			Subjects:    []string{schema.EventsPrefix + ">"},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Replicas,
			MaxAge:      cfg.EventsMaxAge,
			Duplicates:  cfg.DedupWindow,
			AllowDirect: true,
		},
	}
}

// EnsureStreams creates or updates brig's streams.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	for _, sc := range Streams(cfg) {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("ensure stream %s: %w", sc.Name, err)
		}
	}
	return nil
}

// TerminalEvent returns the stored terminal event of a job, or nil if it has
// none yet.
func TerminalEvent(ctx context.Context, js jetstream.JetStream, jobID string) (*schema.Event, error) {
	stream, err := js.Stream(ctx, schema.StreamEvents)
	if err != nil {
		return nil, fmt.Errorf("open stream %s: %w", schema.StreamEvents, err)
	}
	for _, typ := range []string{schema.EventResult, schema.EventTimeout, schema.EventError, schema.EventCancelled} {
		msg, err := stream.GetLastMsgForSubject(ctx, schema.EventSubject(jobID, typ))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("look up terminal event of %s: %w", jobID, err)
		}
		ev, err := schema.DecodeEvent(msg.Data)
		if err != nil {
			return nil, fmt.Errorf("decode terminal event of %s: %w", jobID, err)
		}
		return ev, nil
	}
	return nil, nil
}

// HasEvent reports whether a job has stored an event of the given type
// (accepted: a dispatcher took it; started: a worker runs or ran it).
func HasEvent(ctx context.Context, js jetstream.JetStream, jobID, eventType string) (bool, error) {
	stream, err := js.Stream(ctx, schema.StreamEvents)
	if err != nil {
		return false, fmt.Errorf("open stream %s: %w", schema.StreamEvents, err)
	}
	_, err = stream.GetLastMsgForSubject(ctx, schema.EventSubject(jobID, eventType))
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("look up %s event of %s: %w", eventType, jobID, err)
	}
	return true, nil
}
