// Package events publishes a job's events: into BRIG_EVENTS on
// brig.events.<job_id>.<type>, deduplicated by message id so that a retried
// publish or a redelivered job never stores a second terminal event, and as
// a core-NATS copy on the job's reply_to when it names one outside
// brig.events.>.
package events

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/schema"
)

// Publisher publishes events.
type Publisher struct {
	nc *nats.Conn
	js jetstream.JetStream
}

// NewPublisher returns a publisher on nc.
func NewPublisher(nc *nats.Conn, js jetstream.JetStream) *Publisher {
	return &Publisher{nc: nc, js: js}
}

// Publish stores ev and copies it to replyTo. It stamps ev.Time when unset.
// For a terminal event it reports stored=false when the job already had one
// (the stream dropped this one as a duplicate); the reply copy is then not
// sent either.
func (p *Publisher) Publish(ctx context.Context, ev *schema.Event, replyTo string) (stored bool, err error) {
	return p.publish(ctx, ev, replyTo, nil)
}

// publish stores ev with the message headers hdr adds (nil: none) and, when
// it was stored, copies it to replyTo.
func (p *Publisher) publish(ctx context.Context, ev *schema.Event, replyTo string, hdr func(nats.Header)) (stored bool, err error) {
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	terminal := schema.IsTerminal(ev.Type)
	data, err := p.encode(ev, terminal)
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
	ack, err := p.js.PublishMsg(ctx, msg)
	if err != nil {
		return false, fmt.Errorf("publish %s event of job %s: %w", ev.Type, ev.JobID, err)
	}
	if ack.Duplicate {
		return false, nil
	}
	if replyTo != "" && !strings.HasPrefix(replyTo, schema.EventsPrefix) {
		if err := p.nc.Publish(replyTo, data); err != nil {
			return true, fmt.Errorf("copy %s event of job %s to reply_to: %w", ev.Type, ev.JobID, err)
		}
	}
	return true, nil
}

// encode marshals ev within the server's max payload: a terminal event
// fits by construction (Fit); any other event brig builds is small by
// construction too (output chunks are capped), and one that is not is an
// error.
func (p *Publisher) encode(ev *schema.Event, terminal bool) ([]byte, error) {
	// BRIG_EVENTS takes messages up to schema.MinServerPayload (its
	// MaxMsgSize), whatever larger max_payload the server allows.
	limit := int(min(p.nc.MaxPayload(), schema.MinServerPayload)) - headerRoom
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
