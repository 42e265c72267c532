package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// The hostile-code suite: code that tries to exhaust, escape or spy on its
// sandbox, run on both runtimes. For every case brig must end the job with
// the right terminal event, in bounded time, leave no container behind and
// keep running jobs afterwards (docs/design.md §5).

// hostileInFlight bounds this file's jobs in flight: the shared worker has
// four slots, and one is left for the rest of the suite.
const hostileInFlight = 3

// hostileCase is one piece of hostile code and what brig must make of it.
type hostileCase struct {
	name    string
	code    string
	timeout time.Duration
	limits  *schema.Limits
	// args, when set, become the job's args.json.
	args func(t *testing.T) any
	// The terminal event's type, status and error type, and a fragment of
	// its error message (when it has an error); with no typ, check alone
	// judges the outcome.
	typ     schema.EventType
	status  schema.Status
	errType schema.ErrorType
	msg     string
	// check inspects the terminal event further, and what the job reported
	// about itself in it.
	check func(t *testing.T, rt string, ev *schema.Event)
	// runsc, when set, replaces typ, status, errType and msg under gVisor,
	// where the sandbox itself behaves differently (see the case).
	runsc *runscOutcome
}

// runscOutcome is a hostile case's terminal event under gVisor: its type,
// status, error type and a fragment of its error message.
type runscOutcome struct {
	typ     schema.EventType
	status  schema.Status
	errType schema.ErrorType
	msg     string
}

// hostileMode is how a case runs: on a runtime, single-use (prewarmed or
// cold, as the shared worker has it) or in reuse mode.
type hostileMode struct {
	name, runtime string
	reuse         bool
}

func TestHostile(t *testing.T) {
	t.Parallel()
	slots := make(chan struct{}, hostileInFlight)
	for _, m := range []hostileMode{
		{schema.RuntimeRunc, schema.RuntimeRunc, false},
		{schema.RuntimeRunsc, schema.RuntimeRunsc, false},
		{"runc-reuse", schema.RuntimeRunc, true},
	} {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			requireRuntime(t, m.runtime)
			for _, c := range hostileCases() {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					runHostile(t, m, c, slots)
				})
			}
		})
	}
}

// requireRuntime fails (in CI) or skips (elsewhere) when the Docker daemon
// lacks rt; .ci/run registers runsc.
func requireRuntime(t *testing.T, rt string) {
	t.Helper()
	if rt == schema.RuntimeRunc {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), pollBudget)
	defer cancel()
	info, err := docker.Info(ctx)
	if err != nil {
		t.Fatalf("docker info: %v", err)
	}
	if _, ok := info.Runtimes[rt]; ok {
		return
	}
	have := slices.Sorted(maps.Keys(info.Runtimes))
	if os.Getenv("CI") != "" {
		t.Fatalf("the Docker daemon has no %s runtime (it has %v); .ci/run registers it", rt, have)
	}
	t.Skipf("the Docker daemon has no %s runtime (it has %v); run .ci/run once to register it", rt, have)
}

// runHostile runs one case in mode m, then a canary of the same template:
// it must succeed and, in reuse mode where it may run in the hostile job's
// container, find nothing the case left. Single-use containers of both
// jobs must be gone afterwards.
func runHostile(t *testing.T, m hostileMode, c hostileCase, slots chan struct{}) {
	rt := m.runtime
	job := pythonJob("hostile-"+c.name, c.code)
	job.Runtime = rt
	job.TimeoutMS = c.timeout.Milliseconds()
	job.Limits = c.limits
	if c.args != nil {
		args, err := json.Marshal(c.args(t))
		if err != nil {
			t.Fatalf("args: %v", err)
		}
		job.Args = args
	}
	after := pythonJob("hostile-after-"+c.name, canaryCode)
	after.Runtime, after.Limits = rt, c.limits
	if m.reuse {
		job.SingleUse, after.SingleUse = schema.Ptr(false), schema.Ptr(false)
	}

	var ev, aev *schema.Event
	var err, afterErr error
	func() {
		slots <- struct{}{}
		defer func() { <-slots }() // also when runJob gives up on the test
		ev, err = runJob(t, job)
		aev, afterErr = runJob(t, after)
	}()

	t.Logf("%s on %s: %s; %d events stored", c.name, m.name, brief(ev), countStored(t, schema.EventsFilter(keyOf(job.ID))))
	typ, status, errType, msg := c.typ, c.status, c.errType, c.msg
	if rt == schema.RuntimeRunsc && c.runsc != nil {
		typ, status, errType, msg = c.runsc.typ, c.runsc.status, c.runsc.errType, c.runsc.msg
	}
	if typ != "" { // else the case's check judges the outcome alone
		wantStatus(t, ev, typ, status, errType)
	}
	wantStatusErr(t, ev, err)
	if msg != "" && (ev.Error == nil || !strings.Contains(ev.Error.Message, msg)) {
		t.Errorf("error message %q does not say %q", errMessage(ev), msg)
	}
	if c.check != nil {
		c.check(t, rt, ev)
	}
	if afterErr != nil || aev.Status != schema.StatusSucceeded || aev.Stdout != "clean\n" {
		t.Fatalf("canary after the case: err=%v event %s", afterErr, brief(aev))
	}
	var found canary
	probeOutput(t, aev, &found)
	if !found.clean() {
		t.Errorf("the job after the case found what it left: %+v", found)
	}
	ids := []string{job.ID, after.ID}
	if m.reuse {
		ids = ids[:0] // reused containers stay; the worker's stop removes them
		if ev.Status == schema.StatusTimeout || ev.Status == schema.StatusOOM {
			ids = append(ids, job.ID) // such a job takes its container with it
		}
	}
	for _, id := range ids {
		eventually(t, pollBudget, func(context.Context) (bool, string) {
			left := containersOf(t, keyOf(id))
			return len(left) == 0, "containers of job " + id + " still exist: " + names(left)
		})
	}
}

