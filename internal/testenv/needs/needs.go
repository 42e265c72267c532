// Package needs stops a test whose machine lacks what it needs, saying
// what is missing: it skips the test, or fails it where skipping would
// hide a gap (CI sets BRIG_REQUIRE_DOCKER=1, .ci/run). It imports only the
// Engine API client, so that any package's tests may use it, those of
// packages that internal/testenv itself imports included. Only test code
// imports it.
package needs

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/docker/docker/client"
)

// RequireDockerVar names the environment variable that, set to 1, turns a
// missing Docker daemon from a skip into a failure.
const RequireDockerVar = "BRIG_REQUIRE_DOCKER"

// pingWait bounds the ping: a daemon that is there answers within
// milliseconds, and one that is not must not hold every test up.
const pingWait = 5 * time.Second

// PingDocker pings the Docker daemon the environment names (DOCKER_HOST,
// else the default socket), as every Engine API client of brig connects.
// The error says where it looked.
func PingDocker(ctx context.Context) error {
	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return fmt.Errorf("docker unreachable at %s: %w", cmp.Or(os.Getenv("DOCKER_HOST"), "the default socket"), err)
	}
	defer docker.Close()
	ctx, cancel := context.WithTimeout(ctx, pingWait)
	defer cancel()
	if _, err := docker.Ping(ctx); err != nil {
		return fmt.Errorf("docker unreachable at %s: %w", docker.DaemonHost(), err)
	}
	return nil
}

// DockerRequired reports whether BRIG_REQUIRE_DOCKER asks that a test
// fail, not skip, without Docker.
func DockerRequired() bool {
	required, _ := strconv.ParseBool(os.Getenv(RequireDockerVar))
	return required
}

// Docker skips t when the Docker daemon does not answer, or fails it when
// BRIG_REQUIRE_DOCKER=1.
func Docker(t testing.TB) {
	t.Helper()
	err := PingDocker(t.Context())
	switch {
	case err == nil:
	case DockerRequired():
		t.Fatalf("%v (%s=1: failing rather than skipping)", err, RequireDockerVar)
	default:
		t.Skipf("%v; set %s=1 to fail instead", err, RequireDockerVar)
	}
}

// DockerForMain is Docker for a TestMain that provisions a Docker-backed
// environment before any test runs. ok is true when the daemon answers.
// Otherwise DockerForMain has said why on w, naming pkg, and code is
// what the test binary exits with: 0, the whole package skipped, or 1
// when BRIG_REQUIRE_DOCKER=1.
func DockerForMain(ctx context.Context, w io.Writer, pkg string) (code int, ok bool) {
	err := PingDocker(ctx)
	switch {
	case err == nil:
		return 0, true
	case DockerRequired():
		fmt.Fprintf(w, "%s: FAIL: %v (%s=1: failing rather than skipping)\n", pkg, err, RequireDockerVar)
		return 1, false
	default:
		fmt.Fprintf(w, "%s: SKIP: every test of the package needs Docker: %v; set %s=1 to fail instead\n", pkg, err, RequireDockerVar)
		return 0, false
	}
}
