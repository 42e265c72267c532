// Package bus declares brig's JetStream layout: every stream, bucket and
// durable consumer brig shares is configured here, so that the layout
// reads in one place. That is the three streams of docs/design.md §1
// (this file), the hold stream and the per-tenant marker streams
// (running.go, tenants.go), brig's own KV buckets (tenants.go, storage.go,
// keys.go, workers.go, functions.go), the jobs' dicts and queues and
// their consumer (resources.go), and the durable consumers that
// dispatchers and workers share (consumers.go). The packages that create
// them (internal/gateway, internal/signing, internal/registry,
// internal/functions, the roles) call the Config functions here and build
// no configuration of their own.
//
// Not here, because they are no part of the bus brig's roles share: the
// ordered consumers that read events for one caller, a replay's
// (dispatcher/replay.go) and `brig status`'s recent failures
// (cmd/brig/status.go), each ephemeral and no one else's; and
// internal/bench's throwaway stream and consumer, which measure the
// JetStream floor and are deleted after the run.
//
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

// Config sizes the streams. Zero values take the documented defaults; a
// negative limit lifts it (the stream has none). The defaults suit a 2-core
// box with a few GiB of disk: JetStream reserves each stream's MaxBytes
// from the server's store when the stream is created, so together they
// need about 6 GiB of store (75% of the free disk by default).
type Config struct {
	// Replicas per stream: 1 (default) on a single server, 3 on a cluster.
	Replicas int
	// DedupWindow for job ids on submission and routing (default 10m).
	DedupWindow time.Duration
	// EventsMaxAge is how long events stay replayable (default 24h).
	EventsMaxAge time.Duration

	// SubmitMaxBytes and SubmitMaxMsgs bound BRIG_SUBMIT, the submissions
	// no dispatcher has taken yet (defaults 256 MiB and 1,000,000). A full
	// stream refuses the next submission (DiscardNew): the client's
	// publish fails with JetStream's "maximum bytes/messages exceeded",
	// and nothing brig accepted is lost. BRIG_SUBMIT has no MaxMsgSize of
	// its own: a submission over the dispatcher's MaxJobBytes is stored
	// and rejected with a terminal event naming the limit, which says more
	// than a refused publish.
	SubmitMaxBytes int64
	SubmitMaxMsgs  int64
	// WorkMaxBytes and WorkMaxMsgs bound BRIG_WORK, the jobs routed to a
	// pool that no worker has finished (defaults 256 MiB and 1,000,000). A
	// full stream refuses the dispatcher's publish (DiscardNew); the
	// dispatcher retries, and a queue that stays full ends the job in a
	// terminal Infrastructure error. Its MaxMsgSize is schema.MaxWorkBytes,
	// the limit the dispatcher checks each work message against before it
	// accepts the job.
	WorkMaxBytes int64
	WorkMaxMsgs  int64
	// EventsMaxBytes and EventsMaxMsgs bound BRIG_EVENTS (defaults 2 GiB
	// and 10,000,000). A full stream drops its oldest events (DiscardOld)
	// so that it always takes the terminal event a job is owed; the
	// trade-off is that under a flood old jobs' events go before their
	// EventsMaxAge, and a replay of such a job finds less, or nothing.
	// What one job may write is bounded per job (output and auth_error
	// caps), so one job cannot push the others out alone.
	EventsMaxBytes int64
	EventsMaxMsgs  int64
	// EventsMaxMsgSize caps one event (default schema.MinServerPayload:
	// every event brig builds fits in it, a terminal one by construction).
	EventsMaxMsgSize int32

	// SubmitAcks makes BRIG_SUBMIT acknowledge submissions. Off by default,
	// and no brig command sets it: the server sends an acknowledgement to
	// whatever reply subject the publisher names, so with acks on, a
	// client could make the server publish on any subject of brig's
	// account (docs/design.md §10.2). Only a bus whose every publisher is
	// trusted may turn it on; unit tests that publish raw submissions do,
	// to learn their stream sequences.
	SubmitAcks bool
}

