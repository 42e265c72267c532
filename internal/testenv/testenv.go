// Package testenv provisions a real brig for tests that need one: a static
// brig binary (every container's init), the python sandbox image, and a
// dev stack (embedded NATS, dispatcher, worker) on a random port. The
// stack's server refuses anonymous clients (docs/design.md §10): its Conn
// is an admin connection, Stack.Connect opens one for any role, and
// Stack.AdminCreds and Stack.ClientCreds are .creds files for the CLI.
// Only test code imports it.
package testenv

import (
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/brig-dev/brig/dispatcher"
	"github.com/brig-dev/brig/internal/devstack"
	"github.com/brig-dev/brig/internal/image"
	"github.com/brig-dev/brig/internal/sandbox"
	"github.com/brig-dev/brig/internal/signing"
	"github.com/brig-dev/brig/worker"
)

// Env is a running brig for tests.
type Env struct {
	Stack    *devstack.Stack
	Binary   string // static brig binary
	WorkerID string
	Dir      string
	// Signer is the dispatcher's signing key, so that tests can mint
	// credentials a job could never make (expired ones, say).
	Signer *signing.Signer
}

// Start builds the binary, ensures the image and starts a stack. It fails,
// never skips, when Docker or the image build is unavailable, and then
// leaves no temp dir behind: a test that may skip without Docker asks
// package needs first (needs.Docker, or needs.DockerForMain in a TestMain).
func Start(ctx context.Context, log *slog.Logger) (_ *Env, err error) {
	dir, err := os.MkdirTemp("", "brig-test-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	e := &Env{Dir: dir, WorkerID: "test-" + RandomHex(4)}
	if e.Binary, err = BuildBrig(ctx, dir); err != nil {
		return nil, err
	}
	if err := EnsureImage(ctx, log); err != nil {
		return nil, err
	}
	if e.Signer, err = signing.Generate(); err != nil {
		return nil, err
	}
	e.Stack, err = devstack.Start(ctx, devstack.Config{
		Listen:     "127.0.0.1:0",
		DataDir:    filepath.Join(dir, "jetstream"),
		Logger:     log,
		SkipImage:  true,
		Worker:     e.sharedWorkerConfig(),
		Dispatcher: dispatcher.Config{Signer: e.Signer},
		HTTPListen: "127.0.0.1:0", // the HTTP API's e2e tests (Stack.HTTPURL, Stack.ClientToken)
	})
	if err != nil {
		return nil, fmt.Errorf("start stack: %w", err)
	}
	return e, nil
}

// WorkerConfig is the worker configuration of this env (Conn, Docker and
// Logger left for the caller).
func (e *Env) WorkerConfig() worker.Config {
	return worker.Config{ID: e.WorkerID, InitBinary: e.Binary, RuntimeDir: filepath.Join(e.Dir, "run"), Slots: 4}
}

// sharedWorkerConfig is the shared stack's worker: like brig dev's, it
// keeps a prewarmed container per template, so the suite runs on pooled
// containers (docs/design.md §8) as well as cold ones (templates seen first).
func (e *Env) sharedWorkerConfig() worker.Config {
	c := e.WorkerConfig()
	c.Prewarm = 1
	return c
}

// Stop stops the stack and reports containers left behind by any worker
// whose id starts with this env's WorkerID (removing them), then removes
// the temp dir.
func (e *Env) Stop(ctx context.Context) error {
	var errs []error
	if e.Stack != nil {
		errs = append(errs, e.Stack.Stop(ctx))
		errs = append(errs, RemoveLeftovers(ctx, e.WorkerID))
	}
	os.RemoveAll(e.Dir)
	return errors.Join(errs...)
}

// BuildBrig builds a static brig binary into dir.
func BuildBrig(ctx context.Context, dir string) (string, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "brig")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/brig")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build static brig: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		return "", err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", errors.New("brig binary is dynamically linked despite CGO_ENABLED=0")
		}
	}
	return bin, nil
}

func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

// EnsureImage builds brig/python when it is missing.
func EnsureImage(ctx context.Context, log *slog.Logger) error {
	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return err
	}
	defer docker.Close()
	spec, _ := image.Lookup("python")
	if _, err := image.Ensure(ctx, docker, spec, os.Stderr, log); err != nil {
		return fmt.Errorf("sandbox image: %w", err)
	}
	return nil
}

// RemoveLeftovers removes every container of a worker whose id starts with
// workerPrefix and returns an error naming them if there were any.
func RemoveLeftovers(ctx context.Context, workerPrefix string) error {
	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return err
	}
	defer docker.Close()
	list, err := docker.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", sandbox.LabelWorker))})
	if err != nil {
		return fmt.Errorf("list leftover containers: %w", err)
	}
	var lines []string
	for _, c := range list {
		if !strings.HasPrefix(c.Labels[sandbox.LabelWorker], workerPrefix) {
			continue
		}
		lines = append(lines, fmt.Sprintf("%.12s job=%s worker=%s state=%s", c.ID, c.Labels[sandbox.LabelJob], c.Labels[sandbox.LabelWorker], c.State))
		if err := docker.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil {
			lines = append(lines, fmt.Sprintf("  (remove failed: %v)", err))
		}
	}
	if len(lines) > 0 {
		return fmt.Errorf("containers left behind:\n  %s", strings.Join(lines, "\n  "))
	}
	return nil
}

// RandomHex returns n random bytes in hex.
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
