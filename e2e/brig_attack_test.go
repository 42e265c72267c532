package e2e

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/brig-dev/brig/schema"
)

// Hostile cases that aim at brig's own machinery rather than the container
// wall: its event log and its result channel (docs/design.md §13). Each
// reproduces a finding of the attack on 561886d and checks that the job
// keeps its own, true outcome. They run in TestHostile, on every runtime
// and in reuse mode.
func brigAttackCases() []hostileCase {
	return []hostileCase{
		denialFloodRaw(),
		denialFloodCaught(),
		resultEscapes(100_000),
		resultEscapes(200_000),
		resultPretty(),
		resultTooDeep(),
		resultTooLarge(),
		resultNotJSON(),
		initLimitCPU(),
		initLimitThreads(),
	}
}

// initLimitCPU: the job shares its init's uid, so it may lower the init's
// CPU limit and make it burn that second on signals: the kernel kills the
// init. That ended error/Infrastructure; it is the job's doing.
func initLimitCPU() hostileCase {
	return hostileCase{
		name: "init-cpu-limit",
		code: `
import os, resource, sys
resource.prlimit(1, resource.RLIMIT_CPU, (1, 1))
print("lowered", flush=True)
n = 0
while True:
    try:
        os.kill(1, 34 + n % 20)
    except OSError:
        pass
    n += 1
`,
		timeout: 60 * time.Second,
		typ:     schema.EventResult, status: schema.StatusFailed, errType: schema.ErrNonZeroExit,
		msg:   "init was killed",
		check: wantInitKilledByJob,
	}
}

// initLimitThreads: the job takes away its init's right to make threads
// (RLIMIT_NPROC counts the uid's) and address space, then makes it work:
// Go's runtime dies for want of a thread.
func initLimitThreads() hostileCase {
	return hostileCase{
		name: "init-thread-limit",
		code: `
import resource, sys
resource.prlimit(1, resource.RLIMIT_NPROC, (0, 0))
resource.prlimit(1, resource.RLIMIT_AS, (64 << 20, 64 << 20))
for i in range(20000):
    sys.stdout.write("x" * 1000 + "\n")
sys.stdout.flush()
`,
		timeout: 60 * time.Second,
		// The init may survive (it had its threads already): then the job
		// simply succeeds. Either way, never Infrastructure.
		check: wantInitKilledByJob,
	}
}

// wantInitKilledByJob accepts a job whose init the job killed as failed
// (never brig's failure), and a job whose init survived as succeeded.
func wantInitKilledByJob(t *testing.T, _ string, ev *schema.Event) {
	t.Helper()
	switch {
	case ev.Status == schema.StatusSucceeded:
	case ev.Status == schema.StatusFailed && ev.Error != nil && ev.Error.Type == schema.ErrNonZeroExit && ev.ExitCode > 0:
	default:
		t.Errorf("a job that lowered its init's limits ended %s; want failed/NonZeroExit with the container's exit code, or succeeded", brief(ev))
	}
	if ev.Attempt != 1 {
		t.Errorf("attempt %d: the job's own doing was retried", ev.Attempt)
	}
}

// floodCalls is the finding's count of denied gateway calls.
const floodCalls = 12_000

// denialFloodRaw: 12,000 denied calls on a raw socket, one line printed,
// exit 1. Before, every denial became an event and a line of the terminal
// event, which outgrew the server's max payload: the job ran 15 times and
// ended error/Infrastructure with its stdout lost.
func denialFloodRaw() hostileCase {
	return denialFlood("denial-flood-raw", `
s = socket.socket(socket.AF_UNIX)
s.connect(os.environ["BRIG_GATEWAY"])
f = s.makefile("rwb")
req = json.dumps({"op": "dict.get", "name": "x", "key": "k", "token": ""}).encode() + b"\n"
def call():
    f.write(req)
    f.flush()
    return json.loads(f.readline()).get("error", {}).get("type", "none")
`)
}

// denialFloodCaught: the same flood through the Python client, each
// brig.AuthError caught.
func denialFloodCaught() hostileCase {
	return denialFlood("denial-flood-caught", `
import brig
d = brig.Dict("x")
def call():
    try:
        d.get("k")
        return "none"
    except brig.BrigError as e:
        return e.type
`)
}

// denialFlood makes floodCalls calls with call() (defined by setup), counts
// the answers by error type into result.json, prints one line and exits 1.
func denialFlood(name, setup string) hostileCase {
	return hostileCase{
		name: name,
		code: fmt.Sprintf(`
import json, os, socket, sys
%s
kinds = {}
for i in range(%d):
    t = call()
    kinds[t] = kinds.get(t, 0) + 1
json.dump(kinds, open("/work/out/result.json", "w"))
print("flooded")
sys.exit(1)
`, setup, floodCalls),
		timeout: 90 * time.Second,
		typ:     schema.EventResult, status: schema.StatusFailed, errType: schema.ErrAuthError,
		check: wantFloodOutcome(floodCalls),
	}
}

