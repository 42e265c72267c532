// Package events publishes a job's events: into BRIG_EVENTS on
// brig.events.<job_id>.<type>, deduplicated by message id so that a retried
// publish or a redelivered job never stores a second terminal event, and as
// a core-NATS copy on the job's reply_to when it names one outside
// brig.events.>.
package events

import (
	"context"
	"encoding/json"
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

// encode marshals ev, shrinking a terminal event's captured output until it
// fits the server's max payload (and flagging the truncation).
func (p *Publisher) encode(ev *schema.Event, terminal bool) ([]byte, error) {
	limit := int(p.nc.MaxPayload()) - 1024 // headers
	for {
		data, err := json.Marshal(ev)
		if err != nil {
			return nil, fmt.Errorf("encode %s event of job %s: %w", ev.Type, ev.JobID, err)
		}
		if len(data) <= limit {
			return data, nil
		}
		if !terminal || (ev.Stdout == "" && ev.Stderr == "" && len(ev.Output) == 0) {
			return nil, fmt.Errorf("%s event of job %s is %d bytes, over the server's %d", ev.Type, ev.JobID, len(data), limit)
		}
		shrink(ev)
	}
}

// shrink halves the larger of stdout and stderr, or drops the output.
func shrink(ev *schema.Event) {
	switch {
	case len(ev.Stdout) >= len(ev.Stderr) && ev.Stdout != "":
		ev.Stdout = ev.Stdout[:len(ev.Stdout)/2]
		ev.StdoutTruncated = true
	case ev.Stderr != "":
		ev.Stderr = ev.Stderr[:len(ev.Stderr)/2]
		ev.StderrTruncated = true
	default:
		ev.Output = nil
	}
}
