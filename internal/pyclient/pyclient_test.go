package pyclient_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/brig-dev/brig/internal/gateway"
	"github.com/brig-dev/brig/internal/gatewayproto"
	"github.com/brig-dev/brig/internal/gatewaytest"
	"github.com/brig-dev/brig/internal/pyclient"
	"github.com/brig-dev/brig/schema"
)

// env is a gateway on an embedded NATS serving one job's socket, and the
// Python client installed for it.
type env struct {
	*gatewaytest.Env
	t          *testing.T
	pythonPath string
}

// start runs the gateway; call, when set, runs child jobs.
func start(t *testing.T, call gateway.Caller) *env {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatalf("python3 is required: %v", err)
	}
	e := &env{Env: gatewaytest.Start(t, call), t: t}
	var err error
	if e.pythonPath, err = pyclient.Install(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	return e
}

// prelude is put before every script: try() runs f and describes what
// came out; the script fills out, which is printed as JSON.
const prelude = `
import json, os, socket, sys, time
import brig

def try_(f):
    try:
        return {"ok": True, "value": f()}
    except brig.AuthError as e:
        return {"error": "AuthError", "brig": isinstance(e, brig.BrigError), "type": e.type,
                "resource": e.resource, "action": e.action, "message": e.message, "str": str(e)}
    except brig.BrigError as e:
        return {"error": "BrigError", "type": e.type, "message": e.message, "str": str(e)}
    except Exception as e:
        return {"error": type(e).__name__, "message": str(e)}

out = {}
`

// result is what try_ makes of one call.
type result struct {
	OK       bool   `json:"ok"`
	Value    any    `json:"value"`
	Error    string `json:"error"`
	Brig     bool   `json:"brig"`
	Type     string `json:"type"`
	Resource string `json:"resource"`
	Action   string `json:"action"`
	Message  string `json:"message"`
	Str      string `json:"str"`
}

// run runs script with tok in BRIG_TOKEN (unset when tok is nil) and
// extra environment, and returns out.
func (e *env) run(tok *string, script string, extra ...string) map[string]json.RawMessage {
	e.t.Helper()
	return e.runWith(tok, script, nil, extra...)
}

// runWith is run; during, when set, runs while the script does.
func (e *env) runWith(tok *string, script string, during func(), extra ...string) map[string]json.RawMessage {
	e.t.Helper()
	path := filepath.Join(e.t.TempDir(), "job.py")
	if err := os.WriteFile(path, []byte(prelude+script+"\nprint(json.dumps(out))\n"), 0o644); err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(e.t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "python3", "-B", path)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BRIG_") && !strings.HasPrefix(kv, "PYTHON") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "PYTHONPATH="+e.pythonPath, "PYTHONDONTWRITEBYTECODE=1", "BRIG_GATEWAY="+e.Sock)
	if tok != nil {
		cmd.Env = append(cmd.Env, "BRIG_TOKEN="+*tok)
	}
	cmd.Env = append(cmd.Env, extra...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Start()
	if err == nil {
		if during != nil {
			during()
		}
		err = cmd.Wait()
	}
	if err != nil {
		e.t.Fatalf("python: %v\nstdout: %s\nstderr: %s", err, stdout.Bytes(), stderr.Bytes())
	}
	var out map[string]json.RawMessage
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		e.t.Fatalf("python output %q: %v\nstderr: %s", stdout.Bytes(), err, stderr.Bytes())
	}
	return out
}

func get(t *testing.T, out map[string]json.RawMessage, name string) result {
	t.Helper()
	raw, ok := out[name]
	if !ok {
		t.Fatalf("no %q in output", name)
	}
	var r result
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return r
}

