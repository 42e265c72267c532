package events

import (
	"testing"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/internal/natstest"
	"github.com/brig-dev/brig/schema"
)

// Storing a job's terminal event purges its running marker (max_running)
// along with its active one, and only the job's own.
func TestTerminalEventReleasesRunningSlot(t *testing.T) {
	t.Parallel()
	_, nc, js := natstest.Start(t)
	ctx := t.Context()
	if err := bus.EnsureStreams(ctx, js, bus.Config{}); err != nil {
		t.Fatal(err)
	}
	running, err := js.CreateOrUpdateStream(ctx, bus.RunningConfig("acme", 10, 1))
	if err != nil {
		t.Fatal(err)
	}
	active, err := js.CreateOrUpdateStream(ctx, bus.ActiveConfig("acme", 10, 1))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"j1", "j2"} {
		key := schema.JobKey("acme", id)
		if _, err := js.Publish(ctx, bus.RunningSubject(key), nil); err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, schema.ActiveSubject(key), nil); err != nil {
			t.Fatal(err)
		}
	}
	p := NewLog(nc, js, nil)
	end := &schema.Event{JobID: schema.JobKey("acme", "j1"), Type: schema.EventResult, Status: schema.StatusSucceeded, Seq: 3, Attempt: 1}
	if stored, err := p.Publish(ctx, end, ""); err != nil || !stored {
		t.Fatalf("terminal event: stored %v, %v", stored, err)
	}
	for name, subject := range map[string]string{"running": bus.RunningSubject("acme.j2"), "active": schema.ActiveSubject("acme.j2")} {
		s := running
		if name == "active" {
			s = active
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs != 1 {
			t.Errorf("%s stream: %d markers after j1 ended, want 1", name, info.State.Msgs)
		}
		if _, err := s.GetLastMsgForSubject(ctx, subject); err != nil {
			t.Errorf("%s stream: j2's marker: %v", name, err)
		}
	}
}
