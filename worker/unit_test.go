package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	cerrdefs "github.com/containerd/errdefs"

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

func TestSanitizeID(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 70)
	tests := []struct {
		in, want string
	}{
		{"worker-1", "worker-1"},
		{"Host_Name-09", "Host_Name-09"},
		{"host.example.com", "host-example-com"},
		{"my host", "my-host"},
		{"a/b:c*d>e", "a-b-c-d-e"},
		{"héllo", "h--llo"}, // é is two bytes, each replaced
		{"日本", "w------"},
		{".hidden", "w-hidden"},
		{"_x", "w_x"},
		{long, long[:64]},
		{strings.Repeat("é", 40), "w" + strings.Repeat("-", 63)},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got := sanitizeID(tt.in)
			if got != tt.want {
				t.Errorf("sanitizeID(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if tt.in != "" && !schema.ValidName(got) {
				t.Errorf("sanitizeID(%q) = %q is not a valid worker id", tt.in, got)
			}
		})
	}
}

// newOutcome builds an outcome as runSandbox would, with captured output.
func newOutcome(exit *initproto.Exit, stdout, stderr string) *outcome {
	out := &outcome{exit: exit, stdout: newCapture(1 << 10), stderr: newCapture(1 << 10), initLog: newCapture(initStderrCap)}
	out.stdout.add([]byte(stdout))
	out.stderr.add([]byte(stderr))
	return out
}

