package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/brig-dev/brig/schema"
)

// canaryCode reports what a job finds of earlier jobs in its sandbox: files
// in every writable place, processes other than itself and the init, System
// V IPC objects, and the init's start time (the same in a reused sandbox).
const canaryCode = `import json, os
left = {}
for d in ["/work", "/work/out", "/tmp", "/dev/shm", "/dev/mqueue"]:
    try:
        names = sorted(os.listdir(d))
    except FileNotFoundError:
        continue
    except OSError as e:
        names = ["<%s>" % e]
    if d == "/work":
        names = [n for n in names if n not in ("main.py", "out", "args.json")]
    if names:
        left[d] = names
procs = [p for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, os.getpid())]
ipc = {}
for k in ("shm", "msg", "sem"):
    try:
        rows = open("/proc/sysvipc/" + k).read().splitlines()[1:]
    except OSError:
        rows = []
    if rows:
        ipc[k] = rows
env = sorted(k for k in os.environ if k.startswith("LEAK"))
json.dump({"left": left, "procs": procs, "ipc": ipc, "env": env,
           "init_start": open("/proc/1/stat").read().split()[21]}, open("/work/out/result.json", "w"))
print("clean")
`

// canary is what canaryCode reports.
type canary struct {
	Left      map[string][]string `json:"left"`
	Procs     []string            `json:"procs"`
	IPC       map[string][]string `json:"ipc"`
	Env       []string            `json:"env"`
	InitStart string              `json:"init_start"`
}

func (c *canary) clean() bool {
	return len(c.Left) == 0 && len(c.Procs) == 0 && len(c.IPC) == 0 && len(c.Env) == 0
}

// dirtyCode leaves everything it can for the next job of its sandbox: files
// in every writable place (one in a folder it locked), a System V shared
// memory segment and message queue, a POSIX message queue, a daemon that
// keeps writing, and its token on stdout.
const dirtyCode = `import ctypes, os, sys, time
for p in ["/work/leak", "/tmp/leak", "/dev/shm/leak", "/work/out/leak"]:
    open(p, "w").write("secret")
os.makedirs("/work/locked/deeper")
open("/work/locked/deeper/leak", "w").write("secret")
os.chmod("/work/locked/deeper", 0)
os.chmod("/work/locked", 0o500)
libc = ctypes.CDLL(None, use_errno=True)
assert libc.shmget(0, 4096, 0o1600) >= 0, "shmget"
assert libc.msgget(0, 0o1600) >= 0, "msgget"
try:
    rt = ctypes.CDLL("librt.so.1", use_errno=True)
    rt.mq_open(b"/leak", os.O_CREAT | os.O_RDWR, 0o600, None)
except OSError:
    pass
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.environ["LEAK"] = "1"
        while True:
            try:
                open("/tmp/late", "w").write("secret")
            except OSError:
                pass
            time.sleep(0.05)
    os._exit(0)
time.sleep(0.3)
print(os.environ["BRIG_TOKEN"])
`

