package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/auth"
	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/internal/devstack"
	eventlog "github.com/brig-dev/brig/internal/events"
	"github.com/brig-dev/brig/internal/functions"
	"github.com/brig-dev/brig/internal/sandbox"
	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// Bounds of the waits in tests. A job of the suite takes a second or two;
// these leave room for a loaded 2-core box running four at once.
const (
	jobBudget  = 2 * time.Minute
	pollBudget = 30 * time.Second
	pollEvery  = 50 * time.Millisecond
)

// terminalTypes are the event types that end a job.
var terminalTypes = []schema.EventType{schema.EventResult, schema.EventTimeout, schema.EventError, schema.EventCancelled}

// newID returns a fresh job id that names the test it belongs to.
func newID(prefix string) string { return prefix + "-" + randomHex(6) }

// keyOf is the job key of id in the default tenant, brig's tenant: what
// its events' job_id, its subjects and its containers' labels carry
// (docs/design.md §10.3).
func keyOf(id string) string { return schema.JobKey(schema.DefaultTenant, id) }

// idOf is the id, within its tenant, of the job of a key (an event's
// job_id); the SDK's Watch and Cancel take that id.
func idOf(t *testing.T, key string) string {
	t.Helper()
	_, id, ok := schema.SplitJobKey(key)
	if !ok {
		t.Fatalf("%q is not a job key", key)
	}
	return id
}

// pythonJob is a python job of the given code with a fresh id.
func pythonJob(prefix, code string) schema.Job {
	return schema.Job{ID: newID(prefix), Function: "python", Code: code}
}

// runJob runs a job on the shared stack and waits for its terminal event.
// A platform error with no terminal event fails the test at once.
func runJob(t *testing.T, job schema.Job) (*schema.Event, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	if job.Function == "" {
		job.Function = "python"
	}
	ev, err := brig.Run(ctx, job)
	if ev == nil {
		t.Fatalf("job %s: no terminal event: %v", job.ID, err)
	}
	return ev, err
}

// waitStarted reads h's events until the job has started; a job that ends
// first fails the test.
func waitStarted(t *testing.T, h *sdk.Handle) {
	t.Helper()
	for ev := range h.Events() {
		switch {
		case ev.Type == schema.EventStarted:
			return
		case schema.IsTerminal(ev.Type):
			t.Fatalf("job %s ended before it started: %s", h.ID, brief(&ev))
		}
	}
	t.Fatalf("job %s: its events ended before it started", h.ID)
}

// startedOn returns a job's started event, read through c (jobID is the
// id within c's tenant).
func startedOn(t *testing.T, c *sdk.Client, jobID string) schema.Event {
	t.Helper()
	for _, ev := range eventsOn(t, c, jobID) {
		if ev.Type == schema.EventStarted {
			return ev
		}
	}
	t.Fatalf("job %s has no started event", jobID)
	return schema.Event{}
}

// events collects the stored events of a job, in stream order, up to and
// including its terminal one.
func events(t *testing.T, jobID string) []schema.Event {
	t.Helper()
	return eventsOn(t, brig, jobID)
}

func eventsOn(t *testing.T, c *sdk.Client, jobID string) []schema.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	h, err := c.Watch(ctx, jobID)
	if err != nil {
		t.Fatalf("watch %s: %v", jobID, err)
	}
	defer h.Stop()
	var evs []schema.Event
	for {
		select {
		case ev, ok := <-h.Events():
			if !ok {
				return evs
			}
			evs = append(evs, ev)
		case <-ctx.Done():
			t.Fatalf("events of %s: no terminal event within %s; got %s", jobID, jobBudget, describe(evs))
		}
	}
}

// watchResult follows a job that someone else submitted and waits for its
// terminal event.
func watchResult(t *testing.T, jobID string) (*schema.Event, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	h, err := brig.Watch(ctx, jobID)
	if err != nil {
		t.Fatalf("watch %s: %v", jobID, err)
	}
	defer h.Stop()
	ev, err := h.Result(ctx)
	if ev == nil {
		t.Fatalf("job %s: no terminal event: %v", jobID, err)
	}
	return ev, err
}

// countStored counts the messages in BRIG_EVENTS on subject (wildcards
// allowed).
func countStored(t *testing.T, subject string) int {
	t.Helper()
	return countStoredIn(t, stack.Conn, schema.StreamEvents, subject)
}