// wantStatusErr checks that the SDK's error agrees with the status.
func wantStatusErr(t *testing.T, ev *schema.Event, err error) {
	t.Helper()
	sentinel := map[schema.Status]error{
		schema.StatusFailed:  sdk.ErrFailed,
		schema.StatusTimeout: sdk.ErrTimeout,
		schema.StatusOOM:     sdk.ErrOOM,
		schema.StatusError:   sdk.ErrInfrastructure,
	}[ev.Status]
	switch {
	case ev.Status == schema.StatusSucceeded && err != nil:
		t.Errorf("job succeeded but the SDK returned %v", err)
	case sentinel != nil:
		wantIs(t, err, sentinel)
	}
}

func errMessage(ev *schema.Event) string {
	if ev.Error == nil {
		return ""
	}
	return ev.Error.Message
}

// probeOutput decodes the JSON a job wrote to result.json.
func probeOutput(t *testing.T, ev *schema.Event, v any) {
	t.Helper()
	if err := json.Unmarshal(ev.Output, v); err != nil {
		t.Fatalf("probe output %q: %v (stderr %q)", ev.Output, err, clip(ev.Stderr))
	}
}

// wantDenied checks that every attempt in got ended in one of the errno
// names of want, never "ok".
func wantDenied(t *testing.T, what string, got map[string]string, want ...string) {
	t.Helper()
	if len(got) == 0 {
		t.Errorf("%s: nothing was attempted", what)
	}
	for k, v := range got {
		if !slices.Contains(want, v) {
			t.Errorf("%s %s: %s, want one of %v", what, k, v, want)
		}
	}
}

func hostileCases() []hostileCase {
	return append([]hostileCase{
		forkBomb(),
		memoryHog(),
		cpuSpin(),
		sigtermIgnorers(false),
		sigtermIgnorers(true),
		outputFlood(),
		diskFiller(),
		rootfsWrites(),
		networkEgress(),
		procSecrets(),
		dockerSocket(),
		privileges(),
		killInit(),
		forgeFrames(),
		closedStdout(),
	}, brigAttackCases()...)
}

// forkBomb: every process forks for ever. The pids limit refuses a fork
// soon; the main process dies of the BlockingIOError it raises, and the
// init ends whatever it left.
func forkBomb() hostileCase {
	const timeout = 20 * time.Second
	return hostileCase{
		name: "fork-bomb",
		// Every process forks for ever; one refused fork ends the main
		// one, while the others hold on to their slot (a process that
		// exited would free one and keep the race going).
		code: `
import os, time
main = os.getpid()
while True:
    try:
        os.fork()
    except BlockingIOError:
        if os.getpid() == main:
            raise
        time.sleep(60)
`,
		timeout: timeout,
		// Enough memory for 64 pythons: the pids limit, not memory, must stop it.
		limits: &schema.Limits{Pids: 64, MemoryMB: 1024},
		typ:    schema.EventResult, status: schema.StatusFailed, errType: schema.ErrNonZeroExit,
		msg: "exited with code 1",
		check: func(t *testing.T, _ string, ev *schema.Event) {
			if ev.ExitCode != 1 || !strings.Contains(ev.Stderr, "BlockingIOError") {
				t.Errorf("exit_code=%d, stderr %q; want 1 and the BlockingIOError of a refused fork", ev.ExitCode, clip(ev.Stderr))
			}
			if ev.DurationMS >= timeout.Milliseconds() {
				t.Errorf("duration_ms = %d, want the pids limit to end it before its %s timeout", ev.DurationMS, timeout)
			}
		},
	}
}

