package e2e

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/dispatcher"
	"github.com/brig-dev/brig/internal/auth"
	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/worker"
)

// Issue 10, finding 2: every accepted job ends in exactly one terminal
// event of its own, and a job whose work message cannot fit is rejected
// before it is accepted, with a message naming the limit.

// rawPython is a python job's payload with its code written as is: `<`
// stays one byte (an HTML-escaping encoder would write six), and bytes
// that are not UTF-8 stay one byte each (the dispatcher decodes each to
// U+FFFD, three bytes, when it builds the work message).
func rawPython(id, code string) []byte {
	return []byte(`{"id":"` + id + `","function":"python","code":"` + code + `"}`)
}

// TestAcceptBoundsAngleBrackets is finding 2 as reported: 200,000 literal
// `<` in code (200 KB, under the job cap) were accepted, then re-encoded
// with HTML escaping past the work limit, and the job never ended. Nothing
// is escaped now: the job runs and its code arrives intact.
func TestAcceptBoundsAngleBrackets(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	id := newID("angles")
	const n = 200_000
	code := `x = "` + strings.Repeat("<", n) + `"\nprint(len(x), x == "<" * ` + strconv.Itoa(n) + `)\n`
	data := rawPython(id, strings.ReplaceAll(code, `"`, `\"`))
	if len(data) > schema.DefaultMaxJobBytes {
		t.Fatalf("test job is %d bytes, over the job cap", len(data))
	}
	if err := publishRaw(ctx, clientNC, brig.Tenant(), "python", keyOf(id), data); err != nil {
		t.Fatalf("publish: %v", err)
	}
	ev, err := watchResult(t, id)
	if err != nil || ev.Status != schema.StatusSucceeded || ev.Stdout != strconv.Itoa(n)+" True\n" {
		t.Fatalf("job with %d `<` in its code: %s (%v); want succeeded, stdout %q", n, brief(ev), err, strconv.Itoa(n)+" True\n")
	}
	wantStored(t, keyOf(id), 1, 1)
}

// TestAcceptBoundsWorkTooLarge: jobs under the job cap whose work message
// would pass the work limit once brig encodes them are rejected as
// InvalidJob, never accepted; at the limit's edge, one just under runs and
// one just over is rejected.
func TestAcceptBoundsWorkTooLarge(t *testing.T) {
	t.Parallel()
	// Each "\xff" is one byte of the submission and three of the work.
	const far = 400_000
	id := newID("workbig")
	ev := submitRaw(t, id, "# "+strings.Repeat("\xff", far))
	size, limit := wantTooLarge(t, ev)
	// Everything but the \xff bytes: the same for jobs with ids of the same
	// length, within a few bytes of timestamps.
	base := size - 3*far
	const margin = 64
	under := (limit - base - margin) / 3
	over := (limit-base+margin)/3 + 1
	t.Logf("work message of %d \\xff: %d bytes; limit %d; %d bytes besides; edge jobs of %d and %d", far, size, limit, base, under, over)

	overID := newID("workbig")
	wantTooLarge(t, submitRaw(t, overID, "# "+strings.Repeat("\xff", over)))

	underID := newID("workbig")
	ev = submitRaw(t, underID, "# "+strings.Repeat("\xff", under)+`\nprint(\"fits\")\n`)
	if ev.Status != schema.StatusSucceeded || ev.Stdout != "fits\n" {
		t.Errorf("job with a work message %d bytes under the limit: %s; want it to run", margin, brief(ev))
	}
	wantStored(t, keyOf(underID), 1, 1)
}

// submitRaw publishes a python job of code as is and waits for its end.
func submitRaw(t *testing.T, id, code string) *schema.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	data := rawPython(id, code)
	if len(data) > schema.DefaultMaxJobBytes {
		t.Fatalf("test job is %d bytes, over the job cap", len(data))
	}
	if err := publishRaw(ctx, clientNC, brig.Tenant(), "python", keyOf(id), data); err != nil {
		t.Fatalf("publish: %v", err)
	}
	ev, _ := watchResult(t, id)
	return ev
}

var workSizeRE = regexp.MustCompile(`is (\d+) bytes, over the limit of (\d+) bytes \(MaxWorkBytes\)`)

