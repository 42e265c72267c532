package main

import (
	"testing"
	"time"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/internal/events"
	"github.com/brig-dev/brig/internal/natstest"
	"github.com/brig-dev/brig/schema"
)

// TestRecentFailures: brig status lists the jobs that ended badly in the
// window, newest first, and not the ones that succeeded.
func TestRecentFailures(t *testing.T) {
	_, nc, js := natstest.Start(t)
	if err := bus.EnsureStreams(t.Context(), js, bus.Config{}); err != nil {
		t.Fatal(err)
	}
	log := events.NewLog(nc, js, nil)
	for _, ev := range []*schema.Event{
		{JobID: "acme.ok", Type: schema.EventResult, Status: schema.StatusSucceeded},
		{JobID: "acme.bad", Type: schema.EventResult, Status: schema.StatusFailed,
			Error: &schema.ErrorInfo{Type: schema.ErrNonZeroExit, Message: "job exited with code 1"}},
		{JobID: "other.slow", Type: schema.EventTimeout, Status: schema.StatusTimeout},
	} {
		ev.Seq, ev.Time = 2, time.Now().UTC()
		if _, err := log.Publish(t.Context(), ev, ""); err != nil {
			t.Fatal(err)
		}
	}
	got, err := recentFailures(t.Context(), js)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].JobID != "other.slow" || got[1].JobID != "acme.bad" {
		t.Fatalf("recent failures %+v, want other.slow then acme.bad", got)
	}
	if got[1].Status != schema.StatusFailed || got[1].Error != "NonZeroExit: job exited with code 1" {
		t.Fatalf("failure %+v", got[1])
	}
}
