package sdktest

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/dispatcher"
	"github.com/brig-dev/brig/internal/auth"
	"github.com/brig-dev/brig/internal/functions"
	"github.com/brig-dev/brig/internal/natsserver"
	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// functionsStack is brig with its permissions: a server of an authority,
// a dispatcher on a dispatcher's credential resolving the function bucket,
// the fake worker, and a client of tenant acme on a tenant's .creds file.
type functionsStack struct {
	f      *fakeBrig
	store  *functions.Store
	client *sdk.Client
}

func startFunctionsStack(t *testing.T) *functionsStack {
	t.Helper()
	ctx := t.Context()
	a, _, err := auth.OpenOrCreate(filepath.Join(t.TempDir(), "auth"))
	if err != nil {
		t.Fatal(err)
	}
	ns, err := natsserver.Start(ctx, natsserver.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Auth: a})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	roleConn := func(role auth.Role) *nats.Conn {
		token, seed, err := a.UserJWT(auth.User{Role: role})
		if err != nil {
			t.Fatal(err)
		}
		nc, err := nats.Connect(ns.ClientURL(), nats.UserJWTAndSeed(token, string(seed)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	admin := roleConn(auth.RoleAdmin)
	js, err := jetstream.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	s := &functionsStack{f: newFake(t, admin, js)}
	s.f.addTenant(schema.Tenant{Name: "acme"})
	if s.store, err = functions.Open(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	dconn := roleConn(auth.RoleDispatcher)
	fns, err := functions.OpenKVResolver(ctx, dconn, 1)
	if err != nil {
		t.Fatal(err)
	}
	d, err := dispatcher.New(dispatcher.Config{Conn: dconn, Functions: fns,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Stop(context.Background()) })
	data, err := a.Creds(auth.User{Role: auth.RoleClient, Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "acme.creds")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if s.client, err = sdk.Connect(ctx, ns.ClientURL(), sdk.WithCreds(file)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.client.Close)
	return s
}

// grader is a function a tenant may deploy: the built-in python's image,
// nothing only an admin may set.
func graderFn() schema.Function {
	fn := schema.Python()
	fn.Name, fn.Env = "grader", map[string]string{"GRADER": "v1"}
	return fn
}

// The functions API round trip on a tenant's credential: deploy, list,
// get, delete; an unchanged deploy keeps its revision; the refusals match
// their sentinels.
func TestFunctionsRoundTrip(t *testing.T) {
	t.Parallel()
	s := startFunctionsStack(t)
	ctx, fns := t.Context(), s.client.Functions()
	info, err := fns.Deploy(ctx, graderFn())
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "grader" || info.Owner != sdk.OwnerTenant || info.Revision == 0 || info.Function.Env["GRADER"] != "v1" {
		t.Errorf("deploy: %+v", info)
	}
	if again, err := fns.Deploy(ctx, graderFn()); err != nil || again.Revision != info.Revision || !again.Updated.Equal(info.Updated) {
		t.Errorf("unchanged deploy: %+v, %v; want revision %d", again, err, info.Revision)
	}
	if _, err := s.store.GetFor(ctx, "acme", "grader"); err != nil {
		t.Errorf("not stored as acme's own: %v", err)
	}
	list, err := fns.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, i := range list {
		got = append(got, string(i.Owner)+":"+i.Name)
	}
	if want := []string{"builtin:echo", "tenant:grader", "builtin:python"}; !slices.Equal(got, want) {
		t.Errorf("list %v, want %v", got, want)
	}
	if g, err := fns.Get(ctx, "python"); err != nil || g.Owner != sdk.OwnerBuiltin || g.Function.Image == "" {
		t.Errorf("get python: %+v, %v", g, err)
	}
	if err := fns.Delete(ctx, "grader"); err != nil {
		t.Fatal(err)
	}
	var fe *sdk.FunctionError
	if _, err := fns.Get(ctx, "grader"); !errors.Is(err, sdk.ErrNotFound) || !errors.As(err, &fe) || fe.Type != schema.ErrNotFound {
		t.Errorf("get after delete: %v, want ErrNotFound", err)
	}
	if err := fns.Delete(ctx, "python"); !errors.Is(err, sdk.ErrForbidden) {
		t.Errorf("delete python: %v, want ErrForbidden", err)
	}
	open := graderFn()
	open.Network = schema.Ptr(true)
	if _, err := fns.Deploy(ctx, open); !errors.Is(err, sdk.ErrForbidden) || !errors.As(err, &fe) || fe.Field != "network" {
		t.Errorf("deploy with network: %v, want ErrForbidden on network", err)
	}
	bad := graderFn()
	bad.TimeoutMS = -1
	if _, err := fns.Deploy(ctx, bad); !errors.Is(err, sdk.ErrRejected) || !errors.As(err, &fe) || fe.Field != "timeout_ms" {
		t.Errorf("invalid deploy: %v, want ErrRejected on timeout_ms", err)
	}
}

// Identical deploys at once bump the revision at most once.
func TestFunctionsConcurrentDeploys(t *testing.T) {
	t.Parallel()
	s := startFunctionsStack(t)
	var wg sync.WaitGroup
	revs, errs := make([]uint64, 6), make([]error, 6)
	for i := range revs {
		wg.Go(func() {
			info, err := s.client.Functions().Deploy(t.Context(), graderFn())
			if errs[i] = err; err == nil {
				revs[i] = info.Revision
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for i, rev := range revs {
		if rev != revs[0] {
			t.Errorf("deploy %d: revision %d, deploy 0: %d", i, rev, revs[0])
		}
	}
	if e, err := s.store.EntryFor(t.Context(), "acme", "grader"); err != nil || e.Revision != revs[0] {
		t.Errorf("stored: revision %d, %v; want %d", e.Revision, err, revs[0])
	}
}

// A job of the tenant resolves the function the tenant deployed: its run
// spec carries the deployed env. Deleting it brings back the built-in.
func TestFunctionsJobResolves(t *testing.T) {
	t.Parallel()
	s := startFunctionsStack(t)
	ctx := t.Context()
	own := schema.Python() // the tenant's own python, for its jobs only
	own.Env = map[string]string{"GRADER": "acme's"}
	if _, err := s.client.Functions().Deploy(ctx, own); err != nil {
		t.Fatal(err)
	}
	if env := s.routedEnv(t, "r-1"); env["GRADER"] != "acme's" {
		t.Errorf("a job of acme ran with env %v, want acme's own python's", env)
	}
	if err := s.client.Functions().Delete(ctx, "python"); err != nil {
		t.Fatal(err)
	}
	if env := s.routedEnv(t, "r-2"); env["GRADER"] != "" || env["PATH"] == "" {
		t.Errorf("after delete, a job of acme ran with env %v, want the built-in's", env)
	}
}

// routedEnv submits a python job of the client's tenant and returns the
// env of the run spec the dispatcher routed it with.
func (s *functionsStack) routedEnv(t *testing.T, id string) map[string]string {
	t.Helper()
	h, err := s.client.Submit(t.Context(), schema.Job{ID: id, Function: "python", Code: "print(1)"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	s.f.alive()
	msg, err := s.f.work.Next(jetstream.FetchMaxWait(waitBudget))
	if err != nil {
		t.Fatalf("job %s not routed: %v", id, err)
	}
	_ = msg.Ack()
	work, err := schema.DecodeWork(msg.Data())
	if err != nil {
		t.Fatal(err)
	}
	if work.Job.ID != "acme."+id {
		t.Fatalf("routed %s, want acme.%s", work.Job.ID, id)
	}
	return work.Spec.Env
}
