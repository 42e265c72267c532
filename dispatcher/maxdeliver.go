package dispatcher

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/schema"
)

// maxDeliveriesSubject is JetStream's advisory that a consumer gave up on a
// message of a stream.
func maxDeliveriesSubject(stream string) string {
	return "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + stream + ".*"
}

// onMaxDeliveries ends in a terminal event a job whose submission or work
// message JetStream stopped delivering (its handler kept dying before it
// could settle it), then removes the message. Nothing ends in silence.
func (d *Dispatcher) onMaxDeliveries(m *nats.Msg) {
	var adv struct {
		Stream     string `json:"stream"`
		Consumer   string `json:"consumer"`
		StreamSeq  uint64 `json:"stream_seq"`
		Deliveries uint64 `json:"deliveries"`
	}
	if err := json.Unmarshal(m.Data, &adv); err != nil || adv.StreamSeq == 0 {
		d.log.Warn("unreadable max-deliveries advisory", "subject", m.Subject)
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(d.ctx, 30*time.Second)
		defer cancel()
		if err := d.giveUp(ctx, adv.Stream, adv.StreamSeq, adv.Deliveries); err != nil {
			d.log.Error("end a job JetStream gave up on", "stream", adv.Stream, "seq", adv.StreamSeq, "err", err)
		}
	}()
}

func (d *Dispatcher) giveUp(ctx context.Context, streamName string, seq, deliveries uint64) error {
	stream, err := d.js.Stream(ctx, streamName)
	if err != nil {
		return err
	}
	raw, err := stream.GetMsg(ctx, seq)
	if err != nil {
		return fmt.Errorf("load message %d: %w", seq, err)
	}
	data := raw.Data
	if streamName == schema.StreamWork {
		var work struct {
			Job json.RawMessage `json:"job"`
		}
		_ = json.Unmarshal(raw.Data, &work)
		data = work.Job
	}
	id, replyTo := peekJob(data, raw.Header)
	if id != "" && streamName == schema.StreamSubmit {
		var own bool
		if own, replyTo, err = d.submissionOf(ctx, id, replyTo, seq, deliveries); err != nil {
			return err
		} else if !own {
			d.log.Warn("dropping a submission JetStream gave up on: it reuses the id of a job accepted from another", "job", id, "seq", seq)
			id = ""
		}
	}
	if id != "" {
		ev := &schema.Event{JobID: id, Type: schema.EventError, Seq: 1, Status: schema.StatusError, ExitCode: -1,
			Attempt: int(deliveries), Error: &schema.ErrorInfo{Type: schema.ErrInfrastructure,
				Message: fmt.Sprintf("brig gave up on the job after %d deliveries: whatever handled it kept failing before it could finish", deliveries)}}
		if _, err := d.pub.Publish(ctx, ev, replyTo); err != nil {
			return err
		}
		d.log.Warn("job ended: delivery budget exhausted", "job", id, "stream", streamName, "deliveries", deliveries)
	}
	return stream.DeleteMsg(ctx, seq)
}

// submissionOf reports whether the submission stored at seq may end job id:
// unless brig accepted another submission as that job. It returns the
// job's reply_to, replyTo or the accepted event's.
func (d *Dispatcher) submissionOf(ctx context.Context, id, replyTo string, seq, deliveries uint64) (bool, string, error) {
	acc, err := bus.FindEvent(ctx, d.js, id, schema.EventAccepted)
	if err != nil || acc == nil {
		return err == nil, replyTo, err
	}
	if !acceptedFrom(acc, &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: seq}, NumDelivered: deliveries}) {
		return false, "", nil
	}
	if replyTo == "" {
		replyTo = acc.ReplyTo
	}
	return true, replyTo, nil
}
