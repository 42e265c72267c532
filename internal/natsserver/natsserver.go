// Package natsserver runs an embedded nats-server with JetStream, for
// `brig dev`, `brig nats` and tests.
package natsserver

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/brig-dev/brig/internal/auth"
)

// Config of an embedded server.
type Config struct {
	// Listen is HOST:PORT for clients; port 0 picks a free one.
	// Default 127.0.0.1:4222.
	Listen string
	// DataDir holds JetStream's store. Required.
	DataDir string
	// Name of the server (default: chosen by nats-server).
	Name string
	// Logger receives the server's log lines at debug level; nil is silent.
	Logger *slog.Logger
	// ReadyTimeout bounds the wait for client connections (default 10s).
	ReadyTimeout time.Duration

	// Cluster, when ClusterListen is set, makes the server a node of a
	// JetStream cluster: ClusterName names it (every node the same),
	// ClusterListen is this node's HOST:PORT for routes, Routes are the
	// nats-route://HOST:PORT URLs of the other nodes (its own may be among
	// them), and Name must be unique in the cluster.
	ClusterName   string
	ClusterListen string
	Routes        []string
	// ClusterAdvertise is the HOST:PORT other nodes reach this one at, when
	// it differs from ClusterListen (a container's name).
	ClusterAdvertise string

	// Auth is the authority every client must hold a credential of
	// (docs/design.md §10); anonymous connections are refused. Required
	// unless NoAuth.
	Auth *auth.Authority
	// NoAuth runs a server that lets anyone in. Only unit tests of code
	// below the auth layer use it; brig's commands never do.
	NoAuth bool
	// TLSCert and TLSKey, PEM files, make clients and cluster routes speak
	// TLS. TLSCA, when set, is the CA routes must present a certificate of
	// (mutual TLS between nodes).
	TLSCert, TLSKey, TLSCA string
}

// Start runs a server and waits until it accepts connections.
func Start(ctx context.Context, cfg Config) (*server.Server, error) {
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("nats server: data dir is required")
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:4222"
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 10 * time.Second
	}
	host, portStr, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("nats server: listen address %q: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("nats server: listen port %q: %w", portStr, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	} else if ln, err := net.Listen("tcp", cfg.Listen); err != nil {
		// nats-server only logs a failed listen; say it plainly and at once.
		return nil, fmt.Errorf("nats server: cannot listen on %s: %w", cfg.Listen, err)
	} else {
		ln.Close()
	}
	opts := &server.Options{
		ServerName: cfg.Name,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   cfg.DataDir,
		NoSigs:     true,
		NoLog:      cfg.Logger == nil,
	}
	if err := cluster(opts, cfg); err != nil {
		return nil, err
	}
	switch {
	case cfg.Auth != nil:
		if err := cfg.Auth.Configure(opts); err != nil {
			return nil, fmt.Errorf("nats server: %w", err)
		}
	case !cfg.NoAuth:
		return nil, fmt.Errorf("nats server: no authority given: brig never runs a server that lets anonymous clients in")
	}
	if err := configureTLS(opts, cfg); err != nil {
		return nil, err
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	if cfg.Logger != nil {
		ns.SetLoggerV2(&slogAdapter{cfg.Logger}, false, false, false)
	}
	ns.Start()
	deadline := time.Now().Add(cfg.ReadyTimeout)
	for !ns.ReadyForConnections(100 * time.Millisecond) {
		if ctx.Err() != nil || time.Now().After(deadline) {
			ns.Shutdown()
			return nil, fmt.Errorf("nats server on %s not ready: %w", cfg.Listen, context.Cause(ctxOrDeadline(ctx)))
		}
	}
	if cfg.Auth != nil {
		// A server applies a pushed account update (a revocation) only to
		// an account it has loaded; load brig's now (docs/design.md §10.3).
		if err := cfg.Auth.Preload(ns); err != nil {
			ns.Shutdown()
			return nil, fmt.Errorf("nats server: %w", err)
		}
	}
	return ns, nil
}

// cluster fills in the cluster options of a node.
func cluster(opts *server.Options, cfg Config) error {
	if cfg.ClusterListen == "" {
		if len(cfg.Routes) > 0 || cfg.ClusterName != "" {
			return fmt.Errorf("nats server: cluster name and routes need a cluster listen address")
		}
		return nil
	}
	if cfg.Name == "" || cfg.ClusterName == "" {
		return fmt.Errorf("nats server: a cluster node needs a server name and a cluster name")
	}
	host, portStr, err := net.SplitHostPort(cfg.ClusterListen)
	if err != nil {
		return fmt.Errorf("nats server: cluster address %q: %w", cfg.ClusterListen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("nats server: cluster port %q: %w", portStr, err)
	}
	opts.Cluster = server.ClusterOpts{Name: cfg.ClusterName, Host: host, Port: port, Advertise: cfg.ClusterAdvertise}
	for _, r := range cfg.Routes {
		u, err := url.Parse(r)
		if err != nil || u.Host == "" {
			return fmt.Errorf("nats server: route %q is not a nats-route://HOST:PORT URL", r)
		}
		opts.Routes = append(opts.Routes, u)
	}
	return nil
}

// configureTLS turns on TLS for clients and routes when a certificate is
// given.
func configureTLS(opts *server.Options, cfg Config) error {
	if cfg.TLSCert == "" && cfg.TLSKey == "" {
		if cfg.TLSCA != "" {
			return fmt.Errorf("nats server: a TLS CA needs a certificate and key too")
		}
		return nil
	}
	if cfg.TLSCert == "" || cfg.TLSKey == "" {
		return fmt.Errorf("nats server: TLS needs both a certificate and a key")
	}
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey, Timeout: 2})
	if err != nil {
		return fmt.Errorf("nats server: TLS: %w", err)
	}
	opts.TLS, opts.TLSConfig, opts.TLSTimeout = true, tc, 2
	if opts.Cluster.Port != 0 {
		if cfg.TLSCA == "" {
			return fmt.Errorf("nats server: TLS on a cluster needs the CA of the nodes' certificates, to verify each other")
		}
		rc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey,
			CaFile: cfg.TLSCA, Verify: true, Timeout: 2})
		if err != nil {
			return fmt.Errorf("nats server: route TLS: %w", err)
		}
		opts.Cluster.TLSConfig, opts.Cluster.TLSTimeout = rc, 2
	}
	return nil
}

func ctxOrDeadline(ctx context.Context) context.Context {
	if ctx.Err() != nil {
		return ctx
	}
	c, cancel := context.WithCancelCause(ctx)
	cancel(fmt.Errorf("timed out"))
	return c
}

// slogAdapter feeds nats-server's logger into slog.
type slogAdapter struct{ l *slog.Logger }

func (a *slogAdapter) Noticef(f string, v ...any) { a.l.Debug(fmt.Sprintf(f, v...)) }
func (a *slogAdapter) Warnf(f string, v ...any)   { a.l.Warn(fmt.Sprintf(f, v...)) }
func (a *slogAdapter) Fatalf(f string, v ...any)  { a.l.Error(fmt.Sprintf(f, v...)) }
func (a *slogAdapter) Errorf(f string, v ...any)  { a.l.Error(fmt.Sprintf(f, v...)) }
func (a *slogAdapter) Debugf(f string, v ...any)  { a.l.Debug(fmt.Sprintf(f, v...)) }
func (a *slogAdapter) Tracef(f string, v ...any)  {}
