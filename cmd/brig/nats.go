package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/brig-dev/brig/internal/auth"
	"github.com/brig-dev/brig/internal/metrics"
	"github.com/brig-dev/brig/internal/natsserver"
)

// cmdNats runs one node of brig's NATS cluster (docs/design.md §9): an embedded
// nats-server with JetStream, until SIGTERM or SIGINT.
func cmdNats(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("brig nats", stdout, stderr)
	listen := fs.String("listen", "127.0.0.1:4222", "client address HOST:PORT (port 0: a free one)")
	data := fs.String("data", filepath.Join(defaultDataDir(), "nats"), "JetStream store dir")
	name := fs.String("name", "", "server name, unique in the cluster (required with --cluster)")
	clusterName := fs.String("cluster-name", "", "cluster name, the same on every node (required with --cluster)")
	clusterListen := fs.String("cluster", "", "route address HOST:PORT; makes this server a cluster node")
	routes := fs.String("routes", "", "comma-separated nats-route://HOST:PORT of the cluster's nodes (its own may be among them)")
	advertise := fs.String("cluster-advertise", "", "HOST:PORT other nodes reach this one at, when not --cluster (a container's name)")
	httpAddr := fs.String("http", "", "serve nats-server monitoring (/varz, /jsz, /healthz, ...) on HOST:PORT")
	logLevel := fs.String("log-level", "info", "debug (includes nats-server's notices), info, warn or error")
	authDir := fs.String("auth-dir", filepath.Join(defaultDataDir(), "auth"),
		"`DIR` of brig's authority (docs/design.md §10), created on first start; every node of a cluster must be given the same one")
	tlsCert := fs.String("tls-cert", "", "PEM certificate `FILE`: serve TLS to clients and routes (with --tls-key)")
	tlsKey := fs.String("tls-key", "", "PEM key `FILE` of --tls-cert")
	tlsCA := fs.String("tls-ca", "", "PEM `FILE` of the CA of the cluster nodes' certificates, verified on routes (required for TLS with --cluster)")
	metricsAddr := addMetricsFlag(fs)
	_ = addServerFlag(fs) // accepted for uniformity; a node serves, it does not connect
	if _, err := parseInterleaved(fs, args); err != nil {
		return parseExit(err)
	}
	log := newLogger(stderr, *logLevel)
	a, created, err := auth.OpenOrCreate(*authDir)
	if err != nil {
		fmt.Fprintf(stderr, "brig nats: %v\n", err)
		return 1
	}
	if created {
		fmt.Fprintf(stderr, "created authority in %s\n", *authDir)
	}
	ns, err := natsserver.Start(ctx, natsserver.Config{
		Listen:           *listen,
		DataDir:          *data,
		Name:             *name,
		Logger:           log,
		ClusterName:      *clusterName,
		ClusterListen:    *clusterListen,
		Routes:           splitList(*routes),
		ClusterAdvertise: *advertise,
		Auth:             a,
		TLSCert:          *tlsCert,
		TLSKey:           *tlsKey,
		TLSCA:            *tlsCA,
	})
	if err != nil {
		fmt.Fprintf(stderr, "brig nats: %v\n", err)
		return 1
	}
	stopHTTP, err := serveNodeHTTP(ctx, ns, *httpAddr, *metricsAddr, log, stderr)
	if err != nil {
		ns.Shutdown()
		fmt.Fprintf(stderr, "brig nats: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "ready %s\n", ns.ClientURL())
	<-ctx.Done()
	log.Info("brig nats: shutting down")
	stopHTTP()
	// Shutdown hands this node's raft leaderships to the other nodes before
	// it closes clients and routes, so the cluster carries on at once.
	ns.Shutdown()
	ns.WaitForShutdown()
	return 0
}

// serveNodeHTTP serves the node's Prometheus metrics on metricsAddr and
// nats-server's monitoring on httpAddr, each when its address is set. stop
// ends both.
func serveNodeHTTP(ctx context.Context, ns *server.Server, httpAddr, metricsAddr string, log *slog.Logger, stderr io.Writer) (stop func(), err error) {
	mctx, stopMetrics := context.WithCancel(ctx)
	reg, err := serveMetrics(mctx, metricsAddr, log, stderr)
	if err != nil {
		stopMetrics()
		return nil, err
	}
	metrics.NewNATS(reg, ns)
	if httpAddr == "" {
		return stopMetrics, nil
	}
	mon, err := serveMonitoring(ns, httpAddr, log)
	if err != nil {
		stopMetrics()
		return nil, err
	}
	return func() {
		stopMetrics()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = mon.Shutdown(sctx)
		cancel()
	}, nil
}

// serveMonitoring serves nats-server's monitoring endpoints on addr. The
// embedded server is built without a monitoring port, so brig mounts the
// server's own handlers.
func serveMonitoring(ns *server.Server, addr string, log *slog.Logger) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("monitoring: %w", err)
	}
	mux := http.NewServeMux()
	for path, h := range map[string]http.HandlerFunc{
		server.RootPath:         ns.HandleRoot,
		server.VarzPath:         ns.HandleVarz,
		server.ConnzPath:        ns.HandleConnz,
		server.RoutezPath:       ns.HandleRoutez,
		server.GatewayzPath:     ns.HandleGatewayz,
		server.LeafzPath:        ns.HandleLeafz,
		server.SubszPath:        ns.HandleSubsz,
		server.AccountzPath:     ns.HandleAccountz,
		server.AccountStatzPath: ns.HandleAccountStatz,
		server.JszPath:          ns.HandleJsz,
		server.HealthzPath:      ns.HandleHealthz,
		server.RaftzPath:        ns.HandleRaftz,
	} {
		if path == server.RootPath {
			path = "/{$}"
		}
		mux.HandleFunc(path, h)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("monitoring", "err", err)
		}
	}()
	log.Info("nats monitoring", "url", "http://"+ln.Addr().String())
	return srv, nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
