package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/dispatcher"
	"github.com/brig-dev/brig/internal/auth"
	"github.com/brig-dev/brig/internal/functions"
	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// TestTenantAttack acts as tenant A's client attacking tenant B
// (docs/design.md §10.3): A holds its own client credential and tries to
// read, change, cancel, replay, impersonate or squat on B's jobs, inboxes,
// dicts and functions, and on brig's streams and buckets. Each attempt is
// refused (a permissions violation) or answered with nothing of B's, and
// B's jobs keep the events and outcomes they had.
func TestTenantAttack(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*jobBudget)
	defer cancel()
	suffix := randomHex(3)
	a := newTenant(ctx, t, schema.Tenant{Name: "atk-a-" + suffix})
	b := newTenant(ctx, t, schema.Tenant{Name: "atk-b-" + suffix})

	// B's jobs: one that ended, whose id A will reuse, and one that runs
	// while A tries to cancel it.
	done := pythonJob("tenant-b-done", `print("b's own")`)
	if ev, err := b.run(t, done); err != nil || ev.Stdout != "b's own\n" {
		t.Fatalf("B's job: %v (%s)", err, brief(ev))
	}
	live := pythonJob("tenant-b-live", "import time\ntime.sleep(6)\nprint(\"b survived\")")
	liveH, err := b.c.Submit(ctx, live)
	if err != nil {
		t.Fatalf("B's live job: %v", err)
	}
	defer liveH.Stop()
	waitEventType(ctx, t, liveH, schema.EventStarted)
	doneBefore := storedOf(ctx, t, b.key(done.ID))
	// A's own job, for the forgeries and replays on A's own subjects.
	own := pythonJob("tenant-a-own", `print("a's own")`)
	if ev, err := a.run(t, own); err != nil || ev.Stdout != "a's own\n" {
		t.Fatalf("A's job: %v (%s)", err, brief(ev))
	}
	ownBefore := storedOf(ctx, t, a.key(own.ID))

	t.Run("JetStream API", func(t *testing.T) {
		// Requests, all at once (each refused request would otherwise
		// wait out its own timeout); no answer comes.
		inbox := a.nc.NewInbox()
		answers, err := a.nc.SubscribeSync(inbox)
		if err != nil {
			t.Fatal(err)
		}
		defer answers.Unsubscribe()
		var subjects []string
		for _, s := range []string{schema.StreamSubmit, schema.StreamWork, schema.StreamEvents, "KV_" + functions.Bucket,
			"KV_" + schema.TenantsBucket, schema.ActiveStream(b.name)} {
			subjects = append(subjects, "$JS.API.STREAM.PURGE."+s, "$JS.API.STREAM.DELETE."+s, "$JS.API.STREAM.INFO."+s,
				"$JS.API.CONSUMER.CREATE."+s, "$JS.API.DIRECT.GET."+s)
		}
		subjects = append(subjects,
			"$JS.API.CONSUMER.CREATE."+schema.StreamEvents+".spy."+schema.EventsFilter(b.key(done.ID)),
			"$JS.API.DIRECT.GET."+schema.StreamEvents+"."+schema.EventSubject(b.key(done.ID), schema.EventResult),
			"$JS.API.STREAM.LIST")
		body := []byte(`{"deliver_subject":"` + schema.InboxPrefix(a.name) + `.spy","filter_subject":"brig.events.>"}`)
		for _, s := range subjects {
			if err := a.nc.PublishRequest(s, inbox, body); err != nil {
				t.Fatal(err)
			}
		}
		_ = a.nc.Flush()
		for _, s := range subjects {
			a.violations.want(t, "Publish to \""+s+"\"")
		}
		if m, err := answers.NextMsg(500 * time.Millisecond); err == nil {
			t.Errorf("a JetStream API request was answered: %s", m.Data)
		}
	})

	t.Run("bucket puts", func(t *testing.T) {
		for _, s := range []string{
			"$KV." + functions.Bucket + ".python", "$KV." + functions.Bucket + "." + b.name + ".python",
			"$KV.BRIG_KEYS.forged", "$KV.BRIG_WORKERS.forged",
			"$KV." + schema.TenantsBucket + "." + a.name, "$KV." + schema.TenantsBucket + "." + b.name,
		} {
			if err := a.nc.Publish(s, []byte(`{"name":"`+a.name+`","max_queued":1000000}`)); err != nil {
				t.Fatal(err)
			}
			_ = a.nc.Flush()
			a.violations.want(t, "Publish to \""+s+"\"")
		}
	})

	t.Run("forged events", func(t *testing.T) {
		for _, key := range []string{b.key(done.ID), b.key(live.ID), a.key(own.ID)} {
			s := schema.EventSubject(key, schema.EventResult)
			forged := []byte(`{"job_id":"` + key + `","type":"result","status":"succeeded","stdout":"forged\n"}`)
			if err := a.nc.Publish(s, forged); err != nil {
				t.Fatal(err)
			}
			_ = a.nc.Flush()
			a.violations.want(t, "Publish to \""+s+"\"")
		}
	})

	t.Run("subscriptions", func(t *testing.T) {
		for _, s := range []string{">", "brig.>", "brig.events.>", schema.EventsFilter(b.key(done.ID)),
			"_INBOX.>", schema.InboxPrefix(b.name) + ".>", schema.ReplyPrefix + "*.>"} {
			if _, err := a.nc.SubscribeSync(s); err != nil {
				t.Fatal(err)
			}
			_ = a.nc.Flush()
			a.violations.want(t, "Subscription to \""+s+"\"")
		}
	})

	t.Run("submit as B", func(t *testing.T) {
		id := newID("tenant-a-as-b")
		s := schema.SubmitSubject(b.name, "python")
		if err := a.nc.Publish(s, jobJSON(t, id, nil)); err != nil {
			t.Fatal(err)
		}
		_ = a.nc.Flush()
		a.violations.want(t, "Publish to \""+s+"\"")
		waitDispatcherIdle(t)
		for _, key := range []string{b.key(id), a.key(id)} {
			if n := countStored(t, schema.EventsFilter(key)); n != 0 {
				t.Errorf("%d events stored for %s", n, key)
			}
		}
	})

	t.Run("cancel B's job", func(t *testing.T) {
		s := schema.CancelSubject(b.key(live.ID))
		if err := a.nc.Publish(s, nil); err != nil {
			t.Fatal(err)
		}
		_ = a.nc.Flush()
		a.violations.want(t, "Publish to \""+s+"\"")
		// On A's own subject, B's id names no job of A's.
		_, err := a.c.Cancel(ctx, live.ID)
		if !errors.Is(err, sdk.ErrNotFound) {
			t.Errorf("A's Cancel of B's id %s: %v, want sdk.ErrNotFound", live.ID, err)
		}
		if n := countStored(t, schema.EventsFilter(a.key(live.ID))); n != 0 {
			t.Errorf("A's cancel of an id it never used stored %d events", n)
		}
		ev, err := liveH.Result(ctx)
		if ev == nil || err != nil || ev.Stdout != "b survived\n" {
			t.Errorf("B's live job after A's cancels: %v (%v)", ev, err)
		}
	})

	t.Run("replay B's job", func(t *testing.T) {
		s := schema.ReplaySubject(b.key(done.ID))
		if err := a.nc.PublishRequest(s, a.nc.NewInbox(), nil); err != nil {
			t.Fatal(err)
		}
		_ = a.nc.Flush()
		a.violations.want(t, "Publish to \""+s+"\"")
		// On A's own subject, B's id has no events: a peek says so, a
		// follow sends none.
		msg, err := a.nc.Request(schema.ReplaySubject(a.key(done.ID)), []byte(`{"peek":true}`), pollBudget)
		if err != nil {
			t.Fatalf("peek: %v", err)
		}
		var peek dispatcher.PeekReply
		if err := json.Unmarshal(msg.Data, &peek); err != nil || peek.Exists || peek.Terminal {
			t.Errorf("peek of %s: %s (%v), want no events", a.key(done.ID), msg.Data, err)
		}
		got := replayed(t, a.nc, schema.ReplaySubject(a.key(done.ID)), 2*time.Second)
		if len(got) > 0 {
			t.Errorf("a replay of %s on A's subject sent %d events: %s", done.ID, len(got), describe(got))
		}
	})

	t.Run("replay to B's inbox", func(t *testing.T) {
		// B listens on its own inbox; A asks for a replay of its own job
		// with B's inbox as reply subject. The dispatcher ignores it.
		spy, err := b.nc.SubscribeSync(schema.InboxPrefix(b.name) + ".x")
		if err != nil {
			t.Fatal(err)
		}
		defer spy.Unsubscribe()
		_ = b.nc.Flush()
		if err := a.nc.PublishRequest(schema.ReplaySubject(a.key(own.ID)), schema.InboxPrefix(b.name)+".x", nil); err != nil {
			t.Fatal(err)
		}
		_ = a.nc.Flush()
		// The same request with A's own inbox is answered: the one above
		// was refused for its reply subject alone.
		if got := replayed(t, a.nc, schema.ReplaySubject(a.key(own.ID)), 5*time.Second); len(got) == 0 || !schema.IsTerminal(got[len(got)-1].Type) {
			t.Errorf("replay of A's own job to A's inbox: %s", describe(got))
		}
		if m, err := spy.NextMsg(time.Second); err == nil {
			t.Errorf("B's inbox got an answer to A's replay request: %q %v", m.Data, m.Header)
		}
	})

	t.Run("reply_to B's inbox", func(t *testing.T) {
		spy, err := b.nc.SubscribeSync(schema.InboxPrefix(b.name) + ".>")
		if err != nil {
			t.Fatal(err)
		}
		defer spy.Unsubscribe()
		_ = b.nc.Flush()
		id := newID("tenant-a-reply")
		replyTo := schema.InboxPrefix(b.name) + ".x"
		if err := publishRaw(ctx, a.nc, a.name, "python", a.key(id), jobJSON(t, id, map[string]any{"reply_to": replyTo})); err != nil {
			t.Fatal(err)
		}
		ev, err := watchOn(ctx, a.c, id)
		if ev == nil {
			t.Fatalf("no terminal event: %v", err)
		}
		wantStatus(t, ev, schema.EventError, schema.StatusRejected, schema.ErrInvalidJob)
		if m, err := spy.NextMsg(500 * time.Millisecond); err == nil {
			t.Errorf("B's inbox got a copy of A's job: %s", m.Data)
		}
	})

	t.Run("Nats-Msg-Id of B", func(t *testing.T) {
		id := newID("tenant-a-msgid")
		if err := publishRaw(ctx, a.nc, a.name, "python", b.key(id), jobJSON(t, id, nil)); err != nil {
			t.Fatal(err)
		}
		ev, err := watchOn(ctx, a.c, id)
		if ev == nil {
			t.Fatalf("no terminal event: %v", err)
		}
		wantStatus(t, ev, schema.EventError, schema.StatusRejected, schema.ErrInvalidJob)
		if n := countStored(t, schema.EventsFilter(b.key(id))); n != 0 {
			t.Errorf("%d events stored for B's %s", n, id)
		}
	})

	t.Run("squatting B's message id", func(t *testing.T) {
		// A publishes first under the Nats-Msg-Id B's next job will have;
		// the stream's duplicate window must not swallow B's submission.
		id := newID("tenant-b-next")
		if err := publishRaw(ctx, a.nc, a.name, "python", b.key(id), jobJSON(t, id, nil)); err != nil {
			t.Fatal(err)
		}
		_, _ = watchOn(ctx, a.c, id) // A's own rejection
		sctx, scancel := context.WithTimeout(ctx, pollBudget)
		defer scancel()
		ev, err := b.c.Run(sctx, schema.Job{ID: id, Function: "python", Code: `print("b's next")`})
		if ev == nil || err != nil || ev.Stdout != "b's next\n" {
			t.Errorf("B's job %s after A published under its message id: %v (%v)", id, ev, err)
		}
	})

	t.Run("reuse B's id", func(t *testing.T) {
		ev, err := a.run(t, schema.Job{ID: done.ID, Function: "python", Code: `print("a's reuse")`})
		if err != nil || ev.Stdout != "a's reuse\n" || ev.JobID != a.key(done.ID) {
			t.Errorf("A's job under B's id %s: %v (%s)", done.ID, err, brief(ev))
		}
		for _, e := range eventsOn(t, a.c, done.ID) {
			if e.JobID != a.key(done.ID) || strings.Contains(e.Stdout, "b's own") {
				t.Errorf("A's job %s has an event of B's: %s", done.ID, brief(&e))
			}
		}
		ev, err = watchOn(ctx, b.c, done.ID)
		if err != nil || ev == nil || ev.Stdout != "b's own\n" {
			t.Errorf("B's job %s after A reused its id: %v (%v)", done.ID, ev, err)
		}
	})

	t.Run("dicts", func(t *testing.T) {
		scopes := []string{"dict:shared:read", "dict:shared:write"}
		get := `import brig, json
json.dump(brig.Dict("shared").get("k"), open("/work/out/result.json", "w"))
`
		put := func(v string) string {
			return `import brig` + "\n" + `brig.Dict("shared").put("k", "` + v + `")` + "\n"
		}
		if _, err := a.run(t, scopedJob("tenant-a-put", put("v-from-a"), scopes...)); err != nil {
			t.Fatalf("A's put: %v", err)
		}
		ev, err := b.run(t, scopedJob("tenant-b-get", get, scopes...))
		if err != nil || string(ev.Output) != "null" {
			t.Errorf("B reads dict shared k: %s (%v), want null", ev.Output, err)
		}
		if _, err := b.run(t, scopedJob("tenant-b-put", put("v-from-b"), scopes...)); err != nil {
			t.Fatalf("B's put: %v", err)
		}
		for u, want := range map[*tenantUser]string{a: `"v-from-a"`, b: `"v-from-b"`} {
			ev, err := u.run(t, scopedJob("tenant-get", get, scopes...))
			if err != nil || string(ev.Output) != want {
				t.Errorf("tenant %s reads dict shared k: %s (%v), want %s", u.name, ev.Output, err, want)
			}
		}
	})

	t.Run("B's function", func(t *testing.T) {
		fn := schema.Python()
		fn.Name = "bfn-" + randomHex(4)
		deployFor(ctx, t, b.name, fn)
		if ev, err := b.run(t, schema.Job{ID: newID("tenant-b-fn"), Function: fn.Name, Code: `print("b's function")`}); err != nil || ev.Stdout != "b's function\n" {
			t.Fatalf("B's job of its own function: %v (%s)", err, brief(ev))
		}
		for _, u := range []*tenantUser{a, {name: schema.DefaultTenant, c: brig}} {
			ev, err := u.run(t, schema.Job{ID: newID("tenant-fn"), Function: fn.Name, Code: `print("not mine")`})
			wantStatus(t, ev, schema.EventError, schema.StatusRejected, schema.ErrNotFound)
			wantIs(t, err, sdk.ErrRejected)
		}
	})

	// Nothing A did changed B's jobs, or A's own.
	wantUnchanged(ctx, t, b.key(done.ID), doneBefore)
	wantUnchanged(ctx, t, a.key(own.ID), ownBefore)
	if term := storedOf(ctx, t, b.key(live.ID)).terminal; term == nil || term.Status != schema.StatusSucceeded || term.Stdout != "b survived\n" {
		t.Errorf("B's live job ended %v", term)
	}
	// And A's connection still works for what is allowed.
	if ev, err := a.run(t, pythonJob("tenant-a-after", `print("still")`)); err != nil || ev.Stdout != "still\n" {
		t.Errorf("A's job after the attack: %v (%s)", err, brief(ev))
	}
}

