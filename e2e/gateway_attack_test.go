package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/internal/gatewayproto"
	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// Tests of issue 10's findings 5 to 8: what a job can make of its gateway
// (docs/design.md §4 and §13).

// gatewayRuntimes are the runtimes a gateway attack runs under.
var gatewayRuntimes = []string{schema.RuntimeRunc, schema.RuntimeRunsc}

// runOK runs a job that must succeed; what names it in failures.
func runOK(t *testing.T, what string, job schema.Job) *schema.Event {
	t.Helper()
	ev, err := runJob(t, job)
	if err != nil {
		t.Fatalf("%s: %v (%s)", what, err, brief(ev))
	}
	return ev
}

// TestGatewayAttackReuseInflightCalls is finding 5: in reuse mode, a job
// leaves gatewayproto.MaxConns queue.get calls in flight (100 s timeouts, each
// on its own connection) and exits. The next job in the same container
// must be served at once, and lose nothing.
func TestGatewayAttackReuseInflightCalls(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	fn := schema.Python()
	fn.Name = newID("gwa-reuse")
	fn.SingleUse = schema.Ptr(false)
	deploy(ctx, t, fn)
	q := "q" + randomHex(6)
	scopes := []string{"queue:" + q + ":get", "queue:" + q + ":put"}

	hog := scopedJob("gwa-hog", fmt.Sprintf(`import json, os, socket, threading, time
def wait(i):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(os.environ["BRIG_GATEWAY"])
    req = {"id": i, "token": os.environ["BRIG_TOKEN"], "op": "queue.get", "name": %q, "timeout_ms": 100000}
    s.sendall(json.dumps(req).encode() + b"\n")
    s.recv(1)
for i in range(%d):
    threading.Thread(target=wait, args=(i + 1,), daemon=True).start()
time.sleep(1)
print("left", %d, "gets waiting")
os._exit(0)
`, q, gatewayproto.MaxConns, gatewayproto.MaxConns), scopes...)
	hog.Function = fn.Name
	runOK(t, "hog", hog)

	next := scopedJob("gwa-next", fmt.Sprintf(`import brig, time
q = brig.Queue(%q)
t0 = time.monotonic()
for i in range(%d):
    q.put(i)
got = [q.get(timeout=5) for i in range(%d)]
print(got, round(time.monotonic() - t0, 2))
assert got == list(range(%d)), got
`, q, gatewayproto.MaxConns, gatewayproto.MaxConns, gatewayproto.MaxConns), scopes...)
	next.Function = fn.Name
	begin := time.Now()
	runOK(t, "next job in the reused container", next)
	if d := time.Since(begin); d > 30*time.Second {
		t.Errorf("the next job took %v: its calls waited for the hog's", d)
	}
	if a, b := startedOn(t, brig, hog.ID), startedOn(t, brig, next.ID); a.Container != b.Container || b.Sandbox != schema.SandboxReused {
		t.Fatalf("the next job ran in container %s (%s), not the hog's %s: the test proves nothing", b.Container, b.Sandbox, a.Container)
	}
}