func memoryHog() hostileCase {
	return hostileCase{
		name: "memory-hog",
		code: `
chunks = []
while True:
    chunks.append(bytearray(b"x") * (1 << 20))  # filled, so the pages are really used
`,
		timeout: 20 * time.Second,
		limits:  &schema.Limits{MemoryMB: 64},
		typ:     schema.EventResult, status: schema.StatusOOM, errType: schema.ErrOOM,
		msg: "out of memory",
		// Under gVisor the kernel's OOM killer may kill the whole sandbox
		// (its Sentry) rather than the job's process, and Docker does not
		// always learn that it was an OOM kill: the job then ends failed,
		// its init killed with SIGKILL (137), and the message says it may
		// have run out of memory. Either way it is the job's failure, never
		// brig's (docs/design.md §5).
		runsc: &runscOutcome{},
		check: func(t *testing.T, rt string, ev *schema.Event) {
			if rt != schema.RuntimeRunsc || ev.Status == schema.StatusOOM {
				return
			}
			if ev.Status != schema.StatusFailed || ev.Error == nil || ev.Error.Type != schema.ErrNonZeroExit ||
				ev.ExitCode != 137 || !strings.Contains(ev.Error.Message, "out of memory") {
				t.Errorf("memory-hog on runsc: %s; want oom, or failed NonZeroExit with exit code 137 saying it may have run out of memory", brief(ev))
			}
		},
	}
}

func cpuSpin() hostileCase {
	const timeout = 2 * time.Second
	return hostileCase{
		name:    "cpu-spin",
		code:    "while True:\n    pass\n",
		timeout: timeout,
		typ:     schema.EventTimeout, status: schema.StatusTimeout, errType: schema.ErrTimeout,
		msg:   "exceeded its timeout",
		check: wantDurationNear(timeout),
	}
}

// wantDurationNear wants a timed-out job's duration to be its timeout,
// give or take the kill and a loaded machine.
func wantDurationNear(timeout time.Duration) func(*testing.T, string, *schema.Event) {
	return func(t *testing.T, _ string, ev *schema.Event) {
		t.Helper()
		if ev.DurationMS < timeout.Milliseconds() || ev.DurationMS > (timeout+5*time.Second).Milliseconds() {
			t.Errorf("duration_ms = %d, want the %s timeout (+5 s at most)", ev.DurationMS, timeout)
		}
	}
}

// sigtermIgnorersCode ignores the polite signals, forks children and
// grandchildren in sessions of their own that ignore them too and tick on
// stdout, then exits 0, or spins when args.json says so.
const sigtermIgnorersCode = `
import json, os, signal, sys, time
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(sig, signal.SIG_IGN)

def tick(tag):
    os.setsid()
    n = 0
    while True:
        os.write(1, b"tick %s %d\n" % (tag, n))
        n += 1
        time.sleep(0.05)

for _ in range(3):
    if os.fork() == 0:
        if os.fork() == 0:
            tick(b"grandchild")
        tick(b"child")
time.sleep(0.5)
if json.load(open("/work/args.json"))["spin"]:
    while True:
        pass
os.write(1, b"main exits\n")
`

func sigtermIgnorers(spin bool) hostileCase {
	c := hostileCase{
		code: sigtermIgnorersCode,
		args: func(*testing.T) any { return map[string]bool{"spin": spin} },
	}
	if spin {
		const timeout = 3 * time.Second
		c.name, c.timeout = "sigterm-ignorers-spin", timeout
		c.typ, c.status, c.errType, c.msg = schema.EventTimeout, schema.StatusTimeout, schema.ErrTimeout, "exceeded its timeout"
		c.check = wantDurationNear(timeout)
		return c
	}
	c.name, c.timeout = "sigterm-ignorers-exit", 20*time.Second
	c.typ, c.status = schema.EventResult, schema.StatusSucceeded
	c.check = func(t *testing.T, _ string, ev *schema.Event) {
		before, after, ok := strings.Cut(ev.Stdout, "main exits\n")
		if !ok {
			t.Fatalf("stdout %q lacks the main process's last word", clip(ev.Stdout))
		}
		// Six tickers at 20 Hz: had they outlived the main process by the
		// init's drain grace (2 s), 240 ticks would follow. A loaded 2-core
		// box was seen to take up to 250 ms (31 ticks) to end them.
		ticksBefore, ticksAfter := strings.Count(before, "tick "), strings.Count(after, "tick ")
		if ticksBefore < 6 || ticksAfter > 60 {
			t.Errorf("%d ticks before the main process exited, %d after; want at least 6 before and next to none after", ticksBefore, ticksAfter)
		}
	}
	return c
}

