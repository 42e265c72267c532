// Package devstack runs a whole brig in one process: an embedded NATS
// server with JetStream, one dispatcher and one worker. `brig dev` serves
// it, `brig run` falls back to it when no server answers, and the e2e
// tests run against it.
package devstack

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/docker/docker/client"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/dispatcher"
	"github.com/brig-dev/brig/internal/auth"
	"github.com/brig-dev/brig/internal/creds"
	"github.com/brig-dev/brig/internal/functions"
	"github.com/brig-dev/brig/internal/httpapi"
	"github.com/brig-dev/brig/internal/image"
	"github.com/brig-dev/brig/internal/natsserver"
	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/worker"
)

// Config of a dev stack.
type Config struct {
	// Listen is the NATS client address (default 127.0.0.1:4222; port 0
	// picks a free one).
	Listen string
	// DataDir holds JetStream's store. Required.
	DataDir string
	// Logger for every role (default: discard).
	Logger *slog.Logger
	// Progress receives image-build progress (default: discard).
	Progress io.Writer
	// SkipImage skips building the default sandbox image when missing.
	SkipImage bool
	// AuthDir holds brig's authority (the operator and account keys,
	// docs/design.md §10), created on first start; default: "auth" beside
	// DataDir.
	AuthDir string
	// CredsDir receives, on first start, admin.creds and default.creds
	// (tenant "default", whose record the stack keeps with that
	// credential's key in it); default: "creds" beside DataDir.
	CredsDir string
	// TLSCert and TLSKey make the server speak TLS to clients; TLSCA, when
	// the certificate is not signed by a CA the system trusts, is the CA
	// the stack's own connections verify it with.
	TLSCert, TLSKey, TLSCA string
	// Dispatcher and Worker tune the roles; Conn, Docker and Logger are
	// filled in.
	Dispatcher dispatcher.Config
	Worker     worker.Config
	// HTTPListen, when set, serves the HTTP API there (docs/design.md
	// §11; port 0 picks a free one); "" serves none.
	HTTPListen string
	// HTTP tunes the HTTP API; Listen, NATSURL and Logger are filled in.
	HTTP httpapi.Config
}

// Stack is a running dev stack.
type Stack struct {
	Server *server.Server
	// Conn is an admin connection (docs/design.md §10); the dispatcher
	// and the worker hold connections of their own roles.
	Conn *nats.Conn
	Auth *auth.Authority
	// AdminCreds and ClientCreds are the paths of admin.creds and
	// default.creds; ClientToken is default.token beside them, the same
	// credential as a token of the HTTP API (docs/design.md §11).
	AdminCreds, ClientCreds, ClientToken string
	// HTTP is the HTTP API, when Config.HTTPListen asked for it.
	HTTP       *httpapi.Server
	roleConns  []*nats.Conn
	tlsCA      string
	Docker     *client.Client
	Dispatcher *dispatcher.Dispatcher
	Worker     *worker.Worker
}

// URL is the NATS URL clients connect to.
func (s *Stack) URL() string { return s.Server.ClientURL() }

