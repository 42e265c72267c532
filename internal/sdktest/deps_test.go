// Package sdktest holds the tests of package sdk that need a NATS server or
// a dispatcher. They live here, not in sdk's directory, on purpose: go mod
// tidy in a module that imports sdk follows sdk's own tests and what they
// import, so a test there that imports nats-server, the dispatcher or
// Docker makes them every SDK user's dependencies. They use sdk's exported
// API only, as a user would. TestSDKUserDependencies keeps it so.
package sdktest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// heavyModules are the module path prefixes a module that imports only sdk
// must not depend on.
var heavyModules = []string{"github.com/docker", "github.com/nats-io/nats-server"}

// moveTests says how to fix a failure of TestSDKUserDependencies.
const moveTests = "go mod tidy follows the tests of an imported package: move sdk's tests that need a NATS server, " +
	"a dispatcher or Docker to internal/sdktest or e2e, and keep sdk's Examples to the standard library, schema and sdk"

// TestSDKUserDependencies tidies, offline, a module that imports only sdk
// and checks that neither its go.mod nor its go.sum names Docker or
// nats-server.
func TestSDKUserDependencies(t *testing.T) {
	t.Parallel()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go is not on PATH, so no module can be tidied: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	root, goVersion := brigModule(ctx, t, gobin)

	dir := t.TempDir()
	write(t, filepath.Join(dir, "go.mod"), fmt.Sprintf(`module example.com/sdkuser

go %s

require github.com/brig-dev/brig v0.0.0

replace github.com/brig-dev/brig => %s
`, goVersion, root))
	write(t, filepath.Join(dir, "main.go"), `package main

import (
	"context"

	"github.com/brig-dev/brig/sdk"
)

func main() {
	c, err := sdk.Connect(context.Background(), "nats://127.0.0.1:4222")
	if err == nil {
		c.Close()
	}
}
`)
	// brig's own checksums, so that what tidy takes from the module cache
	// is verified; tidy drops the lines the user module does not need.
	sums, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "go.sum"), string(sums))

	tidy := exec.CommandContext(ctx, gobin, "mod", "tidy")
	tidy.Dir = dir
	// Offline: the module cache brig's own build filled is the only
	// source (GOPROXY=off), and no checksum database is asked about a
	// module brig's go.sum lacks (GOSUMDB=off).
	tidy.Env = append(os.Environ(), "GOPROXY=off", "GOSUMDB=off", "GOFLAGS=-mod=mod", "GOWORK=off", "GOTOOLCHAIN=local")
	if out, err := tidy.CombinedOutput(); err != nil {
		// A module missing from the cache is most likely a heavy one
		// that sdk's tests started to import: the output names the
		// import chain.
		t.Fatalf("go mod tidy in a module that imports only sdk: %v\n%s\n%s", err, out, moveTests)
	}
	for _, name := range []string{"go.mod", "go.sum"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(string(data)) {
			for _, heavy := range heavyModules {
				if strings.Contains(line, heavy) {
					t.Errorf("a module that imports only sdk has in its %s: %s", name, strings.TrimSpace(line))
				}
			}
		}
	}
	if t.Failed() {
		t.Log(moveTests)
	}
}

// brigModule returns the directory and the go version of the module this
// test belongs to.
func brigModule(ctx context.Context, t *testing.T, gobin string) (dir, goVersion string) {
	t.Helper()
	out, err := exec.CommandContext(ctx, gobin, "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatal("go env GOMOD: not inside brig's module")
	}
	out, err = exec.CommandContext(ctx, gobin, "mod", "edit", "-json", gomod).Output()
	if err != nil {
		t.Fatalf("go mod edit -json %s: %v", gomod, err)
	}
	var mod struct{ Go string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Go == "" {
		t.Fatalf("go mod edit -json %s: no go version (%v)", gomod, err)
	}
	return filepath.Dir(gomod), mod.Go
}

func write(t *testing.T, path, contents string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(contents), 0o644); err != nil {
		t.Fatal(err)
	}
}