// TestGatewayAttackChildIDs is finding 6: a call's answer comes only from
// the child it started; child ids are unguessable, a duplicate id is an
// error and a retried parent gets its own children.
func TestGatewayAttackChildIDs(t *testing.T) {
	t.Parallel()
	t.Run("forged child", func(t *testing.T) {
		t.Parallel()
		parent := scopedJob("gwa-forge", `import brig, json
ev = brig.call("echo", args={"real": True}, timeout=60)
json.dump({"id": ev["job_id"], "output": ev.get("output")}, open("/work/out/result.json", "w"))
`, "function:echo:call")
		// What the old scheme would have named the call's child, submitted
		// ahead with a forged answer.
		forged := schema.Job{ID: parent.ID + "-c1", Function: "echo", Args: json.RawMessage(`{"forged":true}`)}
		runOK(t, "forged job", forged)
		ev := runOK(t, "parent", parent)
		var got struct {
			ID     string          `json:"id"`
			Output json.RawMessage `json:"output"`
		}
		probeOutput(t, ev, &got)
		if !jsonEqual(t, got.Output, []byte(`{"real":true}`)) {
			t.Fatalf("the call was answered with %s, not its own child's output", got.Output)
		}
		// The call's event names its child by key, in the parent's tenant.
		rest, ok := strings.CutPrefix(got.ID, keyOf(parent.ID)+"-c")
		if !ok || len(rest) != 26 || got.ID == keyOf(forged.ID) {
			t.Fatalf("child %q: want %s-c and 26 random characters", got.ID, keyOf(parent.ID))
		}
	})

	t.Run("retried parent", func(t *testing.T) {
		t.Parallel()
		d := "d" + randomHex(6)
		parent := scopedJob("gwa-retry", fmt.Sprintf(`import brig, json, sys
d = brig.Dict(%q)
n = (d.get("n") or 0) + 1
d.put("n", n)
ev = brig.call("echo", args={"attempt": n}, timeout=60)
d.put("child%%d" %% n, ev["job_id"])
json.dump({"attempt": n, "output": ev.get("output"), "first": d.get("child1"), "second": d.get("child2")},
          open("/work/out/result.json", "w"))
sys.exit(1 if n == 1 else 0)
`, d), "function:echo:call", "dict:"+d+":read", "dict:"+d+":write")
		parent.Retries = 1
		ev := runOK(t, "parent", parent)
		var got struct {
			Attempt       int             `json:"attempt"`
			Output        json.RawMessage `json:"output"`
			First, Second string
		}
		probeOutput(t, ev, &got)
		if got.Attempt != 2 || !jsonEqual(t, got.Output, []byte(`{"attempt":2}`)) {
			t.Fatalf("second attempt: %+v (output %s): want its own child's answer {\"attempt\":2}", got, got.Output)
		}
		if got.First == "" || got.First == got.Second {
			t.Fatalf("children of the two attempts: %q and %q, want two ids", got.First, got.Second)
		}
	})

	t.Run("duplicate id", func(t *testing.T) {
		t.Parallel()
		job := schema.Job{ID: newID("gwa-dup"), Function: "echo", Args: json.RawMessage(`1`)}
		runOK(t, "first", job)
		ctx, cancel := context.WithTimeout(context.Background(), pollBudget)
		defer cancel()
		job.Args = json.RawMessage(`2`)
		ev, err := brig.RunNew(ctx, job)
		if !errors.Is(err, sdk.ErrDuplicateID) || ev != nil {
			t.Fatalf("RunNew of a used id = %+v, %v; want ErrDuplicateID and no event", ev, err)
		}
	})
}

