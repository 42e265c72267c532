package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/brig-dev/brig/internal/token"
	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// scopedJob is a python job that asks for scopes (restricted: false).
func scopedJob(prefix, code string, scopes ...string) schema.Job {
	job := pythonJob(prefix, code)
	job.Restricted = schema.Ptr(false)
	job.Scopes = scopes
	return job
}

// tryCalls runs each of the job's probes and writes what happened to each
// into result.json: {"probe": {"ok": value} | {"denied": [resource, action, message]} | {"error": msg}}.
const tryCalls = `
import brig, json, os
out = {}
def probe(name, fn):
    try:
        out[name] = {"ok": fn()}
    except brig.AuthError as e:
        out[name] = {"denied": [e.resource, e.action, e.message]}
    except Exception as e:
        out[name] = {"error": "%s: %s" % (type(e).__name__, e)}
`

const writeOut = `
with open("/work/out/result.json", "w") as f:
    json.dump(out, f)
`

type probeResult struct {
	OK     json.RawMessage `json:"ok"`
	Denied []string        `json:"denied"`
	Error  string          `json:"error"`
}

func probes(t *testing.T, ev *schema.Event) map[string]probeResult {
	t.Helper()
	var out map[string]probeResult
	if err := json.Unmarshal(ev.Output, &out); err != nil {
		t.Fatalf("job %s output %q: %v (stderr %q)", ev.JobID, ev.Output, err, ev.Stderr)
	}
	return out
}

// expect checks one probe: ok (with the JSON value when want != ""), or
// denied on the resource and action.
func expectOK(t *testing.T, got map[string]probeResult, name, want string) {
	t.Helper()
	p, ok := got[name]
	switch {
	case !ok:
		t.Errorf("%s: not run", name)
	case p.Denied != nil || p.Error != "":
		t.Errorf("%s: want ok, got denied=%v error=%q", name, p.Denied, p.Error)
	case want != "" && !jsonEqual(t, p.OK, []byte(want)):
		t.Errorf("%s = %s, want %s", name, p.OK, want)
	}
}

func expectDenied(t *testing.T, got map[string]probeResult, name, resource, action, msgPart string) {
	t.Helper()
	p := got[name]
	if len(p.Denied) != 3 || p.Denied[0] != resource || p.Denied[1] != action || !strings.Contains(p.Denied[2], msgPart) {
		t.Errorf("%s: want AuthError on %s %s (%q), got ok=%s denied=%v error=%q", name, resource, action, msgPart, p.OK, p.Denied, p.Error)
	}
}

// expectAuthEvents checks the terminal event lists exactly n denials and
// that as many auth_error events were stored, each at once.
func expectAuthEvents(t *testing.T, ev *schema.Event, n int) {
	t.Helper()
	if len(ev.AuthErrors) != n {
		t.Errorf("terminal auth_errors = %v, want %d", ev.AuthErrors, n)
	}
	if got := countStored(t, schema.EventSubject(ev.JobID, schema.EventAuthError)); got != n {
		t.Errorf("stored auth_error events = %d, want %d", got, n)
	}
}

