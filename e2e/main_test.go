// Package e2e tests brig end to end: a real embedded NATS server, the real
// dispatcher and worker, the real Docker daemon and the static brig binary
// as every container's init. TestMain provisions one shared stack; tests
// that need to break their stack (worker restart) start their own.
package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/docker/docker/client"
	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/internal/auth"
	"github.com/brig-dev/brig/internal/devstack"
	"github.com/brig-dev/brig/internal/testenv"
	"github.com/brig-dev/brig/internal/testenv/needs"
	"github.com/brig-dev/brig/sdk"
)

// Shared by every test; set up once in TestMain.
var (
	// env is the provisioned brig: static binary, image, shared stack.
	env *testenv.Env
	// brigBin is the static brig binary, the init of every container and
	// the CLI under test.
	brigBin string
	// stack is the shared dev stack; its Conn is an admin connection, for
	// the tests that inspect streams and buckets, deploy, or forge
	// messages (docs/design.md §10).
	stack *devstack.Stack
	// brig is the stack's client as a tenant sees it: on clientNC, a
	// connection with the default tenant's client credential, which may
	// only submit, follow, replay and cancel jobs.
	brig     *sdk.Client
	clientNC *nats.Conn
	// docker is the tests' own Engine API client; it outlives the stack's.
	docker *client.Client
	// workerID is the shared worker's id, the brig.worker label of its
	// containers; every other worker of the suite has it as prefix, so the
	// leftover check covers them all.
	workerID string
	// logger writes warnings of every role to stderr.
	logger *slog.Logger
)

const (
	setupBudget    = 10 * time.Minute // building brig, and the image if missing
	shutdownBudget = 60 * time.Second
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

// runMain returns the exit code of the run. Without a Docker daemon every
// test is skipped (exit 0, with a message), unless BRIG_REQUIRE_DOCKER=1
// (CI) makes that a failure; any other failure of the environment is a
// failure (exit 1), never a skip.
func runMain(m *testing.M) int {
	logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), setupBudget)
	defer cancel()
	if code, ok := needs.DockerForMain(ctx, os.Stderr, "e2e"); !ok {
		return code
	}
	var err error
	if env, err = testenv.Start(ctx, logger); err != nil {
		return fail("provision brig: %v", err)
	}
	brigBin, stack, workerID = env.Binary, env.Stack, env.WorkerID
	if docker, err = client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation()); err != nil {
		return fail("docker client: %v", err)
	}
	defer docker.Close()
	if clientNC, err = stack.Connect(auth.User{Role: auth.RoleClient, Tenant: auth.DefaultTenant, Name: "e2e-client"}); err != nil {
		_ = env.Stop(ctx)
		return fail("client connection: %v", err)
	}
	if brig, err = sdk.New(clientNC); err != nil {
		clientNC.Close()
		_ = env.Stop(ctx)
		return fail("sdk client: %v", err)
	}

	code := m.Run()

	brig.Close()
	clientNC.Close()
	sctx, scancel := context.WithTimeout(context.Background(), shutdownBudget)
	defer scancel()
	if err := env.Stop(sctx); err != nil {
		code = fail("stop: %v", err)
	}
	return code
}

func fail(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "e2e: FAIL: "+format+"\n", args...)
	return 1
}

func randomHex(n int) string { return testenv.RandomHex(n) }