// wantFloodOutcome checks that a flood of denials left the job its own
// outcome, in one attempt, and cost brig a bounded number of events.
func wantFloodOutcome(calls int) func(*testing.T, string, *schema.Event) {
	return func(t *testing.T, _ string, ev *schema.Event) {
		t.Helper()
		if ev.Attempt != 1 || ev.ExitCode != 1 || ev.Stdout != "flooded\n" {
			t.Errorf("attempt %d exit_code %d stdout %q: want the job's own outcome, first attempt", ev.Attempt, ev.ExitCode, clip(ev.Stdout))
		}
		var kinds map[string]int
		probeOutput(t, ev, &kinds)
		total := 0
		for _, n := range kinds {
			total += n
		}
		if total != calls || kinds[string(schema.ErrAuthError)] != ev.AuthErrorCount || ev.AuthErrorCount <= schema.MaxAuthErrorEvents {
			t.Errorf("the job saw %v; the terminal event counts %d denials: want %d answers, every AuthError counted, more than %d",
				kinds, ev.AuthErrorCount, calls, schema.MaxAuthErrorEvents)
		}
		if len(ev.AuthErrors) != schema.MaxTerminalAuthErrors {
			t.Errorf("terminal event lists %d denials, want the first %d", len(ev.AuthErrors), schema.MaxTerminalAuthErrors)
		}
		single := 0
		var summary *schema.Event
		all := events(t, idOf(t, ev.JobID))
		for i := range all {
			if all[i].Type != schema.EventAuthError {
				continue
			}
			if all[i].AuthErrorCount > 0 {
				summary = &all[i]
			} else {
				single++
			}
		}
		if single != schema.MaxAuthErrorEvents || summary == nil || summary.AuthErrorCount != ev.AuthErrorCount {
			t.Errorf("%d single auth_error events and summary %+v; want %d and one summary counting %d", single, summary, schema.MaxAuthErrorEvents, ev.AuthErrorCount)
		}
		if n := countStored(t, schema.EventsFilter(ev.JobID)); n > schema.MaxAuthErrorEvents+10 {
			t.Errorf("the job stored %d events, want at most %d", n, schema.MaxAuthErrorEvents+10)
		}
	}
}

// writeResult is a job that writes result.json from Python code building
// its content (a str named r) and exits with code.
func writeResult(build string, code int) string {
	return fmt.Sprintf(`
import sys
%s
open("/work/out/result.json", "w").write(r)
print("wrote", len(r))
sys.exit(%d)
`, build, code)
}

// resultEscapes: a result.json of n '<' characters. HTML escaping made
// 100,000 of them too large and 200,000 a "tampering" failure with stdout
// lost; within the cap, it comes back byte for byte.
func resultEscapes(n int) hostileCase {
	want := `"` + strings.Repeat("<", n) + `"`
	return hostileCase{
		name:    fmt.Sprintf("result-%dk-lt", n/1000),
		code:    writeResult(fmt.Sprintf(`r = '"' + "<" * %d + '"'`, n), 0),
		timeout: 30 * time.Second,
		typ:     schema.EventResult, status: schema.StatusSucceeded,
		check: func(t *testing.T, _ string, ev *schema.Event) {
			wantOutput(t, ev, want, fmt.Sprintf("wrote %d\n", len(want)))
		},
	}
}

// resultPretty: white space, HTML characters, escapes and non-ASCII inside
// a result come back as written.
func resultPretty() hostileCase {
	const want = "{\n  \"html\": \"<b>&amp;</b>\",\n  \"esc\": \"\\u003c\\n\\\"\",\n  \"n\": [1, 2.50, -0e0],\n  \"漢\": null\n}"
	return hostileCase{
		name:    "result-as-written",
		code:    writeResult(fmt.Sprintf("r = %q + \"\\n\\n\"", want), 0),
		timeout: 30 * time.Second,
		typ:     schema.EventResult, status: schema.StatusSucceeded,
		check: func(t *testing.T, _ string, ev *schema.Event) {
			wantOutput(t, ev, want, "")
		},
	}
}

func wantOutput(t *testing.T, ev *schema.Event, want, stdout string) {
	t.Helper()
	if !bytes.Equal(ev.Output, []byte(want)) {
		t.Errorf("output is %d bytes %.60q..., want the %d bytes written", len(ev.Output), ev.Output, len(want))
	}
	if ev.OutputError != "" || (stdout != "" && ev.Stdout != stdout) {
		t.Errorf("output_error %q stdout %q", ev.OutputError, clip(ev.Stdout))
	}
}

// resultTooDeep: 10,000 levels of nesting ended error/Infrastructure; now
// the status comes from the exit code and output_error says why.
func resultTooDeep() hostileCase {
	return hostileCase{
		name:    "result-too-deep",
		code:    writeResult(`r = "[" * 10000 + "]" * 10000`, 0),
		timeout: 30 * time.Second,
		typ:     schema.EventResult, status: schema.StatusSucceeded,
		check: wantOutputError("64 levels", "wrote 20000\n"),
	}
}

func resultTooLarge() hostileCase {
	return hostileCase{
		name:    "result-too-large",
		code:    writeResult(`r = '"' + "a" * 300000 + '"'`, 3),
		timeout: 30 * time.Second,
		typ:     schema.EventResult, status: schema.StatusFailed, errType: schema.ErrNonZeroExit,
		check: wantOutputError("262144", "wrote 300002\n"),
	}
}

func resultNotJSON() hostileCase {
	return hostileCase{
		name:    "result-not-json",
		code:    writeResult(`r = "{'python': 'repr'}"`, 0),
		timeout: 30 * time.Second,
		typ:     schema.EventResult, status: schema.StatusSucceeded,
		check: wantOutputError("not valid JSON", "wrote 18\n"),
	}
}

// wantOutputError checks a result brig would not carry: no output, a
// reason naming the bound, the job's own stdout kept.
func wantOutputError(reason, stdout string) func(*testing.T, string, *schema.Event) {
	return func(t *testing.T, _ string, ev *schema.Event) {
		t.Helper()
		if len(ev.Output) != 0 || !strings.Contains(ev.OutputError, reason) || ev.Stdout != stdout {
			t.Errorf("output %.40q output_error %q stdout %q; want no output, a reason saying %q, stdout %q", ev.Output, ev.OutputError, ev.Stdout, reason, stdout)
		}
	}
}
