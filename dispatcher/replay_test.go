package dispatcher

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/schema"
)

// replies collects the answers to one replay request.
type replies struct {
	t    *testing.T
	msgs chan *nats.Msg
}

// ask sends a replay request for id with body, its answers going to a
// fresh inbox subscribed before the request is sent.
func (r *rig) ask(id string, body []byte) *replies {
	r.t.Helper()
	return r.askTo(r.nc.NewInbox(), id, body)
}

func (r *rig) askTo(reply, id string, body []byte) *replies {
	r.t.Helper()
	box := &replies{t: r.t, msgs: make(chan *nats.Msg, 1024)}
	sub, err := r.nc.ChanSubscribe(reply, box.msgs)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := r.nc.Flush(); err != nil {
		r.t.Fatal(err)
	}
	if err := r.nc.PublishMsg(&nats.Msg{Subject: schema.ReplaySubject(k(id)), Reply: reply, Data: body}); err != nil {
		r.t.Fatal(err)
	}
	return box
}

// next returns the next answer, heartbeats included.
func (b *replies) next() *nats.Msg {
	b.t.Helper()
	select {
	case m := <-b.msgs:
		return m
	case <-time.After(10 * time.Second):
		b.t.Fatal("no answer to the replay request")
		return nil
	}
}

// event returns the next answer that is not a heartbeat.
func (b *replies) event() *nats.Msg {
	b.t.Helper()
	for {
		if m := b.next(); control(m) != ReplayAlive {
			return m
		}
	}
}

// wantControl checks that the next answer other than a heartbeat is c.
func (b *replies) wantControl(c ReplayControl) *nats.Msg {
	b.t.Helper()
	m := b.event()
	if got := control(m); got != c || len(m.Data) != 0 {
		b.t.Fatalf("answer %q (%q, body %q); want control %q", got, m.Header.Get(ReplayErrorHeader), m.Data, c)
	}
	return m
}

// wantEvent checks that the next answer other than a heartbeat is the
// event of type typ, and returns its stream sequence.
func (b *replies) wantEvent(typ schema.EventType) uint64 {
	b.t.Helper()
	m := b.event()
	ev, err := schema.DecodeEvent(m.Data)
	if err != nil || ev.Type != typ {
		b.t.Fatalf("answer %q %q (%v); want a %s event", control(m), m.Data, err, typ)
	}
	seq, err := strconv.ParseUint(m.Header.Get(ReplaySeqHeader), 10, 64)
	if err != nil {
		b.t.Fatalf("%s event without a stream sequence: %v", typ, err)
	}
	return seq
}

func control(m *nats.Msg) ReplayControl {
	return ReplayControl(m.Header.Get(ReplayHeader))
}

// emit stores an event of job id.
func (r *rig) emit(id string, typ schema.EventType, seq int64) {
	r.t.Helper()
	ev := &schema.Event{JobID: k(id), Type: typ, Seq: seq, Attempt: 1, ExitCode: -1}
	if schema.IsTerminal(typ) {
		ev.Status, ev.ExitCode = schema.StatusSucceeded, 0
	}
	if _, err := r.d.events.Publish(r.t.Context(), ev, ""); err != nil {
		r.t.Fatal(err)
	}
}

// eventConsumers counts the consumers on the events stream.
func (r *rig) eventConsumers() int {
	r.t.Helper()
	s, err := r.js.Stream(r.t.Context(), schema.StreamEvents)
	if err != nil {
		r.t.Fatal(err)
	}
	info, err := s.Info(r.t.Context())
	if err != nil {
		r.t.Fatal(err)
	}
	return info.State.Consumers
}

func (r *rig) waitNoConsumers() {
	r.t.Helper()
	r.waitFor("no consumers left on "+schema.StreamEvents, func() (bool, string) {
		n := r.eventConsumers()
		return n == 0, fmt.Sprintf("%d consumers", n)
	})
}

// TestReplayFinishedJob: every stored event, as stored and in order, then
// end; the follow's consumer is deleted.
func TestReplayFinishedJob(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	id := "done-1"
	types := []schema.EventType{schema.EventAccepted, schema.EventStarted, schema.EventOutput, schema.EventResult}
	for i, typ := range types {
		r.emit(id, typ, int64(i+1))
	}
	r.emit("other-1", schema.EventAccepted, 1) // another job's event is not sent
	box := r.ask(id, nil)
	if m := box.next(); control(m) != ReplayAlive {
		t.Fatalf("first answer %q, want a heartbeat", control(m))
	}
	var last uint64
	for _, typ := range types {
		seq := box.wantEvent(typ)
		if seq <= last {
			t.Fatalf("%s event at sequence %d after %d", typ, seq, last)
		}
		last = seq
		stored, err := r.js.Stream(t.Context(), schema.StreamEvents)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := stored.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatal(err)
		}
		if raw.Subject != schema.EventSubject(k(id), typ) {
			t.Fatalf("sequence %d is %s", seq, raw.Subject)
		}
	}
	box.wantControl(ReplayEnd)
	r.waitNoConsumers()
}

