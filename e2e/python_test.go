package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/brig-dev/brig/internal/testenv/needs"
)

// pythonBudget bounds the Python client's whole e2e run: some thirty jobs,
// one after another, none longer than its own timeout (at most 60 s).
const pythonBudget = 10 * time.Minute

// pythonEnv is the environment of a Python process aimed at the shared
// stack's HTTP API as its default tenant: BRIG_URL, BRIG_TOKEN (the
// stack's default.token, the tenant's credential as a bearer token) and
// the client on PYTHONPATH; nothing else of the caller's BRIG_ or PYTHON
// variables.
func pythonEnv(t *testing.T) []string {
	t.Helper()
	token, err := os.ReadFile(stack.ClientToken)
	if err != nil {
		t.Fatalf("the stack's client token: %v", err)
	}
	client, err := filepath.Abs("../clients/python")
	if err != nil {
		t.Fatal(err)
	}
	return append(scrubbedEnv("BRIG_", "PYTHON"), "BRIG_URL="+stack.HTTPURL(),
		"BRIG_TOKEN="+strings.TrimSpace(string(token)), "PYTHONPATH="+client, "PYTHONDONTWRITEBYTECODE=1")
}

// runPython runs py with args in dir and returns its stdout and stderr.
func runPython(t *testing.T, py, dir string, budget time.Duration, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), budget)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, args...)
	cmd.Dir, cmd.Env = dir, pythonEnv(t)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %s: still running after %s\nstderr: %s", py, strings.Join(args, " "), budget, errOut.String())
	}
	return out.String(), errOut.String(), err
}

// TestPythonClient runs the Python client's end-to-end tests
// (clients/python/tests/test_e2e.py) against the shared stack's HTTP API:
// run with every input, submit and events, cancel, AuthError, timeout,
// failure, OOM, rejection, functions, status. Any Python test failing or
// skipped fails it.
func TestPythonClient(t *testing.T) {
	t.Parallel()
	py := needs.Python(t)
	_, stderr, err := runPython(t, py, "../clients/python", pythonBudget,
		"-X", "dev", "-m", "unittest", "discover", "-v", "-s", "tests", "-p", "test_e2e.py")
	t.Logf("test_e2e.py:\n%s", stderr)
	if err != nil {
		t.Fatalf("the Python client's e2e tests failed: %v", err)
	}
	if !strings.Contains(stderr, "\nOK") || strings.Contains(stderr, "skipped") {
		t.Fatalf("the Python client's e2e tests did not all run and pass")
	}
}

// TestPythonReadmeExamples runs each Python block of the README's "From
// Python" section exactly as written, with BRIG_URL and BRIG_TOKEN set
// and the client on PYTHONPATH, and wants the output the README shows
// below it (its `# ` lines at the end of the block).
func TestPythonReadmeExamples(t *testing.T) {
	t.Parallel()
	py := needs.Python(t)
	blocks := readmePythonBlocks(t)
	if len(blocks) < 3 {
		t.Fatalf("the README's From Python section has %d Python examples, want run, submit + events, AuthError", len(blocks))
	}
	for i, block := range blocks {
		t.Run(fmt.Sprint(i+1), func(t *testing.T) {
			t.Parallel()
			want := readmeOutput(block)
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "example.py"), []byte(block), 0o644); err != nil {
				t.Fatal(err)
			}
			stdout, stderr, err := runPython(t, py, dir, jobBudget, "example.py")
			if err != nil {
				t.Fatalf("README example %d: %v\n%s\nstderr: %s", i+1, err, block, stderr)
			}
			if got := strings.TrimSpace(stdout); got != want {
				t.Errorf("README example %d printed %q, the README shows %q", i+1, got, want)
			}
		})
	}
}

// readmePythonBlocks returns the ```python blocks of the README's
// "## From Python" section.
func readmePythonBlocks(t *testing.T) []string {
	t.Helper()
	return readmeBlocks(t, "From Python", "python")
}