// wantTooLarge checks the rejection of a job whose work message cannot fit
// and returns the sizes it names.
func wantTooLarge(t *testing.T, ev *schema.Event) (size, limit int) {
	t.Helper()
	wantStatus(t, ev, schema.EventError, schema.StatusRejected, schema.ErrInvalidJob)
	wantStored(t, ev.JobID, 0, 1)
	if ev.Error == nil {
		t.Fatalf("rejection of %s says nothing", ev.JobID)
	}
	m := workSizeRE.FindStringSubmatch(ev.Error.Message)
	if m == nil {
		t.Fatalf("message %q does not name the work limit and the size", ev.Error.Message)
	}
	size, _ = strconv.Atoi(m[1])
	limit, _ = strconv.Atoi(m[2])
	if limit != schema.MaxWorkBytes || size <= limit {
		t.Fatalf("message %q: size %d, limit %d; want a size over %d", ev.Error.Message, size, limit, schema.MaxWorkBytes)
	}
	return size, limit
}

// wantStored checks how many accepted and terminal events the job of a
// key stored.
func wantStored(t *testing.T, key string, accepted, terminal int) {
	t.Helper()
	if n := countStored(t, schema.EventSubject(key, schema.EventAccepted)); n != accepted {
		t.Errorf("job %s: %d accepted events stored, want %d", key, n, accepted)
	}
	if n := countTerminal(t, key); n != terminal {
		t.Errorf("job %s: %d terminal events stored, want %d", key, n, terminal)
	}
}

// TestAcceptBoundsRoutingFailure: a job accepted while its pool's work
// queue is full (another pool's backlog holds BRIG_WORK at its MaxMsgs,
// which refuses new work) fails to route on every attempt and ends in
// exactly one terminal Infrastructure error that says why.
func TestAcceptBoundsRoutingFailure(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), faultBudget)
	defer cancel()
	fe := newFaultEnv(ctx, t)
	streams := bus.Config{WorkMaxMsgs: 1}
	fe.startWorker(ctx, worker.Config{ID: workerID + "-fullq", Streams: streams, Slots: 1})
	fe.startDispatcher(ctx, fe.roleConn(auth.RoleDispatcher), func(c *dispatcher.Config) {
		c.Streams, c.MaxDeliver, c.Backoff = streams, 3, 50*time.Millisecond
	})
	js, err := jetstream.New(fe.nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, schema.WorkSubject("backlog"), []byte("{}")); err != nil {
		t.Fatalf("fill the work queue: %v", err)
	}
	h, err := fe.client.Submit(ctx, pythonJob("fullq", `print("never")`))
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	defer h.Stop()
	ev, _ := h.Result(ctx)
	if ev == nil {
		t.Fatalf("job %s: no terminal event after its routing failed", h.ID)
	}
	wantStatus(t, ev, schema.EventError, schema.StatusError, schema.ErrInfrastructure)
	if ev.JobID != h.Key || !strings.Contains(ev.Error.Message, "maximum messages exceeded") {
		t.Errorf("terminal event %s; want job %s's, saying the work queue is full", brief(ev), h.Key)
	}
	counts := fe.storedCounts(t, schema.EventsFilter(h.Key))
	wantOnce(t, counts, h.Key, false)
	if n := counts[schema.EventSubject(h.Key, schema.EventStarted)]; n != 0 {
		t.Errorf("%d started events; the job never reached a worker", n)
	}
}

// TestAcceptBoundsReusedID: submissions that reuse the id of a running job
// past the stream's dedup (no Nats-Msg-Id) are refused, whatever they hold,
// including one that could never be routed, and the job ends with its own
// result.
func TestAcceptBoundsReusedID(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	job := pythonJob("reuse", "import time\ntime.sleep(3)\nprint('first')")
	h, err := brig.Submit(ctx, job)
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	defer h.Stop()
	accepted := waitForEvent(ctx, t, h.Events(), schema.EventAccepted)
	if accepted.SubmitSeq == 0 {
		t.Errorf("accepted event names no submission: %+v", accepted)
	}
	for name, data := range map[string][]byte{
		"valid":            rawPython(job.ID, `print('second')`),
		"too big to route": rawPython(job.ID, strings.Repeat("\xff", 400_000)),
		"invalid":          []byte(`{"id":"` + job.ID + `","colour":1}`),
	} {
		if err := publishRaw(ctx, clientNC, brig.Tenant(), "python", "", data); err != nil {
			t.Fatalf("publish the %s reuse: %v", name, err)
		}
	}
	ev, err := h.Result(ctx)
	if ev == nil {
		t.Fatalf("no terminal event: %v", err)
	}
	if ev.Status != schema.StatusSucceeded || ev.Stdout != "first\n" {
		t.Errorf("job %s ended %s instead of with its own result", job.ID, brief(ev))
	}
	waitDispatcherIdle(t)
	wantStored(t, keyOf(job.ID), 1, 1)
	if n := countStored(t, schema.EventSubject(keyOf(job.ID), schema.EventStarted)); n != 1 {
		t.Errorf("%d started events stored, want 1", n)
	}
}