func countStoredIn(t *testing.T, nc *nats.Conn, streamName, subject string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pollBudget)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	s, err := js.Stream(ctx, streamName)
	if err != nil {
		t.Fatalf("stream %s: %v", streamName, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatalf("stream %s info on %s: %v", streamName, subject, err)
	}
	n := 0
	for _, c := range info.State.Subjects {
		n += int(c)
	}
	return n
}

// countTerminal counts the stored terminal events of the job of a key.
func countTerminal(t *testing.T, key string) int {
	t.Helper()
	n := 0
	for _, typ := range terminalTypes {
		n += countStored(t, schema.EventSubject(key, typ))
	}
	return n
}

// containersOf lists every container, running or not, of the job of a
// key: those made for it (labelled with its key) and those its started
// events name (a prewarmed container is labelled before it has a job).
func containersOf(t *testing.T, jobID string) []container.Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pollBudget)
	defer cancel()
	list, err := docker.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", sandbox.LabelJob+"="+jobID)),
	})
	if err != nil {
		t.Fatalf("list containers of %s: %v", jobID, err)
	}
	for _, id := range startedContainers(ctx, t, jobID) {
		if slices.ContainsFunc(list, func(c container.Summary) bool { return c.ID == id }) {
			continue
		}
		more, err := docker.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("id", id))})
		if err != nil {
			t.Fatalf("list container %s of %s: %v", id, jobID, err)
		}
		list = append(list, more...)
	}
	return list
}

// startedContainers returns the container the last stored started event
// of the job of a key (jobID) names, if any.
func startedContainers(ctx context.Context, t *testing.T, jobID string) []string {
	t.Helper()
	js, err := jetstream.New(stack.Conn)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, schema.StreamEvents)
	if err != nil {
		t.Fatalf("events stream: %v", err)
	}
	msg, err := stream.GetLastMsgForSubject(ctx, schema.EventSubject(jobID, schema.EventStarted))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		t.Fatalf("started event of %s: %v", jobID, err)
	}
	var ev schema.Event
	if err := json.Unmarshal(msg.Data, &ev); err != nil || ev.Container == "" {
		t.Fatalf("started event of %s names no container: %s (%v)", jobID, msg.Data, err)
	}
	return []string{ev.Container}
}

// eventually polls cond until it reports done, failing the test with cond's
// last word when budget runs out.
func eventually(t *testing.T, budget time.Duration, cond func(ctx context.Context) (done bool, state string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		done, state := cond(ctx)
		if done {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("not reached within %s: %s", budget, state)
		case <-tick.C:
		}
	}
}

// consumerIdle reports whether a durable consumer has nothing pending and
// nothing unacknowledged.
func consumerIdle(nc *nats.Conn, streamName, consumer string) func(ctx context.Context) (bool, string) {
	return func(ctx context.Context) (bool, string) {
		info, err := consumerInfo(ctx, nc, streamName, consumer)
		if err != nil {
			return false, err.Error()
		}
		return info.NumPending == 0 && info.NumAckPending == 0,
			fmt.Sprintf("consumer %s on %s: num_pending=%d num_ack_pending=%d redelivered=%d",
				consumer, streamName, info.NumPending, info.NumAckPending, info.NumRedelivered)
	}
}

func consumerInfo(ctx context.Context, nc *nats.Conn, streamName, consumer string) (*jetstream.ConsumerInfo, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	c, err := js.Consumer(ctx, streamName, consumer)
	if err != nil {
		return nil, fmt.Errorf("consumer %s on %s: %w", consumer, streamName, err)
	}
	return c.Info(ctx)
}

// waitHeldBack waits until a dispatcher on nc has held a job back at least
// once: it found no live worker of the job's pool, put the submission back
// for a later look (NakWithDelay), and has taken it again. Until then a
// test cannot tell a job that waits from one not yet looked at.
func waitHeldBack(t *testing.T, nc *nats.Conn) {
	t.Helper()
	eventually(t, pollBudget, func(ctx context.Context) (bool, string) {
		info, err := consumerInfo(ctx, nc, schema.StreamSubmit, bus.DispatcherConsumer)
		if err != nil {
			return false, err.Error()
		}
		return info.NumRedelivered > 0, fmt.Sprintf("consumer %s on %s: num_ack_pending=%d num_redelivered=%d",
			bus.DispatcherConsumer, schema.StreamSubmit, info.NumAckPending, info.NumRedelivered)
	})
}

