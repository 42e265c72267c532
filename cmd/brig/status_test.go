package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/dispatcher"
	"github.com/brig-dev/brig/internal/auth"
	"github.com/brig-dev/brig/internal/registry"
	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// statusServer runs an authenticated server with a dispatcher on a
// dispatcher's credential, and a live worker of the default pool in the
// registry (nothing pulls its work, so an accepted job stays queued). It
// returns the URL, the authority and an admin's credential.
func statusServer(t *testing.T) (url string, a *auth.Authority, admin string) {
	t.Helper()
	url, a = startAuthServer(t)
	admin = mintCreds(t, a, auth.User{Role: auth.RoleAdmin})
	nc, err := nats.Connect(url, nats.UserCredentials(mintCreds(t, a, auth.User{Role: auth.RoleDispatcher})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	d, err := dispatcher.New(dispatcher.Config{Conn: nc, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Stop(context.Background()) })
	_, js := adminConn(t, url, a)
	reg, err := registry.Open(t.Context(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Put(t.Context(), registry.Worker{ID: "w1", Pools: []string{schema.DefaultPool}, Slots: 1}); err != nil {
		t.Fatal(err)
	}
	return url, a, admin
}

// submitAccepted submits a job with a tenant's credential and waits until
// it is accepted: its place in max_queued is taken then.
func submitAccepted(t *testing.T, url, creds string) {
	t.Helper()
	c, err := sdk.Connect(t.Context(), url, sdk.WithCreds(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h, err := c.Submit(t.Context(), schema.Job{Function: "python", Code: "print(1)"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case ev := <-h.Events():
			if ev.Type == schema.EventAccepted {
				return
			}
			t.Fatalf("job %s: %s event before it was accepted: %+v", ev.JobID, ev.Type, ev.Error)
		case <-timeout:
			t.Fatal("the job was not accepted")
		}
	}
}

// TestStatusTenants: an admin's brig status lists every tenant with its
// quotas, its jobs accepted and not yet ended and its credentials; a
// tenant's credential, which has no JetStream API, gets its own tenant's
// view from the dispatchers and nothing of the fleet or of other tenants.
func TestStatusTenants(t *testing.T) {
	t.Parallel()
	url, a, admin := statusServer(t)
	conn := []string{"--server", url, "--creds", admin, "--auth-dir", a.Dir()}
	outDir := filepath.Join(t.TempDir(), "creds")
	for _, args := range [][]string{
		{"add", "acme", "--max-queued", "5", "--max-running", "2", "--max-storage-mb", "100", "--out-dir", outDir},
		{"creds", "acme", "--out", filepath.Join(outDir, "acme-2.creds")},
		{"add", "beta", "--out-dir", outDir},
	} {
		if code, _, stderr := runCmd(t, cmdTenant, append(args, conn...)...); code != 0 {
			t.Fatalf("brig tenant %v: exit %d: %s", args, code, stderr)
		}
	}
	acme, beta := filepath.Join(outDir, "acme.creds"), filepath.Join(outDir, "beta.creds")
	submitAccepted(t, url, acme)

	// Admin: the fleet, and every tenant.
	code, stdout, stderr := runCmd(t, cmdStatus, "--server", url, "--creds", admin, "--json")
	if code != 0 {
		t.Fatalf("admin status: exit %d: %s", code, stderr)
	}
	var st status
	if err := json.Unmarshal([]byte(stdout), &st); err != nil {
		t.Fatalf("admin status --json: %v\n%s", err, stdout)
	}
	want := []tenantStatus{
		{Name: "acme", MaxRunning: 2, MaxQueued: 5, MaxStorageMB: 100, Queued: 1, Running: 1, Credentials: 2},
		{Name: "beta", Credentials: 1},
	}
	if len(st.Tenants) != len(want) || st.Tenants[0] != want[0] || st.Tenants[1] != want[1] {
		t.Errorf("tenants %+v, want %+v", st.Tenants, want)
	}
	if len(st.Workers) != 1 || len(st.Streams) == 0 {
		t.Errorf("admin status lost the fleet: workers %+v, streams %+v", st.Workers, st.Streams)
	}
	code, stdout, stderr = runCmd(t, cmdStatus, "--server", url, "--creds", admin)
	if code != 0 {
		t.Fatalf("admin status: exit %d: %s", code, stderr)
	}
	for _, row := range [][]string{
		{"TENANT", "MAX", "RUNNING", "MAX", "QUEUED", "MAX", "STORAGE", "MB", "QUEUED", "RUNNING", "CREDENTIALS"},
		{"acme", "2", "5", "100", "1", "1", "2"},
		{"beta", "-", "-", "-", "0", "0", "1"},
	} {
		if !hasRow(stdout, row) {
			t.Errorf("admin status has no row %q:\n%s", row, stdout)
		}
	}

	// A tenant: its own view only.
	code, stdout, stderr = runCmd(t, cmdStatus, "--server", url, "--creds", acme, "--json")
	if code != 0 {
		t.Fatalf("acme's status: exit %d: %s", code, stderr)
	}
	var view map[string]any
	if err := json.Unmarshal([]byte(stdout), &view); err != nil {
		t.Fatalf("acme's status --json: %v\n%s", err, stdout)
	}
	wantView := map[string]any{"server": view["server"], "tenant": "acme", "max_running": 2.0, "max_queued": 5.0, "max_storage_mb": 100.0,
		"queued": 1.0, "running": 1.0}
	if !sameJSON(view, wantView) || !strings.HasPrefix(view["server"].(string), "nats://127.0.0.1:") {
		t.Errorf("acme's status %v, want %v", view, wantView)
	}
	code, stdout, stderr = runCmd(t, cmdStatus, "--server", url, "--creds", acme)
	if code != 0 || !strings.Contains(stdout, "tenant acme") || !hasRow(stdout, []string{"acme", "2", "5", "100", "1", "1"}) {
		t.Errorf("acme's status: exit %d, stdout:\n%s\nstderr %s", code, stdout, stderr)
	}
	for _, fleet := range []string{"WORKER", "STREAM", "POOL", "beta", "w1"} {
		if strings.Contains(stdout, fleet) {
			t.Errorf("acme's status shows %q:\n%s", fleet, stdout)
		}
	}
	code, stdout, stderr = runCmd(t, cmdStatus, "--server", url, "--creds", beta, "--json")
	if code != 0 || !strings.Contains(stdout, `"tenant": "beta"`) || !strings.Contains(stdout, `"queued": 0`) || strings.Contains(stdout, "acme") {
		t.Errorf("beta's status: exit %d, stdout:\n%s\nstderr %s", code, stdout, stderr)
	}

	// A credential of a tenant without a record is told so.
	ghost := mintCreds(t, a, auth.User{Role: auth.RoleClient, Tenant: "ghost"})
	code, _, stderr = runCmd(t, cmdStatus, "--server", url, "--creds", ghost)
	if code != exitBrig || !strings.Contains(stderr, "tenant ghost does not exist") {
		t.Errorf("ghost's status: exit %d, stderr %q; want %d and NotFound", code, stderr, exitBrig)
	}
}

// hasRow reports whether a line of out has exactly the fields of row.
func hasRow(out string, row []string) bool {
	for line := range strings.Lines(out) {
		if strings.Join(strings.Fields(line), " ") == strings.Join(row, " ") {
			return true
		}
	}
	return false
}

func sameJSON(a, b map[string]any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