// Start brings the stack up; on error everything started is stopped.
func Start(ctx context.Context, cfg Config) (_ *Stack, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	s := &Stack{}
	defer func() {
		if err != nil {
			_ = s.Stop(context.WithoutCancel(ctx))
		}
	}()
	s.Docker, err = client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	if _, err := s.Docker.Ping(ctx); err != nil {
		return nil, fmt.Errorf("docker daemon not reachable (is Docker running?): %w", err)
	}
	if !cfg.SkipImage {
		if err := ensureImages(ctx, s.Docker, cfg.Progress, cfg.Logger); err != nil {
			return nil, err
		}
	}
	s.tlsCA = cfg.TLSCA
	if err := s.openAuth(cfg); err != nil {
		return nil, err
	}
	s.Server, err = natsserver.Start(ctx, natsserver.Config{Listen: cfg.Listen, DataDir: cfg.DataDir,
		Logger: cfg.Logger.With("role", "nats"), Auth: s.Auth, TLSCert: cfg.TLSCert, TLSKey: cfg.TLSKey})
	if err != nil {
		return nil, err
	}
	if s.Conn, err = s.Connect(auth.User{Role: auth.RoleAdmin, Name: "brig-dev"}); err != nil {
		return nil, err
	}
	dcfg := cfg.Dispatcher
	if err := s.ensureDefaultTenant(ctx, dcfg.Streams.WithDefaults().Replicas); err != nil {
		return nil, err
	}
	dconn, err := s.roleConn(auth.RoleDispatcher)
	if err != nil {
		return nil, err
	}
	dcfg.Conn, dcfg.Logger = dconn, cfg.Logger
	if dcfg.Functions == nil {
		if dcfg.Functions, err = functions.OpenKVResolver(ctx, dconn, dcfg.Streams.WithDefaults().Replicas); err != nil {
			return nil, err
		}
	}
	if s.Dispatcher, err = dispatcher.New(dcfg); err != nil {
		return nil, err
	}
	if err := s.Dispatcher.Start(ctx); err != nil {
		return nil, err
	}
	wconn, err := s.roleConn(auth.RoleWorker)
	if err != nil {
		return nil, err
	}
	wcfg := cfg.Worker
	wcfg.Conn, wcfg.Docker, wcfg.Logger = wconn, s.Docker, cfg.Logger
	if s.Worker, err = worker.New(wcfg); err != nil {
		return nil, err
	}
	if err := s.Worker.Start(ctx); err != nil {
		return nil, err
	}
	if err := s.startHTTP(ctx, cfg); err != nil {
		return nil, err
	}
	return s, nil
}

// startHTTP serves the HTTP API when cfg asks for it.
func (s *Stack) startHTTP(ctx context.Context, cfg Config) error {
	if cfg.HTTPListen == "" {
		return nil
	}
	hcfg := cfg.HTTP
	hcfg.Listen, hcfg.NATSURL, hcfg.Logger = cfg.HTTPListen, s.URL(), cfg.Logger
	if s.tlsCA != "" {
		hcfg.NATSOptions = append(hcfg.NATSOptions, nats.RootCAs(s.tlsCA))
	}
	srv, err := httpapi.New(hcfg)
	if err != nil {
		return err
	}
	if err := srv.Start(ctx); err != nil {
		return err
	}
	s.HTTP = srv
	return nil
}

// HTTPURL is the HTTP API's http://HOST:PORT, "" when it serves none.
func (s *Stack) HTTPURL() string {
	if s.HTTP == nil {
		return ""
	}
	return s.HTTP.URL()
}

// openAuth opens (creating on first start) the stack's authority and
// writes the admin's and the default tenant's credentials when missing:
// files handed out before stay valid.
func (s *Stack) openAuth(cfg Config) error {
	parent := filepath.Dir(filepath.Clean(cfg.DataDir))
	authDir := cmp.Or(cfg.AuthDir, filepath.Join(parent, "auth"))
	credsDir := cmp.Or(cfg.CredsDir, filepath.Join(parent, "creds"))
	a, _, err := auth.OpenOrCreate(authDir)
	if err != nil {
		return err
	}
	s.Auth = a
	s.AdminCreds = filepath.Join(credsDir, "admin.creds")
	s.ClientCreds = filepath.Join(credsDir, auth.DefaultTenant+".creds")
	for path, u := range map[string]auth.User{
		s.AdminCreds:  {Role: auth.RoleAdmin},
		s.ClientCreds: {Role: auth.RoleClient, Tenant: auth.DefaultTenant},
	} {
		if _, err := os.Stat(path); err == nil {
			continue
		}
		data, err := a.Creds(u)
		if err != nil {
			return err
		}
		if err := auth.WriteSecret(path, data); err != nil {
			return err
		}
	}
	return s.writeClientToken()
}

// writeClientToken writes default.token beside default.creds: the same
// credential, as a token of the HTTP API (0600, as the creds).
func (s *Stack) writeClientToken() error {
	data, err := os.ReadFile(s.ClientCreds)
	if err != nil {
		return fmt.Errorf("default tenant's token: %w", err)
	}
	s.ClientToken = strings.TrimSuffix(s.ClientCreds, ".creds") + ".token"
	return auth.WriteSecret(s.ClientToken, []byte(creds.FormatToken(data)))
}

