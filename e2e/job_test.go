package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/brig-dev/brig/internal/sandbox"
	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

func TestHelloWorld(t *testing.T) {
	t.Parallel()
	job := pythonJob("hello", `print("hello")`)
	ev, err := runJob(t, job)
	if err != nil {
		t.Fatalf("run: %v (event %s)", err, brief(ev))
	}
	wantStatus(t, ev, schema.EventResult, schema.StatusSucceeded, "")
	if ev.ExitCode != 0 || ev.Stdout != "hello\n" {
		t.Errorf("exit_code=%d stdout=%q, want 0 and %q", ev.ExitCode, ev.Stdout, "hello\n")
	}

	evs := events(t, job.ID)
	checkEventOrder(t, evs)
	if last := evs[len(evs)-1]; last.Type != schema.EventResult {
		t.Errorf("last event is %s, want result", last.Type)
	}
	if n := countTerminal(t, keyOf(job.ID)); n != 1 {
		t.Errorf("%d terminal events stored, want 1", n)
	}
	var out strings.Builder
	for _, e := range evs {
		if e.Type == schema.EventOutput && e.Stream == schema.StreamStdout {
			out.WriteString(e.Data)
		}
	}
	if out.String() != "hello\n" {
		t.Errorf("output events carry stdout %q, want %q", out.String(), "hello\n")
	}
}

// checkEventOrder wants accepted, started, output events, then exactly one
// terminal event last, with strictly increasing seq.
func checkEventOrder(t *testing.T, evs []schema.Event) {
	t.Helper()
	if len(evs) < 3 {
		t.Fatalf("got %d events, want at least accepted, started, terminal: %s", len(evs), describe(evs))
	}
	if evs[0].Type != schema.EventAccepted || evs[1].Type != schema.EventStarted {
		t.Errorf("first events are %s, %s; want accepted, started: %s", evs[0].Type, evs[1].Type, describe(evs))
	}
	last := evs[len(evs)-1]
	if !schema.IsTerminal(last.Type) {
		t.Errorf("last event is %s, want a terminal one", last.Type)
	}
	for i, e := range evs[2 : len(evs)-1] {
		if e.Type != schema.EventOutput {
			t.Errorf("event %d is %s, want output between started and terminal: %s", i+2, e.Type, describe(evs))
		}
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].Seq <= evs[i-1].Seq {
			t.Errorf("seq not strictly increasing at event %d: %d after %d: %s", i, evs[i].Seq, evs[i-1].Seq, describe(evs))
		}
	}
}

func TestArgsFilesStdinEnvResult(t *testing.T) {
	t.Parallel()
	job := pythonJob("io", `
import json, os, sys
args = json.load(open("/work/args.json"))
data = open("/work/data/in.txt").read()
stdin = sys.stdin.read()
with open("/work/out/result.json", "w") as f:
    json.dump({"n": args["n"] * 2, "data": data, "stdin": stdin, "foo": os.environ["FOO"]}, f)
`)
	job.Args = json.RawMessage(`{"n":2}`)
	job.Files = map[string]string{"data/in.txt": "abc"}
	job.Stdin = "xyz"
	job.Env = map[string]string{"FOO": "bar"}
	ev, err := runJob(t, job)
	if err != nil {
		t.Fatalf("run: %v (event %s)", err, brief(ev))
	}
	wantStatus(t, ev, schema.EventResult, schema.StatusSucceeded, "")
	want := `{"n":4,"data":"abc","stdin":"xyz","foo":"bar"}`
	if !jsonEqual(t, ev.Output, []byte(want)) {
		t.Errorf("output = %s, want %s (stderr %q)", ev.Output, want, ev.Stderr)
	}
}

func TestNonZeroExit(t *testing.T) {
	t.Parallel()
	ev, err := runJob(t, pythonJob("exit3", "import sys\nsys.exit(3)"))
	wantStatus(t, ev, schema.EventResult, schema.StatusFailed, schema.ErrNonZeroExit)
	if ev.ExitCode != 3 {
		t.Errorf("exit_code = %d, want 3", ev.ExitCode)
	}
	wantIs(t, err, sdk.ErrFailed)
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	job := pythonJob("timeout", "while True:\n    pass")
	job.TimeoutMS = 1500
	start := time.Now()
	h, err := brig.Submit(ctx, job)
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	defer h.Stop()
	waitForEvent(ctx, t, h.Events(), schema.EventStarted)
	// While it runs, the job's container is labelled with job and worker:
	// that is what makes the check for its removal below meaningful.
	running := containersOf(t, keyOf(job.ID))
	if len(running) != 1 || running[0].Labels[sandbox.LabelWorker] != workerID {
		t.Errorf("containers of the running job: %s with labels %v, want one of worker %s", names(running), labelsOf(running), workerID)
	}
	ev, err := h.Result(ctx)
	if ev == nil {
		t.Fatalf("no terminal event: %v", err)
	}
	took := time.Since(start)
	wantStatus(t, ev, schema.EventTimeout, schema.StatusTimeout, schema.ErrTimeout)
	wantIs(t, err, sdk.ErrTimeout)
	if ev.DurationMS < 1500 || ev.DurationMS > 30_000 || took > 30*time.Second {
		t.Errorf("duration_ms = %d, run took %s; want at least the 1500 ms timeout and well under 30 s", ev.DurationMS, took)
	}
	eventually(t, pollBudget, func(context.Context) (bool, string) {
		left := containersOf(t, keyOf(job.ID))
		return len(left) == 0, "containers of the timed-out job still exist: " + names(left)
	})
}

