// Package bus declares brig's JetStream layout: the three streams of
// DESIGN §1 and the durable consumers that dispatchers and workers share.
// Every role calls EnsureStreams at start-up; it is idempotent, so
// whichever starts first creates them.
package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
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

// eventsStreams caches a handle on the events stream per JetStream
// context: opening one costs a stream-info round trip, and lookups come
// several per job.
var eventsStreams sync.Map // jetstream.JetStream → jetstream.Stream

func eventsStream(ctx context.Context, js jetstream.JetStream) (jetstream.Stream, error) {
	if s, ok := eventsStreams.Load(js); ok {
		return s.(jetstream.Stream), nil
	}
	s, err := js.Stream(ctx, schema.StreamEvents)
	if err != nil {
		return nil, fmt.Errorf("open stream %s: %w", schema.StreamEvents, err)
	}
	eventsStreams.Store(js, s)
	return s, nil
}

// lastMsg returns the job's last stored event message of eventType (of
// any type when eventType is ""), or nil when there is none.
func lastMsg(ctx context.Context, js jetstream.JetStream, jobID, eventType string) (*jetstream.RawStreamMsg, error) {
	stream, err := eventsStream(ctx, js)
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

func decodeEvent(msg *jetstream.RawStreamMsg, jobID string) (*schema.Event, error) {
	ev, err := schema.DecodeEvent(msg.Data)
	if err != nil {
		return nil, fmt.Errorf("decode an event of %s: %w", jobID, err)
	}
	return ev, nil
}

// TerminalEvent returns the stored terminal event of a job, or nil if it has
// none yet. The four terminal subjects are looked up at once.
func TerminalEvent(ctx context.Context, js jetstream.JetStream, jobID string) (*schema.Event, error) {
	types := []string{schema.EventResult, schema.EventTimeout, schema.EventError, schema.EventCancelled}
	found := make([]*jetstream.RawStreamMsg, len(types))
	errs := make([]error, len(types))
	var wg sync.WaitGroup
	for i, typ := range types {
		wg.Add(1)
		go func() {
			defer wg.Done()
			found[i], errs[i] = lastMsg(ctx, js, jobID, typ)
		}()
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

// FindEvent returns the job's last stored event of the given type, or of
// any type when eventType is "" (one lookup), or nil when there is none.
func FindEvent(ctx context.Context, js jetstream.JetStream, jobID, eventType string) (*schema.Event, error) {
	msg, err := lastMsg(ctx, js, jobID, eventType)
	if err != nil || msg == nil {
		return nil, err
	}
	return decodeEvent(msg, jobID)
}

// HasEvent reports whether a job has stored an event of the given type
// (accepted: a dispatcher took it; started: a worker runs or ran it), or of
// any type when eventType is "".
func HasEvent(ctx context.Context, js jetstream.JetStream, jobID, eventType string) (bool, error) {
	msg, err := lastMsg(ctx, js, jobID, eventType)
	return msg != nil, err
}

func orAny(eventType string) string {
	if eventType == "" {
		return "any"
	}
	return eventType
}
