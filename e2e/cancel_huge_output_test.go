package e2e

import (
	"context"
	"strings"
	"testing"

	"github.com/brig-dev/brig/schema"
)

// TestCancelHugeOutput: a job that floods stderr past output_bytes (1 MiB
// of control characters, six bytes each in JSON) while it keeps printing
// to stdout, then is cancelled. Its one terminal event fits the server's
// max_payload, flags the truncation, and holds the same stdout as the
// output events a follower saw: `brig run` prints the events and `--json`
// the terminal event, and the two must not disagree (see worker
// TestCancelStoresLastOutputEvents).
func TestCancelHugeOutput(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	job := pythonJob("attack-cancel-flood", `import os, sys, time
os.write(2, b"\x01" * (2 << 20))
i = 0
while True:
    sys.stdout.write("tick %d\n" % i)
    sys.stdout.flush()
    i += 1
    time.sleep(0.002)
`)
	job.TimeoutMS = 60_000
	job.Limits = &schema.Limits{OutputBytes: schema.MaxOutputBytes}
	h, err := brig.Submit(ctx, job)
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	defer h.Stop()
	streamed := map[schema.OutputStream]string{}
	for len(streamed[schema.StreamStderr]) < schema.MaxOutputBytes || !strings.Contains(streamed[schema.StreamStdout], "tick 50\n") {
		ev := waitForEvent(ctx, t, h.Events(), schema.EventOutput)
		streamed[ev.Stream] += ev.Data
	}
	if status, err := brig.Cancel(ctx, job.ID); err != nil || status != schema.StatusCancelled {
		t.Fatalf("Cancel = %q, %v; want cancelled", status, err)
	}
	if ev, _ := h.Result(ctx); ev == nil {
		t.Fatal("no terminal event")
	}

	evs := events(t, job.ID)
	end := evs[len(evs)-1]
	wantStatus(t, &end, schema.EventCancelled, schema.StatusCancelled, schema.ErrCancelled)
	data, err := schema.MarshalEvent(&end)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > schema.MinServerPayload {
		t.Errorf("terminal event is %d bytes, over the %d-byte max_payload brig promises to fit", len(data), schema.MinServerPayload)
	}
	if !end.StderrTruncated || !strings.HasPrefix(strings.Repeat("\x01", len(end.Stderr)), end.Stderr) || end.Stderr == "" {
		t.Errorf("terminal stderr: %d bytes, truncated %v; want a non-empty prefix of the flood, flagged", len(end.Stderr), end.StderrTruncated)
	}
	if n := countTerminal(t, keyOf(job.ID)); n != 1 {
		t.Errorf("%d terminal events stored, want 1", n)
	}
	var stored strings.Builder
	seqs := map[int64]bool{}
	for _, ev := range evs {
		seqs[ev.Seq] = true
		if ev.Type == schema.EventOutput && ev.Stream == schema.StreamStdout {
			stored.WriteString(ev.Data)
		}
	}
	if stored.String() != end.Stdout {
		got, want := stored.String(), end.Stdout
		t.Errorf("stdout of the output events (%d bytes, ends %q) differs from the cancelled event's (%d bytes, ends %q): "+
			"a follower missed what the job wrote last", len(got), tail(got), len(want), tail(want))
	}
	for s := int64(1); s <= end.Seq; s++ {
		if !seqs[s] {
			t.Errorf("no stored event numbered %d (attempt %d ends at seq %d)", s, end.Attempt, end.Seq)
		}
	}
}

func tail(s string) string {
	if len(s) > 24 {
		return s[len(s)-24:]
	}
	return s
}