func outputFlood() hostileCase {
	const limit = 65536
	return hostileCase{
		name: "output-flood",
		code: `
import sys
chunk = "x" * (1 << 20)
for _ in range(16):
    sys.stdout.write(chunk)
    sys.stderr.write(chunk)
sys.stdout.flush()
sys.stderr.flush()
`,
		timeout: 20 * time.Second,
		limits:  &schema.Limits{OutputBytes: limit},
		typ:     schema.EventResult, status: schema.StatusSucceeded,
		check: func(t *testing.T, _ string, ev *schema.Event) {
			if !ev.StdoutTruncated || len(ev.Stdout) != limit || !ev.StderrTruncated || len(ev.Stderr) != limit {
				t.Errorf("stdout truncated=%v len=%d, stderr truncated=%v len=%d; want both truncated at %d",
					ev.StdoutTruncated, len(ev.Stdout), ev.StderrTruncated, len(ev.Stderr), limit)
			}
		},
	}
}

// diskFillerCode writes into /tmp and /work until a write fails, and
// reports how far it got and why it stopped. It gives up, with no error to
// report, well past the tmpfs size that should have stopped it.
const diskFillerCode = `
import errno, json, os
report = {}
chunk = b"x" * (1 << 20)
for d in ("/tmp", "/work"):
    path = os.path.join(d, "filler")
    written, err = 0, None
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while written < 160 << 20:
            written += os.write(fd, chunk)
    except OSError as e:
        err = errno.errorcode.get(e.errno, str(e.errno))
    os.close(fd)
    os.remove(path)
    report[d] = {"written": written, "errno": err}
with open("/work/out/result.json", "w") as f:
    json.dump(report, f)
`

func diskFiller() hostileCase {
	const tmpfsBytes = 64 << 20 // worker/sandbox.go: size=64m, fsize 64 MiB
	return hostileCase{
		name:    "disk-filler",
		code:    diskFillerCode,
		timeout: 20 * time.Second,
		typ:     schema.EventResult, status: schema.StatusSucceeded,
		check: func(t *testing.T, _ string, ev *schema.Event) {
			var got map[string]struct {
				Written int64  `json:"written"`
				Errno   string `json:"errno"`
			}
			probeOutput(t, ev, &got)
			for _, d := range []string{"/tmp", "/work"} {
				r, ok := got[d]
				if !ok || (r.Errno != "ENOSPC" && r.Errno != "EFBIG") || r.Written <= 0 || r.Written > tmpfsBytes {
					t.Errorf("filling %s: wrote %d bytes, stopped by %q; want ENOSPC or EFBIG within %d bytes", d, r.Written, r.Errno, tmpfsBytes)
				}
			}
		},
	}
}

// attemptsCode defines attempt(kind, name, fn): it runs fn and records
// "ok", or the errno name of the OSError it raised, in report[kind][name];
// save() writes the report as result.json.
const attemptsCode = `
import errno, json, os
report = {}
def attempt(kind, name, fn):
    try:
        fn()
        report.setdefault(kind, {})[name] = "ok"
    except OSError as e:
        report.setdefault(kind, {})[name] = errno.errorcode.get(e.errno, str(e.errno))
def create(path):
    return lambda: open(path, "w").close()
def open_for_write(path):
    return lambda: os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
def save():
    with open("/work/out/result.json", "w") as f:
        json.dump(report, f)
`

func rootfsWrites() hostileCase {
	return hostileCase{
		name: "rootfs-writes",
		code: attemptsCode + `
for p in ("/x", "/etc/x", "/usr/bin/x", "/run/brig/x", "/run/brig/python/x"):
    attempt("writes", "create " + p, create(p))
# Opened for writing, never written: every container shares the init.
for p in ("/run/brig/init", "/etc/passwd", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/usr/bin/python3"):
    if os.path.exists(p):
        attempt("writes", "open " + p, open_for_write(p))
attempt("writes", "mkdir /newdir", lambda: os.mkdir("/newdir"))
save()
`,
		timeout: 20 * time.Second,
		typ:     schema.EventResult, status: schema.StatusSucceeded,
		check: func(t *testing.T, _ string, ev *schema.Event) {
			var got map[string]map[string]string
			probeOutput(t, ev, &got)
			wantDenied(t, "root filesystem", got["writes"], "EROFS", "EACCES", "EPERM")
		},
	}
}

