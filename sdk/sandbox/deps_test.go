package sandbox_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoServerDeps: the client runs inside every job, so it must not drag
// in the server side of its socket (NATS, Docker, the gateway itself); it
// speaks internal/gatewayproto, a leaf.
func TestNoServerDeps(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to list the dependencies with: %v", err)
	}
	root := moduleRoot(t)
	cmd := exec.CommandContext(t.Context(), gobin, "list", "-deps", "./sdk/sandbox")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			stderr = ee.Stderr
		}
		t.Fatalf("go list -deps ./sdk/sandbox in %s: %v\n%s", root, err, stderr)
	}
	deps := strings.Fields(string(out))
	if !containsDep(deps, "github.com/brig-dev/brig/sdk/sandbox") {
		t.Fatalf("go list -deps did not list the package itself:\n%s", out)
	}
	for _, dep := range deps {
		if why := serverDep(dep); why != "" {
			t.Errorf("sdk/sandbox depends on %s (%s): the in-container client must not pull in the server stack", dep, why)
		}
	}
}

// serverDep says why dep is on the server side of the socket, or "".
func serverDep(dep string) string {
	const gateway = "github.com/brig-dev/brig/internal/gateway"
	switch {
	case strings.Contains(dep, "nats-io"):
		return "NATS"
	case strings.Contains(dep, "docker"):
		return "Docker"
	case dep == gateway || strings.HasPrefix(dep, gateway+"/"): // not gatewayproto, the wire
		return "the gateway"
	}
	return ""
}

func containsDep(deps []string, want string) bool {
	for _, d := range deps {
		if d == want {
			return true
		}
	}
	return false
}

// moduleRoot is the nearest directory above the test's holding go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}
