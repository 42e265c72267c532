package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/auth"
	"github.com/brig-dev/brig/internal/natsserver"
)

// TestMain points the user's data and config dirs at a temporary one: the
// commands' defaults (brig dev's creds, brig nats's authority, the NATS CLI
// context) must never read or write the real ones in a test.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "brig-cmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("XDG_DATA_HOME", filepath.Join(dir, "data"))
	os.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// newAuthority creates an authority in a temporary directory.
func newAuthority(t *testing.T) (dir string, a *auth.Authority) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "auth")
	a, _, err := auth.OpenOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, a
}

// startAuthServer runs a server that trusts a fresh authority, as every
// server brig runs does, on a random port with a temporary store.
func startAuthServer(t *testing.T) (url string, a *auth.Authority) {
	t.Helper()
	_, a = newAuthority(t)
	ns, err := natsserver.Start(t.Context(), natsserver.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Auth: a})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns.ClientURL(), a
}

// mintCreds writes a credential of a for u into a temporary file.
func mintCreds(t *testing.T, a *auth.Authority, u auth.User) string {
	t.Helper()
	data, err := a.Creds(u)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), string(u.Role)+".creds")
	if err := auth.WriteSecret(path, data); err != nil {
		t.Fatal(err)
	}
	return path
}

// adminConn connects to url as a's admin, for the test's own checks.
func adminConn(t *testing.T, url string, a *auth.Authority, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	path := mintCreds(t, a, auth.User{Role: auth.RoleAdmin})
	nc, err := nats.Connect(url, append([]nats.Option{nats.UserCredentials(path)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}