func TestScopeDict(t *testing.T) {
	t.Parallel()
	name := "d" + randomHex(4)
	code := tryCalls + `
d = brig.Dict("` + name + `")
probe("put", lambda: d.put("k", {"v": 1}))
probe("get", lambda: d.get("k"))
probe("delete", lambda: d.delete("k"))
probe("get_after_delete", lambda: d.get("k"))
` + writeOut
	rw := []string{"dict:" + name + ":read", "dict:" + name + ":write"}

	ev, err := runJob(t, scopedJob("dict-rw", code, rw...))
	if err != nil {
		t.Fatalf("rw job: %v", err)
	}
	got := probes(t, ev)
	expectOK(t, got, "put", "")
	expectOK(t, got, "get", `{"v":1}`)
	expectOK(t, got, "get_after_delete", "null")
	expectAuthEvents(t, ev, 0)

	t.Run("read scope does not write", func(t *testing.T) {
		t.Parallel()
		ev, _ := runJob(t, scopedJob("dict-ro", code, "dict:"+name+":read"))
		got := probes(t, ev)
		expectDenied(t, got, "put", "dict:"+name, "write", "not granted")
		expectDenied(t, got, "delete", "dict:"+name, "write", "not granted")
		expectOK(t, got, "get", "")
		expectAuthEvents(t, ev, 2)
		if ev.Status != schema.StatusSucceeded {
			t.Errorf("status %s: the job caught its AuthErrors and exited 0", ev.Status)
		}
	})
	t.Run("write scope does not read", func(t *testing.T) {
		t.Parallel()
		ev, _ := runJob(t, scopedJob("dict-wo", code, "dict:"+name+":write"))
		got := probes(t, ev)
		expectOK(t, got, "put", "")
		expectDenied(t, got, "get", "dict:"+name, "read", "not granted")
	})
	t.Run("another dict's scope", func(t *testing.T) {
		t.Parallel()
		ev, _ := runJob(t, scopedJob("dict-other", code, "dict:other"+name+":read", "dict:other"+name+":write"))
		expectDenied(t, probes(t, ev), "put", "dict:"+name, "write", "not granted")
	})
	t.Run("restricted job", func(t *testing.T) {
		t.Parallel()
		ev, _ := runJob(t, pythonJob("dict-restricted", code))
		got := probes(t, ev)
		for _, p := range []string{"put", "get", "delete"} {
			expectDenied(t, got, p, "dict:"+name, map[string]string{"put": "write", "get": "read", "delete": "write"}[p], "not granted")
		}
	})
	t.Run("restricted job asking for scopes is refused", func(t *testing.T) {
		t.Parallel()
		job := pythonJob("dict-asks", code)
		job.Scopes = rw // restricted left out: python's default, so the dispatcher refuses it
		ev, err := runJob(t, job)
		wantStatus(t, ev, schema.EventError, schema.StatusRejected, schema.ErrInvalidJob)
		wantIs(t, err, sdk.ErrRejected)
	})
}

func TestScopeQueue(t *testing.T) {
	t.Parallel()
	name := "q" + randomHex(4)
	code := tryCalls + `
q = brig.Queue("` + name + `")
probe("put", lambda: q.put({"n": 7}))
probe("get", lambda: q.get(timeout=2))
probe("get_empty", lambda: q.get(timeout=0.2))
` + writeOut
	ev, err := runJob(t, scopedJob("queue-pg", code, "queue:"+name+":put", "queue:"+name+":get"))
	if err != nil {
		t.Fatalf("queue job: %v", err)
	}
	got := probes(t, ev)
	expectOK(t, got, "put", "")
	expectOK(t, got, "get", `{"n":7}`)
	expectOK(t, got, "get_empty", "null")

	t.Run("put scope does not get", func(t *testing.T) {
		t.Parallel()
		ev, _ := runJob(t, scopedJob("queue-p", code, "queue:"+name+":put"))
		got := probes(t, ev)
		expectOK(t, got, "put", "")
		expectDenied(t, got, "get", "queue:"+name, "get", "not granted")
	})
	t.Run("restricted job", func(t *testing.T) {
		t.Parallel()
		ev, _ := runJob(t, pythonJob("queue-r", code))
		got := probes(t, ev)
		expectDenied(t, got, "put", "queue:"+name, "put", "not granted")
		expectDenied(t, got, "get", "queue:"+name, "get", "not granted")
	})
}

func TestScopeFunctionCall(t *testing.T) {
	t.Parallel()
	allowed, other := "c"+randomHex(4), "c"+randomHex(4)
	child := `import brig
brig.Dict("` + allowed + `").put("from-child", 1)
try:
    brig.call("python", code="print(1)")  # children cannot call on
except brig.AuthError:
    pass
brig.Dict("` + other + `").put("from-child", 1)
`
	code := tryCalls + `
res = brig.call("python", code=` + pyString(child) + `, timeout=60)
out["child"] = {"ok": {"status": res["status"], "auth_errors": res.get("auth_errors", []), "error": res.get("error")}}
` + writeOut
	ev, err := runJob(t, scopedJob("call", code, "function:python:call", "dict:"+allowed+":write"))
	if err != nil {
		t.Fatalf("parent: %v (stderr %q)", err, ev.Stderr)
	}
	var res struct {
		Status     schema.Status      `json:"status"`
		AuthErrors []schema.AuthError `json:"auth_errors"`
		Error      *schema.ErrorInfo  `json:"error"`
	}
	if err := json.Unmarshal(probes(t, ev)["child"].OK, &res); err != nil {
		t.Fatalf("child result: %v", err)
	}
	// The child inherited dict:allowed:write but not the other dict.
	if res.Status != schema.StatusFailed || res.Error == nil || res.Error.Type != schema.ErrAuthError {
		t.Errorf("child status %s error %+v, want failed with AuthError", res.Status, res.Error)
	}
	if len(res.AuthErrors) != 2 || res.AuthErrors[0].Resource != "function:python" || res.AuthErrors[1].Resource != "dict:"+other {
		t.Errorf("child auth_errors = %+v, want function:python (no call chains) then dict:%s", res.AuthErrors, other)
	}

	t.Run("without function scope", func(t *testing.T) {
		t.Parallel()
		ev, _ := runJob(t, scopedJob("call-denied", tryCalls+`
probe("call", lambda: brig.call("python", code="print(1)"))
`+writeOut, "dict:"+allowed+":write"))
		expectDenied(t, probes(t, ev), "call", "function:python", "call", "not granted")
	})
}

