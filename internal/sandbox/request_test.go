package sandbox

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/brig-dev/brig/internal/initproto"
	"github.com/brig-dev/brig/schema"
)

func TestInitRequest(t *testing.T) {
	t.Parallel()
	baseSpec := func() schema.RunSpec {
		return schema.RunSpec{
			Command:  []string{"python3", "/work/main.py"},
			Env:      map[string]string{"PATH": "/bin", "LANG": "C", "HOME": "/tmp"},
			CodeFile: "main.py",
			Limits:   schema.Limits{OutputBytes: 4096},
		}
	}
	tests := []struct {
		name      string
		job       schema.Job
		spec      func(*schema.RunSpec)
		wantFiles map[string]string
		wantEnv   []string
	}{
		{
			name:      "code goes to the code file",
			job:       schema.Job{Code: "print(1)"},
			wantFiles: map[string]string{"main.py": "print(1)"},
			wantEnv:   []string{"HOME=/tmp", "LANG=C", "PATH=/bin"},
		},
		{
			name:      "function's own code file",
			job:       schema.Job{Code: "x"},
			spec:      func(s *schema.RunSpec) { s.CodeFile = "src/app.py" },
			wantFiles: map[string]string{"src/app.py": "x"},
			wantEnv:   []string{"HOME=/tmp", "LANG=C", "PATH=/bin"},
		},
		{
			name:      "no code, no code file",
			job:       schema.Job{Files: map[string]string{"data.txt": "d"}},
			wantFiles: map[string]string{"data.txt": "d"},
			wantEnv:   []string{"HOME=/tmp", "LANG=C", "PATH=/bin"},
		},
		{
			name:      "args go to args.json",
			job:       schema.Job{Args: json.RawMessage(`{"n":[1,2]}`)},
			wantFiles: map[string]string{"args.json": `{"n":[1,2]}`},
			wantEnv:   []string{"HOME=/tmp", "LANG=C", "PATH=/bin"},
		},
		{
			name: "code, args and files together",
			job: schema.Job{
				Code: "c", Args: json.RawMessage(`1`),
				Files: map[string]string{"lib/a.py": "a", "b.txt": "b"},
			},
			wantFiles: map[string]string{"main.py": "c", "args.json": "1", "lib/a.py": "a", "b.txt": "b"},
			wantEnv:   []string{"HOME=/tmp", "LANG=C", "PATH=/bin"},
		},
		{
			name:      "job env overrides spec env, sorted",
			job:       schema.Job{Env: map[string]string{"PATH": "/opt/bin", "ZED": "z", "A_FIRST": "1", "EMPTY": ""}},
			wantFiles: map[string]string{},
			wantEnv:   []string{"A_FIRST=1", "EMPTY=", "HOME=/tmp", "LANG=C", "PATH=/opt/bin", "ZED=z"},
		},
		{
			name:      "no env at all",
			spec:      func(s *schema.RunSpec) { s.Env = nil },
			wantFiles: map[string]string{},
			wantEnv:   []string{},
		},
		{
			name:      "values with = and newlines",
			job:       schema.Job{Env: map[string]string{"Q": "a=b\nc"}},
			spec:      func(s *schema.RunSpec) { s.Env = nil },
			wantFiles: map[string]string{},
			wantEnv:   []string{"Q=a=b\nc"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			spec := baseSpec()
			if tt.spec != nil {
				tt.spec(&spec)
			}
			job := tt.job
			job.ID, job.Stdin = "j", "in"
			jobFilesBefore := fmt.Sprint(job.Files)
			specEnvBefore := fmt.Sprint(spec.Env)
			req := initRequest(&schema.Work{Job: job, Spec: spec}, nil)

			if !reflect.DeepEqual(req.Files, tt.wantFiles) {
				t.Errorf("Files = %q, want %q", req.Files, tt.wantFiles)
			}
			if req.Env == nil || !reflect.DeepEqual(req.Env, tt.wantEnv) {
				// A nil Env would make exec inherit the init's environment.
				t.Errorf("Env = %#v, want %#v", req.Env, tt.wantEnv)
			}
			if !reflect.DeepEqual(req.Command, spec.Command) {
				t.Errorf("Command = %q, want %q", req.Command, spec.Command)
			}
			if req.Dir != schema.WorkDir || req.Stdin != "in" {
				t.Errorf("Dir, Stdin = %q, %q", req.Dir, req.Stdin)
			}
			if req.OutputLimit != 4096 {
				t.Errorf("OutputLimit = %d, want 4096", req.OutputLimit)
			}
			if req.ResultPath != "/work/out/result.json" || req.ResultMaxBytes != schema.MaxResultBytes {
				t.Errorf("ResultPath, ResultMaxBytes = %q, %d", req.ResultPath, req.ResultMaxBytes)
			}

			req.Files["injected"] = "x"
			if got := fmt.Sprint(job.Files); got != jobFilesBefore {
				t.Errorf("request's files alias the job's: job.Files became %s", got)
			}
			if got := fmt.Sprint(spec.Env); got != specEnvBefore {
				t.Errorf("spec.Env changed to %s", got)
			}
		})
	}
}

// The request survives the wire with an empty, not null, environment.
func TestInitRequestEmptyEnvOnTheWire(t *testing.T) {
	t.Parallel()
	req := initRequest(&schema.Work{Job: schema.Job{ID: "j"}, Spec: schema.RunSpec{Command: []string{"true"}}}, nil)
	var buf strings.Builder
	if err := initproto.WriteRequest(&buf, req); err != nil {
		t.Fatal(err)
	}
	got, err := initproto.ReadRequest(strings.NewReader(buf.String()))
	if err != nil {
		t.Fatal(err)
	}
	if got.Env == nil || len(got.Env) != 0 {
		t.Errorf("Env after the wire = %#v, want an empty non-nil slice", got.Env)
	}
}