// TestReplayFollowsRunningJob: events stored after the request come too,
// up to the terminal one.
func TestReplayFollowsRunningJob(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	id := "running-1"
	r.emit(id, schema.EventAccepted, 1)
	box := r.ask(id, []byte(" {} "))
	box.wantEvent(schema.EventAccepted)
	r.emit(id, schema.EventStarted, 2)
	box.wantEvent(schema.EventStarted)
	r.emit(id, schema.EventCancelled, 3)
	box.wantEvent(schema.EventCancelled)
	box.wantControl(ReplayEnd)
	r.waitNoConsumers()
}

// TestReplayQueuedJob: a job with no event yet is followed until it has
// one.
func TestReplayQueuedJob(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	id := "queued-1"
	box := r.ask(id, nil)
	if m := box.next(); control(m) != ReplayAlive {
		t.Fatalf("first answer %q, want a heartbeat", control(m))
	}
	r.emit(id, schema.EventError, 2)
	box.wantEvent(schema.EventError)
	box.wantControl(ReplayEnd)
}

// TestReplayOnlyToInboxes: a request whose reply subject is not an inbox
// of the job's tenant gets no answer, whatever it asks; the dispatcher
// publishes nowhere a client names outside _INBOX.<tenant>.>.
func TestReplayOnlyToInboxes(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	id := "running-2"
	r.emit(id, schema.EventAccepted, 1)
	elsewhere := make(chan *nats.Msg, 16)
	sub, err := r.nc.ChanSubscribe(">", elsewhere)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	bad := strings.Repeat("x", 65)
	foreign := []string{"brig.cancel." + k(id), "brig.work.default", "$KV.BRIG_FUNCTIONS.python", "_INBOX", "_INBOX.a.*", "_INBOX.a..b", "inbox.x", "",
		"_INBOX.x", "_INBOX.acme.x", "_INBOX.defaultx.y", "_INBOX.default", "_INBOX.default.*", "_INBOX.default.>"}
	for _, reply := range foreign {
		for _, req := range []struct {
			id   string
			body []byte
		}{{id, nil}, {id, []byte(`{"peek":true}`)}, {bad, nil}, {id, []byte("junk")}} {
			msg := &nats.Msg{Subject: schema.ReplaySubject(k(req.id)), Reply: reply, Data: req.body}
			if err := r.nc.PublishMsg(msg); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Requests are handled in order: once a later one is answered, the
	// ones above were dropped, or they would hold a follow or have been
	// answered first.
	r.ask(bad, nil).wantControl(ReplayError)
	if n := len(r.d.replays); n != 0 {
		t.Errorf("%d replays in hand for requests without an inbox", n)
	}
	for {
		select {
		case m := <-elsewhere:
			if slices.Contains(foreign, m.Subject) {
				t.Errorf("the dispatcher published on %s", m.Subject)
			}
		default:
			return
		}
	}
}

// TestReplayInvalidRequest: an invalid id or body is answered with one
// error, and starts nothing.
func TestReplayInvalidRequest(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	for name, req := range map[string]struct {
		id, body, want string
	}{
		"id too long":   {strings.Repeat("x", 65), "", "invalid job key"},
		"unknown field": {"job-1", `{"peek":true,"from":3}`, "unknown field"},
		"not JSON":      {"job-1", `peek`, "not a JSON object"},
		"trailing data": {"job-1", `{"peek":true}{}`, "data after"},
		"wrong type":    {"job-1", `{"peek":"yes"}`, "invalid replay request"},
		"too big":       {"job-1", `{"peek":true}` + strings.Repeat(" ", maxReplayRequest), "over"},
	} {
		m := r.ask(req.id, []byte(req.body)).wantControl(ReplayError)
		if text := m.Header.Get(ReplayErrorHeader); !strings.Contains(text, req.want) {
			t.Errorf("%s: error %q does not say %q", name, text, req.want)
		}
	}
	if n := len(r.d.replays); n != 0 {
		t.Errorf("%d replays in hand after invalid requests", n)
	}
}

// TestReplayPeek: one answer saying whether the job has events and its
// terminal one.
func TestReplayPeek(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	id := "peek-1"
	peek := func() PeekReply {
		t.Helper()
		m, err := r.nc.RequestWithContext(t.Context(), schema.ReplaySubject(k(id)), []byte(`{"peek":true}`))
		if err != nil {
			t.Fatal(err)
		}
		var p PeekReply
		if err := json.Unmarshal(m.Data, &p); err != nil || control(m) != "" {
			t.Fatalf("peek answered %q %q: %v", control(m), m.Data, err)
		}
		return p
	}
	if p := peek(); p.Exists || p.Terminal {
		t.Errorf("no events: %+v", p)
	}
	r.emit(id, schema.EventAccepted, 1)
	if p := peek(); !p.Exists || p.Terminal || p.Started || p.Event != nil {
		t.Errorf("accepted: %+v", p)
	}
	r.emit(id, schema.EventStarted, 2)
	if p := peek(); !p.Exists || p.Terminal || !p.Started || p.Event != nil {
		t.Errorf("started: %+v", p)
	}
	r.emit(id, schema.EventTimeout, 3)
	if p := peek(); !p.Exists || !p.Terminal || p.Event == nil || p.Event.Type != schema.EventTimeout || p.Event.Seq != 3 || p.Event.JobID != k(id) {
		t.Errorf("ended: %+v (event %+v)", p, p.Event)
	}
	if r.eventConsumers() != 0 {
		t.Error("a peek made a consumer")
	}
}

// TestReplayBusy: past MaxReplays a request is answered busy at once; a
// slot frees when a follow ends.
func TestReplayBusy(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(c *Config) { c.MaxReplays = 1 })
	id := "busy-1"
	first := r.ask(id, nil)
	if m := first.next(); control(m) != ReplayAlive {
		t.Fatalf("first answer %q, want a heartbeat", control(m))
	}
	r.ask(id, nil).wantControl(ReplayBusy)
	r.ask(id, []byte(`{"peek":true}`)).wantControl(ReplayBusy)
	r.emit(id, schema.EventResult, 1)
	first.wantEvent(schema.EventResult)
	first.wantControl(ReplayEnd)
	// The slot is given back just after end is sent.
	r.waitFor("the follow's slot given back", func() (bool, string) {
		n := len(r.d.replays)
		return n == 0, fmt.Sprintf("%d replays in hand", n)
	})
	again := r.ask(id, nil)
	again.wantEvent(schema.EventResult)
	again.wantControl(ReplayEnd)
}

// TestReplayStopsWithDispatcher: Stop ends every follow with idle (the
// client asks another dispatcher) and leaves no consumer.
func TestReplayStopsWithDispatcher(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	var boxes []*replies
	for i := range 3 {
		id := "stop-" + strconv.Itoa(i)
		r.emit(id, schema.EventAccepted, 1)
		box := r.ask(id, nil)
		box.wantEvent(schema.EventAccepted)
		boxes = append(boxes, box)
	}
	if n := r.eventConsumers(); n != 3 {
		t.Fatalf("%d consumers for 3 follows", n)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := r.d.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(r.d.replays); n != 0 {
		t.Errorf("%d replays in hand after Stop", n)
	}
	if n := r.eventConsumers(); n != 0 {
		t.Errorf("%d consumers left after Stop", n)
	}
	for _, box := range boxes {
		box.wantControl(ReplayIdle)
	}
	// Nobody answers any more.
	if _, err := r.nc.RequestWithContext(ctx, schema.ReplaySubject(k("stop-0")), nil); err != nats.ErrNoResponders {
		t.Errorf("request after Stop: %v, want no responders", err)
	}
}

// TestTenantReplaysBound: one tenant's requests in hand stop at the bound
// while another tenant's still count from zero.
func TestTenantReplaysBound(t *testing.T) {
	t.Parallel()
	c := tenantCounts{limit: 2}
	if !c.take("a") || !c.take("a") || c.take("a") {
		t.Fatal("tenant a: want 2 requests in hand and the third refused")
	}
	if !c.take("b") {
		t.Fatal("tenant b refused while a is at its bound")
	}
	c.give("a")
	if !c.take("a") {
		t.Fatal("tenant a refused after one of its requests ended")
	}
}

// TestTenantRate: a tenant's requests past its burst are refused until
// the bucket refills, while another tenant's are not.
func TestTenantRate(t *testing.T) {
	t.Parallel()
	var r tenantRate
	now := time.Now()
	for i := range TenantRequestBurst {
		if !r.allow("a", now) {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	if r.allow("a", now) {
		t.Fatal("a request past the burst allowed")
	}
	if !r.allow("b", now) {
		t.Fatal("another tenant refused")
	}
	if !r.allow("a", now.Add(time.Second/TenantRequestRate)) {
		t.Fatal("refused after the bucket refilled one token")
	}
}
