package sdktest

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/natstest"
	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// TestSubmitLiveLeavesNoConsumer: a submitted job's events come on the
// client's inbox, in order, and the handle leaves nothing on the server
// (a consumer per job would hit the stream's consumer limit) nor in the
// client (the inbox forgets finished jobs).
func TestSubmitLiveLeavesNoConsumer(t *testing.T) {
	f, nc := startFake(t)
	c, err := sdk.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var ids []string
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
		var types []schema.EventType
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
		ids = append(ids, h.ID)
	}
	// The client follows one live handle per key: while a finished job's
	// handle stayed registered, a new submission of its id would replay
	// instead and carry no reply_to. So each id, submitted again, must
	// soon go out with the client's inbox as reply_to. (Those submissions
	// are duplicates that BRIG_SUBMIT drops.)
	subs := make(chan *nats.Msg, 16)
	sub, err := nc.ChanSubscribe(schema.SubmitPrefix+">", subs)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	for _, id := range ids {
		waitFor(t, "the inbox to forget finished job "+id, func() bool {
			h, err := c.Submit(t.Context(), schema.Job{ID: id, Function: "python", Code: "x"})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Stop()
			return submittedReplyTo(t, subs) != ""
		})
	}
}

// submittedReplyTo returns the reply_to of the next submission on subs.
func submittedReplyTo(t *testing.T, subs <-chan *nats.Msg) string {
	t.Helper()
	select {
	case m := <-subs:
		var job struct {
			ReplyTo string `json:"reply_to"`
		}
		if err := json.Unmarshal(m.Data, &job); err != nil {
			t.Fatalf("submission %s: %v", m.Data, err)
		}
		return job.ReplyTo
	case <-time.After(10 * time.Second):
		t.Fatal("no submission published")
		return ""
	}
}

// TestSubmitReplaysAfterReconnect: copies published while the client was
// away are lost; after a reconnect the handle asks for a replay and gets
// every event once.
func TestSubmitReplaysAfterReconnect(t *testing.T) {
	f, nc := startFake(t)
	c, err := sdk.New(nc)
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
	c, err := sdk.New(nc)
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
// whether its job ended and replays it, instead of waiting forever. The
// handle asks after the SDK's real quiet period (10 s), so the test runs
// beside the others.
func TestSubmitAsksWhenQuiet(t *testing.T) {
	t.Parallel()
	f, nc := startFake(t)
	c, err := sdk.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
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
	c, err := sdk.New(nc)
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
	var types []schema.EventType
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
	c, err := sdk.New(nc)
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
	if _, err := c.SubmitNew(t.Context(), schema.Job{ID: idOf(job), Function: "python", Code: "x"}); !errors.Is(err, sdk.ErrDuplicateID) {
		t.Fatalf("SubmitNew of a taken id: %v, want ErrDuplicateID", err)
	}
}

// TestReplayAsksAgain: a replay request nobody answers (no dispatcher:
// the server says so) or that is lost (taken, never answered) is sent
// again until a dispatcher answers. A lost request is sent again after
// the SDK's real quiet period (15 s), so the test runs beside the others.
func TestReplayAsksAgain(t *testing.T) {
	t.Parallel()
	_, nc, js := natstest.Start(t)
	f := newFake(t, nc, js)
	job := schema.Job{ID: "lost-1", Function: "python"}
	f.emit(job, schema.EventAccepted, 1, "")
	f.emit(job, schema.EventResult, 2, "")
	c, err := sdk.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	h, err := c.Watch(t.Context(), job.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	// A Result that runs out of time names the replay's last failure.
	waitFor(t, "no responders", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		_, err := h.Result(ctx)
		return err != nil && strings.Contains(err.Error(), "no dispatcher")
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
	c, err := sdk.New(nc)
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
	if _, err := c.Cancel(t.Context(), "never-submitted"); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("cancel of an unknown job: %v, want ErrNotFound", err)
	}
	if _, err := c.SubmitNew(t.Context(), schema.Job{ID: idOf(job), Function: "python", Code: "x"}); !errors.Is(err, sdk.ErrDuplicateID) {
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
	// The restriction holds: the client's connection cannot even look at
	// a stream.
	cjs, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	if _, err := cjs.Stream(ctx, schema.StreamEvents); err == nil {
		t.Error("the restricted client reached the JetStream API")
	}
	waitFor(t, "the server to refuse the JetStream API", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(violations) > 0 && strings.Contains(strings.ToLower(violations[0].Error()), "permissions violation")
	})
}
