package dispatcher

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/schema"
)

// TestDispatchRaceOneOwner: a valid submission with Nats-Msg-Id = id and
// an undecodable one naming the same id without the header, published at
// the same time, never both write events: each id ends with the events of
// exactly one submission (the rejection alone, or the accepted job alone).
func TestDispatchRaceOneOwner(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	const pairs = 80
	var wg sync.WaitGroup
	seqs := make([][2]uint64, pairs)
	for i := range pairs {
		id := "race-" + strconv.Itoa(i)
		wg.Add(2)
		go func() {
			defer wg.Done()
			seqs[i][0] = publishRaw(t, r.js, schema.SubmitSubject(schema.DefaultTenant, "python"), jobData(t, id, "print(1)"), k(id))
		}()
		go func() {
			defer wg.Done()
			bogus := []byte(`{"id":"` + id + `","function":"echo","stdin":"B","bogus":1}`)
			seqs[i][1] = publishRaw(t, r.js, schema.SubmitSubject(schema.DefaultTenant, "echo"), bogus, "")
		}()
	}
	wg.Wait()
	rejected, accepted := 0, 0
	for i := range pairs {
		id := "race-" + strconv.Itoa(i)
		r.settled(seqs[i][0])
		r.settled(seqs[i][1])
		counts := r.stored(id)
		switch {
		case counts[schema.EventAccepted] == 1 && len(counts) == 1:
			accepted++
		case counts[schema.EventError] == 1 && len(counts) == 1:
			rejected++
			ev, err := r.d.events.Terminal(t.Context(), k(id))
			if err != nil || ev == nil || ev.Status != schema.StatusRejected {
				t.Errorf("%s: terminal %+v, %v; want the rejection", id, ev, err)
			}
		default:
			t.Errorf("%s: stored %v; want the events of one submission", id, counts)
		}
	}
	t.Logf("%d pairs: %d accepted, %d rejected", pairs, accepted, rejected)
}

// advisoriesHandled returns once the dispatcher's handlers have returned
// for every max-deliveries advisory sent (counted by the stream of their
// subject). Each subscription's handler runs one message at a time, in the
// order one connection published them, and a subscription counts a
// message as delivered just before its handler runs: so once an unreadable
// advisory sent last is counted, every handler before it has returned.
func (r *rig) advisoriesHandled(sent map[string]int64) {
	r.t.Helper()
	for _, stream := range []string{schema.StreamSubmit, schema.StreamWork} {
		if err := r.nc.Publish(maxDeliveriesPrefix+stream+".last", []byte(`{}`)); err != nil {
			r.t.Fatal(err)
		}
		sent[stream]++
	}
	if err := r.nc.Flush(); err != nil {
		r.t.Fatal(err)
	}
	waited := 0
	for _, sub := range r.d.subs {
		for stream, n := range sent {
			if sub.Subject != maxDeliveriesSubject(stream) {
				continue
			}
			waited++
			r.waitFor("the advisories on "+sub.Subject+" handled", func() (bool, string) {
				got, err := sub.Delivered()
				return err == nil && got >= n, fmt.Sprintf("%d of %d delivered (%v)", got, n, err)
			})
		}
	}
	if waited != len(sent) {
		r.t.Fatalf("the dispatcher subscribes to the advisories of %d of the streams %v", waited, sent)
	}
}

func publishRaw(t *testing.T, js jetstream.JetStream, subject string, data []byte, msgID string) uint64 {
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	if msgID != "" {
		msg.Header.Set(jetstream.MsgIDHeader, msgID)
	}
	ack, err := js.PublishMsg(context.Background(), msg)
	if err != nil {
		t.Errorf("submit: %v", err)
		return 0
	}
	return ack.Sequence
}

