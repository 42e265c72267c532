package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/docker/docker/client"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/brig-dev/brig/dispatcher"
	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/internal/egress/allow"
	"github.com/brig-dev/brig/internal/egress/proxy"
	"github.com/brig-dev/brig/internal/functions"
	"github.com/brig-dev/brig/internal/metrics"
	"github.com/brig-dev/brig/worker"
)

// connectRole dials the server for a long-running role: the first dial must
// succeed (a supervisor restarts a role that exits), then it reconnects
// forever.
func connectRole(conn *connFlags, name string) (*nats.Conn, error) {
	return conn.connect(name, nats.MaxReconnects(-1), nats.ReconnectWait(500*time.Millisecond))
}

// startRetrying runs start until it succeeds: a role may come up before
// its NATS cluster has elected a JetStream leader, and then every stream
// or bucket call times out for a while. It gives up after startPatience,
// or at once on a permanent error (bad configuration).
func startRetrying(ctx context.Context, log *slog.Logger, role string, start func(context.Context) error) error {
	deadline := time.Now().Add(startPatience)
	for delay := 500 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
		err := start(ctx)
		var p permanent
		if err == nil || errors.As(err, &p) || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		log.Warn(role+" cannot start yet; retrying", "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

// streamReplicas is the replica count a role gives the streams it
// creates: the one asked for, or the size of the cluster it is connected
// to (the servers it knows of: named and announced), at most 3.
func streamReplicas(nc *nats.Conn, asked int, log *slog.Logger) int {
	if asked > 0 {
		return asked
	}
	n := min(len(nc.Servers()), 3)
	if nc.ConnectedClusterName() == "" {
		n = 1
	}
	log.Info("stream replicas", "replicas", n, "cluster", nc.ConnectedClusterName())
	return n
}

// startPatience bounds startRetrying.
const startPatience = 2 * time.Minute

// permanent marks an error no retry fixes.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// roleBase is what a long-running role sets up first: its metrics endpoint
// and its NATS connection.
type roleBase struct {
	// reg takes the role's collectors; nil (metrics off) when no address
	// was given.
	reg prometheus.Registerer
	nc  *nats.Conn
	// ctx ends when the role closes: metrics work runs under it.
	ctx   context.Context
	close func()
}

// openRole serves the role's metrics on metricsAddr (none when empty) and
// connects as conn says.
func openRole(ctx context.Context, name string, conn *connFlags, metricsAddr string, log *slog.Logger, stderr io.Writer) (*roleBase, error) {
	mctx, stopMetrics := context.WithCancel(ctx)
	reg, err := serveMetrics(mctx, metricsAddr, log, stderr)
	if err != nil {
		stopMetrics()
		return nil, err
	}
	nc, err := connectRole(conn, name)
	if err != nil {
		stopMetrics()
		return nil, err
	}
	return &roleBase{reg: reg, nc: nc, ctx: mctx, close: func() { nc.Close(); stopMetrics() }}, nil
}

// waitStop blocks until ctx ends, then stops the role within grace.
func waitStop(ctx context.Context, grace time.Duration, stop func(context.Context) error) error {
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	return stop(sctx)
}

func cmdDispatcher(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("brig dispatcher", stdout, stderr)
	conn := addConnFlags(fs, "")
	keyFile := fs.String("key-file", defaultDataDir()+"/dispatcher.key", "Ed25519 signing key (created if absent)")
	replicas := fs.Int("replicas", 0, "stream replicas (default: the cluster's size, at most 3; 1 on a lone server)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	grace := fs.Duration("grace", 30*time.Second, "how long to finish the submission in hand on shutdown")
	ackWait := fs.Duration("ack-wait", 30*time.Second, "how long a submission may go unsettled before another dispatcher gets it")
	metricsAddr := addMetricsFlag(fs)
	if _, err := parseInterleaved(fs, args); err != nil {
		return parseExit(err)
	}
	if !conn.requireCreds("brig dispatcher", "dispatcher", stderr) {
		return 2
	}
	log := newLogger(stderr, *logLevel)
	role, err := openRole(ctx, "brig-dispatcher", conn, *metricsAddr, log, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "brig dispatcher: %v\n", err)
		return exitBrig
	}
	defer role.close()
	nc, m := role.nc, metrics.NewDispatcher(role.reg)
	*replicas = streamReplicas(nc, *replicas, log)
	streams := bus.Config{Replicas: *replicas}
	var d *dispatcher.Dispatcher
	err = startRetrying(ctx, log, "dispatcher", func(ctx context.Context) error {
		fns, err := functions.OpenKVResolver(ctx, nc, *replicas)
		if err != nil {
			return err
		}
		d, err = dispatcher.New(dispatcher.Config{Conn: nc, Logger: log, KeyFile: *keyFile, Streams: streams, Functions: fns, AckWait: *ackWait, Metrics: m})
		if err != nil {
			return permanent{err}
		}
		return d.Start(ctx)
	})
	if err != nil {
		fmt.Fprintf(stderr, "brig dispatcher: %v\n", err)
		return exitBrig
	}
	defer pollQueues(role.ctx, nc, m, log)()
	fmt.Fprintln(stderr, "ready dispatcher")
	if err := waitStop(ctx, *grace, d.Stop); err != nil {
		fmt.Fprintf(stderr, "brig dispatcher: stop: %v\n", err)
		return 1
	}
	return 0
}

func cmdWorker(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("brig worker", stdout, stderr)
	conn := addConnFlags(fs, "")
	id := fs.String("id", "", "worker id, the label on its containers (default: hostname)")
	pools := fs.String("pools", "default", "comma-separated pools to serve")
	slots := fs.Int("slots", 0, "jobs run at once (default 2 × CPUs)")
	prewarm := fs.Int("prewarm", 2, "started single-use containers kept ready per container template in use (0: off)")
	runtimeDir := fs.String("runtime-dir", "", "where containers' mounted files live (default $TMPDIR/brig-<uid>)")
	replicas := fs.Int("replicas", 0, "stream replicas (default: the cluster's size, at most 3; 1 on a lone server)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	grace := fs.Duration("grace", 30*time.Second, "how long running jobs may finish on shutdown")
	ackWait := fs.Duration("ack-wait", 30*time.Second, "how long a job may go without a progress signal before another worker gets it (a dead worker's jobs wait this long)")
	labels := labelsFlag{}
	fs.Var(labels, "label", "`KEY=VALUE` describing the worker to operators, e.g. zone=a (repeatable)")
	poolLimits := poolLimitsFlag{}
	fs.Var(poolLimits, "pool-limit", "`POOL=N`: at most N of the pool's jobs run at once over all its workers (repeatable)")
	private := addEgressPrivateFlag(fs)
	metricsAddr := addMetricsFlag(fs)
	if _, err := parseInterleaved(fs, args); err != nil {
		return parseExit(err)
	}
	if !conn.requireCreds("brig worker", "worker", stderr) {
		return 2
	}
	log := newLogger(stderr, *logLevel)
	role, err := openRole(ctx, "brig-worker", conn, *metricsAddr, log, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "brig worker: %v\n", err)
		return exitBrig
	}
	defer role.close()
	nc, m := role.nc, metrics.NewWorker(role.reg, worker.NormalizeID(*id))
	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		fmt.Fprintf(stderr, "brig worker: docker: %v\n", err)
		return exitBrig
	}
	defer docker.Close()
	*replicas = streamReplicas(nc, *replicas, log)
	var w *worker.Worker
	err = startRetrying(ctx, log, "worker", func(ctx context.Context) error {
		var err error
		w, err = worker.New(worker.Config{
			Conn: nc, Docker: docker, Logger: log, ID: *id, Pools: strings.Split(*pools, ","),
			Slots: *slots, Prewarm: *prewarm, RuntimeDir: *runtimeDir, Streams: bus.Config{Replicas: *replicas}, AckWait: *ackWait,
			Labels: labels, PoolLimits: poolLimits, Metrics: m,
			Egress: proxy.Config{Policy: allow.Policy{Private: *private}},
		})
		if err != nil {
			return permanent{err}
		}
		return w.Start(ctx)
	})
	if err != nil {
		fmt.Fprintf(stderr, "brig worker: %v\n", err)
		return exitBrig
	}
	fmt.Fprintf(stderr, "ready worker %s\n", w.ID())
	if err := waitStop(ctx, *grace, w.Stop); err != nil {
		fmt.Fprintf(stderr, "brig worker: stop: %v\n", err)
		return 1
	}
	return 0
}