func wantValue(t *testing.T, out map[string]json.RawMessage, name, want string) {
	t.Helper()
	r := get(t, out, name)
	if !r.OK {
		t.Fatalf("%s: %+v, want value %s", name, r, want)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(r.Value)
	if got := strings.TrimSpace(buf.String()); got != want {
		t.Fatalf("%s = %s, want %s", name, got, want)
	}
}

func wantAuth(t *testing.T, out map[string]json.RawMessage, name, resource, action, msg string) {
	t.Helper()
	r := get(t, out, name)
	if r.Error != "AuthError" || !r.Brig || r.Type != "AuthError" || r.Resource != resource || r.Action != action ||
		!strings.Contains(r.Message, msg) {
		t.Fatalf("%s: %+v, want AuthError %s %s %q", name, r, resource, action, msg)
	}
}

func wantBrig(t *testing.T, out map[string]json.RawMessage, name, typ, msg string) {
	t.Helper()
	r := get(t, out, name)
	if r.Error != "BrigError" || r.Type != typ || !strings.Contains(r.Message, msg) {
		t.Fatalf("%s: %+v, want BrigError %s %q", name, r, typ, msg)
	}
}

func ptr(s string) *string { return &s }

func TestInstall(t *testing.T) {
	dir := t.TempDir()
	root, err := pyclient.Install(dir)
	if err != nil {
		t.Fatal(err)
	}
	if root != filepath.Join(dir, "python") {
		t.Fatalf("Install = %s", root)
	}
	// Twice: the second replaces the first.
	if _, err := pyclient.Install(dir); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("brig/__init__.py")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(root, "brig", "__init__.py")
	got, err := os.ReadFile(file)
	if err != nil || !bytes.Equal(got, src) {
		t.Fatalf("installed module differs from brig/__init__.py (%v)", err)
	}
	for path, mode := range map[string]os.FileMode{root: 0o755 | os.ModeDir, filepath.Dir(file): 0o755 | os.ModeDir, file: 0o644} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode() != mode {
			t.Errorf("%s: mode %v (%v), want %v", path, fi.Mode(), err, mode)
		}
	}
	entries, err := os.ReadDir(filepath.Dir(file))
	if err != nil || len(entries) != 1 {
		t.Fatalf("package dir holds %v (%v), want only __init__.py", entries, err)
	}
}

// TestProtocolConstants: the module spells out what package gatewayproto
// defines for Go (it cannot import it); the two must agree.
func TestProtocolConstants(t *testing.T) {
	e := start(t, nil)
	out := e.run(nil, `
out["socket"] = {"ok": True, "value": brig._DEFAULT_SOCKET}
out["max_line"] = {"ok": True, "value": brig._MAX_LINE_BYTES}
`)
	wantValue(t, out, "socket", `"`+gatewayproto.Socket+`"`)
	wantValue(t, out, "max_line", fmt.Sprint(gatewayproto.MaxLineBytes))
}

func TestDict(t *testing.T) {
	e := start(t, nil)
	out := e.run(ptr(e.Token("dict:d:read", "dict:d:write")), `
d = brig.Dict("d")
out["missing"] = try_(lambda: d.get("k"))
out["put"] = try_(lambda: d.put("k", {"a": [1, "é", None, True, 1.5], "<>": "&"}))
out["get"] = try_(lambda: d.get("k"))
out["put2"] = try_(lambda: d.put("k.2", "x"))
out["get2"] = try_(lambda: d.get("k.2"))
out["delete"] = try_(lambda: d.delete("k"))
out["deleted"] = try_(lambda: d.get("k"))
out["delete_missing"] = try_(lambda: d.delete("never"))
out["nan"] = try_(lambda: d.put("k", float("nan")))
out["object"] = try_(lambda: d.put("k", object()))
out["bad_key"] = try_(lambda: d.put("a b", 1))
out["bad_name"] = try_(lambda: brig.Dict("a.b").get("k"))
out["after"] = try_(lambda: d.get("k.2"))
out["repr"] = {"ok": True, "value": repr(d)}
`)
	wantValue(t, out, "missing", "null")
	wantValue(t, out, "put", "null")
	wantValue(t, out, "get", `{"<>":"&","a":[1,"é",null,true,1.5]}`)
	wantValue(t, out, "get2", `"x"`)
	wantValue(t, out, "delete", "null")
	wantValue(t, out, "deleted", "null")
	wantValue(t, out, "delete_missing", "null")
	if r := get(t, out, "nan"); r.Error != "ValueError" {
		t.Errorf("NaN: %+v, want ValueError", r)
	}
	if r := get(t, out, "object"); r.Error != "TypeError" {
		t.Errorf("object(): %+v, want TypeError", r)
	}
	wantBrig(t, out, "bad_key", "InvalidRequest", "key")
	wantBrig(t, out, "bad_name", "InvalidRequest", "name")
	wantValue(t, out, "after", `"x"`)
	wantValue(t, out, "repr", `"brig.Dict('d')"`)
	if d := e.Denials(); len(d) != 0 {
		t.Fatalf("denials: %+v", d)
	}
}