// replayed asks for a replay on subject from nc's own inbox and returns
// the events that came within wait (or up to the end of the replay).
func replayed(t *testing.T, nc *nats.Conn, subject string, wait time.Duration) []schema.Event {
	t.Helper()
	sub, err := nc.SubscribeSync(nc.NewInbox())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(subject, sub.Subject, nil); err != nil {
		t.Fatal(err)
	}
	var evs []schema.Event
	deadline := time.Now().Add(wait)
	for {
		m, err := sub.NextMsg(time.Until(deadline))
		if err != nil {
			return evs
		}
		if c := m.Header.Get(dispatcher.ReplayHeader); c != "" {
			if c == string(dispatcher.ReplayAlive) {
				continue
			}
			return evs
		}
		ev, err := schema.DecodeEvent(m.Data)
		if err != nil {
			t.Errorf("replay of %s sent %q: %v", subject, m.Data, err)
			continue
		}
		evs = append(evs, *ev)
	}
}

// deployFor stores fn as tenant's own function (BRIG_FUNCTIONS key
// <tenant>.<name>), as `brig deploy --tenant` does.
func deployFor(ctx context.Context, t *testing.T, tenant string, fn schema.Function) {
	t.Helper()
	js, err := jetstream.New(stack.Conn)
	if err != nil {
		t.Fatal(err)
	}
	store, err := functions.Open(ctx, js, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.PutFor(ctx, tenant, fn); err != nil {
		t.Fatalf("deploy %s for %s: %v", fn.Name, tenant, err)
	}
}

// TestTenantRevoked: a revoked credential is refused at once, on the
// connection it holds and on any new one, while another credential of the
// same tenant keeps working. Not parallel: pushing the account to the
// server is a change every connection of the account sees.
func TestTenantRevoked(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	u := newTenant(ctx, t, schema.Tenant{Name: "revoke-" + randomHex(3)})
	other, err := stack.Auth.MintUser(auth.User{Role: auth.RoleClient, Tenant: u.name})
	if err != nil {
		t.Fatal(err)
	}
	if ev, err := u.run(t, pythonJob("revoke-before", `print("before")`)); err != nil || ev.Stdout != "before\n" {
		t.Fatalf("a job before the revocation: %v (%s)", err, brief(ev))
	}

	if err := stack.Auth.Revoke(u.cred.PublicKey); err != nil {
		t.Fatal(err)
	}
	sys := connectAs(t, stack, auth.User{Role: auth.RoleSystem, Name: "e2e-sys"})
	if err := stack.Auth.PushAccount(ctx, sys); err != nil {
		t.Fatalf("push the account: %v", err)
	}
	eventually(t, pollBudget, func(context.Context) (bool, string) {
		return !u.nc.IsConnected(), "the revoked credential's connection is " + u.nc.Status().String()
	})
	if nc, err := connectTenant(u.cred, u.name); err == nil {
		nc.Close()
		t.Error("a new connection with the revoked credential was accepted")
	}

	nc, err := connectTenant(other, u.name)
	if err != nil {
		t.Fatalf("another credential of the tenant: %v", err)
	}
	defer nc.Close()
	c, err := sdk.New(nc, sdk.WithTenant(u.name))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ev, err := c.Run(ctx, pythonJob("revoke-other", `print("other")`)); err != nil || ev.Stdout != "other\n" {
		t.Errorf("a job on another credential of the tenant: %v (%v)", err, ev)
	}
}

// TestTenantWithoutRecord: a credential of a tenant that has no record
// (never added, or removed) gets every job rejected as NotFound.
func TestTenantWithoutRecord(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	name := "ghost-" + randomHex(3)
	cred, err := stack.Auth.MintUser(auth.User{Role: auth.RoleClient, Tenant: name})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := connectTenant(cred, name)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c, err := sdk.New(nc, sdk.WithTenant(name))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ev, err := c.Run(ctx, pythonJob("ghost", `print("never")`))
	if ev == nil {
		t.Fatalf("no terminal event: %v", err)
	}
	wantStatus(t, ev, schema.EventError, schema.StatusRejected, schema.ErrNotFound)
	if ev.Error == nil || !strings.Contains(ev.Error.Message, name) {
		t.Errorf("the rejection does not name the tenant %s: %s", name, brief(ev))
	}
}
