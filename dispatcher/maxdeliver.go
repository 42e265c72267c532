package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/internal/events"
	"github.com/brig-dev/brig/schema"
)

// maxDeliveriesPrefix starts JetStream's advisory subject
// $JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.<stream>.<consumer>.
const maxDeliveriesPrefix = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES."

// maxDeliveriesSubject is JetStream's advisory that a consumer gave up on a
// message of a stream.
func maxDeliveriesSubject(stream string) string {
	return maxDeliveriesPrefix + stream + ".*"
}

// MaxAdvisories bounds the max-deliveries advisories one dispatcher checks
// at once; more are dropped (logged). Anyone may publish on an advisory
// subject, so a flood of them must cost brig little.
const MaxAdvisories = 16

// advisoryRecheck is how long an advisory's message may take to fall under
// its consumer's ack floor (an older message still pending holds the floor
// back) before the advisory is dropped; advisoryPoll is how often it looks.
const (
	advisoryRecheck = 30 * time.Second
	advisoryPoll    = time.Second
)

// advisory is the part of a max-deliveries advisory brig reads.
type advisory struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// onMaxDeliveries ends in a terminal event a job whose submission or work
// message JetStream stopped delivering (its handler kept dying before it
// could settle it), then removes the message. Nothing ends in silence.
// Anyone may publish an advisory, so its claims are checked against
// JetStream before anything is ended or deleted (verifyExhausted).
func (d *Dispatcher) onMaxDeliveries(m *nats.Msg) {
	var adv advisory
	if err := json.Unmarshal(m.Data, &adv); err != nil || adv.StreamSeq == 0 {
		d.log.Warn("unreadable max-deliveries advisory", "subject", m.Subject)
		return
	}
	if err := checkAdvisory(m.Subject, &adv); err != nil {
		d.log.Warn("ignoring a max-deliveries advisory", "subject", m.Subject, "stream", adv.Stream, "consumer", adv.Consumer, "seq", adv.StreamSeq, "reason", err)
		return
	}
	// One check per message: copies of one advisory, forged or not, must
	// not take the slots that other messages' advisories need.
	key := adv.Stream + "/" + strconv.FormatUint(adv.StreamSeq, 10)
	if _, checking := d.advisoryKeys.LoadOrStore(key, true); checking {
		return
	}
	select {
	case d.advisories <- struct{}{}:
	default:
		d.advisoryKeys.Delete(key)
		d.log.Warn("too many max-deliveries advisories in hand; dropping one", "subject", m.Subject, "seq", adv.StreamSeq)
		return
	}
	go func() {
		defer func() { <-d.advisories; d.advisoryKeys.Delete(key) }()
		ctx, cancel := context.WithTimeout(d.ctx, d.cfg.advisoryRecheck+30*time.Second)
		defer cancel()
		if err := d.verifyExhausted(ctx, &adv); err != nil {
			d.log.Warn("ignoring a max-deliveries advisory", "stream", adv.Stream, "consumer", adv.Consumer, "seq", adv.StreamSeq, "reason", err)
			return
		}
		if err := d.giveUp(ctx, adv.Stream, adv.StreamSeq, adv.Deliveries); err != nil {
			d.log.Error("end a job JetStream gave up on", "stream", adv.Stream, "seq", adv.StreamSeq, "err", err)
		}
	}()
}

// checkAdvisory checks what an advisory says about itself: its subject
// names the stream and consumer of its payload, the stream is one of
// brig's queues and the consumer brig's own on it.
func checkAdvisory(subject string, adv *advisory) error {
	tail, ok := strings.CutPrefix(subject, maxDeliveriesPrefix)
	stream, consumer, ok2 := strings.Cut(tail, ".")
	if !ok || !ok2 || strings.Contains(consumer, ".") {
		return errors.New("not a max-deliveries advisory subject")
	}
	if stream != adv.Stream || consumer != adv.Consumer {
		return fmt.Errorf("subject names %s/%s, payload %s/%s", stream, consumer, adv.Stream, adv.Consumer)
	}
	switch {
	case stream == schema.StreamSubmit && consumer == bus.DispatcherConsumer:
	case stream == schema.StreamWork && strings.HasPrefix(consumer, bus.WorkConsumer("")) && len(consumer) > len(bus.WorkConsumer("")):
	default:
		return fmt.Errorf("consumer %s on stream %s is not brig's", consumer, stream)
	}
	return nil
}

