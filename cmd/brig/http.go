package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/internal/httpapi"
)

// httpStopGrace is how long brig http lets requests in hand finish on
// SIGTERM before it closes their connections.
const httpStopGrace = 30 * time.Second

// cmdHTTP serves the HTTP API (docs/design.md §11) for brig at --server
// until SIGTERM or SIGINT. It holds no credential: each request's token is
// the tenant's own.
func cmdHTTP(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("brig http", stdout, stderr)
	listen := fs.String("listen", httpapi.DefaultListen, "HTTP address HOST:PORT (port 0: a free one)")
	tlsCA := fs.String("tls-ca", "", "PEM `FILE` of the CA that signed the NATS server's TLS certificate")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	server := addServerFlag(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return parseExit(err)
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "brig http: unexpected argument %q\n", pos[0])
		return exitUsage
	}
	cfg := httpapi.Config{Listen: *listen, NATSURL: server.url, Logger: newLogger(stderr, *logLevel)}
	if *tlsCA != "" {
		if err := readable(*tlsCA); err != nil {
			fmt.Fprintf(stderr, "brig http: --tls-ca: %v\n", err)
			return exitUsage
		}
		cfg.NATSOptions = []nats.Option{nats.RootCAs(*tlsCA)}
	}
	srv, err := httpapi.New(cfg)
	if err == nil {
		err = srv.Start(ctx)
	}
	if err != nil {
		fmt.Fprintf(stderr, "brig http: %v\n", err)
		return exitFailed
	}
	fmt.Fprintf(stderr, "http %s\n", srv.URL())
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), httpStopGrace)
	defer cancel()
	if err := srv.Stop(sctx); err != nil {
		fmt.Fprintf(stderr, "brig http: stop: %v\n", err)
		return exitFailed
	}
	return 0
}