func TestReadOnly(t *testing.T) {
	e := start(t, nil)
	out := e.run(ptr(e.Token("dict:d:read")), `
d = brig.Dict("d")
out["get"] = try_(lambda: d.get("k"))
out["put"] = try_(lambda: d.put("k", 1))
`)
	wantValue(t, out, "get", "null")
	wantAuth(t, out, "put", "dict:d", "write", "not granted")
	if s := get(t, out, "put").Str; !strings.Contains(s, "dict:d") || !strings.Contains(s, "write") {
		t.Errorf("str(AuthError) = %q", s)
	}
	d := e.Denials()
	if len(d) != 1 || d[0].Resource != "dict:d" || d[0].Action != "write" {
		t.Fatalf("OnDenied calls: %+v, want one for dict:d write", d)
	}
}

func TestRestricted(t *testing.T) {
	e := start(t, nil)
	out := e.run(ptr(e.Token()), `
out["dict_get"] = try_(lambda: brig.Dict("d").get("k"))
out["dict_put"] = try_(lambda: brig.Dict("d").put("k", 1))
out["dict_delete"] = try_(lambda: brig.Dict("d").delete("k"))
out["queue_put"] = try_(lambda: brig.Queue("q").put(1))
out["queue_get"] = try_(lambda: brig.Queue("q").get(timeout=1))
out["call"] = try_(lambda: brig.call("f", args=[1]))
`)
	wantAuth(t, out, "dict_get", "dict:d", "read", "not granted")
	wantAuth(t, out, "dict_put", "dict:d", "write", "not granted")
	wantAuth(t, out, "dict_delete", "dict:d", "write", "not granted")
	wantAuth(t, out, "queue_put", "queue:q", "put", "not granted")
	wantAuth(t, out, "queue_get", "queue:q", "get", "not granted")
	wantAuth(t, out, "call", "function:f", "call", "not granted")
	if d := e.Denials(); len(d) != 6 {
		t.Fatalf("OnDenied calls: %+v, want 6", d)
	}
}

func TestQueue(t *testing.T) {
	e := start(t, nil)
	out := e.run(ptr(e.Token("queue:q:put", "queue:q:get")), `
q = brig.Queue("q")
out["put1"] = try_(lambda: q.put({"n": 1}))
out["put2"] = try_(lambda: q.put([2]))
out["get1"] = try_(lambda: q.get(timeout=2))
out["get2"] = try_(lambda: q.get())
t0 = time.monotonic()
out["empty"] = try_(lambda: q.get(timeout=0.5))
out["waited"] = {"ok": True, "value": time.monotonic() - t0}
t0 = time.monotonic()
out["peek"] = try_(lambda: q.get())
out["peeked"] = {"ok": True, "value": time.monotonic() - t0}
out["negative"] = try_(lambda: q.get(timeout=-1))
`)
	wantValue(t, out, "put1", "null")
	wantValue(t, out, "get1", `{"n":1}`)
	wantValue(t, out, "get2", `[2]`)
	wantValue(t, out, "empty", "null")
	if w := get(t, out, "waited").Value.(float64); w < 0.4 || w > 3 {
		t.Errorf("get(timeout=0.5) on an empty queue took %.2fs", w)
	}
	wantValue(t, out, "peek", "null")
	if w := get(t, out, "peeked").Value.(float64); w > 3 {
		t.Errorf("get() on an empty queue took %.2fs", w)
	}
	if r := get(t, out, "negative"); r.Error != "ValueError" {
		t.Errorf("negative timeout: %+v", r)
	}
}

func TestBadTokens(t *testing.T) {
	e := start(t, nil)
	good := e.Token("dict:d:read")
	i := len("v1.") + 10
	tampered := good[:i] + string(good[i]^1) + good[i+1:]
	script := `out["get"] = try_(lambda: brig.Dict("d").get("k"))`
	for _, tt := range []struct {
		name string
		tok  *string
		msg  string
	}{
		{"tampered", &tampered, "token"},
		{"truncated", ptr(good[:len(good)-3]), "token"},
		{"another job", ptr(e.Mint(schema.JobKey(gatewaytest.Tenant, "job-2"), "dict:d:read")), "another job"},
		{"same id, another tenant", ptr(e.Mint(schema.JobKey("other", gatewaytest.JobID), "dict:d:read")), "another job"},
		{"expired", ptr(e.MintUntil(gatewaytest.JobKey, time.Now().Add(-time.Second), "dict:d:read")), "expired"},
		{"unset", nil, "no token"},
		{"empty", ptr(""), "no token"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := len(e.Denials())
			wantAuth(t, e.run(tt.tok, script), "get", "dict:d", "read", tt.msg)
			if n := len(e.Denials()) - before; n != 1 {
				t.Fatalf("%d OnDenied calls, want 1", n)
			}
		})
	}
}

