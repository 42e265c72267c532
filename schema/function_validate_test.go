package schema_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/brig-dev/brig/schema"
)

// validFunction is a minimal valid definition.
func validFunction() schema.Function {
	return schema.Function{Name: "grader", Image: "brig/python:latest", Command: []string{"python3", "/work/main.py"}}
}

// checkFunctionError fails unless err is a *schema.FieldError for field,
// or nil when field is "".
func checkFunctionError(t *testing.T, err error, field string) {
	t.Helper()
	if field == "" {
		if err != nil {
			t.Fatalf("error = %v, want none", err)
		}
		return
	}
	var fe *schema.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error = %v (%T), want a *schema.FieldError for %q", err, err, field)
	}
	if fe.Field != field {
		t.Fatalf("error field = %q, want %q (error: %v)", fe.Field, field, err)
	}
}

func TestFunctionValidate(t *testing.T) {
	t.Parallel()
	envOf := func(n int) map[string]string {
		m := map[string]string{}
		for i := range n {
			m[fmt.Sprintf("K%d", i)] = "v"
		}
		return m
	}
	scopesOf := func(n int) []string {
		s := make([]string, n)
		for i := range s {
			s[i] = fmt.Sprintf("dict:d%d:read", i)
		}
		return s
	}
	tests := []struct {
		name  string
		edit  func(f *schema.Function)
		field string // "" means valid
	}{
		{"minimal", func(*schema.Function) {}, ""},
		{"built-in python", func(f *schema.Function) { *f = schema.Python() }, ""},
		{"everything set", func(f *schema.Function) {
			f.Env = map[string]string{"PATH": "/usr/bin", "_x1": ""}
			f.CodeFile = "src/app.py"
			f.Limits = schema.Limits{MemoryMB: 128, CPUs: 0.5, Pids: 64, OutputBytes: 1024}
			f.TimeoutMS = 10_000
			f.Scopes = []string{"dict:grades:write", "function:python:call", "queue:q:get"}
			f.Restricted, f.Network, f.SingleUse = schema.Ptr(false), schema.Ptr(true), schema.Ptr(false)
			f.Pool = "gpu-1"
			f.Runtime = schema.RuntimeRunsc
			f.SingleUse = schema.Ptr(true)
		}, ""},

		{"name empty", func(f *schema.Function) { f.Name = "" }, "name"},
		{"name with dot", func(f *schema.Function) { f.Name = "a.b" }, "name"},
		{"name leading dash", func(f *schema.Function) { f.Name = "-a" }, "name"},
		{"name too long", func(f *schema.Function) { f.Name = strings.Repeat("a", 65) }, "name"},

		{"image with registry and digest", func(f *schema.Function) {
			f.Image = "registry.example.com:5000/team/img:v1@sha256:" + strings.Repeat("a", 64)
		}, ""},
		{"image without tag", func(f *schema.Function) { f.Image = "python" }, ""},
		{"image empty", func(f *schema.Function) { f.Image = "" }, "image"},
		{"image with space", func(f *schema.Function) { f.Image = "brig/python latest" }, "image"},
		{"image with newline", func(f *schema.Function) { f.Image = "brig/python\n" }, "image"},
		{"image uppercase", func(f *schema.Function) { f.Image = "Brig/Python" }, "image"},
		{"image bad tag", func(f *schema.Function) { f.Image = "brig/python:" }, "image"},
		{"image too long", func(f *schema.Function) { f.Image = strings.Repeat("a", 256) }, "image"},

		{"command nil", func(f *schema.Function) { f.Command = nil }, "command"},
		{"command empty program", func(f *schema.Function) { f.Command = []string{"", "x"} }, "command[0]"},
		{"command empty later arg", func(f *schema.Function) { f.Command = []string{"sh", ""} }, ""},
		{"command NUL", func(f *schema.Function) { f.Command = []string{"sh", "a\x00b"} }, "command[1]"},
		{"command too long", func(f *schema.Function) { f.Command = make([]string, schema.MaxCommandArgs+1); f.Command[0] = "x" }, "command"},
		{"warmup set", func(f *schema.Function) { f.Warmup = []string{"python3", "-c", "import json"} }, ""},
		{"warmup empty", func(f *schema.Function) { f.Warmup = []string{} }, "warmup"},
		{"warmup empty program", func(f *schema.Function) { f.Warmup = []string{""} }, "warmup[0]"},
		{"warmup NUL", func(f *schema.Function) { f.Warmup = []string{"x", "a\x00b"} }, "warmup[1]"},
		{"preload", func(f *schema.Function) { f.Preload = []string{"json", "urllib.parse", "_x9"} }, ""},
		{"preload not a module", func(f *schema.Function) { f.Preload = []string{"json", "os;x"} }, "preload[1]"},
		{"preload leading digit", func(f *schema.Function) { f.Preload = []string{"9x"} }, "preload[0]"},
		{"preload empty part", func(f *schema.Function) { f.Preload = []string{"a..b"} }, "preload[0]"},
		{"preload too long", func(f *schema.Function) { f.Preload = []string{strings.Repeat("a", schema.MaxModuleName+1)} }, "preload[0]"},
		{"preload main", func(f *schema.Function) { f.Preload = []string{"json", "__main__"} }, "preload[1]"},
		{"preload a package's main", func(f *schema.Function) { f.Preload = []string{"venv.__main__"} }, "preload[0]"},
		{"preload too many", func(f *schema.Function) { f.Preload = make([]string, schema.MaxPreload+1) }, "preload"},

		{"env bad key", func(f *schema.Function) { f.Env = map[string]string{"1X": "v"} }, `env["1X"]`},
		{"env key with =", func(f *schema.Function) { f.Env = map[string]string{"A=B": "v"} }, `env["A=B"]`},
		{"env reserved prefix", func(f *schema.Function) { f.Env = map[string]string{"BRIG_TOKEN": "v"} }, `env["BRIG_TOKEN"]`},
		{"env NUL value", func(f *schema.Function) { f.Env = map[string]string{"A": "\x00"} }, `env["A"]`},
		{"env too many", func(f *schema.Function) { f.Env = envOf(schema.MaxEnv + 1) }, "env"},

		{"code_file absolute", func(f *schema.Function) { f.CodeFile = "/etc/passwd" }, "code_file"},
		{"code_file escapes", func(f *schema.Function) { f.CodeFile = "../x.py" }, "code_file"},
		{"code_file unclean", func(f *schema.Function) { f.CodeFile = "a//b.py" }, "code_file"},
		{"code_file in out/", func(f *schema.Function) { f.CodeFile = "out/x.py" }, "code_file"},
		{"code_file args.json", func(f *schema.Function) { f.CodeFile = "args.json" }, "code_file"},

		{"memory too low", func(f *schema.Function) { f.Limits.MemoryMB = 1 }, "limits.memory_mb"},
		{"cpus too high", func(f *schema.Function) { f.Limits.CPUs = 1000 }, "limits.cpus"},
		{"pids negative", func(f *schema.Function) { f.Limits.Pids = -1 }, "limits.pids"},
		{"output too large", func(f *schema.Function) { f.Limits.OutputBytes = schema.MaxOutputBytes + 1 }, "limits.output_bytes"},

		{"prewarm max", func(f *schema.Function) { f.Prewarm = schema.MaxPrewarm }, ""},
		{"prewarm negative", func(f *schema.Function) { f.Prewarm = -1 }, "prewarm"},
		{"prewarm too many", func(f *schema.Function) { f.Prewarm = schema.MaxPrewarm + 1 }, "prewarm"},

		{"timeout max", func(f *schema.Function) { f.TimeoutMS = schema.MaxTimeoutMS }, ""},
		{"timeout negative", func(f *schema.Function) { f.TimeoutMS = -1 }, "timeout_ms"},
		{"timeout too long", func(f *schema.Function) { f.TimeoutMS = schema.MaxTimeoutMS + 1 }, "timeout_ms"},

		{"scopes all", func(f *schema.Function) { f.Scopes = []string{"*"} }, ""},
		{"scopes bad kind", func(f *schema.Function) { f.Scopes = []string{"dict:a:read", "file:a:read"} }, "scopes[1]"},
		{"scopes bad action", func(f *schema.Function) { f.Scopes = []string{"dict:a:put"} }, "scopes[0]"},
		{"scopes wildcard name", func(f *schema.Function) { f.Scopes = []string{"dict:*:read"} }, "scopes[0]"},
		{"scopes empty string", func(f *schema.Function) { f.Scopes = []string{""} }, "scopes[0]"},
		{"scopes too many", func(f *schema.Function) { f.Scopes = scopesOf(schema.MaxScopes + 1) }, "scopes"},

		{"quotas set", func(f *schema.Function) {
			f.Quotas = schema.Quotas{DictMB: 1, DictKeys: 10, QueueMB: schema.MaxQuotaMB, QueueMessages: schema.MaxQuotaCount,
				Resources: schema.MaxResources, Calls: schema.MaxCalls}
		}, ""},
		{"quotas dict_mb negative", func(f *schema.Function) { f.Quotas.DictMB = -1 }, "quotas.dict_mb"},
		{"quotas dict_mb too large", func(f *schema.Function) { f.Quotas.DictMB = schema.MaxQuotaMB + 1 }, "quotas.dict_mb"},
		{"quotas dict_keys too large", func(f *schema.Function) { f.Quotas.DictKeys = schema.MaxQuotaCount + 1 }, "quotas.dict_keys"},
		{"quotas queue_mb too large", func(f *schema.Function) { f.Quotas.QueueMB = schema.MaxQuotaMB + 1 }, "quotas.queue_mb"},
		{"quotas queue_messages negative", func(f *schema.Function) { f.Quotas.QueueMessages = -5 }, "quotas.queue_messages"},
		{"quotas resources too many", func(f *schema.Function) { f.Quotas.Resources = schema.MaxResources + 1 }, "quotas.resources"},
		{"quotas calls too many", func(f *schema.Function) { f.Quotas.Calls = schema.MaxCalls + 1 }, "quotas.calls"},

		{"pool bad", func(f *schema.Function) { f.Pool = "a.b" }, "pool"},
		{"runtime runc", func(f *schema.Function) { f.Runtime = schema.RuntimeRunc }, ""},
		{"runtime bad", func(f *schema.Function) { f.Runtime = "kata" }, "runtime"},
		{"reuse under runc", func(f *schema.Function) { f.SingleUse = schema.Ptr(false) }, ""},
		{"reuse under runsc", func(f *schema.Function) {
			f.Runtime, f.SingleUse = schema.RuntimeRunsc, schema.Ptr(false)
		}, "single_use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := validFunction()
			tt.edit(&f)
			checkFunctionError(t, f.Validate(), tt.field)
		})
	}
}

