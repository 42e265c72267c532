package dispatcher

import (
	"reflect"
	"strings"
	"testing"

	"github.com/brig-dev/brig/internal/functions"
	"github.com/brig-dev/brig/schema"
)

func python(t *testing.T) *schema.Function {
	t.Helper()
	fn, err := functions.Builtin{}.Resolve(t.Context(), schema.DefaultTenant, "python")
	if err != nil {
		t.Fatalf("resolve python: %v", err)
	}
	return fn
}

func TestBuildSpecPythonDefaults(t *testing.T) {
	t.Parallel()
	fn := python(t)
	spec := buildSpec(&schema.Job{ID: "j", Function: "python", Scopes: []string{"dict:a:read"}}, fn)
	want := schema.RunSpec{
		Function:   "python",
		Image:      "brig/python:latest",
		Command:    []string{"python3", "/work/main.py"},
		Warmup:     []string{"python3", "-c", "pass"},
		Zygote:     true,
		Preload:    schema.PythonPreload(),
		Env:        fn.Env,
		CodeFile:   "main.py",
		Pool:       "default",
		Limits:     schema.Limits{MemoryMB: 256, CPUs: 1, Pids: 128, OutputBytes: 256 << 10},
		TimeoutMS:  30000,
		Network:    false,
		Runtime:    "runc",
		SingleUse:  true,
		Restricted: true,
		Quotas:     schema.Quotas{}.WithDefaults(),
	}
	if !reflect.DeepEqual(spec, want) {
		t.Errorf("buildSpec(python) =\n %+v\nwant\n %+v", spec, want)
	}
	if spec.Scopes != nil {
		t.Errorf("restricted job got scopes %q", spec.Scopes)
	}

	// The spec owns its env and command: a worker-side change must not
	// reach the function definition.
	spec.Env["PATH"] = "/evil"
	spec.Env["NEW"] = "x"
	spec.Command[0] = "sh"
	if fn.Env["PATH"] != "/usr/local/bin:/usr/bin:/bin" || fn.Env["NEW"] != "" {
		t.Errorf("spec env aliases the function's: %v", fn.Env)
	}
	if fn.Command[0] != "python3" {
		t.Errorf("spec command aliases the function's: %v", fn.Command)
	}
}

func TestBuildSpecJobOverrides(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		job  schema.Job
		want func(*schema.RunSpec)
	}{
		{"timeout", schema.Job{TimeoutMS: 5000}, func(s *schema.RunSpec) { s.TimeoutMS = 5000 }},
		{"memory only", schema.Job{Limits: &schema.Limits{MemoryMB: 64}}, func(s *schema.RunSpec) { s.Limits.MemoryMB = 64 }},
		{"cpus only", schema.Job{Limits: &schema.Limits{CPUs: 0.5}}, func(s *schema.RunSpec) { s.Limits.CPUs = 0.5 }},
		{"pids only", schema.Job{Limits: &schema.Limits{Pids: 32}}, func(s *schema.RunSpec) { s.Limits.Pids = 32 }},
		{"output only", schema.Job{Limits: &schema.Limits{OutputBytes: 100}}, func(s *schema.RunSpec) { s.Limits.OutputBytes = 100 }},
		{"empty limits", schema.Job{Limits: &schema.Limits{}}, func(*schema.RunSpec) {}},
		{
			"all limits",
			schema.Job{Limits: &schema.Limits{MemoryMB: 1024, CPUs: 2, Pids: 512, OutputBytes: 1 << 20}},
			func(s *schema.RunSpec) {
				s.Limits = schema.Limits{MemoryMB: 1024, CPUs: 2, Pids: 512, OutputBytes: 1 << 20}
			},
		},
		{"network on", schema.Job{Network: schema.Ptr(true)}, func(s *schema.RunSpec) { s.Network = true }},
		{"network off", schema.Job{Network: schema.Ptr(false)}, func(*schema.RunSpec) {}},
		{"runsc", schema.Job{Runtime: schema.RuntimeRunsc}, func(s *schema.RunSpec) { s.Runtime = schema.RuntimeRunsc }},
		{"reusable", schema.Job{SingleUse: schema.Ptr(false)}, func(s *schema.RunSpec) { s.SingleUse = false }},
		{"single use", schema.Job{SingleUse: schema.Ptr(true)}, func(*schema.RunSpec) {}},
		{"restricted true", schema.Job{Restricted: schema.Ptr(true), Scopes: []string{"dict:a:read"}}, func(*schema.RunSpec) {}},
		{"retries", schema.Job{Retries: 3}, func(s *schema.RunSpec) { s.Retries = 3 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fn := python(t)
			want := buildSpec(&schema.Job{ID: "j", Function: "python"}, fn)
			tt.want(&want)
			job := tt.job
			job.ID, job.Function = "j", "python"
			if got := buildSpec(&job, fn); !reflect.DeepEqual(got, want) {
				t.Errorf("buildSpec =\n %+v\nwant\n %+v", got, want)
			}
		})
	}
}