// TestTokenFromEnvEachCall: the token is read at every call.
func TestTokenFromEnvEachCall(t *testing.T) {
	e := start(t, nil)
	out := e.run(ptr(e.Token()), `
d = brig.Dict("d")
out["before"] = try_(lambda: d.get("k"))
os.environ["BRIG_TOKEN"] = os.environ["GOOD_TOKEN"]
out["after"] = try_(lambda: d.get("k"))
del os.environ["BRIG_TOKEN"]
out["unset"] = try_(lambda: d.get("k"))
`, "GOOD_TOKEN="+e.Token("dict:d:read"))
	wantAuth(t, out, "before", "dict:d", "read", "not granted")
	wantValue(t, out, "after", "null")
	wantAuth(t, out, "unset", "dict:d", "read", "no token")
}

func TestCallWithoutCaller(t *testing.T) {
	e := start(t, nil)
	out := e.run(ptr(e.Token("function:f:call")), `
out["granted"] = try_(lambda: brig.call("f", code="print(1)"))
out["other"] = try_(lambda: brig.call("g"))
`)
	wantBrig(t, out, "granted", "Infrastructure", "not available")
	wantAuth(t, out, "other", "function:g", "call", "not granted")
}

func TestCall(t *testing.T) {
	e := start(t, func(ctx context.Context, tenant string, job schema.Job) (*schema.Event, error) {
		return &schema.Event{JobID: schema.JobKey(tenant, job.ID), Type: schema.EventResult, Status: schema.StatusSucceeded,
			Stdout: "hi\n", Output: json.RawMessage(`{"sum":3}`)}, nil
	})
	out := e.run(ptr(e.Token("function:add:call", "dict:d:read")), `
ev = brig.call("add", code="print('hi')", args={"a": 1, "b": 2}, timeout=5)
out["ev"] = {"ok": True, "value": {k: ev.get(k) for k in ("status", "stdout", "output")}}
out["id"] = {"ok": True, "value": ev.get("job_id")}
`)
	wantValue(t, out, "ev", `{"output":{"sum":3},"status":"succeeded","stdout":"hi\n"}`)
	calls := e.Calls()
	if len(calls) != 1 {
		t.Fatalf("calls: %+v", calls)
	}
	j := calls[0]
	if tenants := e.CallTenants(); tenants[0] != gatewaytest.Tenant {
		t.Fatalf("the child ran in tenant %q, want its parent's, %q", tenants[0], gatewaytest.Tenant)
	}
	// The event names the child by its key, in the parent's tenant.
	if id, _ := get(t, out, "id").Value.(string); id != schema.JobKey(gatewaytest.Tenant, j.ID) || !strings.HasPrefix(id, gatewaytest.JobKey+"-c") {
		t.Fatalf("the call answered with job %q; the child was %q", id, j.ID)
	}
	if j.Function != "add" || j.Code != "print('hi')" || string(j.Args) != `{"a":1,"b":2}` || j.TimeoutMS > 5000 ||
		strings.Join(j.Scopes, ",") != "dict:d:read" {
		t.Fatalf("child job %+v (args %s)", j, j.Args)
	}
}

func TestHugeValue(t *testing.T) {
	e := start(t, nil)
	out := e.run(ptr(e.Token("dict:d:write", "dict:d:read", "queue:q:put")), `
d = brig.Dict("d")
out["big"] = try_(lambda: d.put("k", "x" * (300 << 10)))
out["queue"] = try_(lambda: brig.Queue("q").put(["x" * (300 << 10)]))
out["line"] = try_(lambda: d.put("k", "x" * (2 << 20)))
out["max"] = try_(lambda: d.put("k", "x" * ((256 << 10) - 2)))
out["after"] = try_(lambda: len(d.get("k")))
`)
	wantBrig(t, out, "big", "InvalidRequest", "larger than")
	wantBrig(t, out, "queue", "InvalidRequest", "larger than")
	wantBrig(t, out, "line", "InvalidRequest", "longer than")
	wantValue(t, out, "max", "null")
	wantValue(t, out, "after", "262142")
}

