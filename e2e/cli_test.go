package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/brig-dev/brig/schema"
)

// cliResult is what one run of the brig binary did.
type cliResult struct {
	code   int
	stdout string
	stderr string
}

// brigCLI runs the static brig binary with args, with no BRIG_SERVER from
// the environment.
func brigCLI(t *testing.T, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	cmd := exec.CommandContext(ctx, brigBin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BRIG_SERVER=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("brig %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("brig %s: still running after %s", strings.Join(args, " "), jobBudget)
	}
	return cliResult{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

// codeFile writes python code to a file in a temp dir.
func codeFile(t *testing.T, code string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "job.py")
	if err := os.WriteFile(p, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func wantExit(t *testing.T, r cliResult, want int) {
	t.Helper()
	if r.code != want {
		t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", r.code, want, clip(r.stdout), clip(r.stderr))
	}
}

func TestCLI(t *testing.T) {
	t.Parallel()
	url := stack.URL()
	hiID := newID("cli-hi")

	t.Run("run --json", func(t *testing.T) {
		t.Parallel()
		r := brigCLI(t, "run", "--server", url, "--json", "--id", hiID, codeFile(t, `print("hi")`))
		wantExit(t, r, 0)
		var ev schema.Event
		if err := json.Unmarshal([]byte(r.stdout), &ev); err != nil {
			t.Fatalf("stdout is not one JSON event: %v: %q", err, r.stdout)
		}
		if ev.JobID != hiID || !schema.IsTerminal(ev.Type) || ev.Status != schema.StatusSucceeded || ev.Stdout != "hi\n" {
			t.Errorf("terminal event = %s, want job %s succeeded with stdout \"hi\\n\"", brief(&ev), hiID)
		}
		// watch replays the job that just ended.
		for _, tc := range []struct {
			name string
			args []string
		}{
			{"watch flags last", []string{"watch", hiID, "--server", url}},
			{"watch flags first", []string{"watch", "--server", url, hiID}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := brigCLI(t, tc.args...)
				wantExit(t, r, 0)
				checkWatchOutput(t, r.stdout, hiID)
			})
		}
	})
	t.Run("exit code", func(t *testing.T) {
		t.Parallel()
		r := brigCLI(t, "run", "--server", url, codeFile(t, "import sys\nprint('before exit')\nsys.exit(7)"))
		wantExit(t, r, 7)
		if r.stdout != "before exit\n" {
			t.Errorf("streamed stdout %q, want %q", r.stdout, "before exit\n")
		}
	})
	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		r := brigCLI(t, "run", "--server", url, "--timeout", "1s", codeFile(t, "while True:\n    pass"))
		wantExit(t, r, 124)
	})
	t.Run("rejected job", func(t *testing.T) {
		t.Parallel()
		r := brigCLI(t, "run", "--server", url, "--function", "nosuch", codeFile(t, `print("hi")`))
		wantExit(t, r, 125)
	})
	t.Run("unreachable server", func(t *testing.T) {
		t.Parallel()
		r := brigCLI(t, "run", "--server", "nats://127.0.0.1:1", codeFile(t, `print("hi")`))
		wantExit(t, r, 125)
		if strings.Contains(r.stderr, "embedded") {
			t.Errorf("fell back to an embedded brig despite --server: %s", r.stderr)
		}
	})

}

// checkWatchOutput wants JSON lines of the job's events, from accepted to
// the terminal one.
func checkWatchOutput(t *testing.T, out, jobID string) {
	t.Helper()
	var evs []schema.Event
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var ev schema.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %d is not a JSON event: %v: %q", len(evs)+1, err, sc.Text())
		}
		if ev.JobID != jobID {
			t.Errorf("event of job %q, want %q", ev.JobID, jobID)
		}
		evs = append(evs, ev)
	}
	if len(evs) == 0 {
		t.Fatalf("no events printed")
	}
	if evs[0].Type != schema.EventAccepted {
		t.Errorf("first event %s, want accepted", evs[0].Type)
	}
	if last := evs[len(evs)-1]; !schema.IsTerminal(last.Type) || last.Status != schema.StatusSucceeded {
		t.Errorf("last event %s, want the terminal succeeded one", brief(&last))
	}
}