// TestTokenAttacks: a job that meddles with its credential gets nothing.
func TestTokenAttacks(t *testing.T) {
	t.Parallel()
	name := "t" + randomHex(4)
	scope := "dict:" + name + ":write"
	// A job that shows its own token: another job will try to use it.
	leak, err := runJob(t, scopedJob("leak", `import os, json
json.dump(os.environ["BRIG_TOKEN"], open("/work/out/result.json", "w"))`, scope))
	if err != nil {
		t.Fatalf("leak job: %v", err)
	}
	var leaked string
	_ = json.Unmarshal(leak.Output, &leaked)

	now := time.Now()
	expiredFor := func(id string) string {
		tok, err := token.Mint(env.Signer.Key, token.Claims{JobID: id, Function: "python", Scopes: []string{scope},
			IssuedAt: now.Add(-time.Hour).UnixMilli(), Expiry: now.Add(-time.Minute).UnixMilli(), KeyID: env.Signer.ID})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	tests := []struct {
		name, setup, msg string
		useExpired       bool
	}{
		{name: "tampered", setup: `t = os.environ["BRIG_TOKEN"]; i = 10; os.environ["BRIG_TOKEN"] = t[:i] + ("A" if t[i] != "A" else "B") + t[i+1:]`, msg: "token"},
		{name: "no token", setup: `del os.environ["BRIG_TOKEN"]`, msg: "no token"},
		{name: "empty token", setup: `os.environ["BRIG_TOKEN"] = ""`, msg: "no token"},
		{name: "garbage token", setup: `os.environ["BRIG_TOKEN"] = "v1.e30.AAAA"`, msg: "token"},
		{name: "another job's token", setup: `os.environ["BRIG_TOKEN"] = ARGS["leaked"]`, msg: "another job"},
		{name: "expired token", setup: `os.environ["BRIG_TOKEN"] = ARGS["expired"]`, msg: "expired", useExpired: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			job := scopedJob("attack", tryCalls+`
ARGS = json.load(open("/work/args.json"))
`+tt.setup+`
probe("put", lambda: brig.Dict("`+name+`").put("k", 1))
`+writeOut, scope) // the job holds the scope: only the credential is wrong
			args := map[string]string{"leaked": leaked}
			if tt.useExpired {
				args["expired"] = expiredFor(keyOf(job.ID))
			}
			job.Args, _ = json.Marshal(args)
			ev, _ := runJob(t, job)
			expectDenied(t, probes(t, ev), "put", "dict:"+name, "write", tt.msg)
			expectAuthEvents(t, ev, 1)
		})
	}
}

// TestAuthErrorFailsJob: a job that fails after a denial reports AuthError,
// and the SDK exposes it as *sdk.AuthError.
func TestAuthErrorFailsJob(t *testing.T) {
	t.Parallel()
	ev, err := runJob(t, pythonJob("authfail", `import brig
brig.Queue("secrets").get(timeout=1)`))
	if ev.Status != schema.StatusFailed || ev.Error == nil || ev.Error.Type != schema.ErrAuthError {
		t.Fatalf("status %s error %+v, want failed AuthError", ev.Status, ev.Error)
	}
	var ae *sdk.AuthError
	if !errors.As(err, &ae) || len(ae.Denied) != 1 || ae.Denied[0].Resource != "queue:secrets" || ae.Denied[0].Action != "get" {
		t.Errorf("errors.As(*sdk.AuthError) = %v %+v", err, ae)
	}
	if !errors.Is(err, sdk.ErrFailed) {
		t.Errorf("errors.Is(ErrFailed) false for %v", err)
	}
	if !strings.Contains(ev.Stderr, "brig.AuthError") {
		t.Errorf("the job's traceback does not show brig.AuthError: %q", ev.Stderr)
	}
}

