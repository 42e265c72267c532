package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/brig-dev/brig/worker"
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
	list, err := docker.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", worker.LabelWorker))})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list {
		if strings.HasPrefix(c.Labels[worker.LabelWorker], "run-brig-run-") {
			t.Errorf("the embedded brig left container %.12s (%s)", c.ID, c.Labels[worker.LabelWorker])
		}
	}
}
