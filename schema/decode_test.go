package schema_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/brig-dev/brig/schema"
)

const (
	testJobID  = "job-1"
	testJobKey = "default." + testJobID
)

// jobJSON is a minimal valid job with fields set or, for nil values,
// removed.
func jobJSON(fields map[string]any) string {
	m := map[string]any{"id": testJobID, "function": "python"}
	for k, v := range fields {
		if v == nil {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func with(k string, v any) string { return jobJSON(map[string]any{k: v}) }

func files(paths ...string) map[string]string {
	m := map[string]string{}
	for _, p := range paths {
		m[p] = "content"
	}
	return m
}

func many(n int, f func(i int) string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

func filesField(p string) string { return fmt.Sprintf("files[%q]", p) }
func envField(k string) string   { return fmt.Sprintf("env[%q]", k) }

// wantFieldError fails unless err is a *schema.FieldError for field.
func wantFieldError(t *testing.T, err error, field string) {
	t.Helper()
	var fe *schema.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error = %v (%T), want a *schema.FieldError for %q", err, err, field)
	}
	if fe.Field != field {
		t.Fatalf("error field = %q, want %q (error: %v)", fe.Field, field, err)
	}
	if !strings.HasPrefix(err.Error(), field+": ") {
		t.Errorf("error %q does not start with its field", err)
	}
}

func TestDecodeJob(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		data  string
		field string // "" means the job is accepted
	}{
		// Shape of the message.
		{"valid minimal", `{"id":"job-1","function":"python"}`, ""},
		{"surrounding whitespace", " \n{\"id\":\"job-1\",\"function\":\"python\"}\n ", ""},
		{"unknown top-level field", with("bogus", 1), "bogus"},
		{"unknown field in limits", with("limits", map[string]any{"memory": 1}), "limits.memory"},
		{"unknown empty field", `{"":""}`, `""`},
		{"unknown field then trailing data", `{"id":"job-1","function":"python","limits":{"x":1e400}} 0`, "limits.x"},
		{"unknown field with dot", `{"id":"job-1","function":"python","a.b":1}`, `"a.b"`},
		{"unknown field with quote", `{"id":"job-1","function":"python","limits":{"a\"b\n":1}}`, `limits."a\"b\n"`},
		{"unknown empty field in limits", with("limits", map[string]any{"": 1}), `limits.""`},
		{"field name in other case", `{"ID":"job-1","function":"python","Limits":{"x":1}}`, "ID"},
		{"nested field name in other case", `{"id":"job-1","function":"python","limits":{"Memory_MB":64}}`, "limits.Memory_MB"},
		{"file inside a file", `{"id":"job-1","function":"python","files":{"a":"1","a/b":"2"}}`, `files["a/b"]`},
		{"file inside main.py", `{"id":"job-1","function":"python","code":"x","files":{"main.py/b":"2"}}`, `files["main.py/b"]`},
		{"duplicate key", `{"id":"job-1","function":"python","id":"job-2"}`, "id"},
		{"duplicate env key", `{"id":"job-1","function":"python","env":{"A":"1","A":"2"}}`, `env["A"]`},
		{"timeout as string", with("timeout", "1000"), "timeout"},
		{"timeout as fraction", with("timeout", 1.5), "timeout"},
		{"files as array", with("files", []string{"a"}), "files"},
		{"limits.memory_mb as string", with("limits", map[string]any{"memory_mb": "64"}), "limits.memory_mb"},
		{"limits as number", with("limits", 1), "limits"},
		{"network as string", with("network", "yes"), "network"},
		{"scopes as string", with("scopes", "dict:a:read"), "scopes"},
		{"env value as number", with("env", map[string]any{"A": 1}), "env"},
		{"trailing object", `{"id":"job-1","function":"python"} {}`, "(message)"},
		{"trailing garbage", `{"id":"job-1","function":"python"}x`, "(message)"},
		{"trailing brace", `{"id":"job-1","function":"python"}}`, "(message)"},
		{"array", `[{"id":"job-1","function":"python"}]`, "(message)"},
		{"string", `"job-1"`, "(message)"},
		{"null", `null`, "(message)"},
		{"number", `42`, "(message)"},
		{"empty", ``, "(message)"},
		{"whitespace", " \t\n", "(message)"},
		{"truncated", `{"id":"job-1","function":"pyth`, "(message)"},
		{"truncated after comma", `{"id":"job-1",`, "(message)"},
		{"syntax error", `{"id":"job-1" "function":"python"}`, "(message)"},

		// Identity.
		{"id missing", jobJSON(map[string]any{"id": nil}), "id"},
		{"id empty", with("id", ""), "id"},
		{"id with dot", with("id", "a.b"), "id"},
		{"id with star", with("id", "a*"), "id"},
		{"id with gt", with("id", "a>"), "id"},
		{"id with space", with("id", "a b"), "id"},
		{"id with newline", with("id", "ab\n"), "id"},
		{"id 65 chars", with("id", strings.Repeat("a", 65)), "id"},
		{"id 64 chars", with("id", strings.Repeat("a", 64)), ""},
		{"id unicode", with("id", "jöb"), "id"},
		{"id underscore and dash", with("id", "_-"), ""},
		{"function missing", jobJSON(map[string]any{"function": nil}), "function"},
		{"function leading dash", with("function", "-py"), "function"},
		{"function with dot", with("function", "py.thon"), "function"},

		// Files.
		{"file absolute", with("files", files("/etc/passwd")), filesField("/etc/passwd")},
		{"file dotdot", with("files", files("../x")), filesField("../x")},
		{"file escapes via dotdot", with("files", files("a/../../x")), filesField("a/../../x")},
		{"file dot slash", with("files", files("./a")), filesField("./a")},
		{"file dot", with("files", files(".")), filesField(".")},
		{"file double slash", with("files", files("a//b")), filesField("a//b")},
		{"file trailing slash", with("files", files("a/")), filesField("a/")},
		{"file empty path", with("files", files("")), filesField("")},
		{"file NUL byte", with("files", files("a\x00b")), filesField("a\x00b")},
		{"file newline", with("files", files("a\nb")), filesField("a\nb")},
		{"file too long", with("files", files(strings.Repeat("a", 256))), filesField(strings.Repeat("a", 80) + "...")}, // clipped
		{"file in out/", with("files", files("out/result.json")), filesField("out/result.json")},
		{"file named out", with("files", files("out")), filesField("out")},
		{"file main.py with code", jobJSON(map[string]any{"code": "print(1)", "files": files("main.py")}), `files["main.py"]`},
		{"file main.py without code", with("files", files("main.py")), ""},
		{"file args.json with args", jobJSON(map[string]any{"args": []int{1}, "files": files("args.json")}), `files["args.json"]`},
		{"file inside args.json with args", jobJSON(map[string]any{"args": map[string]int{"a": 1}, "files": files("args.json/x")}), `files["args.json/x"]`},
		{"file inside args.json without args", with("files", files("args.json/x")), ""},
		{"files nested and hidden", with("files", files("lib/util.py", ".config", "output.txt", "data/..x")), ""},
		{"too many files", with("files", files(many(schema.MaxFiles+1, func(i int) string { return fmt.Sprint("f", i) })...)), "files"},

		// Environment.
		{"env ok", with("env", map[string]string{"A_1": "x", "_B": "", "LANG": "C.UTF-8"}), ""},
		{"env reserved prefix", with("env", map[string]string{"BRIG_X": "1"}), envField("BRIG_X")},
		{"env leading digit", with("env", map[string]string{"1A": "1"}), envField("1A")},
		{"env dash", with("env", map[string]string{"A-B": "1"}), envField("A-B")},
		{"env empty name", with("env", map[string]string{"": "1"}), envField("")},
		{"env NUL value", with("env", map[string]string{"A": "x\x00y"}), envField("A")},

		// reply_to.
		{"reply_to star", with("reply_to", "replies.*"), "reply_to"},
		{"reply_to gt", with("reply_to", "replies.>"), "reply_to"},
		{"reply_to space", with("reply_to", "my replies"), "reply_to"},
		{"reply_to empty token", with("reply_to", "a..b"), "reply_to"},
		{"reply_to system", with("reply_to", "$JS.API.x"), "reply_to"},
		{"reply_to submit", with("reply_to", "brig.submit.python"), "reply_to"},
		{"reply_to other job", with("reply_to", "brig.events.OTHERJOB.x"), "reply_to"},
		{"reply_to own id prefix", with("reply_to", "brig.events.default."+testJobID+"x.y"), "reply_to"},
		{"reply_to own id without tenant", with("reply_to", "brig.events."+testJobID+".x"), "reply_to"},
		{"reply_to own id bad tenant", with("reply_to", "brig.events.Default."+testJobID+".x"), "reply_to"},
		{"reply_to too long", with("reply_to", strings.Repeat("a", schema.MaxReplyToLen+1)), "reply_to"},
		{"reply_to outside the inboxes", with("reply_to", "myapp.results"), "reply_to"},
		{"reply_to inbox-like prefix", with("reply_to", "_INBOXES.x"), "reply_to"},
		{"reply_to bare inbox prefix", with("reply_to", "_INBOX"), "reply_to"},
		{"reply_to own events", with("reply_to", "brig.events.default."+testJobID+".x"), ""},
		{"reply_to own events other tenant", with("reply_to", "brig.events.acme."+testJobID+".x"), ""},
		{"reply_to inbox", with("reply_to", "_INBOX.abc"), ""},

		// Numbers.
		{"timeout negative", with("timeout", -1), "timeout"},
		{"timeout over max", with("timeout", schema.MaxTimeoutMS+1), "timeout"},
		{"timeout max", with("timeout", schema.MaxTimeoutMS), ""},
		{"retries 11", with("retries", 11), "retries"},
		{"retries negative", with("retries", -1), "retries"},
		{"retries 10", with("retries", 10), ""},
		{"memory_mb too small", with("limits", map[string]any{"memory_mb": schema.MinMemoryMB - 1}), "limits.memory_mb"},
		{"memory_mb too big", with("limits", map[string]any{"memory_mb": schema.MaxMemoryMB + 1}), "limits.memory_mb"},
		{"memory_mb negative", with("limits", map[string]any{"memory_mb": -1}), "limits.memory_mb"},
		{"cpus too small", with("limits", map[string]any{"cpus": 0.001}), "limits.cpus"},
		{"cpus too big", with("limits", map[string]any{"cpus": schema.MaxCPUs + 1}), "limits.cpus"},
		{"pids too small", with("limits", map[string]any{"pids": schema.MinPids - 1}), "limits.pids"},
		{"pids too big", with("limits", map[string]any{"pids": schema.MaxPids + 1}), "limits.pids"},
		{"output_bytes negative", with("limits", map[string]any{"output_bytes": -1}), "limits.output_bytes"},
		{"output_bytes too big", with("limits", map[string]any{"output_bytes": schema.MaxOutputBytes + 1}), "limits.output_bytes"},
		{"limits at bounds", with("limits", map[string]any{"memory_mb": schema.MaxMemoryMB, "cpus": 0.01, "pids": schema.MinPids, "output_bytes": 1}), ""},
		{"limits zero means default", with("limits", map[string]any{"memory_mb": 0, "cpus": 0, "pids": 0, "output_bytes": 0}), ""},

		// Runtime and scopes.
		{"runtime kata", with("runtime", "kata"), "runtime"},
		{"runtime runsc", with("runtime", "runsc"), ""},
		{"scopes good", jobJSON(map[string]any{"restricted": false, "scopes": []string{"dict:cache:read", "queue:jobs:put", "function:resize:call"}}), ""},
		{"scope bad kind", with("scopes", []string{"file:x:read"}), "scopes[0]"},
		{"scope second bad", with("scopes", []string{"dict:cache:read", "dict:cache"}), "scopes[1]"},
		{"scope wrong action", with("scopes", []string{"queue:jobs:read"}), "scopes[0]"},
		{"too many scopes", with("scopes", many(schema.MaxScopes+1, func(i int) string { return fmt.Sprintf("dict:d%d:read", i) })), "scopes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			job, err := schema.DecodeJob([]byte(tt.data), 0)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("DecodeJob(%s): %v", tt.data, err)
				}
				if err := job.Validate(); err != nil {
					t.Fatalf("decoded job does not validate: %v", err)
				}
				return
			}
			if job != nil {
				t.Errorf("DecodeJob returned a job along with an error")
			}
			wantFieldError(t, err, tt.field)
		})
	}
}

