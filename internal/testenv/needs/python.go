package needs

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// PythonVar names the environment variable that sets the Python
// interpreter the Python client's tests run under; set, a missing or too
// old interpreter fails them instead of skipping (.ci/run sets it).
const PythonVar = "BRIG_PYTHON"

// The oldest Python the client supports (clients/python).
const minPythonMajor, minPythonMinor = 3, 9

// Python returns the path of the interpreter for the Python client's
// tests: $BRIG_PYTHON, else python3 on PATH. It skips t when python3 is
// missing or older than 3.9, or fails it when BRIG_PYTHON was set.
func Python(t testing.TB) string {
	t.Helper()
	name, set := os.Getenv(PythonVar), true
	if name == "" {
		name, set = "python3", false
	}
	path, err := pythonAt(t.Context(), name)
	switch {
	case err == nil:
		return path
	case set:
		t.Fatalf("%s=%s: %v", PythonVar, name, err)
	default:
		t.Skipf("%v; set %s to an interpreter to fail instead", err, PythonVar)
	}
	return ""
}

// pythonAt finds name and checks its version.
func pythonAt(ctx context.Context, name string) (string, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("no Python interpreter: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "-c", `import sys; print("%d %d" % sys.version_info[:2])`).Output()
	if err != nil {
		return "", fmt.Errorf("%s does not run: %w", path, err)
	}
	var v [2]int
	if _, err := fmt.Sscan(strings.TrimSpace(string(out)), &v[0], &v[1]); err != nil {
		return "", fmt.Errorf("%s printed no version: %q", path, out)
	}
	if v[0] < minPythonMajor || v[0] == minPythonMajor && v[1] < minPythonMinor {
		return "", fmt.Errorf("%s is Python %d.%d; the client needs %d.%d or newer", path, v[0], v[1], minPythonMajor, minPythonMinor)
	}
	return path, nil
}
