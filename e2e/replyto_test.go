package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"

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
	if !strings.HasPrefix(subject, schema.ReplyPrefix) {
		t.Fatalf("the client's inbox %q is not under %s", subject, schema.ReplyPrefix)
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
	var copies []string
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
	var stored []string
	for _, ev := range events(t, job.ID) {
		stored = append(stored, ev.Type)
	}
	if !slices.Equal(copies, stored) {
		t.Errorf("reply_to got %v, the stream holds %v", copies, stored)
	}
}

// TestReplyToOutsideInboxRejected: brig's roles publish a job's copies, on
// subjects a client could not publish to itself, so a reply_to must be an
// inbox (or inside the job's own brig.events.<id>.>). Anything else, sent
// past the SDK's own check, is rejected as InvalidJob before the job runs,
// and no copy lands where it points.
func TestReplyToOutsideInboxRejected(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		replyTo func(victim string) string
	}{
		{"plain subject", func(string) string { return "e2e.reply." + randomHex(6) }},
		{"another job's events", func(victim string) string { return schema.EventSubject(victim, schema.EventResult) }},
		{"another job's cancel", func(victim string) string { return schema.CancelSubject(victim) }},
		{"work queue", func(string) string { return schema.WorkSubject(schema.DefaultPool) }},
		{"inbox look-alike", func(string) string { return "_INBOXX." + randomHex(6) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
			defer cancel()
			victim := newID("reply-victim")
			job := pythonJob("reply-bad", `print("never runs")`)
			job.ReplyTo = tc.replyTo(victim)
			if err := job.Validate(); err == nil {
				t.Fatalf("the schema accepts reply_to %q", job.ReplyTo)
			}
			if err := brig.PublishRaw(ctx, job.Function, job.ID, jobJSON(t, job.ID, map[string]any{"reply_to": job.ReplyTo})); err != nil {
				t.Fatalf("publish: %v", err)
			}
			ev, err := watchResult(t, job.ID)
			wantStatus(t, ev, schema.EventError, schema.StatusRejected, schema.ErrInvalidJob)
			wantIs(t, err, sdk.ErrRejected)
			if ev.Error == nil || !strings.Contains(ev.Error.Message, "reply_to") {
				t.Errorf("the rejection does not name reply_to: %s", brief(ev))
			}
			if n := countStored(t, schema.EventSubject(job.ID, schema.EventStarted)); n != 0 {
				t.Errorf("a rejected job has %d started events", n)
			}
			if n := countStored(t, schema.EventsFilter(victim)); n != 0 {
				t.Errorf("%d events stored for job %s, which no one submitted", n, victim)
			}
		})
	}
}
