package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/brig-dev/brig/dispatcher"
	"github.com/brig-dev/brig/internal/devstack"
	"github.com/brig-dev/brig/internal/metrics"
	"github.com/brig-dev/brig/worker"
)

func cmdDev(ctx context.Context, args []string, _ io.Reader, _, stderr io.Writer) int {
	fs := newFlagSet("brig dev", stderr)
	listen := fs.String("listen", "127.0.0.1:4222", "NATS client address")
	data := fs.String("data", defaultDataDir(), "data dir (JetStream store, runtime files)")
	slots := fs.Int("slots", 0, "jobs the worker runs at once (default 2 × CPUs)")
	prewarm := fs.Int("prewarm", 2, "started single-use containers kept ready per container template in use (0: off)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	grace := fs.Duration("grace", 30*time.Second, "how long running jobs may finish on shutdown")
	metricsAddr := addMetricsFlag(fs)
	_ = addServerFlag(fs) // accepted for uniformity; dev serves, it does not connect
	if _, err := parseInterleaved(fs, args); err != nil {
		return 2
	}
	log := newLogger(stderr, *logLevel)
	if err := os.MkdirAll(*data, 0o700); err != nil {
		fmt.Fprintf(stderr, "brig dev: data dir: %v\n", err)
		return 1
	}
	mctx, stopMetrics := context.WithCancel(ctx)
	defer stopMetrics()
	reg, err := serveMetrics(mctx, *metricsAddr, log, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "brig dev: %v\n", err)
		return 1
	}
	workerID := worker.NormalizeID(devWorkerID(*data))
	wm, dm := metrics.NewWorker(reg, workerID), metrics.NewDispatcher(reg)
	stack, err := devstack.Start(ctx, devstack.Config{
		Listen:     *listen,
		DataDir:    filepath.Join(*data, "jetstream"),
		Logger:     log,
		Progress:   stderr,
		Worker:     worker.Config{ID: workerID, Slots: *slots, RuntimeDir: filepath.Join(*data, "run"), Prewarm: *prewarm, Metrics: wm},
		Dispatcher: dispatcher.Config{KeyFile: filepath.Join(*data, "dispatcher.key"), Metrics: dm},
	})
	if err != nil {
		fmt.Fprintf(stderr, "brig dev: %v\n", err)
		return 1
	}
	defer pollQueues(mctx, stack.Conn, dm, log)()
	fmt.Fprintf(stderr, "ready %s\n", stack.URL())
	<-ctx.Done()
	fmt.Fprintln(stderr, "brig dev: shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), *grace)
	defer cancel()
	if err := stack.Stop(sctx); err != nil {
		fmt.Fprintf(stderr, "brig dev: stop: %v\n", err)
		return 1
	}
	return 0
}

// devWorkerID names a dev stack's worker after the host and its data dir:
// a restarted brig dev removes the containers it left, and two brig devs
// on one host (other ports, other data dirs) never remove each other's.
func devWorkerID(data string) string {
	abs, err := filepath.Abs(data)
	if err != nil {
		abs = data
	}
	host, _ := os.Hostname()
	sum := sha256.Sum256([]byte(abs))
	id := "dev-" + hex.EncodeToString(sum[:4])
	if host != "" {
		id += "-" + host
	}
	return id // the worker makes it a valid name (and cuts the host part to fit)
}
