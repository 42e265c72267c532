package auth_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/internal/auth"
	"github.com/brig-dev/brig/internal/natsserver"
)

// TestRevokeClosesAndRefuses: a revoked client's connection is closed as
// soon as the account is pushed, a new one is refused, and a server
// started again from the same authority directory still refuses it; other
// credentials are untouched.
func TestRevokeClosesAndRefuses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "auth")
	a, _, err := auth.OpenOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	start := func(a *auth.Authority) string {
		t.Helper()
		ns, err := natsserver.Start(t.Context(), natsserver.Config{Listen: "127.0.0.1:0", DataDir: data, Auth: a})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
		return ns.ClientURL()
	}
	url := start(a)

	victim, err := a.MintUser(auth.User{Role: auth.RoleClient, Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	bystander, err := a.MintUser(auth.User{Role: auth.RoleClient, Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	errs := make(chan error, 4)
	nc, err := nats.Connect(url, nats.UserJWTAndSeed(victim.JWT, string(victim.Seed)), nats.NoReconnect(),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	other, err := nats.Connect(url, nats.UserJWTAndSeed(bystander.JWT, string(bystander.Seed)))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	sys := connect(t, url, a, auth.User{Role: auth.RoleSystem})

	if err := a.Revoke(victim.PublicKey); err != nil {
		t.Fatal(err)
	}
	if revoked, err := a.Revoked(); err != nil || len(revoked) != 1 || revoked[victim.PublicKey].IsZero() {
		t.Fatalf("Revoked = %v, %v; want the victim's key", revoked, err)
	}
	if err := a.PushAccount(t.Context(), sys); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the revoked client's connection stayed open")
	}
	select {
	case err := <-errs:
		if !errors.Is(err, nats.ErrAuthRevoked) {
			t.Errorf("the revoked client got %v, want %v", err, nats.ErrAuthRevoked)
		}
	default:
		t.Errorf("the revoked client was not told %v", nats.ErrAuthRevoked)
	}
	refused := func(url string) {
		t.Helper()
		if nc, err := nats.Connect(url, nats.UserJWTAndSeed(victim.JWT, string(victim.Seed))); err == nil {
			nc.Close()
			t.Error("a revoked credential was let in")
		}
		if err := other.Flush(); err != nil {
			t.Errorf("another credential of the tenant: %v", err)
		}
	}
	refused(url)

	// Revoking again changes nothing; a bad key is refused.
	if err := a.Revoke(victim.PublicKey); err != nil {
		t.Fatal(err)
	}
	if err := a.Revoke("not-a-key"); err == nil {
		t.Error("Revoke of a non-key gave no error")
	}
	if fi, err := os.Stat(filepath.Join(dir, "revoked.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("revoked.json: %v, %v; want mode 0600", fi, err)
	}

	// A server started again from the directory reads the revocations.
	other.Close()
	reopened, err := auth.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	url = start(reopened)
	other = connect(t, url, a, auth.User{Role: auth.RoleClient, Tenant: "acme"})
	refused(url)
}

// TestPushAccountNeedsTheSystemAccount: a connection of the BRIG account,
// even an admin's, reaches no server's system API.
func TestPushAccountNeedsTheSystemAccount(t *testing.T) {
	a, _, err := auth.OpenOrCreate(filepath.Join(t.TempDir(), "auth"))
	if err != nil {
		t.Fatal(err)
	}
	ns, err := natsserver.Start(t.Context(), natsserver.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Auth: a})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	admin := connect(t, ns.ClientURL(), a, auth.User{Role: auth.RoleAdmin})
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if err := a.PushAccount(ctx, admin); err == nil {
		t.Error("PushAccount over an admin connection succeeded")
	}
}

func connect(t *testing.T, url string, a *auth.Authority, u auth.User) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, creds(t, a, u))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}