func TestDecodeJobFull(t *testing.T) {
	t.Parallel()
	data := `{
		"id": "job-1", "function": "python", "code": "print(1)", "args": {"n": [1, 2]},
		"stdin": "in", "files": {"lib/a.py": "x = 1"}, "env": {"A": "b"},
		"reply_to": "_INBOX.abc", "timeout": 5000,
		"limits": {"memory_mb": 256, "cpus": 0.5, "pids": 64, "output_bytes": 4096},
		"network": true, "restricted": false, "scopes": ["dict:cache:read"],
		"single_use": false, "runtime": "runsc", "retries": 2
	}`
	want := &schema.Job{
		ID: "job-1", Function: "python", Code: "print(1)", Args: json.RawMessage(`{"n": [1, 2]}`),
		Stdin: "in", Files: map[string]string{"lib/a.py": "x = 1"}, Env: map[string]string{"A": "b"},
		ReplyTo: "_INBOX.abc", TimeoutMS: 5000,
		Limits:  &schema.Limits{MemoryMB: 256, CPUs: 0.5, Pids: 64, OutputBytes: 4096},
		Network: schema.Ptr(true), Restricted: schema.Ptr(false), Scopes: []string{"dict:cache:read"},
		SingleUse: schema.Ptr(false), Runtime: schema.RuntimeRunsc, Retries: 2,
	}
	got, err := schema.DecodeJob([]byte(data), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("DecodeJob =\n%+v\nwant\n%+v", got, want)
	}
}

