package devstack_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/auth"
	"github.com/brig-dev/brig/internal/devstack"
	"github.com/brig-dev/brig/internal/testenv/needs"
	"github.com/brig-dev/brig/worker"
)

// TestDefaultTenant: a stack keeps the default tenant's record with
// default.creds's key, across restarts, and its client connections use
// the tenant's inboxes.
func TestDefaultTenant(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dev stack")
	}
	needs.Docker(t) // Start fails without a Docker daemon to run the worker's jobs on
	dir := t.TempDir()
	start := func() *devstack.Stack {
		t.Helper()
		s, err := devstack.Start(t.Context(), devstack.Config{Listen: "127.0.0.1:0", DataDir: filepath.Join(dir, "jetstream"),
			SkipImage: true, Worker: worker.Config{ID: "devstack-test", RuntimeDir: filepath.Join(dir, "run")}})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	check := func(s *devstack.Stack) {
		t.Helper()
		js, err := jetstream.New(s.Conn)
		if err != nil {
			t.Fatal(err)
		}
		tenants, err := auth.ExistingTenants(t.Context(), js)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := tenants.Get(t.Context(), auth.DefaultTenant)
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(s.ClientCreds)
		if err != nil {
			t.Fatal(err)
		}
		id, err := auth.ReadCreds(data)
		if err != nil {
			t.Fatal(err)
		}
		if len(rec.Users) != 1 || !slices.Contains(rec.Users, id.PublicKey) || rec.MaxQueued != 0 {
			t.Errorf("default tenant = %+v; want no quotas and default.creds's key %s once", rec, id.PublicKey)
		}
	}
	s := start()
	check(s)
	nc, err := s.Connect(auth.User{Role: auth.RoleClient, Tenant: auth.DefaultTenant})
	if err != nil {
		t.Fatal(err)
	}
	if inbox := nc.NewRespInbox(); !strings.HasPrefix(inbox, "_INBOX.default.") {
		t.Errorf("a client's inbox is %s, want one under _INBOX.default.", inbox)
	}
	if _, err := nc.SubscribeSync(nc.NewInbox()); err != nil {
		t.Fatal(err)
	}
	if err := nc.FlushTimeout(5 * time.Second); err != nil || nc.LastError() != nil {
		t.Errorf("a client's inbox subscription: %v, %v", err, nc.LastError())
	}
	nc.Close()
	if err := s.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	s = start()
	defer s.Stop(t.Context())
	check(s)
}
