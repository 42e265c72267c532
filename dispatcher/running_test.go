package dispatcher

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/internal/signing"
	"github.com/brig-dev/brig/internal/token"
	"github.com/brig-dev/brig/schema"
)

// max_running: of a burst of 6 jobs of a tenant with max_running 2,
// spread over two dispatchers, all are accepted and exactly 2 are routed;
// the others wait in BRIG_HOLD, looked at again and again without being
// routed. A held job cancelled meanwhile is dropped, never routed. Each
// time routed jobs end (their terminal events stored through
// internal/events, as a worker stores them), as many held ones flow, with
// a fresh credential.
func TestMaxRunning(t *testing.T) {
	t.Parallel()
	const tenant, maxRunning, burst = "run", 2, 6
	r := newRig(t, nil)
	r.addTenant(schema.Tenant{Name: tenant, MaxRunning: maxRunning})
	secondDispatcher(t, r)

	var wg sync.WaitGroup
	seqs := make([]uint64, burst)
	for i := range seqs {
		wg.Go(func() {
			id := "r-" + strconv.Itoa(i)
			seqs[i] = publishRaw(t, r.js, schema.SubmitSubject(tenant, "python"), jobData(t, id, "print(1)"), schema.JobKey(tenant, id))
		})
	}
	wg.Wait()
	for i, seq := range seqs {
		r.settled(seq)
		key := schema.JobKey(tenant, "r-"+strconv.Itoa(i))
		if c := r.stored(key); c[schema.EventAccepted] != 1 || len(c) != 1 {
			t.Errorf("%s: stored %v; want it accepted", key, c)
		}
	}
	// Every held job is looked at a few times: none is routed past the 2.
	r.waitFor("held jobs looked at", func() (bool, string) {
		n := r.heldDeliveries()
		return n >= 3*(burst-maxRunning), fmt.Sprintf("%d looks", n)
	})
	routed := r.routed(tenant)
	if len(routed) != maxRunning {
		t.Fatalf("routed %v; want %d of them", routed, maxRunning)
	}
	held := r.heldKeys()
	if len(held) != burst-maxRunning {
		t.Fatalf("held %v; want %d", held, burst-maxRunning)
	}
	if n := r.markers(tenant); n != maxRunning {
		t.Errorf("%d running markers, want %d", n, maxRunning)
	}

	// A held job cancelled: it ends cancelled and is dropped.
	gone := held[0]
	if reply := r.cancel(gone); reply.Status != schema.StatusCancelled {
		t.Fatalf("cancel of held job %s: %+v", gone, reply)
	}
	r.waitFor("the cancelled held job dropped", func() (bool, string) {
		keys := r.heldKeys()
		return !slices.Contains(keys, gone), fmt.Sprintf("held %v", keys)
	})

	// The routed jobs end: as many held ones flow, never more than
	// max_running routed and not ended.
	for {
		live := slices.DeleteFunc(r.routed(tenant), func(k string) bool { return r.terminalOf(k) != nil })
		if len(live) > maxRunning {
			t.Fatalf("%v routed and not ended; max_running is %d", live, maxRunning)
		}
		waiting := r.heldKeys()
		if len(waiting) == 0 {
			break
		}
		before := len(r.routed(tenant))
		for _, key := range live {
			r.end(key)
		}
		want := before + min(len(live), len(waiting))
		r.waitFor("held jobs routed", func() (bool, string) {
			got := r.routed(tenant)
			return len(got) >= want && len(r.heldKeys()) == len(waiting)-(want-before), fmt.Sprintf("routed %v", got)
		})
		if got := r.routed(tenant); len(got) != want {
			t.Fatalf("routed %v; want %d in all", got, want)
		}
	}
	all := r.routed(tenant)
	if len(all) != burst-1 || slices.Contains(all, gone) {
		t.Errorf("routed %v; want every job but the cancelled %s", all, gone)
	}
	if ev := r.terminal(gone); ev.Status != schema.StatusCancelled {
		t.Errorf("the held job ended %+v", ev)
	}
	r.checkTokens(tenant, held)
}

// secondDispatcher starts another dispatcher on the rig's server.
func secondDispatcher(t *testing.T, r *rig) *Dispatcher {
	t.Helper()
	nc, err := nats.Connect(r.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	d, err := New(Config{Conn: nc, MaxDeliver: 3, Backoff: 10 * time.Millisecond, Streams: bus.Config{SubmitAcks: true},
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})).With("dispatcher", 2)})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Stop(context.Background()) })
	return d
}

// waitFor polls cond until it holds, for up to 20 s.
func (r *rig) waitFor(what string, cond func() (bool, string)) {
	r.t.Helper()
	waitFor(r.t, what, cond)
}

// works returns the Work messages in BRIG_WORK, in order.
func (r *rig) works() []*schema.Work {
	r.t.Helper()
	return decodeAll[schema.Work](r, schema.StreamWork)
}

// routed returns the keys of tenant's jobs routed to a pool, in order.
func (r *rig) routed(tenant string) []string {
	r.t.Helper()
	var keys []string
	for _, w := range r.works() {
		if strings.HasPrefix(w.Job.ID, tenant+".") {
			keys = append(keys, w.Job.ID)
		}
	}
	return keys
}

// heldKeys returns the keys of the jobs in BRIG_HOLD, in order.
func (r *rig) heldKeys() []string {
	r.t.Helper()
	var keys []string
	for _, w := range decodeAll[schema.Work](r, bus.StreamHold) {
		keys = append(keys, w.Job.ID)
	}
	return keys
}