func TestDecodeJobTooLarge(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		data     string
		maxBytes int
	}{
		{"over explicit cap", with("code", strings.Repeat("x", 100)), 64},
		{"over default cap", with("code", strings.Repeat("x", schema.DefaultMaxJobBytes)), 0},
		{"garbage over cap", strings.Repeat("{", 65), 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := schema.DecodeJob([]byte(tt.data), tt.maxBytes)
			if !errors.Is(err, schema.ErrTooLarge) {
				t.Fatalf("error = %v, want ErrTooLarge", err)
			}
			wantFieldError(t, err, "(message)")
		})
	}
	// At the cap is fine.
	data := with("code", "x")
	if _, err := schema.DecodeJob([]byte(data), len(data)); err != nil {
		t.Errorf("job of exactly maxBytes: %v", err)
	}
}

func eventJSON(fields map[string]any) string {
	m := map[string]any{"job_id": testJobKey, "type": schema.EventAccepted, "seq": 1, "time": "2025-01-02T03:04:05.123456789Z", "attempt": 1}
	maps.Copy(m, fields)
	for k, v := range m {
		if v == nil {
			delete(m, k)
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestDecodeEvent(t *testing.T) {
	t.Parallel()
	terminal := map[string]any{
		"type": schema.EventResult, "status": schema.StatusFailed, "exit_code": 1, "stderr": "boom",
		"output": map[string]int{"x": 1}, "duration_ms": 12,
		"auth_errors": []map[string]string{{"resource": "dict:cache", "action": "write", "message": "denied"}},
		"error":       map[string]any{"type": schema.ErrAuthError, "message": "denied"},
	}
	tests := []struct {
		name  string
		data  string
		field string
	}{
		{"accepted", eventJSON(nil), ""},
		{"output", eventJSON(map[string]any{"type": schema.EventOutput, "stream": schema.StreamStdout, "data": "hi\n"}), ""},
		{"terminal", eventJSON(terminal), ""},
		{"terminal without status", eventJSON(map[string]any{"type": schema.EventTimeout}), "status"},
		{"bad job_id", eventJSON(map[string]any{"job_id": "a.b.c"}), "job_id"},
		{"job_id without tenant", eventJSON(map[string]any{"job_id": testJobID}), "job_id"},
		{"job_id with bad tenant", eventJSON(map[string]any{"job_id": "Default." + testJobID}), "job_id"},
		{"missing type", eventJSON(map[string]any{"type": nil}), "type"},
		{"unknown field", eventJSON(map[string]any{"extra": true}), "extra"},
		{"unknown field in error", eventJSON(map[string]any{"error": map[string]string{"type": "OOM", "code": "x"}}), "error.code"},
		{"unknown field in auth_errors", eventJSON(map[string]any{"auth_errors": []map[string]string{{"resource": "r"}, {"why": "x"}}}), "auth_errors[1].why"},
		{"seq as string", eventJSON(map[string]any{"seq": "1"}), "seq"},
		{"error.type as number", eventJSON(map[string]any{"error": map[string]any{"type": 1}}), "error.type"},
		{"trailing data", eventJSON(nil) + "{}", "(message)"},
		{"not an object", `[]`, "(message)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev, err := schema.DecodeEvent([]byte(tt.data))
			if tt.field != "" {
				wantFieldError(t, err, tt.field)
				return
			}
			if err != nil {
				t.Fatalf("DecodeEvent(%s): %v", tt.data, err)
			}
			if ev.JobID != testJobKey || ev.Time.Nanosecond() != 123456789 {
				t.Errorf("decoded event = %+v", ev)
			}
		})
	}
}

func TestDecodeEventTooLarge(t *testing.T) {
	t.Parallel()
	data := eventJSON(map[string]any{"data": strings.Repeat("x", schema.MaxEventBytes)})
	if _, err := schema.DecodeEvent([]byte(data)); !errors.Is(err, schema.ErrTooLarge) {
		t.Fatalf("error = %v, want ErrTooLarge", err)
	}
}

func validWork() schema.Work {
	return schema.Work{
		Version: schema.Version,
		Job:     schema.Job{ID: testJobKey, Function: "python", Code: "print(1)", Limits: &schema.Limits{MemoryMB: 128}},
		Spec: schema.RunSpec{
			Function: "python", Image: "python:3.13-slim", Command: []string{"python", "/work/main.py"}, Pool: "default",
			Limits:    schema.Limits{MemoryMB: 128, CPUs: 1, Pids: 128, OutputBytes: 1 << 20},
			TimeoutMS: 30000, Runtime: schema.RuntimeRunc, SingleUse: true, Restricted: true, Prewarm: 3,
		},
		Token:      "tok",
		AcceptedAt: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC),
	}
}

func TestDecodeWorkRoundTrip(t *testing.T) {
	t.Parallel()
	w := validWork()
	data, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	got, err := schema.DecodeWork(data)
	if err != nil {
		t.Fatalf("DecodeWork: %v", err)
	}
	if !reflect.DeepEqual(*got, w) {
		t.Errorf("round trip =\n%+v\nwant\n%+v", *got, w)
	}
}

func TestDecodeWorkRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		edit  func(m map[string]any)
		field string
	}{
		{"version mismatch", func(m map[string]any) { m["version"] = schema.Version + 1 }, "version"},
		{"version missing", func(m map[string]any) { delete(m, "version") }, "version"},
		{"invalid job", func(m map[string]any) { m["job"].(map[string]any)["id"] = "a.b.c" }, "job.id"},
		{"job id not a key", func(m map[string]any) { m["job"].(map[string]any)["id"] = testJobID }, "job.id"},
		{"invalid job field", func(m map[string]any) { m["job"].(map[string]any)["timeout"] = -1 }, "timeout"},
		{"invalid spec", func(m map[string]any) { m["spec"].(map[string]any)["image"] = "" }, "spec.image"},
		{"prewarm negative", func(m map[string]any) { m["spec"].(map[string]any)["prewarm"] = -1 }, "spec.prewarm"},
		{"prewarm too many", func(m map[string]any) { m["spec"].(map[string]any)["prewarm"] = schema.MaxPrewarm + 1 }, "spec.prewarm"},
		{"unresolved limits", func(m map[string]any) { m["spec"].(map[string]any)["limits"] = map[string]any{"memory_mb": 64} }, "spec.limits"},
		{"runsc under its memory floor", func(m map[string]any) {
			m["spec"].(map[string]any)["runtime"] = schema.RuntimeRunsc
			m["spec"].(map[string]any)["limits"].(map[string]any)["memory_mb"] = schema.MinRunscMemoryMB - 1
		}, "limits.memory_mb"},
		{"unknown field in spec.limits", func(m map[string]any) {
			m["spec"].(map[string]any)["limits"].(map[string]any)["swap"] = 1
		}, "spec.limits.swap"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			data, err := json.Marshal(validWork())
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal(data, &m); err != nil {
				t.Fatal(err)
			}
			tt.edit(m)
			if data, err = json.Marshal(m); err != nil {
				t.Fatal(err)
			}
			_, err = schema.DecodeWork(data)
			wantFieldError(t, err, tt.field)
		})
	}
}

// A job's files must leave room for its code where its function puts it.
func TestValidateFor(t *testing.T) {
	t.Parallel()
	spec := &schema.RunSpec{CodeFile: "src/main.js"}
	for _, tt := range []struct {
		files map[string]string
		code  string
		want  string
	}{
		{map[string]string{"lib.js": "x"}, "1", ""},
		{map[string]string{"src/main.js": "x"}, "", ""},
		{map[string]string{"src/main.js": "x"}, "1", "clashes with code"},
		{map[string]string{"src/main.js/x": "x"}, "1", "lies inside"},
		{map[string]string{"src": "x"}, "1", "is a file where"},
		{map[string]string{"src/other.js": "x"}, "1", ""},
	} {
		err := (&schema.Job{Code: tt.code, Files: tt.files}).ValidateFor(spec)
		if (tt.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("files %v: %v, want %q", tt.files, err, tt.want)
		}
	}
}
