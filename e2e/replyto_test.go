package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// TestReplyTo names a reply_to inbox of the tenant's own, outside
// brig.events.>: every stored event of the job is also published there,
// the terminal one included, and the client credential that submitted the
// job may subscribe to it (docs/design.md §10).
func TestReplyTo(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	subject := clientNC.NewInbox()
	if prefix := schema.InboxPrefix(schema.DefaultTenant) + "."; !strings.HasPrefix(subject, prefix) {
		t.Fatalf("the client's inbox %q is not under its tenant's %s", subject, prefix)
	}
	msgs := make(chan *nats.Msg, 256)
	sub, err := clientNC.ChanSubscribe(subject, msgs)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer sub.Unsubscribe()
	if err := clientNC.FlushWithContext(ctx); err != nil {
		t.Fatal(err)
	}

	job := pythonJob("reply", `print("hello")`)
	job.ReplyTo = subject
	if ev, err := runJob(t, job); err != nil {
		t.Fatalf("run: %v (event %s)", err, brief(ev))
	}
	var copies []schema.EventType
	for done := false; !done; {
		select {
		case m := <-msgs:
			ev, err := schema.DecodeEvent(m.Data)
			if err != nil {
				t.Fatalf("reply_to message is not an event: %v: %q", err, m.Data)
			}
			copies = append(copies, ev.Type)
			done = schema.IsTerminal(ev.Type)
		case <-ctx.Done():
			t.Fatalf("no terminal event on reply_to; got %v", copies)
		}
	}
	var stored []schema.EventType
	for _, ev := range events(t, job.ID) {
		stored = append(stored, ev.Type)
	}
	if !slices.Equal(copies, stored) {
		t.Errorf("reply_to got %v, the stream holds %v", copies, stored)
	}
}

// TestReplyToOutsideInboxRejected: brig's roles publish a job's copies, on
// subjects a client could not publish to itself, so a reply_to must be an
// inbox of the job's own tenant, _INBOX.<tenant>. (or inside the job's own
// brig.events.<key>.>). Anything else, sent past the SDK's own check, is
// rejected as InvalidJob before the job runs, and no copy lands where it
// points. The schema alone cannot tell one tenant's inbox from another's
// (schemaOK): the dispatcher, which knows the tenant from the subject, does.
func TestReplyToOutsideInboxRejected(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		replyTo  func(victim string) string
		schemaOK bool
	}{
		{"plain subject", func(string) string { return "e2e.reply." + randomHex(6) }, false},
		{"another job's events", func(victim string) string { return schema.EventSubject(keyOf(victim), schema.EventResult) }, false},
		{"another job's cancel", func(victim string) string { return schema.CancelSubject(keyOf(victim)) }, false},
		{"work queue", func(string) string { return schema.WorkSubject(schema.DefaultPool) }, false},
		{"inbox look-alike", func(string) string { return "_INBOXX." + randomHex(6) }, false},
		{"another tenant's inbox", func(string) string { return schema.InboxPrefix("other") + "." + randomHex(6) }, true},
		{"a role's inbox", func(string) string { return schema.ReplyPrefix + "R" + randomHex(10) + ".x" }, true},
		{"the tenant's prefix itself", func(string) string { return schema.InboxPrefix(schema.DefaultTenant) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
			defer cancel()
			victim := newID("reply-victim")
			job := pythonJob("reply-bad", `print("never runs")`)
			job.ReplyTo = tc.replyTo(victim)
			err := job.Validate()
			if (err == nil) != tc.schemaOK {
				t.Fatalf("the schema's check of reply_to %q: %v", job.ReplyTo, err)
			}
			// Whoever listens on another's inbox (an admin can) gets
			// nothing, not even the rejection.
			var spy *nats.Subscription
			if tc.schemaOK {
				if spy, err = stack.Conn.SubscribeSync(job.ReplyTo); err != nil {
					t.Fatal(err)
				}
				defer spy.Unsubscribe()
				if err := stack.Conn.Flush(); err != nil {
					t.Fatal(err)
				}
			}
			if err := publishRaw(ctx, clientNC, brig.Tenant(), job.Function, keyOf(job.ID), jobJSON(t, job.ID, map[string]any{"reply_to": job.ReplyTo})); err != nil {
				t.Fatalf("publish: %v", err)
			}
			ev, err := watchResult(t, job.ID)
			wantStatus(t, ev, schema.EventError, schema.StatusRejected, schema.ErrInvalidJob)
			wantIs(t, err, sdk.ErrRejected)
			if ev.Error == nil || !strings.Contains(ev.Error.Message, "reply_to") {
				t.Errorf("the rejection does not name reply_to: %s", brief(ev))
			}
			if n := countStored(t, schema.EventSubject(keyOf(job.ID), schema.EventStarted)); n != 0 {
				t.Errorf("a rejected job has %d started events", n)
			}
			if n := countStored(t, schema.EventsFilter(keyOf(victim))); n != 0 {
				t.Errorf("%d events stored for job %s, which no one submitted", n, victim)
			}
			if spy != nil {
				if m, err := spy.NextMsg(200 * time.Millisecond); err == nil {
					t.Errorf("a copy reached reply_to %s: %s", job.ReplyTo, m.Data)
				}
			}
		})
	}
}
