package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/brig-dev/brig/dispatcher"
	"github.com/brig-dev/brig/internal/auth"
	"github.com/brig-dev/brig/internal/devstack"
	"github.com/brig-dev/brig/internal/egress/allow"
	"github.com/brig-dev/brig/internal/egress/proxy"
	"github.com/brig-dev/brig/internal/metrics"
	"github.com/brig-dev/brig/worker"
)

func cmdDev(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("brig dev", stdout, stderr)
	listen := fs.String("listen", "127.0.0.1:4222", "NATS client address")
	data := fs.String("data", defaultDataDir(), "data dir (JetStream store, runtime files)")
	slots := fs.Int("slots", 0, "jobs the worker runs at once (default 2 × CPUs)")
	prewarm := fs.Int("prewarm", 2, "started single-use containers kept ready per container template in use (0: off)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	grace := fs.Duration("grace", 30*time.Second, "how long running jobs may finish on shutdown")
	tlsCert := fs.String("tls-cert", "", "PEM certificate `FILE`: serve TLS to clients (with --tls-key)")
	tlsKey := fs.String("tls-key", "", "PEM key `FILE` of --tls-cert")
	tlsCA := fs.String("tls-ca", "", "PEM `FILE` of the CA that signed --tls-cert, when the system does not trust it (for brig dev's own connections)")
	httpAddr := fs.String("http", "127.0.0.1:4280", "serve the HTTP API at `ADDR` (docs/design.md §11; \"\" serves none)")
	private := addEgressPrivateFlag(fs)
	metricsAddr := addMetricsFlag(fs)
	_ = addServerFlag(fs) // accepted for uniformity; dev serves, it does not connect
	if _, err := parseInterleaved(fs, args); err != nil {
		return parseExit(err)
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
		Listen:   *listen,
		DataDir:  filepath.Join(*data, "jetstream"),
		Logger:   log,
		Progress: stderr,
		TLSCert:  *tlsCert,
		TLSKey:   *tlsKey,
		TLSCA:    *tlsCA,
		Worker: worker.Config{ID: workerID, Slots: *slots, RuntimeDir: filepath.Join(*data, "run"), Prewarm: *prewarm, Metrics: wm,
			Egress: proxy.Config{Policy: allow.Policy{Private: *private}}},
		Dispatcher: dispatcher.Config{KeyFile: filepath.Join(*data, "dispatcher.key"), Metrics: dm},
		HTTPListen: *httpAddr,
	})
	if err != nil {
		fmt.Fprintf(stderr, "brig dev: %v\n", err)
		return 1
	}
	defer pollQueues(mctx, stack.Conn, dm, log)()
	announceCreds(stack, stderr, log)
	if u := stack.HTTPURL(); u != "" {
		fmt.Fprintf(stderr, "http %s\n", u)
	}
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

// announceCreds prints where the stack's credentials are and writes the
// NATS CLI context brig (docs/design.md §10.1). A context that cannot be
// written is worth a warning, not the stack.
func announceCreds(stack *devstack.Stack, stderr io.Writer, log *slog.Logger) {
	admin, client := absPath(stack.AdminCreds), absPath(stack.ClientCreds)
	fmt.Fprintf(stderr, "creds admin %s\ncreds default %s\ntoken default %s\n", admin, client, absPath(stack.ClientToken))
	dir, err := natsContextDir()
	if err == nil {
		var path string
		if path, err = writeNATSContext(dir, stack.URL(), admin); err == nil {
			fmt.Fprintf(stderr, "nats context brig %s\n", path)
			return
		}
	}
	log.Warn("brig dev: no NATS CLI context", "err", err)
}

// natsContextDir is where the NATS CLI keeps its contexts.
func natsContextDir() (string, error) {
	config := os.Getenv("XDG_CONFIG_HOME")
	if config == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		config = filepath.Join(home, ".config")
	}
	return filepath.Join(config, "nats", "context"), nil
}

// natsContext is a NATS CLI context file, the fields brig dev sets.
type natsContext struct {
	Description string `json:"description"`
	URL         string `json:"url"`
	Creds       string `json:"creds"`
}

// writeNATSContext writes the context brig into dir, 0600 (it names a
// secret), replacing the one a previous brig dev wrote; it returns the
// file's path.
func writeNATSContext(dir, url, adminCreds string) (string, error) {
	data, err := json.Marshal(natsContext{Description: "brig dev (admin)", URL: url, Creds: adminCreds})
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "brig.json")
	return path, auth.WriteSecret(path, append(data, '\n'))
}

func absPath(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
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
