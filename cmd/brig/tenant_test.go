package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/internal/auth"
	"github.com/brig-dev/brig/internal/functions"
	"github.com/brig-dev/brig/schema"
)

// tenantServer runs an authenticated server and returns the arguments
// of an admin's brig tenant: --server, --creds and --auth-dir.
func tenantServer(t *testing.T) (url string, a *auth.Authority, args []string) {
	t.Helper()
	url, a = startAuthServer(t)
	return url, a, []string{"--server", url, "--creds", mintCreds(t, a, auth.User{Role: auth.RoleAdmin}), "--auth-dir", a.Dir()}
}

func tenantRecord(t *testing.T, url string, a *auth.Authority, name string) (schema.Tenant, error) {
	t.Helper()
	_, js := adminConn(t, url, a)
	tenants, err := auth.ExistingTenants(t.Context(), js)
	if err != nil {
		return schema.Tenant{}, err
	}
	return tenants.Get(t.Context(), name)
}

func credsKey(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	id, err := auth.ReadCreds(data)
	if err != nil {
		t.Fatal(err)
	}
	if id.Role != auth.RoleClient {
		t.Errorf("%s: role %q, want client", path, id.Role)
	}
	return id.PublicKey
}

// TestTenantLifecycle: add mints a recorded credential of the tenant's
// own subjects; adding again updates the quotas given and mints another;
// creds mints one more; ls lists; rm revokes every one of them at once,
// deletes the record and the tenant's own functions.
func TestTenantLifecycle(t *testing.T) {
	t.Parallel()
	url, a, conn := tenantServer(t)
	outDir := filepath.Join(t.TempDir(), "creds")

	code, stdout, stderr := runCmd(t, cmdTenant, append([]string{"add", "acme", "--max-queued", "3", "--out-dir", outDir}, conn...)...)
	first := filepath.Join(outDir, "acme.creds")
	if code != 0 || stdout != first+"\n" || !strings.Contains(stderr, "added tenant acme") {
		t.Fatalf("add: exit %d, stdout %q, stderr %q; want 0 and %s", code, stdout, stderr, first)
	}
	if fi, err := os.Stat(first); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("acme.creds: %v, %v; want mode 0600", fi, err)
	}
	rec, err := tenantRecord(t, url, a, "acme")
	if err != nil || rec.MaxQueued != 3 || rec.MaxRunning != 0 || len(rec.Users) != 1 || rec.Users[0] != credsKey(t, first) {
		t.Fatalf("record after add = %+v, %v; want max_queued 3 and the credential's key", rec, err)
	}

	// The credential is the tenant's: its submit subject and inboxes.
	violations := make(chan error, 4)
	closed := make(chan struct{})
	nc, err := nats.Connect(url, nats.UserCredentials(first), nats.NoReconnect(),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
		nats.CustomInboxPrefix(schema.InboxPrefix("acme")),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.SubscribeSync(nc.NewRespInbox()); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("brig.submit.acme.python", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("brig.submit.default.python", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	select {
	case err := <-violations:
		if !strings.Contains(err.Error(), `"brig.submit.default.python"`) {
			t.Errorf("violation %v, want the default tenant's subject only", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("acme's credential may publish on the default tenant's subject")
	}

	// Again: the quotas given change, the others stay, another credential.
	code, stdout, stderr = runCmd(t, cmdTenant, append([]string{"add", "acme", "--max-running", "2", "--out-dir", outDir}, conn...)...)
	if code != 0 || stdout != first+"\n" || !strings.Contains(stderr, "tenant acme exists") {
		t.Fatalf("second add: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	second := filepath.Join(t.TempDir(), "more.creds")
	code, stdout, stderr = runCmd(t, cmdTenant, append([]string{"creds", "acme", "--out", second}, conn...)...)
	if code != 0 || stdout != second+"\n" {
		t.Fatalf("creds: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	rec, err = tenantRecord(t, url, a, "acme")
	if err != nil || rec.MaxQueued != 3 || rec.MaxRunning != 2 || len(rec.Users) != 3 || rec.Users[2] != credsKey(t, second) {
		t.Fatalf("record = %+v, %v; want max_queued 3, max_running 2 and three keys", rec, err)
	}

	if code, stdout, _ = runCmd(t, cmdTenant, append([]string{"add", "beta"}, append(conn, "--out-dir", outDir)...)...); code != 0 {
		t.Fatalf("add beta: exit %d", code)
	}
	code, stdout, stderr = runCmd(t, cmdTenant, append([]string{"ls"}, conn...)...)
	if code != 0 || !strings.Contains(stdout, "TENANT") || !strings.Contains(stdout, "acme") || !strings.Contains(stdout, "beta") {
		t.Fatalf("ls: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, _ = runCmd(t, cmdTenant, append([]string{"ls", "--json"}, conn...)...)
	var recs []schema.Tenant
	if err := json.Unmarshal([]byte(stdout), &recs); code != 0 || err != nil || len(recs) != 2 || recs[0].Name != "acme" || recs[0].MaxQueued != 3 {
		t.Fatalf("ls --json: exit %d, %q (%v)", code, stdout, err)
	}

	// acme's own function goes with it; a global one stays.
	def := "name: f\nimage: img\ncommand: [x]\n"
	if code, _, stderr := runDeploy(t, def, append([]string{"--tenant", "acme", "-"}, conn[:4]...)...); code != 0 {
		t.Fatalf("deploy --tenant acme: %s", stderr)
	}
	if code, _, stderr := runDeploy(t, def, append([]string{"-"}, conn[:4]...)...); code != 0 {
		t.Fatalf("deploy: %s", stderr)
	}

	code, stdout, stderr = runCmd(t, cmdTenant, append([]string{"rm", "acme"}, conn...)...)
	if code != 0 || !strings.Contains(stdout, "removed tenant acme: revoked 3 credentials, deleted 1 functions") {
		t.Fatalf("rm: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	// At once: the connection of a revoked credential is closed.
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Error("a removed tenant's connection stayed open")
	}
	for _, path := range []string{first, second} {
		if nc, err := nats.Connect(url, nats.UserCredentials(path)); err == nil {
			nc.Close()
			t.Errorf("%s: a removed tenant's credential was let in", path)
		}
	}
	if nc, err := nats.Connect(url, nats.UserCredentials(filepath.Join(outDir, "beta.creds"))); err != nil {
		t.Errorf("another tenant's credential was refused: %v", err)
	} else {
		nc.Close()
	}
	if _, err := tenantRecord(t, url, a, "acme"); !errors.Is(err, auth.ErrNoTenant) {
		t.Errorf("record after rm: %v, want ErrNoTenant", err)
	}
	_, js := adminConn(t, url, a)
	store, err := functions.Open(t.Context(), js, 0)
	if err != nil {
		t.Fatal(err)
	}
	if fns, err := store.ListFor(t.Context(), "acme"); err != nil || len(fns) != 0 {
		t.Errorf("acme's functions after rm: %+v, %v", fns, err)
	}
	if _, err := store.Get(t.Context(), "f"); err != nil {
		t.Errorf("the global f after rm: %v", err)
	}

	if code, _, stderr = runCmd(t, cmdTenant, append([]string{"rm", "acme"}, conn...)...); code != 1 || !strings.Contains(stderr, "acme") {
		t.Errorf("second rm: exit %d, stderr %q; want 1", code, stderr)
	}
	if code, _, stderr = runCmd(t, cmdTenant, append([]string{"creds", "acme"}, conn...)...); code != 1 || !strings.Contains(stderr, "brig tenant add acme") {
		t.Errorf("creds of a removed tenant: exit %d, stderr %q; want 1 and how to add it", code, stderr)
	}
}

// TestTenantErrors: bad input is refused before anything is done; ls of a
// brig without tenants is empty; a tenant's credential may not manage
// tenants.
func TestTenantErrors(t *testing.T) {
	t.Parallel()
	url, a, conn := tenantServer(t)
	for _, args := range [][]string{
		{}, {"nope"}, {"add"}, {"add", "Bad.Name"}, {"add", "acme", "--max-queued", "-1"}, {"rm"}, {"ls", "x"},
		{"add", "abcdefghijklmnopqrstu"}, // 21 characters
	} {
		if code, _, _ := runCmd(t, cmdTenant, append(args, conn...)...); code != 2 {
			t.Errorf("brig tenant %v: exit %d, want 2", args, code)
		}
	}
	code, stdout, stderr := runCmd(t, cmdTenant, append([]string{"ls", "--json"}, conn...)...)
	if code != 0 || stdout != "[]\n" {
		t.Errorf("ls --json of no tenants: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if code, _, stderr = runCmd(t, cmdTenant, append([]string{"creds", "acme"}, conn...)...); code != 1 {
		t.Errorf("creds of no tenant: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = runCmd(t, cmdTenant, "add", "acme", "--server", url, "--creds", mintCreds(t, a, auth.User{Role: auth.RoleAdmin}),
		"--auth-dir", t.TempDir())
	if code != 1 || !strings.Contains(stderr, "--auth-dir") {
		t.Errorf("add without an authority: exit %d, stderr %q", code, stderr)
	}
	client := mintCreds(t, a, auth.User{Role: auth.RoleClient, Tenant: "default"})
	code, _, stderr = runCmd(t, cmdTenant, "add", "acme", "--server", url, "--creds", client, "--auth-dir", a.Dir(), "--out-dir", t.TempDir())
	if code != exitBrig || !strings.Contains(stderr, "needs an admin credential") {
		t.Errorf("add with a client's credential: exit %d, stderr %q", code, stderr)
	}
}

func TestDeployForTenant(t *testing.T) {
	t.Parallel()
	_, _, js, conn := deployServer(t)
	def := "name: f\nimage: brig/python:latest\ncommand: [python3, /work/main.py]\n"
	code, stdout, stderr := runDeploy(t, def, append([]string{"--tenant", "acme", "-"}, conn...)...)
	if code != 0 || stdout != "deployed f for tenant acme (revision 1)\n" {
		t.Fatalf("exit %d, stdout %q, stderr %s", code, stdout, stderr)
	}
	store, err := functions.Open(t.Context(), js, 0)
	if err != nil {
		t.Fatal(err)
	}
	if fn, err := store.GetFor(t.Context(), "acme", "f"); err != nil || fn.Name != "f" {
		t.Errorf("GetFor(acme, f) = %+v, %v", fn, err)
	}
	if _, err := store.Get(t.Context(), "f"); !errors.Is(err, functions.ErrNotFound) {
		t.Errorf("Get(f): %v, want ErrNotFound: a tenant's deploy is not global", err)
	}
	if code, _, _ := runDeploy(t, def, append([]string{"--tenant", "A.B", "-"}, conn...)...); code != 2 {
		t.Errorf("deploy --tenant A.B: exit %d, want 2", code)
	}
}

// TestJobTenant: the job commands act in their credential's tenant; an
// admin's picks one with --tenant.
func TestJobTenant(t *testing.T) {
	t.Parallel()
	_, a := newAuthority(t)
	acme := mintCreds(t, a, auth.User{Role: auth.RoleClient, Tenant: "acme"})
	admin := mintCreds(t, a, auth.User{Role: auth.RoleAdmin})
	for _, tc := range []struct {
		creds, flag, want string
		fails             bool
	}{
		{acme, "", "acme", false},
		{acme, "acme", "acme", false},
		{acme, "beta", "", true},
		{admin, "", schema.DefaultTenant, false},
		{admin, "beta", "beta", false},
		{admin, "Bad.Name", "", true},
		{"", "", schema.DefaultTenant, false},
		{filepath.Join(t.TempDir(), "missing.creds"), "", "", true},
	} {
		c := &connFlags{tenant: tc.flag}
		got, err := c.jobTenant(tc.creds)
		if got != tc.want || (err != nil) != tc.fails {
			t.Errorf("jobTenant(%s, --tenant %q) = %q, %v; want %q (fails: %v)", filepath.Base(tc.creds), tc.flag, got, err, tc.want, tc.fails)
		}
	}
}