// decodeAll decodes every message in a stream.
func decodeAll[T any](r *rig, name string) []*T {
	r.t.Helper()
	ctx := r.t.Context()
	s, err := r.js.Stream(ctx, name)
	if err != nil {
		r.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	var out []*T
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		raw, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue // acked from a work queue meanwhile
		}
		v := new(T)
		if err := json.Unmarshal(raw.Data, v); err != nil {
			r.t.Fatalf("%s message %d: %v", name, seq, err)
		}
		out = append(out, v)
	}
	return out
}

// heldDeliveries is how many times the held jobs were handed to a
// dispatcher.
func (r *rig) heldDeliveries() uint64 {
	r.t.Helper()
	info, err := r.js.Consumer(r.t.Context(), bus.StreamHold, bus.HeldConsumer)
	if err != nil {
		r.t.Fatal(err)
	}
	ci, err := info.Info(r.t.Context())
	if err != nil {
		r.t.Fatal(err)
	}
	return ci.Delivered.Consumer
}

// markers counts the markers in tenant's running stream.
func (r *rig) markers(tenant string) uint64 {
	r.t.Helper()
	s, err := r.js.Stream(r.t.Context(), bus.RunningStream(tenant))
	if err != nil {
		r.t.Fatal(err)
	}
	info, err := s.Info(r.t.Context())
	if err != nil {
		r.t.Fatal(err)
	}
	return info.State.Msgs
}

// cancel asks the dispatchers to cancel a job.
func (r *rig) cancel(key string) CancelReply {
	r.t.Helper()
	// From an inbox of the key's tenant: a dispatcher answers no other.
	tenant, _, _ := schema.SplitJobKey(key)
	inbox := schema.InboxPrefix(tenant) + "." + strings.TrimPrefix(nats.NewInbox(), schema.ReplyPrefix)
	sub, err := r.nc.SubscribeSync(inbox)
	if err != nil {
		r.t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := r.nc.PublishRequest(schema.CancelSubject(key), inbox, nil); err != nil {
		r.t.Fatal(err)
	}
	m, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		r.t.Fatal(err)
	}
	var reply CancelReply
	if err := json.Unmarshal(m.Data, &reply); err != nil {
		r.t.Fatal(err)
	}
	return reply
}

// end stores a job's terminal result as its worker would.
func (r *rig) end(key string) {
	r.t.Helper()
	ev := &schema.Event{JobID: key, Type: schema.EventResult, Status: schema.StatusSucceeded, Seq: 3, Attempt: 1}
	if _, err := r.d.events.Publish(r.t.Context(), ev, ""); err != nil {
		r.t.Fatal(err)
	}
}

// terminalOf returns a job's stored terminal event, or nil.
func (r *rig) terminalOf(key string) *schema.Event {
	r.t.Helper()
	ev, err := r.d.events.Terminal(r.t.Context(), key)
	if err != nil {
		r.t.Fatal(err)
	}
	return ev
}

// checkTokens checks that each routed job of tenant carries a credential
// for itself that verifies now, minted when it was routed for the jobs
// that were held.
func (r *rig) checkTokens(tenant string, held []string) {
	r.t.Helper()
	ring, err := signing.OpenRing(r.t.Context(), r.js, 1)
	if err != nil {
		r.t.Fatal(err)
	}
	for _, w := range r.works() {
		if !strings.HasPrefix(w.Job.ID, tenant+".") {
			continue
		}
		c, err := token.Verify(w.Token, ring.Func(r.t.Context()), time.Now())
		if err != nil || c.JobID != w.Job.ID || c.Function != w.Spec.Function {
			r.t.Errorf("job %s: credential %+v, %v", w.Job.ID, c, err)
			continue
		}
		if slices.Contains(held, w.Job.ID) && c.IssuedAt <= w.AcceptedAt.UnixMilli() {
			r.t.Errorf("held job %s: credential issued at %d, accepted at %d; want it minted again when routed", w.Job.ID, c.IssuedAt, w.AcceptedAt.UnixMilli())
		}
	}
}

// A held job whose tenant is removed while it waits (brig tenant rm) ends
// NotFound and is never routed: removing a tenant does not lift its limit.
func TestHeldJobOfRemovedTenantEnds(t *testing.T) {
	t.Parallel()
	const tenant = "gone"
	r := newRig(t, nil)
	r.addTenant(schema.Tenant{Name: tenant, MaxRunning: 1})
	for _, id := range []string{"g-1", "g-2"} {
		r.settled(publishRaw(t, r.js, schema.SubmitSubject(tenant, "python"), jobData(t, id, "print(1)"), schema.JobKey(tenant, id)))
	}
	r.waitFor("one job routed, one held", func() (bool, string) {
		routed, held := r.routed(tenant), r.heldKeys()
		return len(routed) == 1 && len(held) == 1, fmt.Sprintf("routed %v, held %v", routed, held)
	})
	held := r.heldKeys()[0]
	kv, err := bus.OpenTenants(t.Context(), r.js, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(t.Context(), tenant); err != nil {
		t.Fatal(err)
	}
	ev := r.wantTerminal(held, schema.StatusRejected, schema.ErrNotFound, 1)
	if !strings.Contains(ev.Error.Message, "removed") {
		t.Errorf("message %q", ev.Error.Message)
	}
	r.waitFor("the held job dropped", func() (bool, string) {
		keys := r.heldKeys()
		return len(keys) == 0, fmt.Sprintf("held %v", keys)
	})
	if routed := r.routed(tenant); len(routed) != 1 {
		t.Errorf("routed %v after the tenant was removed; want only the first", routed)
	}
}