func TestFromOutcome(t *testing.T) {
	t.Parallel()
	spec := schema.RunSpec{TimeoutMS: 1500, Limits: schema.Limits{MemoryMB: 64}}
	tests := []struct {
		name       string
		out        func() *outcome
		wantType   string
		wantStatus string
		wantErr    string   // error.type, "" for none
		wantMsg    []string // substrings of error.message
		wantCode   int
		wantStdout string
		wantStderr string
		wantOutput string
		wantMS     int64
		// wantOutputErr is output_error; runsc runs the job under gVisor.
		wantOutputErr string
		runsc         bool
	}{
		{
			name: "timed out",
			out: func() *outcome {
				o := newOutcome(&initproto.Exit{ExitCode: 137, Signal: 9}, "partial", "")
				o.timedOut = true
				return o
			},
			wantType: schema.EventTimeout, wantStatus: schema.StatusTimeout, wantErr: schema.ErrTimeout,
			wantMsg: []string{"1.5s"}, wantCode: -1, wantStdout: "partial",
		},
		{
			name: "timed out and oom: timeout wins",
			out: func() *outcome {
				o := newOutcome(nil, "", "")
				o.timedOut, o.oom = true, true
				return o
			},
			wantType: schema.EventTimeout, wantStatus: schema.StatusTimeout, wantErr: schema.ErrTimeout,
			wantMsg: []string{"timeout"}, wantCode: -1,
		},
		{
			name: "oom with exit frame",
			out: func() *outcome {
				o := newOutcome(&initproto.Exit{ExitCode: 137, Signal: 9, OOMKills: 1, DurationNS: 7e6}, "", "Killed\n")
				o.oom = true
				return o
			},
			wantType: schema.EventResult, wantStatus: schema.StatusOOM, wantErr: schema.ErrOOM,
			wantMsg: []string{"64 MB"}, wantCode: 137, wantStderr: "Killed\n", wantMS: 7,
		},
		{
			name: "oom without exit frame",
			out: func() *outcome {
				o := newOutcome(nil, "", "")
				o.oom = true
				return o
			},
			wantType: schema.EventResult, wantStatus: schema.StatusOOM, wantErr: schema.ErrOOM,
			wantMsg: []string{"memory"}, wantCode: -1,
		},
		{
			name: "no exit frame",
			out: func() *outcome {
				o := newOutcome(nil, "", "")
				o.exitCode = 1
				o.initLog.add([]byte("brig init: layout: read-only file system\n"))
				return o
			},
			wantType: schema.EventError, wantStatus: schema.StatusError, wantErr: schema.ErrInfrastructure,
			wantMsg: []string{"container exit code 1", "brig init: layout: read-only file system"}, wantCode: -1,
		},
		{
			name: "exit 0",
			out: func() *outcome {
				return newOutcome(&initproto.Exit{Result: json.RawMessage(`{"sum":3}`), DurationNS: 2_500_000}, "hi\n", "warn\n")
			},
			wantType: schema.EventResult, wantStatus: schema.StatusSucceeded, wantCode: 0,
			wantStdout: "hi\n", wantStderr: "warn\n", wantOutput: `{"sum":3}`, wantMS: 2,
		},
		{
			name:     "exit 3",
			out:      func() *outcome { return newOutcome(&initproto.Exit{ExitCode: 3, DurationNS: 1e9}, "", "boom\n") },
			wantType: schema.EventResult, wantStatus: schema.StatusFailed, wantErr: schema.ErrNonZeroExit,
			wantMsg: []string{"code 3"}, wantCode: 3, wantStderr: "boom\n", wantMS: 1000,
		},
		{
			name:     "killed by signal",
			out:      func() *outcome { return newOutcome(&initproto.Exit{ExitCode: 143, Signal: 15}, "", "") },
			wantType: schema.EventResult, wantStatus: schema.StatusFailed, wantErr: schema.ErrNonZeroExit,
			wantMsg: []string{"signal 15"}, wantCode: 143,
		},
		{
			name: "result error in output_error, stderr the job's own",
			out: func() *outcome {
				return newOutcome(&initproto.Exit{ResultError: "result is not valid JSON"}, "", "own\n")
			},
			wantType: schema.EventResult, wantStatus: schema.StatusSucceeded, wantCode: 0,
			wantStderr: "own\n", wantOutputErr: "out/result.json: result is not valid JSON",
		},
		{
			name: "result too deep: the job's business",
			out: func() *outcome {
				return newOutcome(&initproto.Exit{ExitCode: 2, Result: []byte(strings.Repeat("[", 100) + strings.Repeat("]", 100))}, "x", "")
			},
			wantType: schema.EventResult, wantStatus: schema.StatusFailed, wantErr: schema.ErrNonZeroExit, wantCode: 2,
			wantStdout: "x", wantOutputErr: "out/result.json nests 100 levels deep, over the limit of 64 levels",
		},
		{
			name:  "init killed under gVisor: the job's doing",
			runsc: true,
			out: func() *outcome {
				o := newOutcome(nil, "partial", "")
				o.exitCode = 137
				return o
			},
			wantType: schema.EventResult, wantStatus: schema.StatusFailed, wantErr: schema.ErrNonZeroExit,
			wantMsg: []string{"init was killed"}, wantCode: 137, wantStdout: "partial",
		},
		{
			name: "init killed under runc (the job lowered its CPU limit)",
			out: func() *outcome {
				o := newOutcome(nil, "", "")
				o.exitCode = 137
				return o
			},
			wantType: schema.EventResult, wantStatus: schema.StatusFailed, wantErr: schema.ErrNonZeroExit,
			wantMsg: []string{"container exit code 137", "uid"}, wantCode: 137,
		},
		{
			name: "init starved of threads",
			out: func() *outcome {
				o := newOutcome(nil, "", "")
				o.exitCode = 2
				o.initLog.add([]byte("runtime: failed to create new OS thread (have 8 already)\nfatal error: newosproc\n"))
				return o
			},
			wantType: schema.EventResult, wantStatus: schema.StatusFailed, wantErr: schema.ErrNonZeroExit,
			wantMsg: []string{"container exit code 2"}, wantCode: 2,
		},
		{
			name: "init panicked: brig's failure",
			out: func() *outcome {
				o := newOutcome(nil, "", "")
				o.exitCode = 2
				o.initLog.add([]byte("panic: runtime error: index out of range\nfatal error: x\n"))
				return o
			},
			wantType: schema.EventError, wantStatus: schema.StatusError, wantErr: schema.ErrInfrastructure,
			wantMsg: []string{"container exit code 2", "panic"}, wantCode: -1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			em := &emitter{job: &schema.Job{ID: "j"}, attempt: 1, seq: 1}
			spec := spec
			if tt.runsc {
				spec.Runtime = schema.RuntimeRunsc
			}
			ev := em.fromOutcome(tt.out(), spec)
			if ev.OutputError != tt.wantOutputErr {
				t.Errorf("OutputError = %q, want %q", ev.OutputError, tt.wantOutputErr)
			}
			if ev.JobID != "j" || ev.Attempt != 1 || ev.Seq != 2 {
				t.Errorf("JobID, Attempt, Seq = %q, %d, %d; want j, 1, 2", ev.JobID, ev.Attempt, ev.Seq)
			}
			if ev.Type != tt.wantType || ev.Status != tt.wantStatus || ev.ExitCode != tt.wantCode {
				t.Errorf("Type, Status, ExitCode = %q, %q, %d; want %q, %q, %d",
					ev.Type, ev.Status, ev.ExitCode, tt.wantType, tt.wantStatus, tt.wantCode)
			}
			switch {
			case tt.wantErr == "" && ev.Error != nil:
				t.Errorf("Error = %+v, want none", ev.Error)
			case tt.wantErr != "" && ev.Error == nil:
				t.Errorf("Error = nil, want type %q", tt.wantErr)
			case tt.wantErr != "":
				if ev.Error.Type != tt.wantErr {
					t.Errorf("Error.Type = %q, want %q", ev.Error.Type, tt.wantErr)
				}
				for _, s := range tt.wantMsg {
					if !strings.Contains(ev.Error.Message, s) {
						t.Errorf("Error.Message = %q, want it to mention %q", ev.Error.Message, s)
					}
				}
			}
			if ev.Stdout != tt.wantStdout || ev.Stderr != tt.wantStderr {
				t.Errorf("Stdout, Stderr = %q, %q; want %q, %q", ev.Stdout, ev.Stderr, tt.wantStdout, tt.wantStderr)
			}
			if string(ev.Output) != tt.wantOutput || ev.DurationMS != tt.wantMS {
				t.Errorf("Output, DurationMS = %s, %d; want %s, %d", ev.Output, ev.DurationMS, tt.wantOutput, tt.wantMS)
			}
		})
	}
}