// networkEgressCode dials every TCP target of args.json, sends UDP to
// every UDP target, resolves a name, and lists its interfaces. One at a
// time: without a network every attempt fails at once.
const networkEgressCode = `
import errno, json, socket
args = json.load(open("/work/args.json"))
report = {"tcp": {}, "udp": {}}
def outcome(e):
    if isinstance(e, socket.timeout):
        return "timeout"
    if isinstance(e, socket.gaierror):
        return "gaierror"
    return errno.errorcode.get(e.errno, str(e))
for kind, h, p in [("tcp", h, p) for h, p in args["tcp"]] + [("udp", h, p) for h, p in args["udp"]]:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
    s.settimeout(1)
    try:
        if kind == "tcp":
            s.connect((h, p))
            report[kind]["%s:%d" % (h, p)] = "connected"
        else:
            s.sendto(b"x", (h, p))
            report[kind]["%s:%d" % (h, p)] = "sent"
    except OSError as e:
        report[kind]["%s:%d" % (h, p)] = outcome(e)
    finally:
        s.close()
try:
    socket.getaddrinfo("example.com", 443)
    report["dns"] = "resolved"
except OSError as e:
    report["dns"] = outcome(e)
lines = open("/proc/net/dev").read().splitlines()[2:]
report["interfaces"] = sorted(l.split(":")[0].strip() for l in lines if l.strip())
with open("/work/out/result.json", "w") as f:
    json.dump(report, f)
`

func networkEgress() hostileCase {
	var accepted chan string // the host's listener
	var tcpTargets, udpTargets int
	return hostileCase{
		name: "network-egress",
		code: networkEgressCode,
		args: func(t *testing.T) any {
			var port int
			accepted, port = listenHost(t)
			tcp := append([][2]any{{"1.1.1.1", 443}, {"1.1.1.1", 53}}, natsTargets(t)...)
			var udp [][2]any
			for _, nt := range natsTargets(t) {
				if nt[0] != "127.0.0.1" { // a job's loopback is its own
					tcp = append(tcp, [2]any{nt[0], port})
					udp = append(udp, [2]any{nt[0], 53})
				}
			}
			udp = append(udp, [2]any{"1.1.1.1", 53})
			tcpTargets, udpTargets = len(tcp), len(udp)
			return map[string]any{"tcp": tcp, "udp": udp}
		},
		timeout: 20 * time.Second,
		typ:     schema.EventResult, status: schema.StatusSucceeded,
		check: func(t *testing.T, _ string, ev *schema.Event) {
			var got struct {
				TCP        map[string]string `json:"tcp"`
				UDP        map[string]string `json:"udp"`
				DNS        string            `json:"dns"`
				Interfaces []string          `json:"interfaces"`
			}
			probeOutput(t, ev, &got)
			if len(got.TCP) != tcpTargets || len(got.UDP) != udpTargets {
				t.Errorf("probed %d TCP and %d UDP targets, want %d and %d", len(got.TCP), len(got.UDP), tcpTargets, udpTargets)
			}
			for what, m := range map[string]map[string]string{"tcp connect": got.TCP, "udp send": got.UDP} {
				for target, res := range m {
					if res == "connected" || res == "sent" {
						t.Errorf("%s to %s: %s", what, target, res)
					}
				}
			}
			if got.DNS == "resolved" {
				t.Errorf("the job resolved a name")
			}
			if strings.Join(got.Interfaces, ",") != "lo" {
				t.Errorf("network interfaces = %v, want only lo", got.Interfaces)
			}
			select {
			case from := <-accepted:
				t.Errorf("the host accepted a connection from the job (%s)", from)
			default:
			}
		},
	}
}

// listenHost listens on a free port on every address of the host and
// reports who connects.
func listenHost(t *testing.T) (accepted chan string, port int) {
	t.Helper()
	ln, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted = make(chan string, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case accepted <- c.RemoteAddr().String():
			default:
			}
			c.Close()
		}
	}()
	return accepted, ln.Addr().(*net.TCPAddr).Port
}