func TestDecodeFunction(t *testing.T) {
	t.Parallel()
	valid := `{"name":"grader","image":"brig/python:latest","command":["python3","/work/main.py"]`
	tests := []struct {
		name  string
		data  string
		field string
	}{
		{"valid", valid + `}`, ""},
		{"valid with limits", valid + `,"limits":{"memory_mb":128},"scopes":["*"]}`, ""},
		{"unknown field", valid + `,"imag":"x"}`, "imag"},
		{"unknown nested field", valid + `,"limits":{"memry_mb":1}}`, "limits.memry_mb"},
		{"case-insensitive match", valid + `,"Image":"x"}`, "Image"},
		{"duplicate key", valid + `,"name":"other"}`, "name"},
		{"wrong type", valid + `,"timeout_ms":"10"}`, "timeout_ms"},
		{"invalid after decoding", valid + `,"runtime":"kata"}`, "runtime"},
		{"not an object", `["x"]`, "(message)"},
		{"trailing data", valid + `}{}`, "(message)"},
		{"too large", valid + `,"env":{"A":"` + strings.Repeat("x", schema.MaxFunctionBytes) + `"}}`, "(message)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := schema.DecodeFunction([]byte(tt.data))
			checkFunctionError(t, err, tt.field)
			if tt.field == "" && f.Name != "grader" {
				t.Errorf("decoded name = %q", f.Name)
			}
		})
	}
}

