// Package python runs the Python client's unit tests
// (clients/python/tests/test_unit_*.py, stdlib unittest) under go test,
// with $BRIG_PYTHON or python3 on PATH (internal/testenv/needs.Python).
// The client's end-to-end tests run from e2e/python_test.go.
package python

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/brig-dev/brig/internal/testenv/needs"
)

// unitBudget bounds the whole unit run (about a second on a laptop).
const unitBudget = 5 * time.Minute

// TestPythonUnit runs every test_unit_*.py; a failing Python test fails
// it, and its output (unittest -v) is the log.
func TestPythonUnit(t *testing.T) {
	py := needs.Python(t)
	ctx, cancel := context.WithTimeout(t.Context(), unitBudget)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "-X", "dev", "-m", "unittest", "discover", "-v", "-s", "tests", "-p", "test_unit_*.py")
	cmd.Env = append(withoutVars(os.Environ(), "BRIG_", "PYTHON"), "PYTHONPATH=.", "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	t.Logf("%s -m unittest:\n%s", py, out)
	if ctx.Err() != nil {
		t.Fatalf("the Python unit tests were still running after %s", unitBudget)
	}
	if err != nil {
		t.Fatalf("the Python unit tests failed: %v", err)
	}
	if !strings.Contains(string(out), "\nOK") {
		t.Fatalf("unittest did not say OK")
	}
}

// withoutVars drops the variables named with one of the prefixes, so
// that the caller's BRIG_URL or PYTHONPATH cannot steer the tests.
func withoutVars(env []string, prefixes ...string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		return slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(kv, p) })
	})
}
