package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/auth"
	"github.com/brig-dev/brig/internal/functions"
	"github.com/brig-dev/brig/schema"
)

func runDeploy(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = cmdDeploy(t.Context(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// deployServer runs an authenticated server and returns its URL, an admin
// connection and the --server and --creds arguments of an admin.
func deployServer(t *testing.T) (url string, nc *nats.Conn, js jetstream.JetStream, args []string) {
	t.Helper()
	url, a := startAuthServer(t)
	nc, js = adminConn(t, url, a)
	return url, nc, js, []string{"--server", url, "--creds", mintCreds(t, a, auth.User{Role: auth.RoleAdmin})}
}

func TestDeployExample(t *testing.T) {
	t.Parallel()
	_, nc, _, conn := deployServer(t)
	code, stdout, stderr := runDeploy(t, "", append(conn, filepath.Join("..", "..", "examples", "functions.yaml"))...)
	if code != 0 {
		t.Fatalf("exit %d, stderr: %s", code, stderr)
	}
	want := "deployed grader (revision 1)\ndeployed cache-reader (revision 2)\ndeployed fast-grader (revision 3)\ndeployed agent-tool (revision 4)\n"
	if stdout != want {
		t.Errorf("stdout = %q, want %q", stdout, want)
	}

	// The dispatcher's resolver sees the deploy at once.
	r, err := functions.OpenKVResolver(t.Context(), nc, 0)
	if err != nil {
		t.Fatal(err)
	}
	fn, err := r.Resolve(t.Context(), schema.DefaultTenant, "grader")
	if err != nil {
		t.Fatal(err)
	}
	if fn.Limits.MemoryMB != 128 || fn.TimeoutMS != 10_000 || len(fn.Scopes) != 2 || len(fn.Warmup) != 3 {
		t.Errorf("grader = %+v", fn)
	}
	if fast, err := r.Resolve(t.Context(), schema.DefaultTenant, "fast-grader"); err != nil || fast.SingleUse == nil || *fast.SingleUse {
		t.Errorf("fast-grader = %+v, %v; want single_use false", fast, err)
	}
	if tool, err := r.Resolve(t.Context(), schema.DefaultTenant, "agent-tool"); err != nil || strings.Join(tool.Egress, ",") != "api.github.com,*.pypi.org,hooks.example.com:8443" {
		t.Errorf("agent-tool = %+v, %v; want its egress list", tool, err)
	}
	if fn, err := r.Resolve(t.Context(), schema.DefaultTenant, "python"); err != nil || fn.Name != "python" {
		t.Errorf("Resolve(python) = %+v, %v; want the built-in", fn, err)
	}
	if _, err := r.Resolve(t.Context(), schema.DefaultTenant, "nope"); !errors.Is(err, functions.ErrNotFound) {
		t.Errorf("Resolve(nope): err = %v, want functions.ErrNotFound", err)
	}
}

func TestDeployUpdateFromStdin(t *testing.T) {
	t.Parallel()
	_, _, js, conn := deployServer(t)
	def := "name: f\nimage: brig/python:latest\ncommand: [python3, /work/main.py]\ntimeout_ms: %d\n"
	for i, timeout := range []int{1000, 2000} {
		code, stdout, stderr := runDeploy(t, fmt.Sprintf(def, timeout), append([]string{"-"}, conn...)...)
		if code != 0 {
			t.Fatalf("deploy %d: exit %d, stderr: %s", i, code, stderr)
		}
		if want := fmt.Sprintf("deployed f (revision %d)\n", i+1); stdout != want {
			t.Errorf("deploy %d: stdout = %q, want %q", i, stdout, want)
		}
	}
	store, err := functions.Open(t.Context(), js, 0)
	if err != nil {
		t.Fatal(err)
	}
	fn, err := store.Get(t.Context(), "f")
	if err != nil || fn.TimeoutMS != 2000 {
		t.Fatalf("Get(f) = %+v, %v; want the second definition", fn, err)
	}
}

func TestDeployInvalid(t *testing.T) {
	t.Parallel()
	_, _, js, conn := deployServer(t)
	path := filepath.Join(t.TempDir(), "bad.yaml")
	bad := "- {name: ok, image: img, command: [x]}\n- {name: g, image: img, command: [x], limits: {memry_mb: 1}}\n"
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runDeploy(t, "", append(conn, path)...)
	if code != exitDeployInvalid || stdout != "" {
		t.Errorf("exit %d, stdout %q; want %d and nothing", code, stdout, exitDeployInvalid)
	}
	if !strings.Contains(stderr, "bad.yaml: functions[1].limits.memry_mb") {
		t.Errorf("stderr %q does not name the file and field", stderr)
	}
	// Nothing of an invalid file is deployed.
	if _, err := js.KeyValue(t.Context(), functions.Bucket); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Errorf("bucket after an invalid deploy: err = %v, want ErrBucketNotFound", err)
	}

	code, _, stderr = runDeploy(t, "", append(conn, filepath.Join(t.TempDir(), "missing.yaml"))...)
	if code != exitDeployInvalid || !strings.Contains(stderr, "missing.yaml") {
		t.Errorf("missing file: exit %d, stderr %q", code, stderr)
	}
	if code, _, _ := runDeploy(t, "", conn...); code != 2 {
		t.Errorf("no file: exit %d, want 2", code)
	}
}

func TestDeployUnreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	def := "name: f\nimage: img\ncommand: [x]\n"
	code, _, stderr := runDeploy(t, def, "--server", "nats://"+addr, "-")
	if code != exitBrig {
		t.Errorf("exit %d, want %d", code, exitBrig)
	}
	if !strings.Contains(stderr, "unreachable") || !strings.Contains(stderr, addr) {
		t.Errorf("stderr %q does not say which server is unreachable", stderr)
	}
}

// TestDeployNeedsAdmin: deploying writes BRIG_FUNCTIONS, which only admin
// may; a tenant's credential is refused, and no credential at all is told
// how to get one.
func TestDeployNeedsAdmin(t *testing.T) {
	t.Parallel()
	url, a := startAuthServer(t)
	def := "name: f\nimage: img\ncommand: [x]\n"
	client := mintCreds(t, a, auth.User{Role: auth.RoleClient, Tenant: auth.DefaultTenant})
	start := time.Now()
	code, stdout, stderr := runDeploy(t, def, "--server", url, "--creds", client, "-")
	want := "brig deploy: " + url + ": the server refused the credential in " + client + ": nats: permissions violation: "
	if code != exitBrig || stdout != "" || !strings.Contains(stderr, want) || !strings.Contains(stderr, "needs an admin credential") {
		t.Errorf("tenant deploy: exit %d, stdout %q, stderr %q; want %d, nothing, %q", code, stdout, stderr, exitBrig, want)
	}
	// At once: a refusal is not worth waiting for the timeout.
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the refused deploy took %v", d)
	}
	code, _, stderr = runDeploy(t, def, "--server", url, "-")
	if code != exitBrig || !strings.Contains(stderr, "brig deploy: the server wants credentials: pass --creds FILE") {
		t.Errorf("anonymous deploy: exit %d, stderr %q; want %d and how to pass credentials", code, stderr, exitBrig)
	}
}