func TestFromOutcomeTruncationAndSeq(t *testing.T) {
	t.Parallel()
	em := &emitter{job: &schema.Job{ID: "j"}, attempt: 2, seq: 1}
	out := &outcome{exit: &initproto.Exit{}, stdout: newCapture(3), stderr: newCapture(3), initLog: newCapture(10)}
	out.stdout.add([]byte("abcdef"))
	out.stderr.add([]byte("xyz"))
	first := em.fromOutcome(out, schema.RunSpec{})
	if first.Stdout != "abc" || !first.StdoutTruncated || first.Stderr != "xyz" || first.StderrTruncated {
		t.Errorf("Stdout %q (truncated %v), Stderr %q (truncated %v); want abc true, xyz false",
			first.Stdout, first.StdoutTruncated, first.Stderr, first.StderrTruncated)
	}
	second := em.fromOutcome(out, schema.RunSpec{})
	third := em.terminal(schema.StatusRejected, schema.ErrInvalidJob, "bad")
	if first.Seq != 2 || second.Seq != 3 || third.Seq != 4 {
		t.Errorf("Seq = %d, %d, %d; want 2, 3, 4", first.Seq, second.Seq, third.Seq)
	}
	if third.Attempt != 2 || third.Type != schema.EventError || third.ExitCode != -1 {
		t.Errorf("terminal: Attempt %d, Type %q, ExitCode %d", third.Attempt, third.Type, third.ExitCode)
	}
}

