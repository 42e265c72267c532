package bench

import (
	"context"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/brig-dev/brig/internal/natstest"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	for subject, want := range map[string]string{
		"brig.submit.default.python":                       "brig.submit",
		"brig.events.default.j1.result":                    "brig.events",
		"brig.work.default":                                "brig.work",
		"$JS.API.CONSUMER.MSG.NEXT.BRIG_WORK.pool-default": "$JS.API.CONSUMER.MSG.NEXT",
		"$JS.API.DIRECT.GET.BRIG_EVENTS.brig.events.x.y":   "$JS.API.DIRECT.GET",
		"$JS.API.STREAM.INFO.BRIG_SUBMIT":                  "$JS.API.STREAM.INFO",
		"$JS.API.CONSUMER.DURABLE.CREATE.BRIG_WORK.p":      "$JS.API.CONSUMER.DURABLE.CREATE",
		"$JS.API.INFO":                                     "$JS.API.INFO",
		"$JS.API.STREAM.MSG.GET.KV_BRIG_WORKERS":           "$JS.API.STREAM.MSG.GET",
		"$JS.API.CONSUMER.INFO.ABC.d":                      "$JS.API.CONSUMER.INFO.ABC",
		"$JS.ACK.BRIG_WORK.pool-default.1.2.3.4.5":         "$JS.ACK.BRIG_WORK",
		"$JS.ACK": "$JS.ACK",
		"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.BRIG_WORK": "$JS.EVENT",
		"$JS.FC.BRIG_EVENTS.x":                                 "$JS.FC",
		"$KV.BRIG_WORKERS.w1":                                  "$KV.BRIG_WORKERS",
		"_INBOX.abc.def":                                       "_INBOX",
		"_INBOX.default.abc":                                   "_INBOX",
		"foo":                                                  "foo",
		"foo.bar.baz":                                          "foo",
		"":                                                     "",
	} {
		if got := classify(subject); got != want {
			t.Errorf("classify(%q) = %q, want %q", subject, got, want)
		}
	}
	for reply, want := range map[string]bool{"": false, "_INBOX.x.y": true, "_INBOX.default.x": true, "$JS.ACK.BRIG_WORK.p.1": false} {
		if got := isRequest(reply); got != want {
			t.Errorf("isRequest(%q) = %v, want %v", reply, got, want)
		}
	}
}

// TestCounterCountsBetweenMarks counts real messages on a real server:
// every subject, by class, requests apart, and nothing of one mark's
// window in the next.
func TestCounterCountsBetweenMarks(t *testing.T) {
	t.Parallel()
	_, nc, _ := natstest.Start(t)
	cnt, err := startCounter(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer cnt.stop()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := cnt.mark(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := nc.Publish(fmt.Sprintf("brig.submit.default.f%d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.PublishRequest("brig.events.default.j.result", "_INBOX.x.1", nil); err != nil {
		t.Fatal(err)
	}
	got, err := cnt.mark(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"brig.submit": 3, "brig.events": 1}
	if got.Total != 4 || got.Requests != 1 || !maps.Equal(got.ByClass, want) || got.Elapsed <= 0 {
		t.Errorf("tally = %+v; want 4 messages, 1 request, %v", got, want)
	}
	if got, err := cnt.mark(ctx); err != nil || got.Total != 0 {
		t.Errorf("next window = %+v, %v; want empty", got, err)
	}
}

func TestCounterBoundsClasses(t *testing.T) {
	t.Parallel()
	c := &msgCounter{}
	c.reset(time.Now())
	for i := range maxClasses + 10 {
		c.add(fmt.Sprintf("s%d", i), "")
	}
	c.add("s0", "")
	if len(c.cur.ByClass) != maxClasses+1 || c.cur.ByClass[otherClass] != 10 || c.cur.ByClass["s0"] != 2 || c.cur.Total != maxClasses+11 {
		t.Errorf("%d classes, other %d, s0 %d, total %d", len(c.cur.ByClass), c.cur.ByClass[otherClass], c.cur.ByClass["s0"], c.cur.Total)
	}
}

func TestPerJob(t *testing.T) {
	t.Parallel()
	idle := tally{Total: 20, Requests: 10, ByClass: map[string]int{"$KV.BRIG_WORKERS": 10, "_INBOX": 10}, Elapsed: 10 * time.Second}
	jobs := tally{Total: 105, Requests: 42, Elapsed: 5 * time.Second,
		ByClass: map[string]int{"brig.submit": 20, "_INBOX": 80, "$KV.BRIG_WORKERS": 5}}
	f := perJob("x", jobs, idle, 10)
	// Idle: 2 msgs/s, 1 request/s; over 5 s: 10 and 5 less.
	want := map[string]float64{"brig.submit": 2, "_INBOX": 7.5}
	if f.Unit != "msgs/job" || f.N != 10 || f.PerJob != 9.5 || f.RoundTrips != 3.7 || !maps.Equal(f.ByClass, want) {
		t.Errorf("perJob = %+v; want 9.5 per job, 3.7 round trips, %v", f, want)
	}
	if f := perJob("x", jobs, tally{}, 10); f.PerJob != 10.5 || f.ByClass["$KV.BRIG_WORKERS"] != 0.5 {
		t.Errorf("perJob without an idle window = %+v", f)
	}
}