// ensureDefaultTenant makes sure the default tenant has a record (no
// quotas) naming default.creds's key (docs/design.md §10.3): a submission
// of a tenant without one is rejected. A record there already keeps its
// quotas and other users.
func (s *Stack) ensureDefaultTenant(ctx context.Context, replicas int) error {
	data, err := os.ReadFile(s.ClientCreds)
	if err != nil {
		return fmt.Errorf("default tenant: %w", err)
	}
	id, err := auth.ReadCreds(data)
	if err != nil {
		return fmt.Errorf("default tenant: %s: %w", s.ClientCreds, err)
	}
	js, err := jetstream.New(s.Conn)
	if err != nil {
		return fmt.Errorf("default tenant: %w", err)
	}
	tenants, err := auth.OpenTenants(ctx, js, replicas)
	if err != nil {
		return fmt.Errorf("default tenant: %w", err)
	}
	_, _, err = tenants.Update(ctx, auth.DefaultTenant, func(rec *schema.Tenant, _ bool) error {
		if !slices.Contains(rec.Users, id.PublicKey) {
			rec.Users = append(rec.Users, id.PublicKey)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("default tenant: %w", err)
	}
	return nil
}

// Connect opens a connection to the stack's server with a fresh
// credential for u. A client's connection has its tenant's inbox prefix,
// as sdk.New needs (docs/design.md §10.3).
func (s *Stack) Connect(u auth.User, opts ...nats.Option) (*nats.Conn, error) {
	token, seed, err := s.Auth.UserJWT(u)
	if err != nil {
		return nil, err
	}
	name := cmp.Or(u.Name, "brig-dev-"+string(u.Role))
	base := []nats.Option{nats.Name(name), nats.UserJWTAndSeed(token, string(seed))}
	if u.Role == auth.RoleClient {
		base = append(base, nats.CustomInboxPrefix(schema.InboxPrefix(u.Tenant)))
	}
	if s.tlsCA != "" {
		base = append(base, nats.RootCAs(s.tlsCA))
	}
	nc, err := nats.Connect(s.Server.ClientURL(), append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to embedded nats as %s: %w", name, err)
	}
	return nc, nil
}

// roleConn connects one of the stack's own roles, closed by Stop.
func (s *Stack) roleConn(role auth.Role) (*nats.Conn, error) {
	nc, err := s.Connect(auth.User{Role: role})
	if err == nil {
		s.roleConns = append(s.roleConns, nc)
	}
	return nc, err
}

func ensureImages(ctx context.Context, docker *client.Client, progress io.Writer, log *slog.Logger) error {
	spec, ok := image.Lookup("python")
	if !ok {
		return errors.New("no built-in python image spec")
	}
	if _, err := image.Ensure(ctx, docker, spec, progress, log); err != nil {
		return fmt.Errorf("sandbox image %s: %w", spec.Ref, err)
	}
	return nil
}

// Stop stops the worker (letting running jobs finish until ctx ends), the
// dispatcher and the server. Safe to call twice.
func (s *Stack) Stop(ctx context.Context) error {
	var errs []error
	if s.HTTP != nil {
		errs = append(errs, s.HTTP.Stop(ctx))
	}
	if s.Worker != nil {
		errs = append(errs, s.Worker.Stop(ctx))
	}
	if s.Dispatcher != nil {
		errs = append(errs, s.Dispatcher.Stop(ctx))
	}
	for _, nc := range s.roleConns {
		nc.Close()
	}
	if s.Conn != nil {
		s.Conn.Close()
	}
	if s.Server != nil {
		s.Server.Shutdown()
		s.Server.WaitForShutdown()
	}
	if s.Docker != nil {
		errs = append(errs, s.Docker.Close())
	}
	return errors.Join(errs...)
}

// HostPort is the server's client address without the scheme.
func (s *Stack) HostPort() string { return strings.TrimPrefix(s.URL(), "nats://") }
