package auth_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/internal/auth"
	"github.com/brig-dev/brig/internal/natsserver"
)

// TestPushAccountReachesEveryNode: pushed through one node of a cluster,
// a revocation closes a client's connection on another, and every node
// refuses the credential afterwards.
func TestPushAccountReachesEveryNode(t *testing.T) {
	t.Parallel()
	a, _, err := auth.OpenOrCreate(filepath.Join(t.TempDir(), "auth"))
	if err != nil {
		t.Fatal(err)
	}
	const n = 3
	cfgs := make([]natsserver.Config, n)
	var routes []string
	for i := range cfgs {
		cfgs[i] = natsserver.Config{Listen: freeAddr(t), DataDir: t.TempDir(), Name: fmt.Sprintf("n%d", i+1),
			ClusterName: "revoke", ClusterListen: freeAddr(t), ReadyTimeout: 30 * time.Second, Auth: a}
		routes = append(routes, "nats-route://"+cfgs[i].ClusterListen)
	}
	nodes := make([]*server.Server, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range cfgs {
		cfgs[i].Routes = routes
		wg.Go(func() { nodes[i], errs[i] = natsserver.Start(t.Context(), cfgs[i]) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i+1, err)
		}
		t.Cleanup(func() { nodes[i].Shutdown(); nodes[i].WaitForShutdown() })
	}
	waitRoutes(t, nodes, n-1)

	victim, err := a.MintUser(auth.User{Role: auth.RoleClient, Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	nc, err := nats.Connect(nodes[2].ClientURL(), nats.UserJWTAndSeed(victim.JWT, string(victim.Seed)), nats.NoReconnect(),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sys := connect(t, nodes[0].ClientURL(), a, auth.User{Role: auth.RoleSystem})
	if err := a.Revoke(victim.PublicKey); err != nil {
		t.Fatal(err)
	}
	// natsserver.Start has every node load BRIG (Authority.Preload), so
	// even n1 and n2, which have never seen a user of it, apply the push;
	// Preload again is harmless.
	for _, ns := range nodes {
		if err := a.Preload(ns); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.PushAccount(t.Context(), sys); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the revoked client's connection on another node stayed open")
	}
	for _, ns := range nodes {
		if nc, err := nats.Connect(ns.ClientURL(), nats.UserJWTAndSeed(victim.JWT, string(victim.Seed))); err == nil {
			nc.Close()
			t.Errorf("%s let a revoked credential in", ns.Name())
		}
	}
}

// waitRoutes waits until every node has want routes: a cluster's routes
// form in the background once its nodes run.
func waitRoutes(t *testing.T, nodes []*server.Server, want int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for _, ns := range nodes {
		for ns.NumRoutes() < want {
			select {
			case <-ctx.Done():
				t.Fatalf("%s has %d routes, want %d", ns.Name(), ns.NumRoutes(), want)
			case <-tick.C:
			}
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