// TestGarbageLine speaks to the socket by hand, as any code in a job may.
func TestGarbageLine(t *testing.T) {
	e := start(t, nil)
	out := e.run(ptr(e.Token("dict:d:read")), `
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(os.environ["BRIG_GATEWAY"])
f = s.makefile("rb")
s.sendall(b"\x00garbage{\n")
out["garbage"] = {"ok": True, "value": json.loads(f.readline())}
req = {"id": 5, "token": os.environ["BRIG_TOKEN"], "op": "dict.get", "name": "d", "key": "k"}
s.sendall(json.dumps(req).encode() + b"\n")
out["after"] = {"ok": True, "value": json.loads(f.readline())}
`)
	var garbage, after gatewayproto.Response
	if err := json.Unmarshal(mustJSON(t, get(t, out, "garbage").Value), &garbage); err != nil {
		t.Fatal(err)
	}
	if garbage.OK || garbage.Error == nil || garbage.Error.Type != gatewayproto.ErrInvalidRequest {
		t.Fatalf("garbage line: %+v", garbage)
	}
	if err := json.Unmarshal(mustJSON(t, get(t, out, "after").Value), &after); err != nil {
		t.Fatal(err)
	}
	if !after.OK || after.ID != 5 || after.Found {
		t.Fatalf("request after garbage: %+v %+v", after, after.Error)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestNoGateway(t *testing.T) {
	e := start(t, nil)
	out := e.run(ptr(e.Token("dict:d:read")), `
out["get"] = try_(lambda: brig.Dict("d").get("k"))
`, "BRIG_GATEWAY=/nonexistent/gateway.sock")
	wantBrig(t, out, "get", "Infrastructure", "no brig gateway at /nonexistent/gateway.sock")
}

// TestShared: one connection serves threads and survives a fork.
func TestShared(t *testing.T) {
	e := start(t, nil)
	out := e.run(ptr(e.Token("dict:d:read", "dict:d:write")), `
import threading
d = brig.Dict("d")
d.put("warm", 1)
errs = []
def work(i):
    try:
        for j in range(20):
            d.put("t%d" % i, j)
            assert d.get("t%d" % i) == j
    except Exception as e:
        errs.append(repr(e))
ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
for t in ts: t.start()
for t in ts: t.join()
out["threads"] = {"ok": True, "value": errs}
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    try:
        d.put("child", 7)
        os.write(w, json.dumps(d.get("child")).encode())
    finally:
        os._exit(0)
os.close(w)
got = os.read(r, 100)
os.waitpid(pid, 0)
out["child"] = {"ok": True, "value": json.loads(got)}
out["parent"] = try_(lambda: d.get("child"))
`)
	wantValue(t, out, "threads", "[]")
	wantValue(t, out, "child", "7")
	wantValue(t, out, "parent", "7")
}

// TestReconnect: the module outlives its connection (the socket re-bound,
// as for a prewarmed container).
func TestReconnect(t *testing.T) {
	e := start(t, nil)
	dir := t.TempDir()
	out := e.runWith(ptr(e.Token("dict:d:read")), `
d = brig.Dict("d")
out["before"] = try_(lambda: d.get("k"))
open(os.path.join(os.environ["HANDSHAKE"], "ready"), "w").close()
while not os.path.exists(os.path.join(os.environ["HANDSHAKE"], "go")):
    time.sleep(0.01)
out["after"] = try_(lambda: d.get("k"))
`, func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := os.Stat(filepath.Join(dir, "ready")); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Error("the script never got ready")
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		e.Listener.Close()
		e.Listen()
		if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
			t.Error(err)
		}
	}, "HANDSHAKE="+dir)
	wantValue(t, out, "before", "null")
	wantValue(t, out, "after", "null")
}

// TestInterrupted: a call cut short (here by a signal) does not leave its
// answer for the next call.
func TestInterrupted(t *testing.T) {
	e := start(t, nil)
	out := e.run(ptr(e.Token("queue:q:put", "queue:q:get", "dict:d:read", "dict:d:write")), `
import signal
class Alarm(Exception):
    pass
def ring(*_):
    raise Alarm()
q = brig.Queue("q")
q.put(1)
q.get()
brig.Dict("d").put("k", "v")
signal.signal(signal.SIGALRM, ring)
signal.setitimer(signal.ITIMER_REAL, 0.3)
out["interrupted"] = try_(lambda: q.get(timeout=1))
out["next"] = try_(lambda: brig.Dict("d").get("k"))
`)
	if r := get(t, out, "interrupted"); r.Error != "Alarm" {
		t.Fatalf("interrupted get: %+v", r)
	}
	wantValue(t, out, "next", `"v"`)
}

