package auth_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/internal/auth"
	"github.com/brig-dev/brig/internal/natsserver"
	"github.com/brig-dev/brig/schema"
)

func TestOpenOrCreateKeepsOneAuthority(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "auth")
	a, created, err := auth.OpenOrCreate(dir)
	if err != nil || !created {
		t.Fatalf("create: %v (created %v)", err, created)
	}
	b, created, err := auth.OpenOrCreate(dir)
	if err != nil || created {
		t.Fatalf("reopen: %v (created %v)", err, created)
	}
	if a.AccountKey() != b.AccountKey() {
		t.Fatal("reopening made a new account key")
	}
	for _, f := range []string{"operator.nk", "sys.nk", "brig.nk"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	if _, err := auth.Open(t.TempDir()); !errors.Is(err, auth.ErrNoAuthority) {
		t.Errorf("open of an empty dir: %v, want ErrNoAuthority", err)
	}
}

func TestPermissionsRefuseBadInput(t *testing.T) {
	for _, tc := range []struct {
		role   auth.Role
		tenant string
	}{{auth.RoleClient, ""}, {auth.RoleAdmin, "default"}, {auth.RoleClient, "Bad.Tenant"}, {auth.RoleClient, "x>"}, {"root", ""}} {
		if _, err := auth.Permissions(tc.role, tc.tenant); err == nil {
			t.Errorf("Permissions(%q, %q) gave no error", tc.role, tc.tenant)
		}
	}
}

// TestServerRefusesWhatACredentialDoesNotAllow: anonymous and forged
// clients are refused, and a tenant client can publish and subscribe only
// on its allow-list.
func TestServerRefusesWhatACredentialDoesNotAllow(t *testing.T) {
	a, _, err := auth.OpenOrCreate(filepath.Join(t.TempDir(), "auth"))
	if err != nil {
		t.Fatal(err)
	}
	ns, err := natsserver.Start(t.Context(), natsserver.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Auth: a})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	url := ns.ClientURL()

	if nc, err := nats.Connect(url); err == nil {
		nc.Close()
		t.Fatal("an anonymous client was let in")
	}
	other, _, _ := auth.OpenOrCreate(filepath.Join(t.TempDir(), "other"))
	if nc, err := nats.Connect(url, creds(t, other, auth.User{Role: auth.RoleAdmin})); err == nil {
		nc.Close()
		t.Fatal("a credential of another authority was let in")
	}
	expired := auth.User{Role: auth.RoleAdmin, Expires: time.Now().Add(-time.Minute)}
	if nc, err := nats.Connect(url, creds(t, a, expired)); err == nil {
		nc.Close()
		t.Fatal("an expired credential was let in")
	}

	admin, err := nats.Connect(url, creds(t, a, auth.User{Role: auth.RoleAdmin}))
	if err != nil {
		t.Fatalf("admin: %v", err)
	}
	defer admin.Close()
	violations := make(chan error, 16)
	client, err := nats.Connect(url, creds(t, a, auth.User{Role: auth.RoleClient, Tenant: auth.DefaultTenant}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err }))
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	defer client.Close()

	for _, subject := range []string{">", "brig.>", "brig.events.x.result", "$KV.BRIG_FUNCTIONS.>",
		"_INBOX.>", "_INBOX.*", "_INBOX.other.>", "_INBOX.defaultx.>"} {
		if _, err := client.SubscribeSync(subject); err != nil {
			t.Fatal(err)
		}
		if err := client.Flush(); err != nil {
			t.Fatal(err)
		}
		wantViolation(t, violations, "Subscription to \""+subject+"\"")
	}
	for _, subject := range []string{"brig.events.x.result", "brig.work.python", "$KV.BRIG_FUNCTIONS.f", "$JS.API.STREAM.PURGE.BRIG_EVENTS",
		// Another tenant's subjects, and the ones without a tenant.
		"brig.submit.other.python", "brig.cancel.other.job1", "brig.replay.other.job1",
		"brig.submit.python", "brig.cancel.job1", "brig.replay.job1", "brig.cancel.default.job1.x",
		// The functions service: another tenant's, none, or below its own.
		"brig.functions.other", "brig.functions", "brig.functions.default.x", "brig.functions.*"} {
		if err := client.Publish(subject, []byte("{}")); err != nil {
			t.Fatal(err)
		}
		_ = client.Flush()
		wantViolation(t, violations, "Publish to \""+subject+"\"")
	}
	// What the client may do reaches whoever serves it, and its tenant's
	// inboxes reach it.
	for _, subject := range []string{"brig.submit.default.python", "brig.cancel.default.job1", "brig.replay.default.job1", "brig.functions.default"} {
		sub, err := admin.SubscribeSync(subject)
		if err != nil {
			t.Fatal(err)
		}
		_ = admin.Flush()
		if err := client.Publish(subject, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := sub.NextMsg(5 * time.Second); err != nil {
			t.Fatalf("an allowed publish on %s did not arrive: %v", subject, err)
		}
	}
	// The dispatchers serve every tenant's functions requests.
	dispatcher, err := nats.Connect(url, creds(t, a, auth.User{Role: auth.RoleDispatcher}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err }))
	if err != nil {
		t.Fatalf("dispatcher: %v", err)
	}
	defer dispatcher.Close()
	served, err := dispatcher.QueueSubscribeSync(schema.FunctionsPrefix+"*", "brig-dispatchers")
	if err != nil {
		t.Fatal(err)
	}
	_ = dispatcher.Flush()
	if err := client.Publish(schema.FunctionsSubject("default"), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if _, err := served.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("the dispatcher did not get a tenant's functions request: %v", err)
	}
	inbox, err := client.SubscribeSync(schema.InboxPrefix("default") + ".x.y")
	if err != nil {
		t.Fatal(err)
	}
	_ = client.Flush()
	if err := admin.Publish(schema.InboxPrefix("default")+".x.y", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, err := inbox.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("the tenant's inbox got nothing: %v", err)
	}
	select {
	case err := <-violations:
		t.Errorf("an allowed operation was refused: %v", err)
	default:
	}
}

