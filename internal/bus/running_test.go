package bus_test

import (
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/internal/natstest"
	"github.com/brig-dev/brig/schema"
)

// A tenant's running stream takes max_running markers and refuses the
// next one (IsMaxMessages); a job's own marker published again, past the
// dedup window (here: without a message id), replaces itself rather than
// taking a second slot, even when the stream is full.
func TestRunningStream(t *testing.T) {
	t.Parallel()
	_, _, js := natstest.Start(t)
	ctx := t.Context()
	stream, err := js.CreateOrUpdateStream(ctx, bus.RunningConfig("acme", 2, 1))
	if err != nil {
		t.Fatal(err)
	}
	marker := func(id, msgID string) error {
		msg := &nats.Msg{Subject: bus.RunningSubject(schema.JobKey("acme", id)), Header: nats.Header{}}
		if msgID != "" {
			msg.Header.Set(jetstream.MsgIDHeader, msgID)
		}
		_, err := js.PublishMsg(ctx, msg)
		return err
	}
	for _, id := range []string{"j1", "j2"} {
		if err := marker(id, schema.JobKey("acme", id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := marker("j3", "acme.j3"); !bus.IsMaxMessages(err) {
		t.Fatalf("a third marker: %v, want maximum messages exceeded", err)
	}
	if err := marker("j1", "acme.j1"); err != nil {
		t.Fatalf("j1's marker again, within the dedup window: %v", err)
	}
	if err := marker("j1", ""); err != nil {
		t.Fatalf("j1's marker again, as a new message: %v", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Errorf("%d markers, want 2", info.State.Msgs)
	}
	// Another tenant's subjects are not the stream's; the hold stream
	// takes every tenant's held jobs.
	if _, err := js.CreateOrUpdateStream(ctx, bus.RunningConfig("other", 1, 1)); err != nil {
		t.Fatalf("a second tenant's running stream: %v", err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, bus.HoldConfig(bus.Config{})); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, bus.HoldSubject("acme"), []byte("{}")); err != nil {
		t.Fatal(err)
	}
}
