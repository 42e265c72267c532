package e2e

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/schema"
)

// TestNoDeputy: a tenant names reply subjects in another tenant's or
// brig's own namespace on the requests it may send. Neither the server
// (a submission's acknowledgement: BRIG_SUBMIT acknowledges nothing) nor a
// dispatcher (a cancellation's answer) publishes there, so the other
// tenant's running job is not cancelled and nothing is stored under its
// key (docs/design.md §10.2).
func TestNoDeputy(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	suffix := randomHex(3)
	a := newTenant(ctx, t, schema.Tenant{Name: "dep-a-" + suffix})
	b := newTenant(ctx, t, schema.Tenant{Name: "dep-b-" + suffix})

	victim := pythonJob("deputy-victim", "import time\ntime.sleep(4)\nprint('lived')")
	h, err := b.c.Submit(ctx, victim)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	waitStarted(t, h)
	forged := schema.EventSubject(b.key("deputy-ghost"), schema.EventAccepted)
	for _, m := range []*nats.Msg{
		// The stream's acknowledgement of a submission, aimed at B's job.
		{Subject: schema.SubmitSubject(a.name, "python"), Reply: schema.CancelSubject(b.key(victim.ID)), Data: []byte("{}")},
		{Subject: schema.SubmitSubject(a.name, "python"), Reply: forged, Data: []byte("{}")},
		// A dispatcher's answer to a cancellation, aimed at B's events.
		{Subject: schema.CancelSubject(a.key("nosuch")), Reply: forged},
		{Subject: schema.CancelSubject(a.key("nosuch")), Reply: schema.CancelSubject(b.key(victim.ID))},
	} {
		if err := a.nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	ev, err := h.Result(ctx)
	if err != nil || ev.Status != schema.StatusSucceeded || ev.Stdout != "lived\n" {
		t.Errorf("B's job after A's forged replies: %v (%s), want it to run to its end", err, brief(ev))
	}
	if n := countStored(t, schema.EventsFilter(b.key("deputy-ghost"))); n != 0 {
		t.Errorf("%d events stored under B's key deputy-ghost, want none", n)
	}
}