// TestPermissionsOfATenant: a client's allow-list names its tenant and
// nothing else.
func TestPermissionsOfATenant(t *testing.T) {
	p, err := auth.Permissions(auth.RoleClient, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := []string(p.Pub.Allow), []string{"brig.submit.acme.>", "brig.cancel.acme.*", "brig.replay.acme.*", "brig.status.acme", "brig.functions.acme"}; !slices.Equal(got, want) {
		t.Errorf("publish %v, want %v", got, want)
	}
	if got, want := []string(p.Sub.Allow), []string{"_INBOX.acme.>"}; !slices.Equal(got, want) {
		t.Errorf("subscribe %v, want %v", got, want)
	}
	if len(p.Pub.Deny) != 0 || len(p.Sub.Deny) != 0 {
		t.Errorf("deny rules %v %v, want none", p.Pub.Deny, p.Sub.Deny)
	}
}

func TestMintUserAndReadCreds(t *testing.T) {
	a, _, err := auth.OpenOrCreate(filepath.Join(t.TempDir(), "auth"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := a.MintUser(auth.User{Role: auth.RoleClient, Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	data, err := m.Creds()
	if err != nil {
		t.Fatal(err)
	}
	id, err := auth.ReadCreds(data)
	if err != nil {
		t.Fatal(err)
	}
	if id != (auth.Identity{PublicKey: m.PublicKey, Role: auth.RoleClient, Tenant: "acme"}) {
		t.Errorf("ReadCreds = %+v, want the key %s of a client of acme", id, m.PublicKey)
	}
	other, _ := a.MintUser(auth.User{Role: auth.RoleClient, Tenant: "acme"})
	if other.PublicKey == m.PublicKey {
		t.Error("two credentials share a key")
	}
	admin, _ := a.Creds(auth.User{Role: auth.RoleAdmin})
	if id, err := auth.ReadCreds(admin); err != nil || id.Tenant != "" || id.Role != auth.RoleAdmin {
		t.Errorf("ReadCreds(admin) = %+v, %v", id, err)
	}
	if _, err := auth.ReadCreds([]byte("nonsense")); err == nil {
		t.Error("ReadCreds of nonsense gave no error")
	}
}

func wantViolation(t *testing.T, errs <-chan error, what string) {
	t.Helper()
	select {
	case err := <-errs:
		if !strings.Contains(err.Error(), "Permissions Violation") || !strings.Contains(err.Error(), what) {
			t.Errorf("got %v, want a permissions violation for %s", err, what)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("no permissions violation for %s", what)
	}
}

func creds(t *testing.T, a *auth.Authority, u auth.User) nats.Option {
	t.Helper()
	token, seed, err := a.UserJWT(u)
	if err != nil {
		t.Fatal(err)
	}
	return nats.UserJWTAndSeed(token, string(seed))
}