// TestForgedAdvisoriesIgnored: max-deliveries advisories that anyone could
// publish (a payload naming another stream than the subject, BRIG_EVENTS,
// a consumer that is not brig's, a running job's work message its
// consumer still has in hand) neither delete a message nor end a job.
func TestForgedAdvisoriesIgnored(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(c *Config) { c.advisoryRecheck = 300 * time.Millisecond })
	ctx := t.Context()

	// A job that ended (rejected): its terminal event is the target.
	r.submit([]byte(`{"id":"ended-1","function":"python","nope":1}`), "ended-1")
	r.wantTerminal("ended-1", schema.StatusRejected, schema.ErrInvalidJob, 0)
	events, err := r.js.Stream(ctx, schema.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	endedMsg, err := events.GetLastMsgForSubject(ctx, schema.EventSubject(k("ended-1"), schema.EventError))
	if err != nil {
		t.Fatal(err)
	}

	// A running job: routed, taken by its pool's consumer, not acked.
	pool := schema.DefaultPool
	workStream, err := r.js.Stream(ctx, schema.StreamWork)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := workStream.CreateOrUpdateConsumer(ctx, bus.WorkConsumerConfig(pool, time.Minute, 15, 0))
	if err != nil {
		t.Fatal(err)
	}
	r.submit(jobData(t, "running-1", "print(1)"), "running-1")
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var work jetstream.Msg
	for m := range batch.Messages() {
		work = m
	}
	if work == nil {
		t.Fatal("no work message")
	}
	workMeta, _ := work.Metadata()
	workSeq := workMeta.Sequence.Stream

	sent := map[string]int64{} // advisories published, by the stream of their subject
	advisory := func(subjStream, subjCons, stream, consumer string, seq uint64) {
		data := fmt.Sprintf(`{"stream":%q,"consumer":%q,"stream_seq":%d,"deliveries":15}`, stream, consumer, seq)
		if err := r.nc.Publish(maxDeliveriesPrefix+subjStream+"."+subjCons, []byte(data)); err != nil {
			t.Fatal(err)
		}
		sent[subjStream]++
	}
	poolCons := bus.WorkConsumer(pool)
	advisory(schema.StreamSubmit, "x", schema.StreamEvents, "x", endedMsg.Sequence)
	advisory(schema.StreamSubmit, bus.DispatcherConsumer, schema.StreamEvents, bus.DispatcherConsumer, endedMsg.Sequence)
	advisory(schema.StreamWork, poolCons, schema.StreamSubmit, poolCons, workSeq)
	advisory(schema.StreamWork, "evil", schema.StreamWork, "evil", workSeq)
	advisory(schema.StreamWork, poolCons, schema.StreamWork, poolCons, workSeq)
	advisory(schema.StreamWork, bus.WorkConsumer("other"), schema.StreamWork, bus.WorkConsumer("other"), workSeq)
	// Copies of one advisory take one checking slot, not all of them.
	for range 3 * MaxAdvisories {
		advisory(schema.StreamWork, poolCons, schema.StreamWork, poolCons, workSeq)
	}
	r.advisoriesHandled(sent)
	// The one check that passed checkAdvisory runs for advisoryRecheck;
	// its copies, and the other pool's advisory for the same message,
	// found it in hand.
	if n := len(r.d.advisories); n > 1 {
		t.Errorf("%d advisory checks in hand for copies of one advisory, want 1", n)
	}
	r.waitFor("every advisory check ended", func() (bool, string) {
		n := len(r.d.advisories)
		return n == 0, fmt.Sprintf("%d checks in hand", n)
	})

	if _, err := events.GetMsg(ctx, endedMsg.Sequence); err != nil {
		t.Errorf("terminal event of an ended job was deleted: %v", err)
	}
	if _, err := workStream.GetMsg(ctx, workSeq); err != nil {
		t.Errorf("a running job's work message was deleted: %v", err)
	}
	if ev, err := r.d.events.Terminal(ctx, k("running-1")); err != nil || ev != nil {
		t.Errorf("running job ended by a forged advisory: %+v, %v", ev, err)
	}
	_ = work.Ack()
}

