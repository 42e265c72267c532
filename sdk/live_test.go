package sdk

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/dispatcher"
	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/internal/events"
	"github.com/brig-dev/brig/internal/natstest"
	"github.com/brig-dev/brig/internal/registry"
	"github.com/brig-dev/brig/schema"
)

// fakeBrig is a real dispatcher (it accepts submissions, answers replay
// and cancel requests) and a fake worker: the test takes each routed job
// and publishes the events it wants, as a worker would. It tests the SDK's
// own logic (live copies, replays, cleanup), not brig's workers.
type fakeBrig struct {
	t    *testing.T
	nc   *nats.Conn
	js   jetstream.JetStream
	pub  *events.Log
	work jetstream.Consumer
	reg  *registry.Registry
}

// startFake runs a server, a dispatcher and the fake worker; the client
// gets the returned connection.
func startFake(t *testing.T) (*fakeBrig, *nats.Conn) {
	t.Helper()
	_, nc, js := natstest.Start(t)
	f := newFake(t, nc, js)
	f.startDispatcher()
	return f, nc
}

// newFake sets up the streams and the fake worker on brig's connection
// nc, without a dispatcher.
func newFake(t *testing.T, nc *nats.Conn, js jetstream.JetStream) *fakeBrig {
	t.Helper()
	if err := bus.EnsureStreams(t.Context(), js, bus.Config{}); err != nil {
		t.Fatal(err)
	}
	work, err := js.CreateOrUpdateConsumer(t.Context(), schema.StreamWork, jetstream.ConsumerConfig{
		Durable: "fake", AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: schema.WorkSubject(schema.DefaultPool),
	})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.Open(t.Context(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeBrig{t: t, nc: nc, js: js, pub: events.NewLog(nc, js, nil), work: work, reg: reg}
	f.alive()
	f.addTenant(schema.Tenant{Name: schema.DefaultTenant})
	return f
}

// addTenant stores a tenant's record, as `brig tenant add` does.
func (f *fakeBrig) addTenant(rec schema.Tenant) {
	f.t.Helper()
	kv, err := bus.OpenTenants(f.t.Context(), f.js, 1)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := bus.PutTenant(f.t.Context(), kv, rec); err != nil {
		f.t.Fatal(err)
	}
}

// keyOf is the key of job: routed jobs carry it as their id, others are
// the default tenant's.
func keyOf(job schema.Job) string {
	if schema.ValidJobKey(job.ID) {
		return job.ID
	}
	return schema.JobKey(schema.DefaultTenant, job.ID)
}

// idOf is the client's id of job.
func idOf(job schema.Job) string {
	if _, id, ok := schema.SplitJobKey(job.ID); ok {
		return id
	}
	return job.ID
}

func (f *fakeBrig) startDispatcher() {
	f.t.Helper()
	d, err := dispatcher.New(dispatcher.Config{
		Conn:   f.nc,
		Logger: slog.New(slog.NewTextHandler(f.t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		f.t.Fatal(err)
	}
	if err := d.Start(f.t.Context()); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = d.Stop(context.Background()) })
}

// alive registers the fake worker, so that the dispatcher routes jobs.
func (f *fakeBrig) alive() {
	f.t.Helper()
	if err := f.reg.Put(f.t.Context(), registry.Worker{ID: "fake", Pools: []string{schema.DefaultPool}, Slots: 1}); err != nil {
		f.t.Fatal(err)
	}
}

// next returns the next job the dispatcher routed.
func (f *fakeBrig) next() schema.Job {
	f.t.Helper()
	f.alive() // registrations expire
	msg, err := f.work.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		f.t.Fatalf("no job routed: %v", err)
	}
	_ = msg.Ack()
	work, err := schema.DecodeWork(msg.Data())
	if err != nil {
		f.t.Fatal(err)
	}
	return work.Job
}

// emit publishes an event of job: stored, and copied to replyTo when set.
func (f *fakeBrig) emit(job schema.Job, typ string, seq int64, replyTo string) {
	f.t.Helper()
	ev := &schema.Event{JobID: keyOf(job), Type: typ, Seq: seq, Attempt: 1, ExitCode: -1}
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

// result waits for a handle's terminal event, which must be the fake's
// success.
func result(t *testing.T, h *Handle) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	if ev, err := h.Result(ctx); err != nil || ev.Stdout != "done" {
		t.Fatalf("job %s: %+v %v", h.ID, ev, err)
	}
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
		job := f.next() // the dispatcher sent accepted to reply_to
		if job.ReplyTo == "" || job.ID != h.Key || h.Key != schema.JobKey(schema.DefaultTenant, h.ID) {
			t.Fatalf("submission %d: reply_to %q id %q", i, job.ReplyTo, job.ID)
		}
		f.emit(job, schema.EventStarted, 2, job.ReplyTo)
		f.emit(job, schema.EventResult, 3, job.ReplyTo)
		var types []string
		for ev := range h.Events() {
			types = append(types, ev.Type)
		}
		if len(types) != 3 || types[0] != schema.EventAccepted || types[2] != schema.EventResult {
			t.Fatalf("events %v", types)
		}
		result(t, h)
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
// away are lost; after a reconnect the handle asks for a replay and gets
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
	f.emit(job, schema.EventResult, 2, "") // stored, copy lost
	if err := nc.ForceReconnect(); err != nil {
		t.Fatal(err)
	}
	result(t, h)
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
// job accepted long ago gets no copy; its handle asks for a replay.
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
	h, err := c.Submit(t.Context(), old) // dropped: no event, no copy
	if err != nil {
		t.Fatal(err)
	}
	result(t, h)
}

// TestSubmitAsksWhenQuiet: a live handle whose terminal copy was lost (the
// publisher's server died; the client's connection never noticed) asks
// whether its job ended and replays it, instead of waiting forever.
func TestSubmitAsksWhenQuiet(t *testing.T) {
	f, nc := startFake(t)
	c, err := New(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.quietCheck = 300 * time.Millisecond
	h, err := c.Submit(t.Context(), schema.Job{Function: "python", Code: "x"})
	if err != nil {
		t.Fatal(err)
	}
	job := f.next()
	f.emit(job, schema.EventStarted, 2, job.ReplyTo)
	f.emit(job, schema.EventResult, 3, "") // stored; its copy lost
	result(t, h)
}

// TestSubmitOwnReplyTo and Watch replay through a dispatcher, whose
// consumer goes when the job ends.
func TestSubmitOwnReplyTo(t *testing.T) {
	f, nc := startFake(t)
	c, err := New(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h, err := c.Submit(t.Context(), schema.Job{Function: "python", Code: "x", ReplyTo: "_INBOX.default.mine.results"})
	if err != nil {
		t.Fatal(err)
	}
	job := f.next()
	if job.ReplyTo != "_INBOX.default.mine.results" {
		t.Fatalf("reply_to %q was replaced", job.ReplyTo)
	}
	f.emit(job, schema.EventResult, 2, job.ReplyTo)
	result(t, h)
	waitFor(t, "the consumer to go", func() bool { return f.consumers() == 0 })

	w, err := c.Watch(t.Context(), idOf(job))
	if err != nil {
		t.Fatal(err)
	}
	result(t, w)
	var types []string
	for ev := range w.Events() {
		types = append(types, ev.Type)
	}
	if len(types) != 2 || types[0] != schema.EventAccepted || types[1] != schema.EventResult {
		t.Errorf("watch replayed %v, want accepted and result", types)
	}
	waitFor(t, "the watch's consumer to go", func() bool { return f.consumers() == 0 })
}

// TestSubmitNewPeeks: SubmitNew asks the replay service whether the id is
// taken, and refuses one that is.
func TestSubmitNewPeeks(t *testing.T) {
	f, nc := startFake(t)
	c, err := New(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h, err := c.SubmitNew(t.Context(), schema.Job{Function: "python", Code: "x"})
	if err != nil {
		t.Fatal(err)
	}
	job := f.next()
	f.emit(job, schema.EventResult, 2, job.ReplyTo)
	result(t, h)
	if _, err := c.SubmitNew(t.Context(), schema.Job{ID: idOf(job), Function: "python", Code: "x"}); !errors.Is(err, ErrDuplicateID) {
		t.Fatalf("SubmitNew of a taken id: %v, want ErrDuplicateID", err)
	}
}

// TestReplayAsksAgain: a replay request nobody answers (no dispatcher:
// the server says so) or that is lost (taken, never answered) is sent
// again until a dispatcher answers.
func TestReplayAsksAgain(t *testing.T) {
	_, nc, js := natstest.Start(t)
	f := newFake(t, nc, js)
	job := schema.Job{ID: "lost-1", Function: "python"}
	f.emit(job, schema.EventAccepted, 1, "")
	f.emit(job, schema.EventResult, 2, "")
	c, err := New(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.replayQuiet = 300 * time.Millisecond

	h, err := c.Watch(t.Context(), job.ID)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "no responders", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.replayErr != nil && strings.Contains(h.replayErr.Error(), "no dispatcher")
	})
	// Now requests are taken, and dropped.
	var mu sync.Mutex
	taken := 0
	hole, err := nc.Subscribe(schema.ReplaySubject(keyOf(job)), func(*nats.Msg) { mu.Lock(); taken++; mu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = hole.Unsubscribe() }()
	waitFor(t, "requests to be lost", func() bool { mu.Lock(); defer mu.Unlock(); return taken >= 2 })
	f.startDispatcher()
	result(t, h)
}

// TestRestrictedClient: a client whose connection may only publish
// brig.submit.>, brig.cancel.* and brig.replay.* and subscribe to _INBOX.>
// (no JetStream API, docs/design.md §10) submits, runs, watches, cancels
// and checks ids.
func TestRestrictedClient(t *testing.T) {
	url := restrictedServer(t)
	brigNC, err := nats.Connect(url, nats.UserInfo("brig", "brig"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(brigNC.Close)
	js, err := jetstream.New(brigNC)
	if err != nil {
		t.Fatal(err)
	}
	f := newFake(t, brigNC, js)
	f.startDispatcher()

	var mu sync.Mutex
	var violations []error
	nc, err := nats.Connect(url, nats.UserInfo("tenant", "tenant"), nats.CustomInboxPrefix(schema.InboxPrefix(schema.DefaultTenant)), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		mu.Lock()
		violations = append(violations, err)
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	c, err := New(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// Run: the live path.
	ran := make(chan error, 1)
	go func() {
		_, err := c.Run(t.Context(), schema.Job{Function: "python", Code: "x"})
		ran <- err
	}()
	job := f.next()
	f.emit(job, schema.EventResult, 2, job.ReplyTo)
	if err := <-ran; err != nil {
		t.Fatalf("run: %v", err)
	}
	// Submit with a reply_to of its own: a replay.
	h, err := c.Submit(t.Context(), schema.Job{Function: "python", Code: "x", ReplyTo: "_INBOX.default.own"})
	if err != nil {
		t.Fatal(err)
	}
	job = f.next()
	f.emit(job, schema.EventResult, 2, "")
	result(t, h)
	// Watch a finished job, cancel it, and check its id is taken.
	w, err := c.Watch(t.Context(), idOf(job))
	if err != nil {
		t.Fatal(err)
	}
	result(t, w)
	if status, err := c.Cancel(t.Context(), idOf(job)); err != nil || status != schema.StatusSucceeded {
		t.Errorf("cancel of an ended job: %q %v", status, err)
	}
	if _, err := c.Cancel(t.Context(), "never-submitted"); !errors.Is(err, ErrNotFound) {
		t.Errorf("cancel of an unknown job: %v, want ErrNotFound", err)
	}
	if _, err := c.SubmitNew(t.Context(), schema.Job{ID: idOf(job), Function: "python", Code: "x"}); !errors.Is(err, ErrDuplicateID) {
		t.Errorf("SubmitNew of a taken id: %v, want ErrDuplicateID", err)
	}

	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(violations) != 0 {
		t.Errorf("the client broke its permissions: %v", violations)
	}
	mu.Unlock()
	// The restriction holds: the client cannot even look at a stream.
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	if _, err := c.js.Stream(ctx, schema.StreamEvents); err == nil {
		t.Error("the restricted client reached the JetStream API")
	}
	waitFor(t, "the server to refuse the JetStream API", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(violations) > 0 && strings.Contains(strings.ToLower(violations[0].Error()), "permissions violation")
	})
}

// restrictedServer runs a JetStream server with two users: brig, allowed
// everything, and tenant, allowed what a client of the tenant default is
// (docs/design.md §10.2, internal/auth/permissions.go).
func restrictedServer(t *testing.T) string {
	t.Helper()
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		Users: []*server.User{
			{Username: "brig", Password: "brig"},
			{Username: "tenant", Password: "tenant", Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: []string{"brig.submit.default.>", "brig.cancel.default.*", "brig.replay.default.*"}},
				Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.default.>"}},
			}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	return ns.ClientURL()
}
