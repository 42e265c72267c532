package gateway

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/dispatcher"
	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/internal/events"
	"github.com/brig-dev/brig/internal/gatewayproto"
	"github.com/brig-dev/brig/internal/natstest"
	"github.com/brig-dev/brig/internal/registry"
	"github.com/brig-dev/brig/schema"
)

// TestChildCallInTenant runs function.call through the gateway's own SDK
// clients (Config.Conn) against a real dispatcher, with a stand-in worker
// that answers the child whose code is "answer" and leaves any other
// queued. A child is submitted on its caller's tenant's subject under a
// key of that tenant, its events are that tenant's (and the call is
// answered with them), and a child whose call ends first is cancelled in
// that tenant.
func TestChildCallInTenant(t *testing.T) {
	_, nc, js := natstest.Start(t)
	ctx := t.Context()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	tenants, err := bus.OpenTenants(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.PutTenant(ctx, tenants, schema.Tenant{Name: testTenant}); err != nil {
		t.Fatal(err)
	}
	d, err := dispatcher.New(dispatcher.Config{Conn: nc, Logger: log.With("role", "dispatcher")})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Stop(context.Background()) })
	reg, err := registry.Open(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Put(ctx, registry.Worker{ID: "w1", Pools: []string{schema.DefaultPool}, Slots: 1}); err != nil {
		t.Fatal(err)
	}
	standInWorker(t, nc, js)
	submissions := make(chan *nats.Msg, 10)
	sub, err := nc.ChanSubscribe(schema.SubmitPrefix+">", submissions)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })

	keys := natstest.PublishKeys(t, js)
	g, err := New(Config{JS: js, Keys: keys.Ring.Func, Conn: nc, Logger: log.With("role", "gateway")})
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "gw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s.sock")
	ln, err := g.Listen(ctx, sock, Binding{JobID: testJob, Deadline: time.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ln.Close()
		if err := g.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	c := dialSock(t, sock)
	tok := keys.Mint(testJob, "function:python:call")

	// A child that ends: the call answers with its terminal event.
	resp := c.do(gatewayproto.Request{ID: 1, Token: tok, Op: gatewayproto.OpCall, Name: "python", Code: "answer", TimeoutMS: 20_000})
	wantOK(t, resp)
	var ev schema.Event
	if err := json.Unmarshal(resp.Value, &ev); err != nil {
		t.Fatal(err)
	}
	tenant, id, ok := schema.SplitJobKey(ev.JobID)
	if !ok || tenant != testTenant || !isChildID(id, testID) || ev.Status != schema.StatusSucceeded || string(ev.Output) != `{"ok":true}` {
		t.Fatalf("the call answered with %s", resp.Value)
	}
	wantSubmitted(t, submissions, ev.JobID)
	if n := storedEvents(t, js, schema.EventsFilter(ev.JobID)); n < 2 {
		t.Fatalf("%d events stored for the child %s, want its accepted and result events", n, ev.JobID)
	}

	// A child still queued when its call runs out of time: cancelled in
	// the tenant.
	resp = c.do(gatewayproto.Request{ID: 2, Token: tok, Op: gatewayproto.OpCall, Name: "python", Code: "stay queued", TimeoutMS: 2500})
	wantError(t, resp, gatewayproto.ErrTimeout, "out of time")
	key := wantSubmitted(t, submissions, "")
	if end := terminalEvent(t, js, key); end.Status != schema.StatusCancelled {
		t.Fatalf("the child of a call that timed out ended %+v, want cancelled", end)
	}
	// Nothing of either child lies outside the tenant.
	if n := storedEvents(t, js, schema.EventsPrefix+schema.DefaultTenant+".>"); n != 0 {
		t.Fatalf("%d events stored in tenant default", n)
	}
}

// wantSubmitted reads the next submission and checks that it was made in
// the tenant, keyed by a child key of testJob (key, when not ""). It
// returns the key.
func wantSubmitted(t *testing.T, submissions <-chan *nats.Msg, key string) string {
	t.Helper()
	select {
	case msg := <-submissions:
		got := msg.Header.Get(jetstream.MsgIDHeader)
		tenant, id, ok := schema.SplitJobKey(got)
		if msg.Subject != schema.SubmitSubject(testTenant, "python") || !ok || tenant != testTenant ||
			!isChildID(id, testID) || (key != "" && got != key) {
			t.Fatalf("child submitted on %s with Nats-Msg-Id %q, want %s and %s", msg.Subject, got,
				schema.SubmitSubject(testTenant, "python"), key)
		}
		var job schema.Job
		if err := json.Unmarshal(msg.Data, &job); err != nil || job.ID != id ||
			(job.ReplyTo != "" && !strings.HasPrefix(job.ReplyTo, schema.InboxPrefix(testTenant)+".")) {
			t.Fatalf("child job %s (%v): want id %s and a reply_to in the tenant's inbox", msg.Data, err, id)
		}
		return got
	case <-time.After(10 * time.Second):
		t.Fatal("no child submitted")
	}
	return ""
}

// standInWorker takes the default pool's work: it answers a job whose code
// is "answer" with a result event, and leaves any other queued.
func standInWorker(t *testing.T, nc *nats.Conn, js jetstream.JetStream) {
	t.Helper()
	cons, err := js.CreateOrUpdateConsumer(t.Context(), schema.StreamWork, jetstream.ConsumerConfig{
		Durable: "stand-in", FilterSubject: schema.WorkSubject(schema.DefaultPool), AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	pub := events.NewLog(nc, js, nil)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		var w schema.Work
		if err := json.Unmarshal(m.Data(), &w); err != nil {
			t.Errorf("work %s: %v", m.Data(), err)
			return
		}
		if w.Job.Code != "answer" {
			return // not acked: queued until the test ends
		}
		ev := &schema.Event{JobID: w.Job.ID, Type: schema.EventResult, Status: schema.StatusSucceeded, Attempt: 1,
			Output: json.RawMessage(`{"ok":true}`)}
		if _, err := pub.Publish(context.Background(), ev, w.Job.ReplyTo); err != nil {
			t.Errorf("publish the result of %s: %v", w.Job.ID, err)
		}
		_ = m.Ack()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cc.Stop)
}

// storedEvents counts the events stored on subjects matching filter.
func storedEvents(t *testing.T, js jetstream.JetStream, filter string) int {
	t.Helper()
	s, err := js.Stream(t.Context(), schema.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context(), jetstream.WithSubjectFilter(filter))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range info.State.Subjects {
		n += int(c)
	}
	return n
}

// terminalEvent waits for the terminal event of the job with key.
func terminalEvent(t *testing.T, js jetstream.JetStream, key string) *schema.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, schema.StreamEvents, jetstream.OrderedConsumerConfig{FilterSubjects: []string{schema.EventsFilter(key)}})
	if err != nil {
		t.Fatal(err)
	}
	for {
		msg, err := cons.Next(jetstream.FetchContext(ctx))
		if err != nil {
			t.Fatalf("job %s: no terminal event: %v", key, err)
		}
		if ev, err := schema.DecodeEvent(msg.Data()); err == nil && schema.IsTerminal(ev.Type) {
			return ev
		}
	}
}
