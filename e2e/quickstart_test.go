package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/brig-dev/brig/internal/testenv"
)

// defaultAddr is where `brig dev` listens and the job commands connect
// when given no address (docs/design.md §7).
const defaultAddr = "127.0.0.1:4222"

// TestQuickStart runs the README's commands as a newcomer would, with no
// server and no credential named. The two parts share the default address,
// so they run one after the other.
func TestQuickStart(t *testing.T) {
	t.Parallel()
	t.Run("embedded", testQuickStartEmbedded)
	t.Run("dev then run", testQuickStartDev)
}

// testQuickStartEmbedded: `brig run examples/hello.py` starts an embedded
// brig for the one job (nothing listens on the default address in CI),
// prints the job's output, exits 0, and leaves no container behind.
func testQuickStartEmbedded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	stdout, stderr, err := runHello(ctx, scrubbedEnv("BRIG_"))
	if err != nil {
		t.Fatalf("brig run examples/hello.py: %v\nstderr:\n%s", err, stderr)
	}
	if !strings.Contains(stdout, "hello from brig") {
		t.Errorf("stdout %q, want the example's hello", stdout)
	}
	embedded := strings.Contains(stderr, "embedded brig")
	t.Logf("embedded: %v; stderr: %s", embedded, clip(stderr))
	if !embedded {
		return // a brig on the default address ran it
	}
	// The embedded brig's worker id is "run-" + its temp dir's name.
	if err := testenv.RemoveLeftovers(ctx, "run-brig-run-"); err != nil {
		t.Errorf("the embedded brig: %v", err)
	}
}

// testQuickStartDev: `brig dev`, then `brig run examples/hello.py` in
// another shell of the same user. The run finds the dev's default tenant
// credential (default.creds under the data dir, $XDG_DATA_HOME/brig) by
// itself, and runs the job on the dev, not on an embedded brig.
func testQuickStartDev(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	if c, err := net.DialTimeout("tcp", defaultAddr, time.Second); err == nil {
		c.Close()
		t.Skipf("something listens on %s already; `brig dev` needs it", defaultAddr)
	}
	// Short: the dev worker's gateway sockets live under it.
	home, err := os.MkdirTemp("", "brig-q-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	env := append(scrubbedEnv("BRIG_", "XDG_DATA_HOME="), "XDG_DATA_HOME="+home)
	data := filepath.Join(home, "brig")

	dev := startProc(ctx, t, env, "dev")
	if !strings.Contains(dev.output(), "ready nats://"+defaultAddr) {
		t.Errorf("brig dev's ready line is not for %s:\n%s", defaultAddr, dev.output())
	}
	t.Cleanup(func() {
		// The dev's worker removes its containers when it stops; check.
		dev.stop()
		sum := sha256.Sum256([]byte(data))
		if err := testenv.RemoveLeftovers(context.Background(), "dev-"+hex.EncodeToString(sum[:4])); err != nil {
			t.Errorf("brig dev: %v", err)
		}
	})
	// docs/design.md §10: the dev writes both credentials, owner-only.
	for _, name := range []string{"admin.creds", "default.creds"} {
		fi, err := os.Stat(filepath.Join(data, "creds", name))
		if err != nil {
			t.Fatalf("brig dev wrote no %s: %v", name, err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, fi.Mode().Perm())
		}
	}

	stdout, stderr, err := runHello(ctx, env)
	if err != nil {
		t.Fatalf("brig run examples/hello.py with brig dev running: %v\nstderr:\n%s\nbrig dev:\n%s", err, stderr, dev.output())
	}
	if !strings.Contains(stdout, "hello from brig") {
		t.Errorf("stdout %q, want the example's hello", stdout)
	}
	if strings.Contains(stderr, "embedded") {
		t.Errorf("brig run used an embedded brig with brig dev running: %s", stderr)
	}

	if err := dev.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-dev.exited:
		if code := dev.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("brig dev exited %d after Ctrl-C, want 0:\n%s", code, dev.output())
		}
	case <-ctx.Done():
		t.Fatalf("brig dev still running after Ctrl-C:\n%s", dev.output())
	}
}

// runHello runs `brig run examples/hello.py` with env.
func runHello(ctx context.Context, env []string) (stdout, stderr string, err error) {
	cmd := exec.CommandContext(ctx, brigBin, "run", filepath.Join("..", "examples", "hello.py"))
	cmd.Env = env
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}