// procSecretsCode reads what /proc shows of every process it can see, and
// tries to write the kernel's knobs.
const procSecretsCode = attemptsCode + `
texts = {}
def read(path, limit=1 << 16):
    def fn():
        with open(path, "rb") as f:
            texts[path] = f.read(limit).decode("latin-1")
    attempt("reads", path, fn)
for p in ("/proc/1/environ", "/proc/1/cmdline", "/proc/self/environ", "/proc/self/mountinfo", "/proc/1/mountinfo"):
    read(p)
read("/proc/kcore", 4096)
for pid in os.listdir("/proc"):
    if pid.isdigit():
        read("/proc/%s/environ" % pid)
        read("/proc/%s/cmdline" % pid)
def write(path, data):
    def fn():
        with open(path, "w") as f:
            f.write(data)
    return fn
# The init's streams carry brig's frames: opening one would let the job
# forge them. Opened, never used.
for fd in (0, 1, 2):
    attempt("denied", "/proc/1/fd/%d" % fd, open_for_write("/proc/1/fd/%d" % fd))
attempt("denied", "/proc/1/mem", lambda: os.close(os.open("/proc/1/mem", os.O_RDONLY)))
attempt("denied", "/proc/sys/kernel/core_pattern", write("/proc/sys/kernel/core_pattern", "|/tmp/x"))
attempt("denied", "/proc/sysrq-trigger", write("/proc/sysrq-trigger", "h"))
attempt("denied", "/proc/sys/vm/drop_caches", write("/proc/sys/vm/drop_caches", "3"))
report["texts"] = texts
save()
`

// brigVar matches brig's environment variable names.
var brigVar = regexp.MustCompile(`BRIG_[A-Za-z0-9_]*`)

func procSecrets() hostileCase {
	return hostileCase{
		name:    "proc-secrets",
		code:    procSecretsCode,
		timeout: 20 * time.Second,
		typ:     schema.EventResult, status: schema.StatusSucceeded,
		check: func(t *testing.T, rt string, ev *schema.Event) {
			var got struct {
				Reads  map[string]string `json:"reads"`
				Denied map[string]string `json:"denied"`
				Texts  map[string]string `json:"texts"`
			}
			probeOutput(t, ev, &got)
			t.Logf("reads: %v; denied: %v", got.Reads, got.Denied)
			if got.Reads["/proc/self/environ"] != "ok" || got.Reads["/proc/self/mountinfo"] != "ok" {
				t.Errorf("the probe could not read its own environ and mountinfo: %v", got.Reads)
			}
			secrets := []string{stack.URL(), stack.HostPort(), "nats://"}
			for path, text := range got.Texts {
				for _, s := range secrets {
					if strings.Contains(text, s) {
						t.Errorf("%s holds %q", path, s)
					}
				}
				for _, v := range brigVar.FindAllString(text, -1) {
					if v != "BRIG_TOKEN" && v != "BRIG_GATEWAY" && v != "BRIG_JOB_ID" {
						t.Errorf("%s holds %s", path, v)
					}
				}
			}
			if kcore := got.Texts["/proc/kcore"]; kcore != "" {
				t.Errorf("/proc/kcore gave %d bytes of the host's memory", len(kcore))
			}
			if rt == schema.RuntimeRunsc {
				// gVisor lets the job open the init's descriptors (it ignores
				// PR_SET_DUMPABLE); what it writes there fails the frames'
				// authentication, which forge-frames checks.
				for fd := range 3 {
					delete(got.Denied, fmt.Sprintf("/proc/1/fd/%d", fd))
				}
			}
			wantDenied(t, "opening or writing", got.Denied, "EROFS", "EACCES", "EPERM", "ENOENT")
		},
	}
}

// dockerSocketCode walks the whole filesystem but /proc and /sys for unix
// sockets, and checks the daemons' usual socket paths.
const dockerSocketCode = `
import json, os, stat
found = []
for root, dirs, files in os.walk("/"):
    if root == "/":
        dirs[:] = [d for d in dirs if d not in ("proc", "sys")]
    for name in files + dirs:
        p = os.path.join(root, name)
        try:
            if stat.S_ISSOCK(os.lstat(p).st_mode):
                found.append(p)
        except OSError:
            pass
usual = ["/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock",
         "/var/run/containerd/containerd.sock", "/run/docker/containerd/containerd.sock"]
unix = open("/proc/net/unix").read().splitlines()[1:]
with open("/work/out/result.json", "w") as f:
    json.dump({"sockets": sorted(found), "usual": [p for p in usual if os.path.lexists(p)],
               "proc_net_unix": unix}, f)
`

func dockerSocket() hostileCase {
	return hostileCase{
		name:    "docker-socket",
		code:    dockerSocketCode,
		timeout: 20 * time.Second,
		typ:     schema.EventResult, status: schema.StatusSucceeded,
		check: func(t *testing.T, _ string, ev *schema.Event) {
			var got struct {
				Sockets     []string `json:"sockets"`
				Usual       []string `json:"usual"`
				ProcNetUnix []string `json:"proc_net_unix"`
			}
			probeOutput(t, ev, &got)
			if !slices.Equal(got.Sockets, []string{"/run/brig/gateway.sock"}) || len(got.Usual) > 0 {
				t.Errorf("unix sockets in the sandbox: %v (usual daemon paths present: %v); want only /run/brig/gateway.sock", got.Sockets, got.Usual)
			}
			for _, l := range got.ProcNetUnix {
				if strings.Contains(l, "docker") || strings.Contains(l, "containerd") {
					t.Errorf("/proc/net/unix shows a daemon's socket: %s", l)
				}
			}
		},
	}
}