// A function's own settings replace the defaults, and the job's replace
// the function's.
func TestBuildSpecFunctionDefaults(t *testing.T) {
	t.Parallel()
	fn := &schema.Function{
		Name: "tool", Image: "tool:1", Command: []string{"/bin/tool"},
		CodeFile: "src/in.txt", Pool: "gpu", TimeoutMS: 9000, Runtime: schema.RuntimeRunsc,
		Limits:  schema.Limits{MemoryMB: 512, CPUs: 4, Pids: 64, OutputBytes: 1000},
		Network: schema.Ptr(true), SingleUse: schema.Ptr(false), Restricted: schema.Ptr(false),
		Scopes:  []string{"queue:q:put"},
		Quotas:  schema.Quotas{DictMB: 2, Calls: 3},
		Prewarm: 3,
	}
	spec := buildSpec(&schema.Job{ID: "j", Function: "tool", Scopes: []string{"queue:q:put", "queue:q:get"}}, fn)
	want := schema.RunSpec{
		Function: "tool", Image: "tool:1", Command: []string{"/bin/tool"}, CodeFile: "src/in.txt",
		Pool: "gpu", Limits: fn.Limits, TimeoutMS: 9000, Network: true, Runtime: schema.RuntimeRunsc,
		SingleUse: false, Restricted: false, Scopes: []string{"queue:q:put"}, Prewarm: 3,
		Quotas: schema.Quotas{DictMB: 2, DictKeys: schema.DefaultDictKeys, QueueMB: schema.DefaultQueueMB,
			QueueMessages: schema.DefaultQueueMessages, Resources: schema.DefaultResources, Calls: 3},
	}
	if !reflect.DeepEqual(spec, want) {
		t.Errorf("buildSpec(tool) =\n %+v\nwant\n %+v", spec, want)
	}

	job := &schema.Job{
		ID: "j", Function: "tool", TimeoutMS: 100, Runtime: schema.RuntimeRunc,
		Limits:  &schema.Limits{MemoryMB: 32},
		Network: schema.Ptr(false), SingleUse: schema.Ptr(true), Restricted: schema.Ptr(true),
		Scopes: []string{"queue:q:put"},
	}
	spec = buildSpec(job, fn)
	want.TimeoutMS, want.Runtime, want.Limits.MemoryMB = 100, schema.RuntimeRunc, 32
	want.Network, want.SingleUse, want.Restricted, want.Scopes = false, true, true, nil
	if !reflect.DeepEqual(spec, want) {
		t.Errorf("buildSpec(tool, overrides) =\n %+v\nwant\n %+v", spec, want)
	}
}

func TestBuildSpecScopes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		allowed    []string
		restricted *bool
		requested  []string
		want       []string
	}{
		{"restricted by default", []string{"*"}, nil, []string{"dict:a:read"}, nil},
		{"restricted explicitly", []string{"*"}, schema.Ptr(true), []string{"dict:a:read"}, nil},
		{"intersection", []string{"dict:a:read"}, schema.Ptr(false), []string{"dict:a:read", "dict:b:write"}, []string{"dict:a:read"}},
		{"star allows all", []string{"*"}, schema.Ptr(false), []string{"dict:a:read", "dict:b:write"}, []string{"dict:a:read", "dict:b:write"}},
		{"star among others", []string{"dict:a:read", "*"}, schema.Ptr(false), []string{"queue:q:get"}, []string{"queue:q:get"}},
		{"function allows none", nil, schema.Ptr(false), []string{"dict:a:read"}, nil},
		{"nothing requested", []string{"*"}, schema.Ptr(false), nil, nil},
		{"no partial matches", []string{"dict:a:read"}, schema.Ptr(false), []string{"dict:a:write", "dict:a", "dict:a:read:x"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fn := python(t)
			fn.Scopes = tt.allowed
			job := &schema.Job{ID: "j", Function: "python", Restricted: tt.restricted, Scopes: tt.requested}
			spec := buildSpec(job, fn)
			if spec.Restricted != (tt.restricted == nil || *tt.restricted) {
				t.Errorf("Restricted = %v", spec.Restricted)
			}
			if !reflect.DeepEqual(spec.Scopes, tt.want) {
				t.Errorf("Scopes = %q, want %q", spec.Scopes, tt.want)
			}
		})
	}
}

func TestBuiltinEcho(t *testing.T) {
	t.Parallel()
	fn, err := functions.Builtin{}.Resolve(t.Context(), schema.DefaultTenant, "echo")
	if err != nil {
		t.Fatal(err)
	}
	spec := buildSpec(&schema.Job{ID: "e1", Function: "echo", Stdin: "x"}, fn)
	if !spec.Echo || spec.Image != "" {
		t.Errorf("echo spec = %+v, want a queue-only spec without an image", spec)
	}
	if err := spec.Validate(); err != nil {
		t.Errorf("echo spec invalid: %v", err)
	}
	// A python spec without an image is still refused: only echo may lack one.
	py := buildSpec(&schema.Job{ID: "p1", Function: "python"}, python(t))
	py.Image = ""
	if err := py.Validate(); err == nil {
		t.Error("a container spec without an image validated")
	}
}

func TestReuseRefusedUnderGVisor(t *testing.T) {
	t.Parallel()
	job := &schema.Job{ID: "r1", Function: "python", SingleUse: schema.Ptr(false), Runtime: schema.RuntimeRunsc}
	spec := buildSpec(job, python(t))
	err := spec.Validate()
	if err == nil || !strings.Contains(err.Error(), "single_use") {
		t.Errorf("reuse under runsc: err = %v, want one naming single_use", err)
	}
	job.Runtime = schema.RuntimeRunc
	spec = buildSpec(job, python(t))
	if err := spec.Validate(); err != nil || spec.SingleUse {
		t.Errorf("reuse under runc: err = %v, single_use %v", err, spec.SingleUse)
	}
}