// TestLimits: every limit the gateway enforces raises its own subclass of
// BrigError, which the job can catch and go on.
func TestLimits(t *testing.T) {
	e := start(t, nil)
	e.Listener.Bind(gateway.Binding{JobID: gatewaytest.JobKey, Deadline: time.Now().Add(time.Minute),
		Quotas: schema.Quotas{DictMB: 1, QueueMessages: 3, Resources: 2}})
	out := e.run(ptr(e.Token("dict:d:write", "queue:q:put", "queue:q:get", "dict:other:write")), `
def kind(e):
    return [c.__name__ for c in type(e).__mro__ if c.__module__ == "brig"]
def catch(f):
    try:
        f()
    except brig.BrigError as e:
        return {"ok": True, "value": {"classes": kind(e), "type": e.type, "message": e.message}}
    return {"ok": True, "value": None}
def fill_dict():
    for i in range(100):
        brig.Dict("d").put("k%d" % i, "x" * (100 << 10))
def fill_queue():
    for i in range(10):
        brig.Queue("q").put(i)
out["dict"] = catch(fill_dict)
out["queue"] = catch(fill_queue)
out["got"] = try_(lambda: brig.Queue("q").get())
out["resources"] = catch(lambda: brig.Dict("other").put("k", 1))
def flood():
    # Denied requests count against the rate too and never reach NATS, so
    # the loop outruns the refill even on a slow machine; it stops after
    # 60 s rather than spin forever if the limit never trips.
    end = time.time() + 60
    while time.time() < end:
        try:
            brig.Dict("nope").get("k")
        except brig.AuthError:
            pass
out["rate"] = catch(flood)
out["all"] = {"ok": True, "value": sorted(n for n in brig.__all__ if n in ("QuotaExceeded", "RateLimited"))}
`)
	for _, tt := range []struct{ name, class, msg string }{
		{"dict", "QuotaExceeded", "dict d is full: it holds at most 1 MiB"},
		{"queue", "QuotaExceeded", "queue q is full: it holds at most 3 values"},
		{"resources", "QuotaExceeded", "at most 2 dicts and queues"},
		{"rate", "RateLimited", "requests a second"},
	} {
		var got struct {
			Classes []string `json:"classes"`
			Type    string   `json:"type"`
			Message string   `json:"message"`
		}
		if err := json.Unmarshal(mustJSON(t, get(t, out, tt.name).Value), &got); err != nil {
			t.Fatal(err)
		}
		if strings.Join(got.Classes, ",") != tt.class+",BrigError" || got.Type != tt.class || !strings.Contains(got.Message, tt.msg) {
			t.Errorf("%s: %+v, want %s (a BrigError) saying %q", tt.name, got, tt.class, tt.msg)
		}
	}
	wantValue(t, out, "got", "0")
	wantValue(t, out, "all", `["QuotaExceeded","RateLimited"]`)
}

// TestTooManyConnections: a connection past the gateway's limit raises
// QuotaExceeded, not a broken pipe.
func TestTooManyConnections(t *testing.T) {
	e := start(t, nil)
	out := e.run(ptr(e.Token("dict:d:read")), `
held = []
for i in range(16):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(os.environ["BRIG_GATEWAY"])
    # An answer proves the gateway took the connection: it holds a slot.
    s.sendall(b'{"id":1,"op":"nope","name":"d"}\n')
    f = s.makefile("rb")
    if b"InvalidRequest" not in f.readline():
        raise Exception("connection %d was not served" % i)
    held.append((s, f))
try:
    brig.Dict("d").get("k")
    out["over"] = {"ok": True, "value": None}
except brig.QuotaExceeded as e:
    out["over"] = {"ok": True, "value": e.message}
except brig.BrigError as e:
    out["over"] = {"ok": True, "value": "%s: %s" % (e.type, e.message)}
for s, f in held:
    f.close()
    s.close()
`)
	if msg, _ := get(t, out, "over").Value.(string); !strings.Contains(msg, "more than 16 connections") {
		t.Fatalf("call past the connection limit: %q, want QuotaExceeded", msg)
	}
}