func labelsOf(list []container.Summary) []map[string]string {
	var out []map[string]string
	for _, c := range list {
		out = append(out, c.Labels)
	}
	return out
}

func TestOOM(t *testing.T) {
	t.Parallel()
	job := pythonJob("oom", `
chunks = []
for _ in range(300):
    chunks.append(bytearray(b"x") * (1 << 20))  # filled, so the pages are really used
print("allocated", len(chunks), "MB")
`)
	job.Limits = &schema.Limits{MemoryMB: 32}
	ev, err := runJob(t, job)
	wantStatus(t, ev, schema.EventResult, schema.StatusOOM, schema.ErrOOM)
	wantIs(t, err, sdk.ErrOOM)
	if strings.Contains(ev.Stdout, "allocated") {
		t.Errorf("job finished its allocations under a 32 MB limit: stdout %q", ev.Stdout)
	}
}

func TestOutputFlood(t *testing.T) {
	t.Parallel()
	const limit = 65536
	for _, stream := range []schema.OutputStream{schema.StreamStdout, schema.StreamStderr} {
		name := string(stream) // also Python's: sys.stdout, sys.stderr
		t.Run(name, func(t *testing.T) {
			job := pythonJob("flood-"+name, `
import sys
chunk = "x" * (1 << 20)
for _ in range(20):
    sys.`+name+`.write(chunk)
sys.`+name+`.flush()
`)
			job.Limits = &schema.Limits{OutputBytes: limit}
			ev, err := runJob(t, job)
			if err != nil {
				t.Fatalf("run: %v (event %s)", err, brief(ev))
			}
			wantStatus(t, ev, schema.EventResult, schema.StatusSucceeded, "")
			text, truncated := ev.Stdout, ev.StdoutTruncated
			if stream == schema.StreamStderr {
				text, truncated = ev.Stderr, ev.StderrTruncated
			}
			if !truncated || len(text) != limit {
				t.Errorf("%s: truncated=%v len=%d, want true and %d", stream, truncated, len(text), limit)
			}
			if strings.Trim(text, "x") != "" {
				t.Errorf("%s holds something else than the job's output: %q", stream, clip(strings.Trim(text, "x")))
			}
			streamed := 0
			for _, e := range events(t, job.ID) {
				if e.Type == schema.EventOutput && e.Stream == stream {
					streamed += len(e.Data)
				}
			}
			if streamed != limit {
				t.Errorf("output events carry %d bytes of %s, want %d", streamed, stream, limit)
			}
		})
	}
	t.Run("exactly the limit", func(t *testing.T) {
		job := pythonJob("flood-exact", `import sys; sys.stdout.write("x" * 65536)`)
		job.Limits = &schema.Limits{OutputBytes: limit}
		ev, err := runJob(t, job)
		if err != nil {
			t.Fatalf("run: %v (event %s)", err, brief(ev))
		}
		if ev.StdoutTruncated || len(ev.Stdout) != limit {
			t.Errorf("stdout: truncated=%v len=%d, want false and %d", ev.StdoutTruncated, len(ev.Stdout), limit)
		}
	})
	t.Run("worker unharmed", func(t *testing.T) {
		ev, err := runJob(t, pythonJob("after-flood", `print("hello")`))
		if err != nil || ev.Stdout != "hello\n" {
			t.Errorf("hello after the flood: err=%v event %s", err, brief(ev))
		}
	})
}

// TestOutputEventsKeepUTF8 streams non-ASCII text longer than one output
// chunk: the output events, joined, must be the job's output, as the
// terminal event's stdout is.
func TestOutputEventsKeepUTF8(t *testing.T) {
	t.Parallel()
	// One ASCII byte first puts every 2-byte "é" across the even offsets
	// where output is cut into frames and events.
	want := "a" + strings.Repeat("é", 40000) + "\n"
	job := pythonJob("utf8", `import sys; sys.stdout.write("a" + "é" * 40000 + "\n")`)
	ev, err := runJob(t, job)
	if err != nil {
		t.Fatalf("run: %v (event %s)", err, brief(ev))
	}
	if ev.Stdout != want {
		t.Errorf("terminal stdout differs from the job's output: %d bytes, want %d", len(ev.Stdout), len(want))
	}
	var streamed strings.Builder
	chunks := 0
	for _, e := range events(t, job.ID) {
		if e.Type == schema.EventOutput && e.Stream == schema.StreamStdout {
			streamed.WriteString(e.Data)
			chunks++
		}
	}
	if got := streamed.String(); got != want {
		t.Errorf("output events (%d) joined differ from the job's output: %d bytes, want %d; %d U+FFFD replacement characters",
			chunks, len(got), len(want), strings.Count(got, "\uFFFD"))
	}
}