// TestGatewayAttackChildrenCancelled is finding 7: a call that times out,
// and a parent that ends, cancel their children within seconds, queued or
// running.
func TestGatewayAttackChildrenCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	// Jobs of a pool no worker serves stay queued (NoWorkerWait, 1m).
	queued := schema.Python()
	queued.Name = newID("gwa-queued")
	queued.Pool = "nowhere" + randomHex(4)
	deploy(ctx, t, queued)
	const sleeper = `import time
time.sleep(120)
`
	for _, rt := range gatewayRuntimes {
		t.Run(rt, func(t *testing.T) {
			t.Parallel()
			requireRuntime(t, rt)
			for _, tt := range []struct {
				name, code string
				// ownTimeout: the child's own timeout (the call's, less
				// a margin, from its start) may end it first.
				ownTimeout bool
			}{
				{"call times out on a running child", fmt.Sprintf(`import brig
try:
    brig.call("python", code=%q, timeout=4)
except brig.BrigError as e:
    print(e.type)
`, sleeper), true},
				{"call times out on a queued child", fmt.Sprintf(`import brig
try:
    brig.call(%q, code="print(1)", timeout=2)
except brig.BrigError as e:
    print(e.type)
`, queued.Name), false},
				{"parent exits while its child runs", fmt.Sprintf(callAndExit, "python", sleeper, 4, 0), false},
				{"parent exits while its child is queued", fmt.Sprintf(callAndExit, queued.Name, "print(1)", 2, 3), false},
			} {
				t.Run(tt.name, func(t *testing.T) {
					t.Parallel()
					parent := scopedJob("gwa-cancel", tt.code, "function:python:call", "function:"+queued.Name+":call")
					parent.Runtime = rt
					pev, _ := runJob(t, parent)
					if pev.Status == schema.StatusError || pev.Status == schema.StatusTimeout {
						t.Fatalf("parent (in a %s sandbox): %s", startedOn(t, brig, parent.ID).Sandbox, brief(pev))
					}
					child := childOf(t, parent.ID, pev)
					cev, _ := watchResult(t, child)
					if cev.Status != schema.StatusCancelled && (!tt.ownTimeout || cev.Status != schema.StatusTimeout) {
						t.Fatalf("child %s of %s ended %s, want cancelled", child, brief(pev), brief(cev))
					}
					if lag := cev.Time.Sub(pev.Time); lag > 15*time.Second {
						t.Errorf("child ended %v after its parent", lag)
					}
				})
			}
		})
	}
}

// callAndExit calls a function (name, code) and exits (after seconds, with
// a status) without waiting for the answer. It speaks to the gateway by
// hand: a thread would do, but gVisor refuses the job's threads at times.
const callAndExit = `import json, os, socket, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(os.environ["BRIG_GATEWAY"])
req = {"id": 1, "token": os.environ["BRIG_TOKEN"], "op": "function.call", "name": %q, "code": %q}
s.sendall(json.dumps(req).encode() + b"\n")
time.sleep(%d)
os._exit(%d)
`

// childOf returns the id of the one child job a parent started, found by
// its terminal event (child ids start with the parent's id, when that is
// short, and "-c"; the child is in the parent's tenant, the default one).
func childOf(t *testing.T, parent string, pev *schema.Event) string {
	t.Helper()
	js, err := jetstream.New(stack.Conn)
	if err != nil {
		t.Fatal(err)
	}
	var child string
	eventually(t, pollBudget, func(ctx context.Context) (bool, string) {
		s, err := js.Stream(ctx, schema.StreamEvents)
		if err != nil {
			t.Fatal(err)
		}
		var found []string
		for _, typ := range terminalTypes {
			info, err := s.Info(ctx, jetstream.WithSubjectFilter(schema.EventSubject(keyOf("*"), typ)))
			if err != nil {
				t.Fatal(err)
			}
			for subj := range info.State.Subjects {
				id := strings.Split(strings.TrimPrefix(subj, schema.EventsPrefix+keyOf("")), ".")[0]
				if strings.HasPrefix(id, parent+"-c") {
					found = append(found, id)
				}
			}
		}
		if len(found) > 1 {
			t.Fatalf("parent %s has children %v, want one", parent, found)
		}
		if len(found) == 1 {
			child = found[0]
		}
		return child != "", fmt.Sprintf("no child of %s ended; the parent ended %s", parent, brief(pev))
	})
	return child
}

// fillResult is what a job that filled a dict or queue saw.
type fillResult struct {
	N       int     `json:"n"`
	Message string  `json:"message"`
	Brig    bool    `json:"brig"`
	Secs    float64 `json:"secs"`
}

