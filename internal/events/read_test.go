package events

import (
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/internal/natstest"
	"github.com/brig-dev/brig/schema"
)

// TestLookups: what a Log reads back is what it stored, job by job and
// type by type; a job with no events has none of them.
func TestLookups(t *testing.T) {
	t.Parallel()
	_, nc, js := natstest.Start(t)
	if err := bus.EnsureStreams(t.Context(), js, bus.Config{}); err != nil {
		t.Fatal(err)
	}
	l := NewLog(nc, js, nil)
	ctx := t.Context()
	running, ended := schema.JobKey(schema.DefaultTenant, "running"), schema.JobKey(schema.DefaultTenant, "ended")
	for _, ev := range []*schema.Event{
		{JobID: running, Type: schema.EventAccepted, Seq: 1, ExitCode: -1, SubmitSeq: 7},
		{JobID: running, Type: schema.EventStarted, Seq: 2, Attempt: 1, ExitCode: -1},
		{JobID: ended, Type: schema.EventAccepted, Seq: 1, ExitCode: -1, SubmitSeq: 8},
		{JobID: ended, Type: schema.EventResult, Seq: 3, Attempt: 1, Status: schema.StatusSucceeded, Stdout: "hi\n"},
	} {
		if _, err := l.Publish(ctx, ev, ""); err != nil {
			t.Fatal(err)
		}
	}
	if ev, err := l.Terminal(ctx, running); err != nil || ev != nil {
		t.Errorf("Terminal(running) = %+v, %v; want none", ev, err)
	}
	if ev, err := l.Terminal(ctx, ended); err != nil || ev == nil || ev.Type != schema.EventResult || ev.Stdout != "hi\n" {
		t.Errorf("Terminal(ended) = %+v, %v; want its result", ev, err)
	}
	if ev, err := l.Find(ctx, running, schema.EventAccepted); err != nil || ev == nil || ev.SubmitSeq != 7 {
		t.Errorf("Find(running, accepted) = %+v, %v; want submit_seq 7", ev, err)
	}
	if ev, err := l.Find(ctx, running, ""); err != nil || ev == nil || ev.Type != schema.EventStarted {
		t.Errorf("Find(running, any) = %+v, %v; want the last, started", ev, err)
	}
	if ev, err := l.Find(ctx, running, schema.EventError); err != nil || ev != nil {
		t.Errorf("Find(running, error) = %+v, %v; want none", ev, err)
	}
	for _, tt := range []struct {
		job  string
		typ  schema.EventType
		want bool
	}{
		{running, schema.EventStarted, true}, {running, schema.EventResult, false}, {ended, "", true},
		{schema.JobKey(schema.DefaultTenant, "nobody"), "", false},
		// A job whose id extends another's is another job.
		{schema.JobKey(schema.DefaultTenant, "run"), "", false},
	} {
		if got, err := l.Has(ctx, tt.job, tt.typ); err != nil || got != tt.want {
			t.Errorf("Has(%s, %q) = %v, %v; want %v", tt.job, tt.typ, got, err, tt.want)
		}
	}
}

// TestLookupWithoutStream: a bus without BRIG_EVENTS is an error, not
// "no events": the caller must not take a job for unknown.
func TestLookupWithoutStream(t *testing.T) {
	t.Parallel()
	_, nc, js := natstest.Start(t)
	l := NewLog(nc, js, nil)
	if _, err := l.Has(t.Context(), schema.JobKey(schema.DefaultTenant, "j"), ""); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("Has without BRIG_EVENTS: %v; want ErrStreamNotFound", err)
	}
	if _, err := l.Terminal(t.Context(), schema.JobKey(schema.DefaultTenant, "j")); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("Terminal without BRIG_EVENTS: %v; want ErrStreamNotFound", err)
	}
}