// verifyExhausted checks with JetStream that the advisory's consumer
// really gave up on its message: the message is stored on the consumer's
// subject, the consumer delivered it, the advisory claims at least the
// consumer's MaxDeliver deliveries, and the consumer holds a message it
// gave up on. JetStream exposes no per-message state of a consumer, so the
// last is counted: in a work queue an acked or terminated message is
// removed, so the messages stored on the consumer's subject are those not
// delivered yet (NumPending), those in hand (NumAckPending) and those the
// consumer gave up on; with none of the last, the advisory is forged. With
// nothing in hand, the message cannot be in hand either. The counts are
// read between two consumer lookups that must agree; a moving consumer is
// looked at again for up to advisoryRecheck.
func (d *Dispatcher) verifyExhausted(ctx context.Context, adv *advisory) error {
	stream, err := d.js.Stream(ctx, adv.Stream)
	if err != nil {
		return err
	}
	raw, err := stream.GetMsg(ctx, adv.StreamSeq)
	if err != nil {
		return fmt.Errorf("load message %d: %w", adv.StreamSeq, err)
	}
	filter := schema.SubmitPrefix + ">"
	if adv.Stream == schema.StreamWork {
		filter = schema.WorkSubject(strings.TrimPrefix(adv.Consumer, bus.WorkConsumer("")))
		if raw.Subject != filter {
			return fmt.Errorf("message %d is on %s, not on consumer %s's subject", adv.StreamSeq, raw.Subject, adv.Consumer)
		}
	}
	cons, err := stream.Consumer(ctx, adv.Consumer)
	if err != nil {
		return fmt.Errorf("consumer %s: %w", adv.Consumer, err)
	}
	deadline := time.Now().Add(d.cfg.advisoryRecheck)
	for {
		gaveUp, err := exhaustedCount(ctx, stream, cons, filter, adv)
		if err != nil || gaveUp {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("consumer %s gave up on no message; %d is still in hand", adv.Consumer, adv.StreamSeq)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(advisoryPoll):
		}
	}
}

// exhaustedCount reports whether, in one stable look, consumer cons holds
// a message it gave up on that may be the advisory's (see verifyExhausted);
// an error means the advisory is refused for good.
func exhaustedCount(ctx context.Context, stream jetstream.Stream, cons jetstream.Consumer, filter string, adv *advisory) (bool, error) {
	before, err := cons.Info(ctx)
	if err != nil {
		return false, err
	}
	if md := before.Config.MaxDeliver; md < 1 || adv.Deliveries < uint64(md) {
		return false, fmt.Errorf("%d deliveries claimed; consumer %s allows %d", adv.Deliveries, adv.Consumer, md)
	}
	if before.Delivered.Stream < adv.StreamSeq {
		return false, fmt.Errorf("consumer %s has not delivered message %d", adv.Consumer, adv.StreamSeq)
	}
	if before.NumAckPending == 0 {
		// Nothing in hand: the message, if it is still there, was given
		// up on; if it is gone, it was settled.
		if _, err := stream.GetMsg(ctx, adv.StreamSeq); err != nil {
			return false, fmt.Errorf("message %d is gone: %w", adv.StreamSeq, err)
		}
		return true, nil
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return false, err
	}
	var stored uint64
	for _, n := range info.State.Subjects {
		stored += n
	}
	after, err := cons.Info(ctx)
	if err != nil {
		return false, err
	}
	if after.NumPending != before.NumPending || after.NumAckPending != before.NumAckPending || after.Delivered.Stream != before.Delivered.Stream {
		return false, nil // moving: look again
	}
	return stored > after.NumPending+uint64(after.NumAckPending), nil
}

// giveUp ends the job of the message at seq of streamName (whose consumer
// gave up on it, checked by verifyExhausted) and deletes the message.
func (d *Dispatcher) giveUp(ctx context.Context, streamName string, seq, deliveries uint64) error {
	stream, err := d.js.Stream(ctx, streamName)
	if err != nil {
		return err
	}
	raw, err := stream.GetMsg(ctx, seq)
	if err != nil {
		return fmt.Errorf("load message %d: %w", seq, err)
	}
	var id, replyTo string
	if streamName == schema.StreamWork {
		id, replyTo = peekWork(raw.Data, raw.Header)
	} else {
		id, replyTo = peekSubmission(raw.Subject, raw.Data, raw.Header)
	}
	first := false // the job has no event yet: it must win the id
	if id != "" && streamName == schema.StreamSubmit {
		var own bool
		if own, first, replyTo, err = d.submissionOf(ctx, id, replyTo, seq, deliveries); err != nil {
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
		if first {
			err = d.events.PublishFirst(ctx, ev, replyTo)
		} else {
			_, err = d.events.Publish(ctx, ev, replyTo)
		}
		switch {
		case errors.Is(err, events.ErrNotFirst):
			d.log.Warn("dropping a submission JetStream gave up on: another submission took its id", "job", id, "seq", seq)
		case err != nil:
			return err
		default:
			d.log.Warn("job ended: delivery budget exhausted", "job", id, "stream", streamName, "deliveries", deliveries)
		}
	}
	return stream.DeleteMsg(ctx, seq)
}

// submissionOf reports whether the submission stored at seq may end job id:
// unless brig accepted another submission as that job. first reports that
// no submission was accepted as the job, so its end must be its first
// event. It returns the job's reply_to, replyTo or the accepted event's.
func (d *Dispatcher) submissionOf(ctx context.Context, id, replyTo string, seq, deliveries uint64) (own, first bool, _ string, _ error) {
	acc, err := d.events.Find(ctx, id, schema.EventAccepted)
	if err != nil {
		return false, false, replyTo, err
	}
	if acc == nil {
		return true, true, replyTo, nil
	}
	if !acceptedFrom(acc, &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: seq}, NumDelivered: deliveries}) {
		return false, false, "", nil
	}
	if replyTo == "" {
		replyTo = acc.ReplyTo
	}
	return true, false, replyTo, nil
}