// waitDispatcherIdle waits until the shared dispatcher has settled every
// submission it was given.
func waitDispatcherIdle(t *testing.T) {
	t.Helper()
	eventually(t, pollBudget, consumerIdle(stack.Conn, schema.StreamSubmit, bus.DispatcherConsumer))
}

// wantStatus checks a terminal event's type, status and error type.
func wantStatus(t *testing.T, ev *schema.Event, typ schema.EventType, status schema.Status, errType schema.ErrorType) {
	t.Helper()
	if ev.Type != typ || ev.Status != status {
		t.Errorf("job %s: type/status = %s/%s, want %s/%s (event %s)", ev.JobID, ev.Type, ev.Status, typ, status, brief(ev))
	}
	var got schema.ErrorType
	if ev.Error != nil {
		got = ev.Error.Type
	}
	if got != errType {
		t.Errorf("job %s: error.type = %q, want %q (event %s)", ev.JobID, got, errType, brief(ev))
	}
}

// wantIs checks that err matches target with errors.Is.
func wantIs(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("err = %v, want errors.Is(err, %v)", err, target)
	}
}

// jsonEqual compares two JSON documents by value.
func jsonEqual(t *testing.T, got, want []byte) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Errorf("not JSON: %q: %v", got, err)
		return false
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("want is not JSON: %q: %v", want, err)
	}
	return reflect.DeepEqual(g, w)
}

// brief renders an event for failure messages, with long output clipped.
func brief(ev *schema.Event) string {
	c := *ev
	c.Stdout, c.Stderr, c.Data = clip(c.Stdout), clip(c.Stderr), clip(c.Data)
	if len(c.Output) > 200 {
		c.Output = json.RawMessage(fmt.Sprintf("%q", fmt.Sprintf("%d bytes: %.100s...", len(c.Output), c.Output)))
	}
	data, _ := schema.Marshal(c)
	return string(data)
}