// TestExhaustedWorkEndsTheJob: a work message its pool's consumer really
// gave up on ends its job (Infrastructure) and is removed.
func TestExhaustedWorkEndsTheJob(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	ctx := t.Context()
	pool := schema.DefaultPool
	workStream, err := r.js.Stream(ctx, schema.StreamWork)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := workStream.CreateOrUpdateConsumer(ctx, bus.WorkConsumerConfig(pool, 300*time.Millisecond, 2, 0))
	if err != nil {
		t.Fatal(err)
	}
	r.submit(jobData(t, "exhaust-1", "print(1)"), "exhaust-1")
	// Take it and let it lapse until the consumer gives up.
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(time.Second))
		if err == nil {
			for range batch.Messages() {
			}
		}
		if ev, _ := r.d.events.Terminal(ctx, k("exhaust-1")); ev != nil {
			break
		}
	}
	ev := r.wantTerminal("exhaust-1", schema.StatusError, schema.ErrInfrastructure, 1)
	if ev.Attempt < 2 {
		t.Errorf("attempt %d; want the delivery count", ev.Attempt)
	}
	eventuallyEmpty(t, workStream)
}

func eventuallyEmpty(t *testing.T, s jetstream.Stream) {
	t.Helper()
	waitFor(t, "the exhausted work message removed", func() (bool, string) {
		info, err := s.Info(t.Context())
		if err != nil {
			return false, err.Error()
		}
		return info.State.Msgs == 0, fmt.Sprintf("%d messages", info.State.Msgs)
	})
}

// TestCancelBound: at most MaxCancels cancellations are in hand at once;
// the next is answered at once with ErrBusy and stores nothing.
func TestCancelBound(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	ctx := t.Context()
	// Started jobs with no worker: each cancellation waits workerCancelWait.
	replies := make([]*nats.Msg, MaxCancels)
	var wg sync.WaitGroup
	for i := range MaxCancels {
		id := "held-" + strconv.Itoa(i)
		started := &schema.Event{JobID: k(id), Type: schema.EventStarted, Seq: 2, Attempt: 1, ExitCode: -1}
		if _, err := r.d.events.Publish(ctx, started, ""); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := r.nc.Request(schema.CancelSubject(k(id)), nil, workerCancelWait+15*time.Second)
			if err != nil {
				t.Errorf("cancel %s: %v", id, err)
			}
			replies[i] = m
		}()
	}
	// Wait until every slot is taken.
	r.waitFor("every cancellation slot taken", func() (bool, string) {
		n := len(r.d.cancels)
		return n == MaxCancels, fmt.Sprintf("%d cancellations in hand; want %d", n, MaxCancels)
	})
	heldAt := time.Now()
	// While they wait, every further cancellation is refused at once.
	var busy []string
	// At most 100: with the MaxCancels above, within the tenant's burst
	// (TenantRequestBurst), so the rate drops none of them.
	for i := 0; i < 100 && time.Since(heldAt) < workerCancelWait/2 && len(r.d.cancels) == MaxCancels; i++ {
		id := "made-up-" + strconv.Itoa(i)
		start := time.Now()
		m, err := r.nc.Request(schema.CancelSubject(k(id)), nil, 2*time.Second)
		if err != nil {
			t.Fatalf("cancel past the bound: %v", err)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("busy answer took %s", took)
		}
		if got := string(m.Data); !strings.Contains(got, ErrBusy) {
			t.Fatalf("reply %s with %d cancellations in hand; want %q", got, MaxCancels, ErrBusy)
		}
		busy = append(busy, id)
	}
	if len(busy) < 5 {
		t.Fatalf("only %d cancellations checked past the bound", len(busy))
	}
	for _, id := range busy {
		if counts := r.stored(id); len(counts) != 0 {
			t.Errorf("%s: stored %v past the bound", id, counts)
		}
	}
	wg.Wait()
	for i, m := range replies {
		if m != nil && !strings.Contains(string(m.Data), string(schema.StatusCancelled)) {
			t.Errorf("held-%d: reply %s", i, m.Data)
		}
	}
	// Room again.
	m, err := r.nc.Request(schema.CancelSubject(k("after-1")), nil, 5*time.Second)
	if err != nil || strings.Contains(string(m.Data), ErrBusy) {
		t.Errorf("cancel after the flood: %v %s", err, m.Data)
	}
}
