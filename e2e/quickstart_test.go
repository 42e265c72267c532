package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/brig-dev/brig/internal/testenv"
)

// TestQuickStart runs the README's first command as a newcomer would, with
// no server named: `brig run examples/hello.py` starts an embedded brig for
// the one job (nothing listens on the default address in CI), prints the
// job's output, exits 0, and leaves no container behind.
func TestQuickStart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	cmd := exec.CommandContext(ctx, brigBin, "run", filepath.Join("..", "examples", "hello.py"))
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BRIG_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("brig run examples/hello.py: %v\nstderr:\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "hello from brig") {
		t.Errorf("stdout %q, want the example's hello", stdout.String())
	}
	embedded := strings.Contains(stderr.String(), "embedded brig")
	t.Logf("embedded: %v; stderr: %s", embedded, clip(stderr.String()))
	if !embedded {
		return // a brig on the default address ran it
	}
	// The embedded brig's worker id is "run-" + its temp dir's name.
	if err := testenv.RemoveLeftovers(ctx, "run-brig-run-"); err != nil {
		t.Errorf("the embedded brig: %v", err)
	}
}
