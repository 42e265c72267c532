package sdktest

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/brig-dev/brig/dispatcher"
	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/internal/events"
	"github.com/brig-dev/brig/internal/natstest"
	"github.com/brig-dev/brig/internal/registry"
	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
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
func (f *fakeBrig) emit(job schema.Job, typ schema.EventType, seq int64, replyTo string) {
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

// waitBudget bounds every wait of these tests. It is generous: the SDK's
// own timers run at their real lengths here (a quiet live handle asks
// after 10 s, an unanswered replay request is sent again after 15 s), and
// a wait ends as soon as its condition holds.
const waitBudget = time.Minute

// waitFor polls cond until it holds, failing the test after waitBudget.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitBudget)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// result waits for a handle's terminal event, which must be the fake's
// success.
func result(t *testing.T, h *sdk.Handle) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitBudget)
	defer cancel()
	if ev, err := h.Result(ctx); err != nil || ev.Stdout != "done" {
		t.Fatalf("job %s: %+v %v", h.ID, ev, err)
	}
}

// writeCreds writes a .creds file whose user JWT carries tags.
func writeCreds(t *testing.T, tags ...string) string {
	t.Helper()
	akp, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	ukp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	upub, _ := ukp.PublicKey()
	uc := jwt.NewUserClaims(upub)
	uc.Tags.Add(tags...)
	token, err := uc.Encode(akp)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := ukp.Seed()
	creds, err := jwt.FormatUserConfig(token, seed)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "user.creds")
	if err := os.WriteFile(file, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	return file
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
