package events

import (
	"testing"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/internal/natstest"
	"github.com/brig-dev/brig/schema"
)

// Storing a job's terminal event purges the job's marker from its tenant's
// active-job stream, and only that one; a tenant without the stream, and
// events that are not terminal, purge nothing.
func TestTerminalEventReleasesMarker(t *testing.T) {
	t.Parallel()
	_, nc, js := natstest.Start(t)
	ctx := t.Context()
	if err := bus.EnsureStreams(ctx, js, bus.Config{}); err != nil {
		t.Fatal(err)
	}
	stream, err := js.CreateOrUpdateStream(ctx, bus.ActiveConfig("acme", 10, 1))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"j1", "j2"} {
		if _, err := js.Publish(ctx, schema.ActiveSubject(schema.JobKey("acme", id)), nil); err != nil {
			t.Fatal(err)
		}
	}
	markers := func() uint64 {
		t.Helper()
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	p := NewLog(nc, js, nil)
	key := schema.JobKey("acme", "j1")
	if _, err := p.Publish(ctx, &schema.Event{JobID: key, Type: schema.EventAccepted, Seq: 1, ExitCode: -1}, ""); err != nil {
		t.Fatal(err)
	}
	if n := markers(); n != 2 {
		t.Fatalf("%d markers after a non-terminal event, want 2", n)
	}
	end := &schema.Event{JobID: key, Type: schema.EventCancelled, Status: schema.StatusCancelled, ExitCode: -1}
	if stored, err := p.Publish(ctx, end, ""); err != nil || !stored {
		t.Fatalf("terminal event: stored %v, %v", stored, err)
	}
	if n := markers(); n != 1 {
		t.Fatalf("%d markers after j1 ended, want 1", n)
	}
	if _, err := stream.GetLastMsgForSubject(ctx, schema.ActiveSubject(schema.JobKey("acme", "j2"))); err != nil {
		t.Errorf("j2's marker: %v", err)
	}
	// A duplicate terminal event purges again (harmless), a tenant without
	// a stream is fine.
	if stored, err := p.Publish(ctx, end, ""); err != nil || stored {
		t.Fatalf("duplicate terminal event: stored %v, %v", stored, err)
	}
	other := &schema.Event{JobID: schema.JobKey("other", "j1"), Type: schema.EventCancelled, Status: schema.StatusCancelled, ExitCode: -1}
	if stored, err := p.Publish(ctx, other, ""); err != nil || !stored {
		t.Fatalf("terminal event of a tenant without a stream: stored %v, %v", stored, err)
	}
	if n := markers(); n != 1 {
		t.Fatalf("%d markers, want 1", n)
	}
}
