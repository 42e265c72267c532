package e2e

import (
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/schema"
)

// TestDispatchRaceOneOwner: a valid job published with Nats-Msg-Id = key
// and, at the same time, an undecodable submission naming the same id
// without the header. Exactly one of them owns the id: either the id holds
// one rejection and nothing else, or the valid job's own events and its own
// terminal, never a rejection followed by the job (docs/design.md §6).
func TestDispatchRaceOneOwner(t *testing.T) {
	t.Parallel()
	type pair struct{ id, function string }
	var pairs []pair
	for range 60 {
		pairs = append(pairs, pair{newID("race-echo"), "echo"})
	}
	for range 8 {
		pairs = append(pairs, pair{newID("race-py"), "python"})
	}
	publish := func(subject string, data []byte, msgID string) {
		msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
		if msgID != "" {
			msg.Header.Set(jetstream.MsgIDHeader, msgID)
		}
		// BRIG_SUBMIT acknowledges nothing (docs/design.md §10.2).
		if err := stack.Conn.PublishMsg(msg); err != nil {
			t.Errorf("submit %s: %v", msgID, err)
		}
	}
	var wg sync.WaitGroup
	for _, p := range pairs {
		job := schema.Job{ID: p.id, Function: p.function, Stdin: "A"}
		if p.function == "python" {
			job.Code = `print("A")`
		}
		data, err := schema.Marshal(job)
		if err != nil {
			t.Fatal(err)
		}
		bogus := []byte(`{"id":"` + p.id + `","function":"echo","stdin":"B","bogus":1}`)
		wg.Add(2)
		go func() {
			defer wg.Done()
			publish(schema.SubmitSubject(schema.DefaultTenant, p.function), data, keyOf(p.id))
		}()
		go func() { defer wg.Done(); publish(schema.SubmitSubject(schema.DefaultTenant, "echo"), bogus, "") }()
	}
	wg.Wait()
	if err := stack.Conn.Flush(); err != nil {
		t.Fatal(err)
	}

	owned := map[string]int{}
	for _, p := range pairs {
		evs := events(t, p.id)
		last := evs[len(evs)-1]
		switch {
		case len(evs) == 1 && last.Type == schema.EventError && last.Status == schema.StatusRejected:
			owned["rejection"]++
		case evs[0].Type == schema.EventAccepted && last.Status == schema.StatusSucceeded && strings.Contains(last.Stdout, "A"):
			owned["job"]++
			for _, ev := range evs[1 : len(evs)-1] {
				if ev.Type == schema.EventAccepted || schema.IsTerminal(ev.Type) {
					t.Errorf("%s: events of two submissions: %s", p.id, describe(evs))
					break
				}
			}
		default:
			t.Errorf("%s: events of two submissions or none: %s", p.id, describe(evs))
		}
	}
	// Nothing is written after the owner's end: every submission settled,
	// each id still holds what it did.
	waitDispatcherIdle(t)
	for _, p := range pairs {
		if n := countTerminal(t, keyOf(p.id)); n != 1 {
			t.Errorf("%s: %d terminal events stored", p.id, n)
		}
		if n := countStored(t, schema.EventSubject(keyOf(p.id), schema.EventAccepted)); n > 1 {
			t.Errorf("%s: %d accepted events stored", p.id, n)
		}
		if n, m := countStored(t, schema.EventSubject(keyOf(p.id), schema.EventError)), countStored(t, schema.EventSubject(keyOf(p.id), schema.EventAccepted)); n > 0 && m > 0 {
			t.Errorf("%s: both a rejection and an accepted event stored", p.id)
		}
	}
	t.Logf("%d pairs: %v", len(pairs), owned)
}
