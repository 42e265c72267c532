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
	"slices"
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

// brigCLI runs the static brig binary with args. Nothing of the test's
// environment picks its server or credential: BRIG_SERVER, BRIG_CREDS and
// BRIG_TLS_CA are removed, and XDG_DATA_HOME is an empty dir, so there is
// no local dev's default.creds to fall back on; every call names its
// --creds (docs/design.md §10).
func brigCLI(t *testing.T, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	cmd := exec.CommandContext(ctx, brigBin, args...)
	cmd.Env = append(scrubbedEnv("BRIG_SERVER=", "BRIG_CREDS=", "BRIG_TLS_CA=", "XDG_DATA_HOME="), "XDG_DATA_HOME="+t.TempDir())
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

// scrubbedEnv is the test's environment without the variables that start
// with any of prefixes.
func scrubbedEnv(prefixes ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(kv, p) }) {
			env = append(env, kv)
		}
	}
	return env
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

// TestCLI runs brig's job commands against the shared stack as the
// default tenant does, with its client credential; deploy and status,
// which need more, with the admin's.
func TestCLI(t *testing.T) {
	t.Parallel()
	url := stack.URL()
	client := []string{"--server", url, "--creds", stack.ClientCreds}
	admin := []string{"--server", url, "--creds", stack.AdminCreds}
	hiID := newID("cli-hi")
	cmd := func(name string, flags []string, rest ...string) []string {
		return append(append([]string{name}, flags...), rest...)
	}

	t.Run("run --json", func(t *testing.T) {
		t.Parallel()
		r := brigCLI(t, cmd("run", client, "--json", "--id", hiID, codeFile(t, `print("hi")`))...)
		wantExit(t, r, 0)
		var ev schema.Event
		if err := json.Unmarshal([]byte(r.stdout), &ev); err != nil {
			t.Fatalf("stdout is not one JSON event: %v: %q", err, r.stdout)
		}
		if ev.JobID != keyOf(hiID) || !schema.IsTerminal(ev.Type) || ev.Status != schema.StatusSucceeded || ev.Stdout != "hi\n" {
			t.Errorf("terminal event = %s, want job %s succeeded with stdout \"hi\\n\"", brief(&ev), keyOf(hiID))
		}
		// watch replays the job that just ended.
		for _, tc := range []struct {
			name string
			args []string
		}{
			{"watch flags last", append([]string{"watch", hiID}, client...)},
			{"watch flags first", cmd("watch", client, hiID)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := brigCLI(t, tc.args...)
				wantExit(t, r, 0)
				checkWatchOutput(t, r.stdout, keyOf(hiID))
			})
		}
	})
	t.Run("exit code", func(t *testing.T) {
		t.Parallel()
		r := brigCLI(t, cmd("run", client, codeFile(t, "import sys\nprint('before exit')\nsys.exit(7)"))...)
		wantExit(t, r, 7)
		if r.stdout != "before exit\n" {
			t.Errorf("streamed stdout %q, want %q", r.stdout, "before exit\n")
		}
	})
	t.Run("cancel of an unknown id", func(t *testing.T) {
		t.Parallel()
		id := newID("cli-typo")
		r := brigCLI(t, cmd("cancel", client, id)...)
		wantExit(t, r, 125)
		if !strings.Contains(r.stderr, "NotFound") {
			t.Errorf("stderr %q, want it to say NotFound", r.stderr)
		}
		// The id is not poisoned: a job with it runs.
		r = brigCLI(t, cmd("run", client, "--id", id, codeFile(t, `print("fine")`))...)
		wantExit(t, r, 0)
		if r.stdout != "fine\n" {
			t.Errorf("a job with the id after the cancel: stdout %q", r.stdout)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		r := brigCLI(t, cmd("run", client, "--timeout", "1s", codeFile(t, "while True:\n    pass"))...)
		wantExit(t, r, 124)
	})
	t.Run("rejected job", func(t *testing.T) {
		t.Parallel()
		r := brigCLI(t, cmd("run", client, "--function", "nosuch", codeFile(t, `print("hi")`))...)
		wantExit(t, r, 125)
	})
	t.Run("unreachable server", func(t *testing.T) {
		t.Parallel()
		r := brigCLI(t, "run", "--server", "nats://127.0.0.1:1", "--creds", stack.ClientCreds, codeFile(t, `print("hi")`))
		wantExit(t, r, 125)
		if strings.Contains(r.stderr, "embedded") {
			t.Errorf("fell back to an embedded brig despite --server: %s", r.stderr)
		}
	})
	t.Run("no credential", func(t *testing.T) {
		t.Parallel()
		// The server refuses an anonymous client; brig must say so and
		// not fall back to an embedded brig, since the server was named.
		r := brigCLI(t, "run", "--server", url, codeFile(t, `print("hi")`))
		wantExit(t, r, 125)
		if strings.Contains(r.stderr, "embedded") {
			t.Errorf("fell back to an embedded brig despite --server: %s", r.stderr)
		}
	})
	t.Run("deploy and status", func(t *testing.T) {
		t.Parallel()
		name := "cli-fn-" + randomHex(4)
		defs := filepath.Join(t.TempDir(), "functions.yaml")
		if err := os.WriteFile(defs, []byte(cliFunction(name)), 0o644); err != nil {
			t.Fatal(err)
		}
		// A tenant may not deploy: only the admin's credential stores
		// functions (§10).
		if r := brigCLI(t, cmd("deploy", client, defs)...); r.code == 0 {
			t.Errorf("brig deploy with a client credential succeeded:\n%s%s", r.stdout, r.stderr)
		}
		if r := brigCLI(t, cmd("run", client, "--function", name, codeFile(t, `print("hi")`))...); r.code != 125 {
			t.Errorf("a job of the function a client failed to deploy: exit %d, want 125 (no such function)\nstderr: %s", r.code, clip(r.stderr))
		}
		r := brigCLI(t, cmd("deploy", admin, defs)...)
		wantExit(t, r, 0)
		if !strings.Contains(r.stdout, "deployed "+name) {
			t.Errorf("brig deploy printed %q, want \"deployed %s ...\"", r.stdout, name)
		}
		r = brigCLI(t, cmd("run", client, "--function", name, codeFile(t, `print("deployed by admin")`))...)
		wantExit(t, r, 0)
		if r.stdout != "deployed by admin\n" {
			t.Errorf("stdout %q of a job of the admin's function", r.stdout)
		}

		// A tenant sees its own view, answered by a dispatcher, and
		// nothing of the fleet or of other tenants.
		r = brigCLI(t, cmd("status", client, "--json")...)
		wantExit(t, r, 0)
		var own map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &own); err != nil {
			t.Fatalf("brig status --json as a tenant: %v: %q", err, clip(r.stdout))
		}
		if own["tenant"] != "default" || own["workers"] != nil || own["tenants"] != nil || own["streams"] != nil {
			t.Errorf("brig status as a tenant shows more than its own view:\n%s", clip(r.stdout))
		}
		r = brigCLI(t, cmd("status", admin, "--json")...)
		wantExit(t, r, 0)
		var st struct {
			Workers []struct{ ID string } `json:"workers"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
			t.Fatalf("brig status --json: %v: %q", err, clip(r.stdout))
		}
		if !slices.ContainsFunc(st.Workers, func(w struct{ ID string }) bool { return w.ID == workerID }) {
			t.Errorf("brig status shows workers %+v, want the shared worker %s", st.Workers, workerID)
		}
	})
}

// cliFunction is a function definition for brig deploy: python under
// another name.
func cliFunction(name string) string {
	return `name: ` + name + `
image: brig/python:latest
command: ["python3", "/work/main.py"]
env:
  PATH: /usr/local/bin:/usr/bin:/bin
  HOME: /tmp
  LANG: C.UTF-8
  PYTHONUNBUFFERED: "1"
`
}

// checkWatchOutput wants JSON lines of the events of the job of a key (an
// event's job_id), from accepted to the terminal one.
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