// privilegesCode reports its ids, capabilities and seccomp mode, finds the
// setuid and setgid binaries, runs su and mount, and tries the syscalls
// that need privileges, each in a child so that one that succeeds cannot
// change what the next one sees.
const privilegesCode = attemptsCode + `
import ctypes, shutil, stat, subprocess
report["ids"] = [os.getuid(), os.geteuid(), os.getgid(), os.getegid()]
report["groups"] = os.getgroups()
status = {}
for line in open("/proc/self/status"):
    key, _, value = line.partition(":")
    status[key] = value.strip()
report["status"] = {k: status[k] for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp") if k in status}
libc = ctypes.CDLL(None, use_errno=True)
PR_GET_NO_NEW_PRIVS = 39
report["no_new_privs"] = libc.prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)

setid = set()
for top in ("/usr", "/bin", "/sbin"):
    for root, dirs, files in os.walk(top):
        for name in files:
            p = os.path.realpath(os.path.join(root, name))
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
                setid.add(p)
report["setid"] = sorted(setid)

runs = {}
os.mkdir("/tmp/m")
for argv in (["su", "root", "-c", "id -u"], ["mount", "-t", "tmpfs", "none", "/tmp/m"], ["umount", "/tmp"]):
    path = shutil.which(argv[0])
    if path:
        p = subprocess.run([path] + argv[1:], stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
        runs[argv[0]] = {"code": p.returncode, "out": (p.stdout + p.stderr).decode(errors="replace")[:300]}
report["runs"] = runs

def in_child(kind, name, fn):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        res = fn()
        err = ctypes.get_errno()
        os.write(w, b"ok" if res == 0 else errno.errorcode.get(err, str(err)).encode())
        os._exit(0)
    os.close(w)
    report.setdefault(kind, {})[name] = os.read(r, 64).decode()
    os.close(r)
    os.waitpid(pid, 0)
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWPID = 0x20000, 0x10000000, 0x40000000, 0x20000000
for name, flags in (("unshare(NEWUSER)", CLONE_NEWUSER), ("unshare(NEWNS)", CLONE_NEWNS),
                    ("unshare(NEWNET)", CLONE_NEWNET), ("unshare(NEWPID)", CLONE_NEWPID)):
    in_child("syscalls", name, lambda f=flags: libc.unshare(f))
in_child("syscalls", "mount(tmpfs)", lambda: libc.mount(b"none", b"/tmp/m", b"tmpfs", 0, None))
in_child("syscalls", "setuid(0)", lambda: libc.setuid(0))
in_child("syscalls", "chroot(/tmp)", lambda: libc.chroot(b"/tmp"))
in_child("syscalls", "ptrace(ATTACH, 1)", lambda: libc.ptrace(16, 1, None, None))
save()
`

func privileges() hostileCase {
	return hostileCase{
		name:    "privileges",
		code:    privilegesCode,
		timeout: 20 * time.Second,
		typ:     schema.EventResult, status: schema.StatusSucceeded,
		check: func(t *testing.T, rt string, ev *schema.Event) {
			var got struct {
				IDs        []int             `json:"ids"`
				NoNewPrivs int               `json:"no_new_privs"`
				Groups     []int             `json:"groups"`
				Status     map[string]string `json:"status"`
				Setid      []string          `json:"setid"`
				Runs       map[string]struct {
					Code int    `json:"code"`
					Out  string `json:"out"`
				} `json:"runs"`
				Syscalls map[string]string `json:"syscalls"`
			}
			probeOutput(t, ev, &got)
			t.Logf("setuid/setgid binaries: %v; runs: %v; syscalls: %v", got.Setid, got.Runs, got.Syscalls)
			if !slices.Equal(got.IDs, []int{65534, 65534, 65534, 65534}) || slices.ContainsFunc(got.Groups, func(g int) bool { return g != 65534 }) {
				t.Errorf("uid, euid, gid, egid = %v, groups %v; want 65534 throughout", got.IDs, got.Groups)
			}
			// gVisor's /proc/self/status has no CapAmb nor NoNewPrivs line;
			// prctl tells the latter on both runtimes.
			want := map[string]string{"CapInh": "0", "CapPrm": "0", "CapEff": "0", "CapBnd": "0", "Seccomp": "2"}
			if rt == schema.RuntimeRunc {
				want["CapAmb"], want["NoNewPrivs"] = "0", "1"
			}
			for k, v := range want {
				if have, ok := got.Status[k]; !ok || strings.TrimLeft(have, "0") != strings.TrimLeft(v, "0") {
					t.Errorf("/proc/self/status %s = %q, want %s (all: %v)", k, got.Status[k], v, got.Status)
				}
			}
			if got.NoNewPrivs != 1 {
				t.Errorf("prctl(PR_GET_NO_NEW_PRIVS) = %d, want 1", got.NoNewPrivs)
			}
			for name, r := range got.Runs {
				if r.Code == 0 {
					t.Errorf("%s succeeded: %q", name, r.Out)
				}
			}
			wantDenied(t, "syscall", got.Syscalls, "EPERM", "EACCES", "EINVAL")
		},
	}
}