// TestRestrictedJobSeesNothingOfBrig: no NATS address, no key material, no
// brig files but the init, the Python client and the socket.
func TestRestrictedJobSeesNothingOfBrig(t *testing.T) {
	t.Parallel()
	ev, err := runJob(t, pythonJob("blind", `import json, os
mounts = []
for line in open("/proc/self/mountinfo"):
    f = line.split()
    mounts.append({"root": f[3], "target": f[4], "fstype": f[f.index("-") + 1]})
hits = []
for top in ["/etc", "/run", "/tmp", "/work", "/root", "/home", "/var"]:
    for d, _, files in os.walk(top):
        for n in files:
            p = os.path.join(d, n)
            if p == "/work/main.py":
                continue  # this code names what it looks for
            try:
                data = open(p, "rb").read(1 << 20)
            except OSError:
                continue
            for needle in [b"nats://", b"BEGIN PRIVATE KEY", b"jetstream"]:
                if needle in data:
                    hits.append([p, needle.decode()])
env = {k: v for k, v in os.environ.items()}
json.dump({"mounts": mounts, "hits": hits, "env": env, "run_brig": sorted(os.listdir("/run/brig"))}, open("/work/out/result.json", "w"))`))
	if err != nil {
		t.Fatalf("job: %v (stderr %q)", err, ev.Stderr)
	}
	var facts struct {
		Mounts  []struct{ Root, Target, Fstype string }
		Hits    [][]string
		Env     map[string]string
		RunBrig []string `json:"run_brig"`
	}
	if err := json.Unmarshal(ev.Output, &facts); err != nil {
		t.Fatal(err)
	}
	if len(facts.Hits) > 0 {
		t.Errorf("files with NATS or key material: %v", facts.Hits)
	}
	for k, v := range facts.Env {
		if strings.Contains(v, "nats://") || strings.Contains(v, stack.HostPort()) || strings.Contains(strings.ToUpper(k), "NATS") {
			t.Errorf("environment %s=%q points at NATS", k, v)
		}
	}
	if strings.Join(facts.RunBrig, ",") != "gateway.sock,init,python" {
		t.Errorf("/run/brig holds %v, want gateway.sock, init, python", facts.RunBrig)
	}
	// Bind mounts from the host are exactly brig's three; the rest are the
	// container's own (overlay root, proc, tmpfs, Docker's /etc files).
	var binds []string
	for _, m := range facts.Mounts {
		if strings.HasPrefix(m.Target, "/run/brig") {
			binds = append(binds, m.Target)
		}
	}
	slices.Sort(binds)
	if strings.Join(binds, ",") != "/run/brig/gateway.sock,/run/brig/init,/run/brig/python" {
		t.Errorf("brig mounts = %v", binds)
	}
}

// pyString quotes s as a Python string literal.
func pyString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestFunctionCapsScopes: a deployed function's allowed scopes cap what
// its jobs are granted, whatever they ask for.
func TestFunctionCapsScopes(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	name := "d" + randomHex(4)
	fn := schema.Function{
		Name: "capped-" + randomHex(4), Image: "brig/python:latest", Command: []string{"python3", "/work/main.py"},
		Scopes: []string{"dict:" + name + ":read"},
	}
	deploy(ctx, t, fn)
	job := scopedJob("capped", tryCalls+`
d = brig.Dict("`+name+`")
probe("get", lambda: d.get("k"))
probe("put", lambda: d.put("k", 1))
`+writeOut, "dict:"+name+":read", "dict:"+name+":write")
	job.Function = fn.Name
	ev, err := runJob(t, job)
	if err != nil {
		t.Fatalf("job: %v (stderr %q)", err, ev.Stderr)
	}
	got := probes(t, ev)
	expectOK(t, got, "get", "null")
	expectDenied(t, got, "put", "dict:"+name, "write", "not granted")
}
