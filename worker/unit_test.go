package worker

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/brig-dev/brig/internal/initproto"
	"github.com/brig-dev/brig/internal/natstest"
	"github.com/brig-dev/brig/internal/sandbox"
	"github.com/brig-dev/brig/schema"
)

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

// newOutcome builds an outcome as sandbox.Runner.Run would, with captured
// output.
func newOutcome(exit *initproto.Exit, stdout, stderr string) *sandbox.Outcome {
	out := &sandbox.Outcome{Exit: exit, Stdout: sandbox.NewCapture(1 << 10), Stderr: sandbox.NewCapture(1 << 10), InitLog: sandbox.NewCapture(4 << 10)}
	out.Stdout.Add([]byte(stdout))
	out.Stderr.Add([]byte(stderr))
	return out
}

func TestFromOutcome(t *testing.T) {
	t.Parallel()
	spec := schema.RunSpec{TimeoutMS: 1500, Limits: schema.Limits{MemoryMB: 64}}
	tests := []struct {
		name       string
		out        func() *sandbox.Outcome
		wantType   schema.EventType
		wantStatus schema.Status
		wantErr    schema.ErrorType // error.type, "" for none
		wantMsg    []string         // substrings of error.message
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
			out: func() *sandbox.Outcome {
				o := newOutcome(&initproto.Exit{ExitCode: 137, Signal: 9}, "partial", "")
				o.TimedOut = true
				return o
			},
			wantType: schema.EventTimeout, wantStatus: schema.StatusTimeout, wantErr: schema.ErrTimeout,
			wantMsg: []string{"1.5s"}, wantCode: -1, wantStdout: "partial",
		},
		{
			// The kill leaves the container's exit code at 137, which would
			// otherwise read as the job killing its init.
			name: "cancelled while it ran",
			out: func() *sandbox.Outcome {
				o := newOutcome(nil, "so far", "err so far")
				o.Interrupted, o.ContainerExitCode = ErrCancelled, 137
				return o
			},
			wantType: schema.EventCancelled, wantStatus: schema.StatusCancelled, wantErr: schema.ErrCancelled,
			wantMsg: []string{"cancelled"}, wantCode: -1, wantStdout: "so far", wantStderr: "err so far",
		},
		{
			name: "timed out and oom: timeout wins",
			out: func() *sandbox.Outcome {
				o := newOutcome(nil, "", "")
				o.TimedOut, o.OOM = true, true
				return o
			},
			wantType: schema.EventTimeout, wantStatus: schema.StatusTimeout, wantErr: schema.ErrTimeout,
			wantMsg: []string{"timeout"}, wantCode: -1,
		},
		{
			name: "oom with exit frame",
			out: func() *sandbox.Outcome {
				o := newOutcome(&initproto.Exit{ExitCode: 137, Signal: 9, OOMKills: 1, DurationNS: 7e6}, "", "Killed\n")
				o.OOM = true
				return o
			},
			wantType: schema.EventResult, wantStatus: schema.StatusOOM, wantErr: schema.ErrOOM,
			wantMsg: []string{"64 MB"}, wantCode: 137, wantStderr: "Killed\n", wantMS: 7,
		},
		{
			name: "oom without exit frame",
			out: func() *sandbox.Outcome {
				o := newOutcome(nil, "", "")
				o.OOM = true
				return o
			},
			wantType: schema.EventResult, wantStatus: schema.StatusOOM, wantErr: schema.ErrOOM,
			wantMsg: []string{"memory"}, wantCode: -1,
		},
		{
			name: "no exit frame",
			out: func() *sandbox.Outcome {
				o := newOutcome(nil, "", "")
				o.ContainerExitCode = 1
				o.InitLog.Add([]byte("brig init: layout: read-only file system\n"))
				return o
			},
			wantType: schema.EventError, wantStatus: schema.StatusError, wantErr: schema.ErrInfrastructure,
			wantMsg: []string{"container exit code 1", "brig init: layout: read-only file system"}, wantCode: -1,
		},
		{
			name: "exit 0",
			out: func() *sandbox.Outcome {
				return newOutcome(&initproto.Exit{Result: json.RawMessage(`{"sum":3}`), DurationNS: 2_500_000}, "hi\n", "warn\n")
			},
			wantType: schema.EventResult, wantStatus: schema.StatusSucceeded, wantCode: 0,
			wantStdout: "hi\n", wantStderr: "warn\n", wantOutput: `{"sum":3}`, wantMS: 2,
		},
		{
			name: "exit 3",
			out: func() *sandbox.Outcome {
				return newOutcome(&initproto.Exit{ExitCode: 3, DurationNS: 1e9}, "", "boom\n")
			},
			wantType: schema.EventResult, wantStatus: schema.StatusFailed, wantErr: schema.ErrNonZeroExit,
			wantMsg: []string{"code 3"}, wantCode: 3, wantStderr: "boom\n", wantMS: 1000,
		},
		{
			name:     "killed by signal",
			out:      func() *sandbox.Outcome { return newOutcome(&initproto.Exit{ExitCode: 143, Signal: 15}, "", "") },
			wantType: schema.EventResult, wantStatus: schema.StatusFailed, wantErr: schema.ErrNonZeroExit,
			wantMsg: []string{"signal 15"}, wantCode: 143,
		},
		{
			name: "tampered: output and exit discarded",
			out: func() *sandbox.Outcome {
				o := newOutcome(nil, "forged", "also forged")
				o.Tampered = true
				return o
			},
			wantType: schema.EventResult, wantStatus: schema.StatusFailed, wantErr: schema.ErrNonZeroExit,
			wantMsg: []string{"brig's channel"}, wantCode: -1,
		},
		{
			name: "result error in output_error, stderr the job's own",
			out: func() *sandbox.Outcome {
				return newOutcome(&initproto.Exit{ResultError: "result is not valid JSON"}, "", "own\n")
			},
			wantType: schema.EventResult, wantStatus: schema.StatusSucceeded, wantCode: 0,
			wantStderr: "own\n", wantOutputErr: "out/result.json: result is not valid JSON",
		},
		{
			name: "result too deep: the job's business",
			out: func() *sandbox.Outcome {
				return newOutcome(&initproto.Exit{ExitCode: 2, Result: []byte(strings.Repeat("[", 100) + strings.Repeat("]", 100))}, "x", "")
			},
			wantType: schema.EventResult, wantStatus: schema.StatusFailed, wantErr: schema.ErrNonZeroExit, wantCode: 2,
			wantStdout: "x", wantOutputErr: "out/result.json nests 100 levels deep, over the limit of 64 levels",
		},
		{
			name:  "init killed under gVisor: the job's doing",
			runsc: true,
			out: func() *sandbox.Outcome {
				o := newOutcome(nil, "partial", "")
				o.ContainerExitCode = 137
				return o
			},
			wantType: schema.EventResult, wantStatus: schema.StatusFailed, wantErr: schema.ErrNonZeroExit,
			wantMsg: []string{"init was killed"}, wantCode: 137, wantStdout: "partial",
		},
		{
			name: "init killed under runc (the job lowered its CPU limit)",
			out: func() *sandbox.Outcome {
				o := newOutcome(nil, "", "")
				o.ContainerExitCode = 137
				return o
			},
			wantType: schema.EventResult, wantStatus: schema.StatusFailed, wantErr: schema.ErrNonZeroExit,
			wantMsg: []string{"container exit code 137", "uid"}, wantCode: 137,
		},
		{
			name: "init starved of threads",
			out: func() *sandbox.Outcome {
				o := newOutcome(nil, "", "")
				o.ContainerExitCode = 2
				o.InitLog.Add([]byte("runtime: failed to create new OS thread (have 8 already)\nfatal error: newosproc\n"))
				return o
			},
			wantType: schema.EventResult, wantStatus: schema.StatusFailed, wantErr: schema.ErrNonZeroExit,
			wantMsg: []string{"container exit code 2"}, wantCode: 2,
		},
		{
			name: "init panicked: brig's failure",
			out: func() *sandbox.Outcome {
				o := newOutcome(nil, "", "")
				o.ContainerExitCode = 2
				o.InitLog.Add([]byte("panic: runtime error: index out of range\nfatal error: x\n"))
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
	out := &sandbox.Outcome{Exit: &initproto.Exit{}, Stdout: sandbox.NewCapture(3), Stderr: sandbox.NewCapture(3), InitLog: sandbox.NewCapture(10)}
	out.Stdout.Add([]byte("abcdef"))
	out.Stderr.Add([]byte("xyz"))
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

// TestEgressRefusalsCoalesced: a refusal repeated (a resolver asking
// again) is counted but reported once; past schema.MaxEgressDeniedEvents
// distinct refusals none is reported and a summary is due; the terminal
// list keeps the first schema.MaxTerminalEgressDenials distinct ones.
func TestEgressRefusalsCoalesced(t *testing.T) {
	var r refusals
	var got []schema.EgressDenial
	on := r.onEgressDenied(func(d schema.EgressDenial) { got = append(got, d) })
	dup := schema.EgressDenial{Host: "evil.test", Port: 53, Reason: schema.EgressNotAllowed, Message: "x"}
	for range 5 {
		on(dup)
	}
	on(schema.EgressDenial{Host: "evil.test", Port: 443, Reason: schema.EgressNotAllowed})
	if len(got) != 2 {
		t.Fatalf("reported %d refusals, want 2 (one per distinct host, port, reason): %+v", len(got), got)
	}
	list, n, all := r.egressDenials()
	if n != 6 || !all || len(list) != 2 {
		t.Fatalf("tally %d, all %v, list %+v; want 6, true, 2 entries", n, all, list)
	}
	for i := range 2 * schema.MaxEgressDeniedEvents {
		on(schema.EgressDenial{Host: fmt.Sprintf("h%d.test", i), Port: 443, Reason: schema.EgressNotAllowed})
	}
	list, n, all = r.egressDenials()
	if len(got) != schema.MaxEgressDeniedEvents || all || n != 6+2*schema.MaxEgressDeniedEvents || len(list) != schema.MaxTerminalEgressDenials {
		t.Fatalf("reported %d, all %v, counted %d, listed %d", len(got), all, n, len(list))
	}
	on(schema.EgressDenial{Host: "evil\x00\x1b[31m.test", Port: 1, Reason: schema.EgressProtocol})
	if l := len(got); l != schema.MaxEgressDeniedEvents {
		t.Fatalf("reported %d past the bound", l)
	}
}

// TestNATSAddrsBlocked: the egress proxy's Blocked list holds the NATS
// server the worker is connected to.
func TestNATSAddrsBlocked(t *testing.T) {
	_, nc, _ := natstest.Start(t)
	got := natsAddrs(nc)()
	if !slices.Contains(got, netip.MustParseAddr("127.0.0.1")) {
		t.Fatalf("natsAddrs = %v, want the server's 127.0.0.1", got)
	}
}
