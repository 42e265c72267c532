// Package events writes and reads a job's events in BRIG_EVENTS, on
// brig.events.<job_id>.<type>, through one Log per role.
//
// Writing: events are deduplicated by message id so that a retried publish
// or a redelivered job never stores a second terminal event, and are
// copied over core NATS to the job's reply_to when it names one outside
// brig.events.>. Storing a job's terminal event also frees the job's place
// in its tenant's max_queued and its slot in max_running (docs/design.md
// §10.3): every terminal event goes through here.
//
// Reading: "has this job ended?" and "was it accepted, and from which
// submission?" are last-message-by-subject lookups, no consumer needed
// (docs/design.md §1).
//
//	evlog := events.NewLog(nc, js, logger)
//	stored, err := evlog.Publish(ctx, ev, job.ReplyTo)
//	ended, err := evlog.Terminal(ctx, key) // nil while the job runs
package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/schema"
)

// Log publishes and looks up the events of jobs. It is safe for
// concurrent use.
type Log struct {
	nc *nats.Conn
	js jetstream.JetStream
	// log hears of markers that could not be purged.
	log *slog.Logger

	// streams caches a handle on BRIG_EVENTS and on each tenant's
	// active-job and running stream, by name: opening one costs a
	// stream-info round trip, and a job costs several lookups and a
	// purge. Only streams that exist are cached (a tenant's stream appears
	// with its first marker).
	streams sync.Map // stream name → jetstream.Stream
}

// NewLog returns a Log on nc and js (a JetStream context of nc); logger
// hears of markers that could not be purged (nil: discard).
func NewLog(nc *nats.Conn, js jetstream.JetStream, logger *slog.Logger) *Log {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Log{nc: nc, js: js, log: logger}
}

// Publish stores ev and copies it to replyTo. It stamps ev.Time when unset.
// For a terminal event it reports stored=false when the job already had one
// (the stream dropped this one as a duplicate); the reply copy is then not
// sent either.
func (l *Log) Publish(ctx context.Context, ev *schema.Event, replyTo string) (stored bool, err error) {
	return l.publish(ctx, ev, replyTo, nil)
}

// publish stores ev with the message headers hdr adds (nil: none) and, when
// it was stored, copies it to replyTo.
func (l *Log) publish(ctx context.Context, ev *schema.Event, replyTo string, hdr func(nats.Header)) (stored bool, err error) {
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	terminal := schema.IsTerminal(ev.Type)
	data, err := l.encode(ev, terminal)
	if err != nil {
		return false, err
	}
	msgID := ev.JobID + "." + strconv.Itoa(ev.Attempt) + "." + strconv.FormatInt(ev.Seq, 10)
	if terminal {
		msgID = schema.TerminalMsgID(ev.JobID)
	}
	msg := &nats.Msg{Subject: schema.EventSubject(ev.JobID, ev.Type), Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, msgID)
	if hdr != nil {
		hdr(msg.Header)
	}
	ack, err := l.js.PublishMsg(ctx, msg)
	if err != nil {
		return false, fmt.Errorf("publish %s event of job %s: %w", ev.Type, ev.JobID, err)
	}
	if terminal {
		// Also on a duplicate: whoever stored it first may have died
		// before it purged.
		l.release(ctx, ev.JobID)
	}
	if ack.Duplicate {
		return false, nil
	}
	if replyTo != "" && !strings.HasPrefix(replyTo, schema.EventsPrefix) {
		if err := l.nc.Publish(replyTo, data); err != nil {
			return true, fmt.Errorf("copy %s event of job %s to reply_to: %w", ev.Type, ev.JobID, err)
		}
	}
	return true, nil
}

// encode marshals ev within the server's max payload: a terminal event
// fits by construction (Fit); any other event brig builds is small by
// construction too (output chunks are capped), and one that is not is an
// error.
func (l *Log) encode(ev *schema.Event, terminal bool) ([]byte, error) {
	// BRIG_EVENTS takes messages up to schema.MinServerPayload (its
	// MaxMsgSize), whatever larger max_payload the server allows.
	limit := int(min(l.nc.MaxPayload(), schema.MinServerPayload)) - headerRoom
	if terminal {
		return Fit(ev, limit)
	}
	data, err := schema.MarshalEvent(ev)
	if err != nil {
		return nil, fmt.Errorf("encode %s event of job %s: %w", ev.Type, ev.JobID, err)
	}
	if len(data) > limit {
		return nil, fmt.Errorf("%s event of job %s is %d bytes, over the server's %d", ev.Type, ev.JobID, len(data), limit)
	}
	return data, nil
}

// headerRoom is what a message's headers (Nats-Msg-Id) may take of the
// server's max payload.
const headerRoom = 1024

// release purges the job's markers from its tenant's active-job and
// running streams, so that the job no longer counts against the tenant's
// max_queued and max_running (docs/design.md §10.3). It is best effort: a
// failure is logged, and the streams' MaxAge frees the place in the end.
// A tenant without a stream has no markers in it. The two purges run at
// once, so a terminal event costs one round trip more than before, not two.
func (l *Log) release(ctx context.Context, jobKey string) {
	tenant, _, ok := schema.SplitJobKey(jobKey)
	if !ok {
		return
	}
	// A terminal event is stored even when the caller's context is about
	// to end; the purge gets its own short deadline.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseWait)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := l.purge(ctx, schema.ActiveStream(tenant), schema.ActiveSubject(jobKey)); err != nil {
			l.log.Warn("release a job's place in its tenant's max_queued", "job", jobKey, "err", err)
		}
	})
	wg.Go(func() {
		if err := l.purge(ctx, bus.RunningStream(tenant), bus.RunningSubject(jobKey)); err != nil {
			l.log.Warn("release a job's slot in its tenant's max_running", "job", jobKey, "err", err)
		}
	})
	wg.Wait()
}

// releaseWait bounds one purge of a marker.
const releaseWait = 5 * time.Second

// purge removes the messages on subject from the named stream, through
// the cached handle; a stream that does not exist is fine.
func (l *Log) purge(ctx context.Context, name, subject string) error {
	stream, err := l.stream(ctx, name)
	if err != nil || stream == nil {
		return err
	}
	err = stream.Purge(ctx, jetstream.WithPurgeSubject(subject))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		l.streams.Delete(name)
		return nil
	}
	return err
}

// stream returns the named stream, or nil when it does not exist. Only
// streams that exist are cached: a tenant's stream appears with its first
// marker.
func (l *Log) stream(ctx context.Context, name string) (jetstream.Stream, error) {
	if s, ok := l.streams.Load(name); ok {
		return s.(jetstream.Stream), nil
	}
	s, err := l.js.Stream(ctx, name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	l.streams.Store(name, s)
	return s, nil
}