func describe(evs []schema.Event) string {
	parts := make([]string, len(evs))
	for i := range evs {
		parts[i] = brief(&evs[i])
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func clip(s string) string {
	if len(s) <= 300 {
		return s
	}
	return s[:300] + fmt.Sprintf("...(%d bytes)", len(s))
}

func names(list []container.Summary) string {
	var out []string
	for _, c := range list {
		out = append(out, fmt.Sprintf("%.12s %v (%s)", c.ID, c.Names, c.State))
	}
	return "[" + strings.Join(out, ", ") + "]"
}

// deploy stores a function definition on the shared stack.
func deploy(ctx context.Context, t *testing.T, fn schema.Function) {
	t.Helper()
	deployOn(ctx, t, stack.Conn, fn)
}

// deployOn stores a function definition on nc's server.
func deployOn(ctx context.Context, t *testing.T, nc *nats.Conn, fn schema.Function) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	store, err := functions.Open(ctx, js, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Put(ctx, fn); err != nil {
		t.Fatalf("deploy %s: %v", fn.Name, err)
	}
}

// connectAs opens a connection to st with a fresh credential for u,
// closed when the test ends.
func connectAs(t *testing.T, st *devstack.Stack, u auth.User) *nats.Conn {
	t.Helper()
	nc, err := st.Connect(u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// tenantClient is an SDK client of st as the default tenant: on a
// connection with its client credential (docs/design.md §10), which can
// submit, follow and cancel jobs and nothing else.
func tenantClient(t *testing.T, st *devstack.Stack) *sdk.Client {
	t.Helper()
	c, err := sdk.New(connectAs(t, st, auth.User{Role: auth.RoleClient, Tenant: auth.DefaultTenant}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// inboxOf is the option a connection of u needs for the SDK: a tenant's
// client replies only below its tenant's inbox prefix (docs/design.md
// §10.3), so its connection's inboxes must lie there.
func inboxOf(u auth.User) []nats.Option {
	if u.Role != auth.RoleClient {
		return nil
	}
	return []nats.Option{nats.CustomInboxPrefix(schema.InboxPrefix(u.Tenant))}
}

// putTenant writes a tenant record through nc, an admin's connection, as
// `brig tenant add` does; the bucket, when no role has made it yet, gets
// replicas copies (0: one).
func putTenant(ctx context.Context, t *testing.T, nc *nats.Conn, rec schema.Tenant, replicas int) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	tenants, err := auth.OpenTenants(ctx, js, replicas)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tenants.Update(ctx, rec.Name, func(r *schema.Tenant, _ bool) error { *r = rec; return nil }); err != nil {
		t.Fatalf("tenant %s: %v", rec.Name, err)
	}
}

// tenantUser is one tenant as its owner holds it on the shared stack: its
// record, a client credential of its own (whose public key the record
// lists), a connection with that credential, whose permission errors it
// collects, and the SDK client on it.
type tenantUser struct {
	name       string
	cred       auth.MintedUser
	nc         *nats.Conn
	c          *sdk.Client
	violations *violationLog
}

// newTenant creates tenant rec.Name on the shared stack, as `brig tenant
// add` would, with a fresh client credential, and connects with it.
func newTenant(ctx context.Context, t *testing.T, rec schema.Tenant) *tenantUser {
	t.Helper()
	cred, err := stack.Auth.MintUser(auth.User{Role: auth.RoleClient, Tenant: rec.Name})
	if err != nil {
		t.Fatal(err)
	}
	rec.Users = append(rec.Users, cred.PublicKey)
	putTenant(ctx, t, stack.Conn, rec, 0)
	u := &tenantUser{name: rec.Name, cred: cred, violations: &violationLog{}}
	if u.nc, err = connectTenant(cred, rec.Name, nats.ErrorHandler(u.violations.handle)); err != nil {
		t.Fatalf("connect as tenant %s: %v", rec.Name, err)
	}
	t.Cleanup(u.nc.Close)
	if u.c, err = sdk.New(u.nc, sdk.WithTenant(rec.Name)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(u.c.Close)
	return u
}

// connectTenant connects to the shared stack with a client credential of
// tenant, its inboxes under the tenant's prefix.
func connectTenant(cred auth.MintedUser, tenant string, opts ...nats.Option) (*nats.Conn, error) {
	base := []nats.Option{nats.Name("e2e-tenant-" + tenant), nats.UserJWTAndSeed(cred.JWT, string(cred.Seed)),
		nats.CustomInboxPrefix(schema.InboxPrefix(tenant))}
	return nats.Connect(stack.URL(), append(base, opts...)...)
}

// key is the job key of id in u's tenant.
func (u *tenantUser) key(id string) string { return schema.JobKey(u.name, id) }

// run runs job as u and waits for its terminal event.
func (u *tenantUser) run(t *testing.T, job schema.Job) (*schema.Event, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	if job.Function == "" {
		job.Function = "python"
	}
	ev, err := u.c.Run(ctx, job)
	if ev == nil {
		t.Fatalf("tenant %s, job %s: no terminal event: %v", u.name, job.ID, err)
	}
	return ev, err
}

// storedState is what is stored of a job: the number of its events and
// its terminal event, if any.
type storedState struct {
	events   int
	terminal *schema.Event
}

func storedOf(ctx context.Context, t *testing.T, key string) storedState {
	t.Helper()
	js, err := jetstream.New(stack.Conn)
	if err != nil {
		t.Fatal(err)
	}
	term, err := eventlog.NewLog(stack.Conn, js, nil).Terminal(ctx, key)
	if err != nil {
		t.Fatalf("terminal event of %s: %v", key, err)
	}
	return storedState{events: countStored(t, schema.EventsFilter(key)), terminal: term}
}

// wantUnchanged checks that a job's stored events are what they were.
func wantUnchanged(ctx context.Context, t *testing.T, key string, before storedState) {
	t.Helper()
	after := storedOf(ctx, t, key)
	if after.events != before.events {
		t.Errorf("job %s: %d events stored, %d before", key, after.events, before.events)
	}
	switch {
	case (after.terminal == nil) != (before.terminal == nil):
		t.Errorf("job %s: terminal event %v, before %v", key, after.terminal, before.terminal)
	case after.terminal != nil && (after.terminal.Status != before.terminal.Status || after.terminal.Stdout != before.terminal.Stdout ||
		after.terminal.Seq != before.terminal.Seq):
		t.Errorf("job %s ends %s, before %s", key, brief(after.terminal), brief(before.terminal))
	}
}
