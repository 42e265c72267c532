package needs

import (
	"context"
	"strings"
	"testing"
)

// With DOCKER_HOST at a socket that does not exist, the ping fails and
// names where it looked, and DockerForMain skips or fails the package as
// BRIG_REQUIRE_DOCKER says.
func TestNoDaemon(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
	err := PingDocker(t.Context())
	if err == nil || !strings.Contains(err.Error(), "docker unreachable at unix:///nonexistent/docker.sock") {
		t.Fatalf("PingDocker = %v, want docker unreachable at the socket", err)
	}
	for _, tt := range []struct {
		require  string
		wantCode int
		wantSay  string
	}{
		{"", 0, "e2e: SKIP: every test of the package needs Docker: docker unreachable at unix:///nonexistent/docker.sock"},
		{"0", 0, "set BRIG_REQUIRE_DOCKER=1 to fail instead"},
		{"1", 1, "e2e: FAIL: docker unreachable at unix:///nonexistent/docker.sock"},
		{"true", 1, "(BRIG_REQUIRE_DOCKER=1: failing rather than skipping)"},
	} {
		t.Setenv(RequireDockerVar, tt.require)
		var said strings.Builder
		if code, ok := DockerForMain(context.Background(), &said, "e2e"); ok || code != tt.wantCode || !strings.Contains(said.String(), tt.wantSay) {
			t.Errorf("%s=%q: DockerForMain = %d, %v, saying %q; want %d, false, saying %q", RequireDockerVar, tt.require, code, ok, said.String(), tt.wantCode, tt.wantSay)
		}
	}
}

// With the daemon there, the ping answers and DockerForMain lets the
// package run.
func TestDaemon(t *testing.T) {
	Docker(t)
	var said strings.Builder
	if code, ok := DockerForMain(t.Context(), &said, "e2e"); !ok || code != 0 || said.Len() != 0 {
		t.Errorf("DockerForMain = %d, %v, saying %q; want 0, true, nothing", code, ok, said.String())
	}
}
