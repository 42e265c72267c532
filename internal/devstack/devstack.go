// Package devstack runs a whole brig in one process: an embedded NATS
// server with JetStream, one dispatcher and one worker. `brig dev` serves
// it, `brig run` falls back to it when no server answers, and the e2e
// tests run against it.
package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/docker/docker/client"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/dispatcher"
	"github.com/brig-dev/brig/internal/image"
	"github.com/brig-dev/brig/internal/natsserver"
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
	// Dispatcher and Worker tune the roles; Conn, Docker and Logger are
	// filled in.
	Dispatcher dispatcher.Config
	Worker     worker.Config
}

// Stack is a running dev stack.
type Stack struct {
	Server     *server.Server
	Conn       *nats.Conn
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
	s.Server, err = natsserver.Start(ctx, natsserver.Config{Listen: cfg.Listen, DataDir: cfg.DataDir, Logger: cfg.Logger.With("role", "nats")})
	if err != nil {
		return nil, err
	}
	s.Conn, err = nats.Connect(s.Server.ClientURL(), nats.Name("brig-dev"))
	if err != nil {
		return nil, fmt.Errorf("connect to embedded nats: %w", err)
	}
	dcfg := cfg.Dispatcher
	dcfg.Conn, dcfg.Logger = s.Conn, cfg.Logger
	if dcfg.Functions == nil {
		if dcfg.Functions, err = dispatcher.OpenKVResolver(ctx, s.Conn, dcfg.Streams.WithDefaults().Replicas); err != nil {
			return nil, err
		}
	}
	if s.Dispatcher, err = dispatcher.New(dcfg); err != nil {
		return nil, err
	}
	if err := s.Dispatcher.Start(ctx); err != nil {
		return nil, err
	}
	wcfg := cfg.Worker
	wcfg.Conn, wcfg.Docker, wcfg.Logger = s.Conn, s.Docker, cfg.Logger
	if s.Worker, err = worker.New(wcfg); err != nil {
		return nil, err
	}
	if err := s.Worker.Start(ctx); err != nil {
		return nil, err
	}
	return s, nil
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
	if s.Worker != nil {
		errs = append(errs, s.Worker.Stop(ctx))
	}
	if s.Dispatcher != nil {
		errs = append(errs, s.Dispatcher.Stop(ctx))
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
