// Package sdktest holds the tests of packages sdk and sdk/sandbox that need
// a NATS server, a gateway or a dispatcher. They live here, not in those
// packages' directories, on purpose: go mod tidy in a module that imports
// sdk (or, for job code, sdk/sandbox) follows that package's own tests and
// what they import, so a test there that imports nats-server, the gateway,
// the dispatcher or Docker makes them every SDK user's dependencies. They
// use the packages' exported API only, as a user would.
// TestSDKUserDependencies keeps it so.
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

// Module path prefixes that a module importing only brig's client
// packages must not depend on.
const (
	dockerModules     = "github.com/docker"
	natsServerModules = "github.com/nats-io/nats-server"
	natsModules       = "github.com/nats-io" // the client too: a job speaks to its gateway only
)

// moveTests says how to fix a failure of TestSDKUserDependencies.
const moveTests = "go mod tidy follows the tests of an imported package: move the tests of sdk and sdk/sandbox that need " +
	"a NATS server, a gateway, a dispatcher or Docker to internal/sdktest or e2e, and keep sdk's Examples to the " +
	"standard library, schema and sdk"

// TestSDKUserDependencies tidies, offline, modules that import only brig's
// client packages, sdk (a program that submits jobs) and sdk/sandbox (a
// job's own code), and checks what their go.mod and go.sum name: never
// Docker or nats-server, and for a job's code nothing of NATS at all.
func TestSDKUserDependencies(t *testing.T) {
	t.Parallel()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go is not on PATH, so no module can be tidied: %v", err)
	}
	root, goVersion := brigModule(t.Context(), t, gobin)
	// brig's own checksums, so that what tidy takes from the module cache
	// is verified; tidy drops the lines the user module does not need.
	sums, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		imports []string
		main    string
		heavy   []string
	}{
		{
			name:    "sdk",
			imports: []string{"github.com/brig-dev/brig/sdk"},
			main: `	c, err := sdk.Connect(context.Background(), "nats://127.0.0.1:4222")
	if err == nil {
		c.Close()
	}`,
			heavy: []string{dockerModules, natsServerModules},
		},
		{
			name:    "sdk/sandbox",
			imports: []string{"github.com/brig-dev/brig/sdk/sandbox"},
			main: `	n := 0
	_, _ = sandbox.Dict("cache").Get(context.Background(), "count", &n)`,
			heavy: []string{dockerModules, natsModules},
		},
		{
			name:    "sdk and sdk/sandbox",
			imports: []string{"github.com/brig-dev/brig/sdk", "github.com/brig-dev/brig/sdk/sandbox"},
			main: `	c, err := sdk.Connect(context.Background(), "nats://127.0.0.1:4222")
	if err == nil {
		c.Close()
	}
	_ = sandbox.Dict("cache").Put(context.Background(), "count", 1)`,
			heavy: []string{dockerModules, natsServerModules},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			dir := t.TempDir()
			write(t, filepath.Join(dir, "go.mod"), fmt.Sprintf(`module example.com/sdkuser

go %s

require github.com/brig-dev/brig v0.0.0

replace github.com/brig-dev/brig => %s
`, goVersion, root))
			var imports strings.Builder
			for _, imp := range tt.imports {
				fmt.Fprintf(&imports, "\t%q\n", imp)
			}
			write(t, filepath.Join(dir, "main.go"), fmt.Sprintf(`package main

import (
	"context"

%s)

func main() {
%s
}
`, imports.String(), tt.main))
			write(t, filepath.Join(dir, "go.sum"), string(sums))
			tidy(ctx, t, gobin, dir, tt.name)
			checkDeps(t, dir, tt.name, tt.heavy)
		})
	}
}

// tidy runs go mod tidy, offline, in the user module at dir, which imports
// what.
func tidy(ctx context.Context, t *testing.T, gobin, dir, what string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, gobin, "mod", "tidy")
	cmd.Dir = dir
	// Offline: the module cache brig's own build filled is the only
	// source (GOPROXY=off), and no checksum database is asked about a
	// module brig's go.sum lacks (GOSUMDB=off).
	cmd.Env = append(os.Environ(), "GOPROXY=off", "GOSUMDB=off", "GOFLAGS=-mod=mod", "GOWORK=off", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		// A module missing from the cache is most likely a heavy one
		// that the client packages' tests started to import: the output
		// names the import chain.
		t.Fatalf("go mod tidy in a module that imports only %s: %v\n%s\n%s", what, err, out, moveTests)
	}
}

// checkDeps fails t for each line of the go.mod and go.sum of the user
// module at dir, which imports what, that names a module under a prefix
// in heavy.
func checkDeps(t *testing.T, dir, what string, heavy []string) {
	t.Helper()
	for _, name := range []string{"go.mod", "go.sum"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(string(data)) {
			for _, h := range heavy {
				if strings.Contains(line, h) {
					t.Errorf("a module that imports only %s has in its %s: %s", what, name, strings.TrimSpace(line))
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