// TestReuseModeWipesBetweenJobs: jobs of a function with single_use false
// share a container, one at a time, and each finds nothing of the one
// before: no file, process, IPC object or credential. A job that times out
// takes its container with it; one that merely fails does not.
func TestReuseModeWipesBetweenJobs(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	fn := schema.Python()
	fn.Name = newID("reuse")
	fn.SingleUse = schema.Ptr(false)
	deploy(ctx, t, fn)
	job := func(prefix, code string) schema.Job {
		j := pythonJob(prefix, code)
		j.Function = fn.Name
		return j
	}
	runCanary := func(prefix string, edit func(*schema.Job)) (*canary, schema.Event) {
		t.Helper()
		j := job(prefix, canaryCode)
		if edit != nil {
			edit(&j)
		}
		ev, err := runJob(t, j)
		if err != nil && !strings.Contains(ev.Stdout, "clean") {
			t.Fatalf("canary %s: %v (%s)", prefix, err, brief(ev))
		}
		var c canary
		probeOutput(t, ev, &c)
		return &c, startedOn(t, brig, j.ID)
	}

	first, firstStart := runCanary("reuse-first", nil)
	if !first.clean() || firstStart.Sandbox != schema.SandboxCold {
		t.Errorf("first job: sandbox %q, found %+v", firstStart.Sandbox, first)
	}

	dirty := job("reuse-dirty", dirtyCode)
	dirty.Restricted = schema.Ptr(false)
	dirty.Scopes = []string{"dict:" + fn.Name + ":read"}
	dev, err := runJob(t, dirty)
	if err != nil {
		t.Fatalf("dirty job: %v (%s)", err, brief(dev))
	}
	dirtyStart := startedOn(t, brig, dirty.ID)
	leakedToken := strings.TrimSpace(dev.Stdout)

	// The next job of the function: same container, nothing left, and the
	// dirty job's token, handed over, speaks for no one.
	next := job("reuse-next", canaryCode+`
import brig
os.environ["BRIG_TOKEN"] = os.environ["OLD_TOKEN"]
try:
    brig.Dict("`+fn.Name+`").get("k")
    print("leaked token accepted")
except brig.AuthError as e:
    print("denied:", e)
`)
	next.Env = map[string]string{"OLD_TOKEN": leakedToken}
	nev, err := runJob(t, next)
	if err != nil {
		t.Fatalf("next job: %v (%s)", err, brief(nev))
	}
	var got canary
	probeOutput(t, nev, &got)
	nextStart := startedOn(t, brig, next.ID)
	if nextStart.Container != dirtyStart.Container || nextStart.Sandbox != schema.SandboxReused || got.InitStart != first.InitStart {
		t.Errorf("not reused: dirty job in %.12s, next in %.12s (%s); init start %s then %s",
			dirtyStart.Container, nextStart.Container, nextStart.Sandbox, first.InitStart, got.InitStart)
	}
	if !got.clean() {
		t.Errorf("the next job found what the dirty one left: %+v", got)
	}
	if !strings.Contains(nev.Stdout, "denied:") || !strings.Contains(nev.Stdout, "another job") || len(nev.AuthErrors) != 1 {
		t.Errorf("the dirty job's token in the next job: stdout %q, auth errors %+v", nev.Stdout, nev.AuthErrors)
	}

	// A failed job keeps the container (the wipe is the same) ...
	failed := job("reuse-failed", "import sys; sys.exit(3)")
	if ev, _ := runJob(t, failed); ev.Status != schema.StatusFailed || ev.ExitCode != 3 {
		t.Errorf("failing job: %s", brief(ev))
	}
	if s := startedOn(t, brig, failed.ID); s.Container != dirtyStart.Container {
		t.Errorf("a job after a plain failure got container %.12s, want the reused %.12s", s.Container, dirtyStart.Container)
	}
	// ... a timed-out one does not: it is killed and removed.
	slow := job("reuse-timeout", "import time; time.sleep(30)")
	slow.TimeoutMS = 1000
	sev, _ := runJob(t, slow)
	wantStatus(t, sev, schema.EventTimeout, schema.StatusTimeout, schema.ErrTimeout)
	slowStart := startedOn(t, brig, slow.ID)
	after, afterStart := runCanary("reuse-after-timeout", nil)
	if afterStart.Container == slowStart.Container || afterStart.Sandbox != schema.SandboxCold || !after.clean() {
		t.Errorf("after a timeout: container %.12s (%s), timed-out one %.12s, found %+v",
			afterStart.Container, afterStart.Sandbox, slowStart.Container, after)
	}
	eventually(t, pollBudget, func(ctx context.Context) (bool, string) {
		_, err := docker.ContainerInspect(ctx, slowStart.Container)
		return err != nil, "the timed-out job's reused container still exists"
	})

	// Another function never gets this function's container.
	other, otherStart := runCanary("reuse-other-fn", func(j *schema.Job) { j.Function = "python"; j.SingleUse = schema.Ptr(false) })
	if otherStart.Container == afterStart.Container || !other.clean() {
		t.Errorf("python job with single_use false ran in %s's container %.12s", fn.Name, otherStart.Container)
	}
}

// TestReuseRefusedUnderGVisor: gVisor lets a job read its init's memory, so
// reuse there is refused with an error naming the field.
func TestReuseRefusedUnderGVisor(t *testing.T) {
	t.Parallel()
	j := pythonJob("reuse-runsc", `print("hello")`)
	j.SingleUse, j.Runtime = schema.Ptr(false), schema.RuntimeRunsc
	ev, err := runJob(t, j)
	wantStatus(t, ev, schema.EventError, schema.StatusRejected, schema.ErrInvalidJob)
	wantStatusErr(t, ev, err)
	if !strings.Contains(errMessage(ev), "single_use") {
		t.Errorf("rejection %q does not name single_use", errMessage(ev))
	}
}

// TestEchoRunsNoContainer: the built-in echo function is queue-only.
func TestEchoRunsNoContainer(t *testing.T) {
	t.Parallel()
	j := schema.Job{ID: newID("echo"), Function: "echo", Stdin: "héllo", Args: json.RawMessage(`{"a": [1, 2]}`)}
	ev, err := runJob(t, j)
	if err != nil || ev.Status != schema.StatusSucceeded || ev.Stdout != "héllo" || !jsonEqual(t, ev.Output, []byte(`{"a":[1,2]}`)) {
		t.Fatalf("echo: %v %s output %s", err, brief(ev), ev.Output)
	}
	for _, e := range events(t, j.ID) {
		if e.Type == schema.EventStarted {
			t.Errorf("echo job started a container: %+v", e)
		}
	}
	if left := containersOf(t, keyOf(j.ID)); len(left) > 0 {
		t.Errorf("echo job has containers: %s", names(left))
	}
	// Its stdout is capped like any job's, on a character boundary.
	big := schema.Job{ID: newID("echo-big"), Function: "echo", Stdin: strings.Repeat("é", 600), Limits: &schema.Limits{OutputBytes: 1001}}
	ev, err = runJob(t, big)
	if err != nil || !ev.StdoutTruncated || ev.Stdout != strings.Repeat("é", 500) {
		t.Errorf("big echo: %v truncated %v, %d bytes", err, ev.StdoutTruncated, len(ev.Stdout))
	}
}
