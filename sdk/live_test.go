package sdk

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/internal/events"
	"github.com/brig-dev/brig/internal/natstest"
	"github.com/brig-dev/brig/schema"
)

// fakeBrig plays brig's side of the wire on a real JetStream: it takes
// submissions and publishes the events the test asks for. It tests the
// SDK's own logic (live copies, replays, cleanup), not brig.
type fakeBrig struct {
	t    *testing.T
	js   jetstream.JetStream
	pub  *events.Publisher
	subs jetstream.Consumer
}

func startFake(t *testing.T) (*fakeBrig, *nats.Conn) {
	t.Helper()
	_, nc, js := natstest.Start(t)
	if err := bus.EnsureStreams(t.Context(), js, bus.Config{}); err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(t.Context(), schema.StreamSubmit, jetstream.ConsumerConfig{Durable: "fake", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	return &fakeBrig{t: t, js: js, pub: events.NewPublisher(nc, js), subs: cons}, nc
}

// next returns the next submitted job.
func (f *fakeBrig) next() schema.Job {
	f.t.Helper()
	msg, err := f.subs.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		f.t.Fatalf("no submission: %v", err)
	}
	_ = msg.Ack()
	var job schema.Job
	if err := json.Unmarshal(msg.Data(), &job); err != nil {
		f.t.Fatal(err)
	}
	return job
}

// emit publishes an event of job: stored, and copied to replyTo when set.
func (f *fakeBrig) emit(job schema.Job, typ string, seq int64, replyTo string) {
	f.t.Helper()
	ev := &schema.Event{JobID: job.ID, Type: typ, Seq: seq, Attempt: 1, ExitCode: -1}
	if schema.IsTerminal(typ) {
		ev.Status, ev.ExitCode, ev.Stdout = schema.StatusSucceeded, 0, "done"
	}
	if _, err := f.pub.Publish(f.t.Context(), ev, replyTo); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeBrig) consumers() int {
	f.t.Helper()
	s, err := f.js.Stream(f.t.Context(), schema.StreamEvents)
	if err != nil {
		f.t.Fatal(err)
	}
	info, err := s.Info(f.t.Context())
	if err != nil {
		f.t.Fatal(err)
	}
	return info.State.Consumers
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestSubmitLiveLeavesNoConsumer: a submitted job's events come on the
// client's inbox, in order, and the handle leaves nothing on the server
// (a consumer per job would hit the stream's consumer limit).
func TestSubmitLiveLeavesNoConsumer(t *testing.T) {
	f, nc := startFake(t)
	c, err := New(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 3 {
		h, err := c.Submit(t.Context(), schema.Job{Function: "python", Code: "x"})
		if err != nil {
			t.Fatal(err)
		}
		job := f.next()
		if job.ReplyTo == "" || job.ID != h.ID {
			t.Fatalf("submission %d: reply_to %q id %q", i, job.ReplyTo, job.ID)
		}
		f.emit(job, schema.EventAccepted, 1, job.ReplyTo)
		f.emit(job, schema.EventStarted, 2, job.ReplyTo)
		f.emit(job, schema.EventResult, 3, job.ReplyTo)
		var types []string
		for ev := range h.Events() {
			types = append(types, ev.Type)
		}
		if len(types) != 3 || types[2] != schema.EventResult {
			t.Fatalf("events %v", types)
		}
		if ev, err := h.Result(t.Context()); err != nil || ev.Stdout != "done" {
			t.Fatalf("result %v %v", ev, err)
		}
		if n := f.consumers(); n != 0 {
			t.Fatalf("%d consumers on the events stream after a live job", n)
		}
	}
	waitFor(t, "the inbox to forget finished jobs", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.live) == 0
	})
}

// TestSubmitReplaysAfterReconnect: copies published while the client was
// away are lost; after a reconnect the handle reads the stream and gets
// every event once.
func TestSubmitReplaysAfterReconnect(t *testing.T) {
	f, nc := startFake(t)
	c, err := New(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h, err := c.Submit(t.Context(), schema.Job{Function: "python", Code: "x"})
	if err != nil {
		t.Fatal(err)
	}
	job := f.next()
	f.emit(job, schema.EventAccepted, 1, job.ReplyTo) // live: the handle is not silent
	f.emit(job, schema.EventResult, 2, "")            // stored, copy lost
	if err := nc.ForceReconnect(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ev, err := h.Result(ctx)
	if err != nil || ev.Type != schema.EventResult {
		t.Fatalf("after a reconnect: %v %v", ev, err)
	}
	var n int
	for range h.Events() {
		n++
	}
	if n != 2 {
		t.Errorf("%d events delivered, want 2 (accepted once, result)", n)
	}
	waitFor(t, "the replay's consumer to go", func() bool { return f.consumers() == 0 })
}

// TestSubmitReplaysWhenSilent: a submission brig drops as a duplicate of a
// job accepted long ago gets no copy; its handle reads the stream.
func TestSubmitReplaysWhenSilent(t *testing.T) {
	f, nc := startFake(t)
	c, err := New(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	old := schema.Job{ID: "old-job", Function: "python", Code: "x"}
	f.emit(old, schema.EventAccepted, 1, "")
	f.emit(old, schema.EventResult, 2, "")
	h, err := c.Submit(t.Context(), old)
	if err != nil {
		t.Fatal(err)
	}
	f.next() // dropped: no event, no copy
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if ev, err := h.Result(ctx); err != nil || ev.Stdout != "done" {
		t.Fatalf("silent resubmission: %v %v", ev, err)
	}
}

// TestSubmitOwnReplyTo and Watch read the stream and delete their consumer
// when the job ends.
func TestSubmitOwnReplyTo(t *testing.T) {
	f, nc := startFake(t)
	c, err := New(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h, err := c.Submit(t.Context(), schema.Job{Function: "python", Code: "x", ReplyTo: "mine.results"})
	if err != nil {
		t.Fatal(err)
	}
	job := f.next()
	if job.ReplyTo != "mine.results" {
		t.Fatalf("reply_to %q was replaced", job.ReplyTo)
	}
	f.emit(job, schema.EventResult, 1, job.ReplyTo)
	if _, err := h.Result(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the consumer to go", func() bool { return f.consumers() == 0 })

	w, err := c.Watch(t.Context(), job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Result(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the watch's consumer to go", func() bool { return f.consumers() == 0 })
}