func TestDockerError(t *testing.T) {
	t.Parallel()
	spec := schema.RunSpec{Image: "brig/python:latest", Runtime: "runsc"}
	type wrapped struct {
		id  string
		err error
	}
	wrap := func(id string, err error) wrapped { return wrapped{id, err} }
	tests := []struct {
		name       string
		err        wrapped
		wantStatus string // "" when the error passes through
		wantType   string
		wantMsg    string
	}{
		{
			name:       "image not found",
			err:        wrap("j", cerrdefs.ErrNotFound.WithMessage("No such image: brig/python:latest")),
			wantStatus: schema.StatusError, wantType: schema.ErrNotFound, wantMsg: `"brig/python:latest"`,
		},
		{
			name:       "image not found, wrapped with %w",
			err:        wrap("j", fmt.Errorf("Image brig/python:latest: %w", cerrdefs.ErrNotFound)),
			wantStatus: schema.StatusError, wantType: schema.ErrNotFound, wantMsg: "brig image build",
		},
		{
			name:       "unknown runtime",
			err:        wrap("j", cerrdefs.ErrInvalidArgument.WithMessage("unknown or invalid runtime name: runsc")),
			wantStatus: schema.StatusRejected, wantType: schema.ErrInvalidJob, wantMsg: `runtime "runsc"`,
		},
		{name: "container not found", err: wrap("j", cerrdefs.ErrNotFound.WithMessage("No such container: abc"))},
		{name: "other invalid argument", err: wrap("j", cerrdefs.ErrInvalidArgument.WithMessage("minimum memory limit is 6MB"))},
		{name: "image in a plain error", err: wrap("j", errors.New("pull image: connection refused"))},
		{name: "runtime in a plain error", err: wrap("j", errors.New("runtime exploded"))},
		{name: "unavailable", err: wrap("j", cerrdefs.ErrUnavailable)},
		{name: "context", err: wrap("j", context.DeadlineExceeded)},
		// The job id is the client's: it must not decide how Docker's error
		// is read.
		{name: "container not found, job id mentions image", err: wrap("image-resize-1", cerrdefs.ErrNotFound.WithMessage("No such container: abc"))},
		{name: "invalid argument, job id mentions runtime", err: wrap("runtime-test", cerrdefs.ErrInvalidArgument.WithMessage("minimum memory limit is 6MB"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := dockerError("create", tt.err.id, tt.err.err, spec)
			var jf *jobFailure
			if tt.wantStatus == "" {
				if errors.As(got, &jf) || !errors.Is(got, tt.err.err) || !strings.Contains(got.Error(), tt.err.id) {
					t.Errorf("dockerError(%q) = %v (%T), want it wrapped for a retry", tt.err.err, got, got)
				}
				return
			}
			if !errors.As(got, &jf) {
				t.Fatalf("dockerError(%q) = %v (%T), want *jobFailure", tt.err.err, got, got)
			}
			if jf.status != tt.wantStatus || jf.errType != tt.wantType {
				t.Errorf("status, errType = %q, %q; want %q, %q", jf.status, jf.errType, tt.wantStatus, tt.wantType)
			}
			if !strings.Contains(jf.Error(), tt.wantMsg) {
				t.Errorf("message %q does not mention %q", jf.Error(), tt.wantMsg)
			}
		})
	}
}

func TestDecodeExit(t *testing.T) {
	t.Parallel()
	got, err := decodeExit([]byte(`{"exit_code":3,"signal":9,"result":"eyJhIjpbMSwyXX0=","duration_ns":42,"oom_kills":1}`))
	want := initproto.Exit{ExitCode: 3, Signal: 9, Result: []byte(`{"a":[1,2]}`), DurationNS: 42, OOMKills: 1}
	if err != nil || !reflect.DeepEqual(*got, want) {
		t.Errorf("decodeExit = %+v, %v; want %+v", got, err, want)
	}
	for _, bad := range []string{"\x00\x01", "", `{"exit_code":"0"}`, `{"result":{"a":1}}`} {
		if got, err := decodeExit([]byte(bad)); err == nil {
			t.Errorf("decodeExit(%q) = %+v, want an error", bad, got)
		}
	}
}

// jobOutput carries any result within the caps byte for byte and says why
// of any other, whatever the init claims.
func TestJobOutput(t *testing.T) {
	t.Parallel()
	atCap := `"` + strings.Repeat("<", schema.MaxResultBytes-2) + `"`
	deepest := strings.Repeat("[", schema.MaxResultDepth) + strings.Repeat("]", schema.MaxResultDepth)
	tests := []struct {
		name      string
		exit      initproto.Exit
		want, why string
	}{
		{"none", initproto.Exit{}, "", ""},
		{"as written", initproto.Exit{Result: []byte(" {\n \"a\": \"<&>\"\n}\n")}, "{\n \"a\": \"<&>\"\n}", ""},
		{"at the size cap", initproto.Exit{Result: []byte(atCap)}, atCap, ""},
		{"over the size cap", initproto.Exit{Result: []byte(atCap + " 1")}, "", "over the 262144-byte limit"},
		{"at the depth cap", initproto.Exit{Result: []byte(deepest)}, deepest, ""},
		{"over the depth cap", initproto.Exit{Result: []byte("[" + deepest + "]")}, "", "65 levels deep"},
		{"10,000 deep", initproto.Exit{Result: []byte(strings.Repeat("[", 10000) + strings.Repeat("]", 10000))}, "", "10000 levels deep"},
		{"not JSON", initproto.Exit{Result: []byte("{'a': 1}")}, "", "not valid JSON"},
		{"two values", initproto.Exit{Result: []byte("1 2")}, "", "not valid JSON"},
		{"init's reason", initproto.Exit{ResultError: "result is not a regular file"}, "", "result.json: result is not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, why := jobOutput(&tt.exit)
			if string(got) != tt.want || !strings.Contains(why, tt.why) || (tt.why == "") != (why == "") {
				t.Errorf("jobOutput = %.40q (%d bytes), %q; want %.40q, %q", got, len(got), why, tt.want, tt.why)
			}
		})
	}
}

func TestIsStatic(t *testing.T) {
	t.Parallel()
	if _, err := isStatic(os.Args[0]); err != nil {
		t.Errorf("isStatic(test binary): %v", err)
	}
	notELF := filepath.Join(t.TempDir(), "script.sh")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\ntrue\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{notELF, filepath.Join(t.TempDir(), "missing")} {
		if _, err := isStatic(path); err == nil {
			t.Errorf("isStatic(%s) = nil error, want one", path)
		}
	}
}