// Defaults of Config's limits.
const (
	DefaultSubmitMaxBytes   = 256 << 20
	DefaultSubmitMaxMsgs    = 1_000_000
	DefaultWorkMaxBytes     = 256 << 20
	DefaultWorkMaxMsgs      = 1_000_000
	DefaultEventsMaxBytes   = 2 << 30
	DefaultEventsMaxMsgs    = 10_000_000
	DefaultEventsMaxMsgSize = schema.MinServerPayload
)

// WithDefaults fills zero fields and turns negative limits into -1, which
// JetStream reads as none.
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
	c.SubmitMaxBytes = limit(c.SubmitMaxBytes, DefaultSubmitMaxBytes)
	c.SubmitMaxMsgs = limit(c.SubmitMaxMsgs, DefaultSubmitMaxMsgs)
	c.WorkMaxBytes = limit(c.WorkMaxBytes, DefaultWorkMaxBytes)
	c.WorkMaxMsgs = limit(c.WorkMaxMsgs, DefaultWorkMaxMsgs)
	c.EventsMaxBytes = limit(c.EventsMaxBytes, DefaultEventsMaxBytes)
	c.EventsMaxMsgs = limit(c.EventsMaxMsgs, DefaultEventsMaxMsgs)
	c.EventsMaxMsgSize = limit(c.EventsMaxMsgSize, DefaultEventsMaxMsgSize)
	return c
}

// limit is v, def when v is zero, -1 (no limit) when v is negative.
func limit[T int32 | int64](v, def T) T {
	switch {
	case v == 0:
		return def
	case v < 0:
		return -1
	}
	return v
}

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
			MaxBytes:   cfg.SubmitMaxBytes,
			MaxMsgs:    cfg.SubmitMaxMsgs,
			Discard:    jetstream.DiscardNew,
			// Clients publish here, and a stream's acknowledgement goes,
			// from the server itself, to whatever reply subject the
			// publisher names: any subject of brig's account
			// (brig.cancel.<key>, $KV.BRIG_TENANTS.<name>, ...). So the
			// stream acknowledges nothing (docs/design.md §10.2).
			NoAck: !cfg.SubmitAcks,
		},
		workQueue(cfg, schema.StreamWork, schema.WorkPrefix+">"),
		{
			Name:        schema.StreamEvents,
			Subjects:    []string{schema.EventsPrefix + ">"},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Replicas,
			MaxAge:      cfg.EventsMaxAge,
			Duplicates:  cfg.DedupWindow,
			AllowDirect: true,
			MaxBytes:    cfg.EventsMaxBytes,
			MaxMsgs:     cfg.EventsMaxMsgs,
			MaxMsgSize:  cfg.EventsMaxMsgSize,
			Discard:     jetstream.DiscardOld,
		},
	}
}

// workQueue is the configuration of a stream of Work messages (BRIG_WORK,
// BRIG_HOLD): a work queue of cfg's Work size, refusing new messages when
// full. cfg has its defaults.
func workQueue(cfg Config, name, subject string) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:       name,
		Subjects:   []string{subject},
		Retention:  jetstream.WorkQueuePolicy,
		Storage:    jetstream.FileStorage,
		Replicas:   cfg.Replicas,
		Duplicates: cfg.DedupWindow,
		MaxBytes:   cfg.WorkMaxBytes,
		MaxMsgs:    cfg.WorkMaxMsgs,
		MaxMsgSize: schema.MaxWorkBytes,
		Discard:    jetstream.DiscardNew,
	}
}

// EnsureStreams creates or updates brig's streams. Updating brings a stream
// made by an older brig, without limits, to this configuration; lowering a
// DiscardNew limit below what a stream holds drops nothing, the stream
// only refuses new messages until it drains.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	for _, sc := range Streams(cfg) {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			if outOfStore(err) {
				return fmt.Errorf("ensure stream %s: the server's JetStream store cannot reserve its MaxBytes of %d "+
					"(lower the limits in bus.Config, or give the server more store): %w", sc.Name, sc.MaxBytes, err)
			}
			return fmt.Errorf("ensure stream %s: %w", sc.Name, err)
		}
	}
	return nil
}

// outOfStore reports whether JetStream refused a stream because its store
// cannot reserve the stream's MaxBytes.
func outOfStore(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case 10023, 10028, 10047: // insufficient resources; memory, storage resources exceeded
		return true
	}
	return false
}