// killInit sends every signal to the init. A process of the job may
// signal PID 1 only with signals the init handles; the init must ignore
// them all, outlive the job and report its exit.
func killInit() hostileCase {
	return hostileCase{
		name: "kill-init",
		code: `
import os, time
for sig in range(1, 32):
    os.kill(1, sig)
    time.sleep(0.01)
print("init survived")
`,
		timeout: 20 * time.Second,
		typ:     schema.EventResult, status: schema.StatusSucceeded,
		// gVisor delivers SIGKILL to PID 1 from inside the sandbox, which
		// Linux refuses: the job can end its own sandbox, and brig says so.
		// That is the job's doing, never brig's failure (Infrastructure).
		runsc: &runscOutcome{schema.EventResult, schema.StatusFailed, schema.ErrNonZeroExit, "init was killed"},
		check: func(t *testing.T, rt string, ev *schema.Event) {
			if rt == schema.RuntimeRunsc {
				return
			}
			if ev.Stdout != "init survived\n" {
				t.Errorf("stdout %q, want the job's last word", ev.Stdout)
			}
		},
	}
}

// forgeFrames writes brig's own frames into the init's stdout, which is
// the worker's attach stream: a forged exit frame would turn a failed job
// into a succeeded one with a result of the job's choosing. The init is
// not dumpable, so its /proc/1/fd must stay closed to the job.
func forgeFrames() hostileCase {
	return hostileCase{
		name: "forge-frames",
		code: `
import json, os, struct, sys, time
def frame(typ, payload):
    return bytes([typ]) + struct.pack(">I", len(payload)) + payload
try:
    fd = os.open("/proc/1/fd/1", os.O_WRONLY)
except OSError as e:
    sys.stderr.write("cannot open the init's stdout: %s\n" % e.strerror)
    sys.exit(3)
exit = json.dumps({"exit_code": 0, "result": {"forged": True}, "duration_ns": 1}).encode()
os.write(fd, frame(1, b"forged\n") + frame(3, exit))
time.sleep(0.5)
sys.exit(3)
`,
		timeout: 20 * time.Second,
		typ:     schema.EventResult, status: schema.StatusFailed, errType: schema.ErrNonZeroExit,
		msg: "exited with code 3",
		// Under gVisor the job can open the init's stdout; its frames fail
		// authentication and the job fails for tampering.
		runsc: &runscOutcome{schema.EventResult, schema.StatusFailed, schema.ErrNonZeroExit, "fail authentication"},
		check: func(t *testing.T, rt string, ev *schema.Event) {
			if strings.Contains(ev.Stdout, "forged") || strings.Contains(string(ev.Output), "forged") || (rt == schema.RuntimeRunc && ev.ExitCode != 3) {
				t.Errorf("exit_code=%d stdout=%q output=%s: the job forged the init's frames", ev.ExitCode, ev.Stdout, ev.Output)
			}
		},
	}
}

func closedStdout() hostileCase {
	return hostileCase{
		name: "closed-stdout",
		code: `
import os, sys, time
sys.stdout.write("before close\n")
sys.stdout.flush()
os.close(1)
time.sleep(1)
sys.stderr.write("still running\n")
`,
		timeout: 20 * time.Second,
		typ:     schema.EventResult, status: schema.StatusSucceeded,
		check: func(t *testing.T, _ string, ev *schema.Event) {
			if ev.ExitCode != 0 || ev.Stdout != "before close\n" || !strings.Contains(ev.Stderr, "still running") {
				t.Errorf("exit_code=%d stdout=%q stderr=%q; want 0, the output before the close, and the job's later stderr", ev.ExitCode, ev.Stdout, clip(ev.Stderr))
			}
		},
	}
}