func TestFunctionRoundTrip(t *testing.T) {
	t.Parallel()
	want := schema.Python()
	want.Limits.MemoryMB = 128
	data, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := schema.DecodeFunction(data)
	if err != nil {
		t.Fatalf("DecodeFunction(%s): %v", data, err)
	}
	again, _ := json.Marshal(got)
	if string(again) != string(data) {
		t.Errorf("round trip changed the definition:\n got %s\nwant %s", again, data)
	}
}

func FuzzDecodeFunction(f *testing.F) {
	f.Add([]byte(`{"name":"grader","image":"brig/python:latest","command":["python3","/work/main.py"],"limits":{"memory_mb":128},"scopes":["*","dict:a:read"]}`))
	f.Add([]byte(`{"name":"a","image":"x","command":["x"],"env":{"A":"b"},"code_file":"src/m.py"}`))
	f.Add([]byte(`{"name":"a","image":"x","command":["x"],"egress":["API.example.com.","*.example.org:8443","10.0.0.0/8"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fn, err := schema.DecodeFunction(data)
		if err != nil {
			return
		}
		again, err := json.Marshal(fn)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if _, err := schema.DecodeFunction(again); err != nil && len(again) <= schema.MaxFunctionBytes {
			t.Fatalf("a decoded function does not decode again: %v\n%s", err, again)
		}
	})
}

func TestQuotasWithDefaults(t *testing.T) {
	t.Parallel()
	got := schema.Quotas{DictMB: 1, Calls: 2}.WithDefaults()
	want := schema.Quotas{DictMB: 1, DictKeys: schema.DefaultDictKeys, QueueMB: schema.DefaultQueueMB,
		QueueMessages: schema.DefaultQueueMessages, Resources: schema.DefaultResources, Calls: 2}
	if got != want {
		t.Fatalf("WithDefaults = %+v, want %+v", got, want)
	}
	if (schema.Quotas{}).WithDefaults().Validate("") != nil {
		t.Fatal("the defaults are not valid quotas")
	}
}
