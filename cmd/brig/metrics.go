package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/brig-dev/brig/internal/metrics"
	"github.com/brig-dev/brig/schema"
)

// queuePollEvery is how often a dispatcher reads queue depths for
// brig_queue_jobs.
const queuePollEvery = 2 * time.Second

func addMetricsFlag(fs *flag.FlagSet) *string {
	return fs.String("metrics", "", "serve Prometheus metrics at http://`ADDR`/metrics, e.g. 127.0.0.1:9464 (default: off)")
}

// serveMetrics serves a new registry on addr until ctx ends, says where on
// stderr and returns the registry for the role's collectors: nil, which
// the metrics constructors take for off, when addr is "".
func serveMetrics(ctx context.Context, addr string, log *slog.Logger, stderr io.Writer) (prometheus.Registerer, error) {
	if addr == "" {
		return nil, nil
	}
	reg := metrics.NewRegistry()
	a, err := metrics.Serve(ctx, addr, metrics.Handler(reg), log)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "metrics http://%s/metrics\n", a)
	return reg, nil
}

// pollQueues runs metrics.PollQueues until ctx ends or stop is called;
// stop returns once it has ended. With m nil (metrics off) it does nothing.
func pollQueues(ctx context.Context, nc *nats.Conn, m *metrics.Dispatcher, log *slog.Logger) (stop func()) {
	if m == nil {
		return func() {}
	}
	js, err := jetstream.New(nc)
	if err != nil { // only with bad options: not worth failing a role for
		log.Warn("metrics: no queue depths", "err", err)
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { metrics.PollQueues(ctx, js, m, queuePollEvery, log) })
	return func() { cancel(); wg.Wait() }
}

// labelsFlag collects repeated --label KEY=VALUE.
type labelsFlag map[string]string

func (l labelsFlag) String() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(l)) {
		parts = append(parts, k+"="+l[k])
	}
	return strings.Join(parts, ",")
}

func (l labelsFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", v)
	}
	if old, dup := l[k]; dup && old != val {
		return fmt.Errorf("label %q given twice", k)
	}
	l[k] = val
	return nil
}

// poolLimitsFlag collects repeated --pool-limit POOL=N.
type poolLimitsFlag map[string]int

func (p poolLimitsFlag) String() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(p)) {
		parts = append(parts, k+"="+strconv.Itoa(p[k]))
	}
	return strings.Join(parts, ",")
}

func (p poolLimitsFlag) Set(v string) error {
	pool, n, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("want POOL=N, got %q", v)
	}
	if !schema.ValidName(pool) {
		return fmt.Errorf("pool %q: want A-Z a-z 0-9 _ - starting with a letter or digit", pool)
	}
	limit, err := strconv.Atoi(n)
	if err != nil || limit < 0 {
		return fmt.Errorf("pool %s: limit %q is not a whole number ≥ 0", pool, n)
	}
	if old, dup := p[pool]; dup && old != limit {
		return fmt.Errorf("pool %s given twice", pool)
	}
	p[pool] = limit
	return nil
}
