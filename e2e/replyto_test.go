package e2e

import (
	"context"
	"slices"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/schema"
)

// TestReplyTo names a reply_to subject outside brig.events.>: every stored
// event of the job is also published there, the terminal one included.
func TestReplyTo(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	subject := "e2e.reply." + randomHex(6)
	msgs := make(chan *nats.Msg, 256)
	sub, err := stack.Conn.ChanSubscribe(subject, msgs)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer sub.Unsubscribe()
	if err := stack.Conn.FlushWithContext(ctx); err != nil {
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