// TestGatewayAttackQuota is finding 8: one write scope cannot fill the
// server. A job filling a dict or a queue, or creating more of them than
// its function allows, gets QuotaExceeded, which it can catch; a job that
// does not catch it ends failed with error type QuotaExceeded.
func TestGatewayAttackQuota(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	fn := schema.Python()
	fn.Name = newID("gwa-quota")
	fn.Quotas = schema.Quotas{DictMB: 1, QueueMB: 1, Resources: 2}
	deploy(ctx, t, fn)
	js, err := jetstream.New(stack.Conn)
	if err != nil {
		t.Fatal(err)
	}
	// streamConfig is the config of a stream brig made for a job.
	streamConfig := func(t *testing.T, name string) jetstream.StreamConfig {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), pollBudget)
		defer cancel()
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		return s.CachedInfo().Config
	}
	for _, rt := range gatewayRuntimes {
		t.Run(rt, func(t *testing.T) {
			t.Parallel()
			requireRuntime(t, rt)
			d, q, extra := "d"+randomHex(6), "q"+randomHex(6), "x"+randomHex(6)
			job := scopedJob("gwa-quota", fmt.Sprintf(`import brig, json, time
out = {}
def fill(name, put):
    t0 = time.monotonic()
    n = 0
    try:
        while n < 1000:
            put(n, "x" * (100 << 10))
            n += 1
        out[name] = "no limit after %%d values" %% n
    except brig.QuotaExceeded as e:
        out[name] = {"n": n, "message": e.message, "brig": isinstance(e, brig.BrigError),
                     "secs": time.monotonic() - t0}
fill("dict", lambda n, v: brig.Dict(%q).put("k%%d" %% n, v))
fill("queue", lambda n, v: brig.Queue(%q).put(v))
try:
    brig.Dict(%q).put("k", 1)
    out["third"] = "created"
except brig.QuotaExceeded as e:
    out["third"] = e.message
json.dump(out, open("/work/out/result.json", "w"))
brig.Dict(%q).put("again", "x" * (200 << 10))  # uncaught: the job fails
`, d, q, extra, d), "dict:"+d+":write", "queue:"+q+":put", "dict:"+extra+":write")
			job.Function, job.Runtime = fn.Name, rt
			ev, _ := runJob(t, job)
			if ev.Status != schema.StatusFailed || ev.Error == nil || ev.Error.Type != schema.ErrQuotaExceeded ||
				!strings.Contains(ev.Error.Message, "is full") {
				t.Errorf("job: %s; want failed with error type QuotaExceeded", brief(ev))
			}
			var out struct {
				Dict, Queue fillResult
				Third       string
			}
			probeOutput(t, ev, &out)
			for name, got := range map[string]fillResult{"dict": out.Dict, "queue": out.Queue} {
				if got.N < 8 || got.N > 10 || !got.Brig || !strings.Contains(got.Message, name+" ") ||
					!strings.Contains(got.Message, "is full: it holds at most 1 MiB") || got.Secs > 20 {
					t.Errorf("%s: %+v; want QuotaExceeded after about 10 values of 100 KiB", name, got)
				}
			}
			if !strings.Contains(out.Third, "at most 2 dicts and queues") {
				t.Errorf("a third resource: %q, want QuotaExceeded", out.Third)
			}
			for stream, want := range map[string]int64{"KV_" + bus.DictBucket(schema.DefaultTenant, d): 1 << 20, bus.QueueStream(schema.DefaultTenant, q): 1 << 20} {
				if c := streamConfig(t, stream); c.MaxBytes != want || c.MaxMsgs <= 0 || c.Discard != jetstream.DiscardNew {
					t.Errorf("%s: max bytes %d, max msgs %d, discard %v", stream, c.MaxBytes, c.MaxMsgs, c.Discard)
				}
			}
		})
	}

	t.Run("defaults", func(t *testing.T) {
		t.Parallel()
		d := "d" + randomHex(6)
		runOK(t, "job", scopedJob("gwa-default", `import brig
brig.Dict("`+d+`").put("k", 1)
`, "dict:"+d+":write"))
		if c := streamConfig(t, "KV_"+bus.DictBucket(schema.DefaultTenant, d)); c.MaxBytes != schema.DefaultDictMB<<20 || c.MaxMsgs != schema.DefaultDictKeys {
			t.Errorf("a dict of the python function: max bytes %d, max msgs %d; want the defaults", c.MaxBytes, c.MaxMsgs)
		}
	})
}
