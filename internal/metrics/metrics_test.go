package metrics

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/internal/natstest"
	"github.com/brig-dev/brig/schema"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// scrape serves reg through Handler and returns each sample of the text
// exposition by its series (name{labels}, as printed).
func scrape(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	Handler(reg).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	return parseExposition(t, rec.Body.String())
}

func parseExposition(t *testing.T, text string) map[string]float64 {
	t.Helper()
	samples := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("bad sample line %q", line)
		}
		samples[line[:i]] = v
	}
	return samples
}

func checkSamples(t *testing.T, got map[string]float64, want map[string]float64) {
	t.Helper()
	for series, v := range want {
		g, ok := got[series]
		switch {
		case !ok:
			t.Errorf("no series %s", series)
		case g != v:
			t.Errorf("%s = %v, want %v", series, g, v)
		}
	}
}

func TestWorker(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := NewWorker(reg, "w1")
	m.JobEnded("default", "succeeded", 40*time.Millisecond, 300*time.Millisecond)
	m.JobEnded("default", "succeeded", 2*time.Second, 3*time.Second)
	m.JobEnded("gpu", "timeout", 20*time.Minute, -time.Second)
	m.ContainerStarted("cold")
	m.ContainerStarted("prewarmed")
	m.ContainerStarted("prewarmed")
	m.SetCacheSizes(3, 1)
	m.SetSlots(8, 5)
	m.SetSlots(8, 6)

	checkSamples(t, scrape(t, reg), map[string]float64{
		`brig_jobs_total{pool="default",status="succeeded",worker="w1"}`: 2,
		`brig_jobs_total{pool="gpu",status="timeout",worker="w1"}`:       1,

		`brig_job_run_seconds_bucket{pool="default",worker="w1",le="0.01"}`: 0,
		`brig_job_run_seconds_bucket{pool="default",worker="w1",le="0.05"}`: 1,
		`brig_job_run_seconds_bucket{pool="default",worker="w1",le="2.5"}`:  2,
		`brig_job_run_seconds_bucket{pool="default",worker="w1",le="+Inf"}`: 2,
		`brig_job_run_seconds_sum{pool="default",worker="w1"}`:              2.04,
		`brig_job_run_seconds_count{pool="default",worker="w1"}`:            2,
		`brig_job_run_seconds_bucket{pool="gpu",worker="w1",le="600"}`:      0,
		`brig_job_run_seconds_bucket{pool="gpu",worker="w1",le="+Inf"}`:     1,

		`brig_job_total_seconds_bucket{pool="default",worker="w1",le="0.25"}`: 0,
		`brig_job_total_seconds_bucket{pool="default",worker="w1",le="0.5"}`:  1,
		`brig_job_total_seconds_sum{pool="default",worker="w1"}`:              3.3,
		`brig_job_total_seconds_bucket{pool="gpu",worker="w1",le="0.01"}`:     1, // clock skew: 0
		`brig_job_total_seconds_sum{pool="gpu",worker="w1"}`:                  0,

		`brig_container_starts_total{kind="cold",worker="w1"}`:      1,
		`brig_container_starts_total{kind="prewarmed",worker="w1"}`: 2,

		`brig_pool_containers{state="prewarmed",worker="w1"}`: 3,
		`brig_pool_containers{state="reusable",worker="w1"}`:  1,
		`brig_worker_slots{state="total",worker="w1"}`:        8,
		`brig_worker_slots{state="free",worker="w1"}`:         6,
	})
}

func TestDispatcher(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := NewDispatcher(reg)
	m.Dispatched("default", "accepted")
	m.Dispatched("default", "accepted")
	m.Dispatched("gpu", "no_worker")
	m.Dispatched("", "rejected")
	m.ObserveDispatch(700 * time.Microsecond)
	m.ObserveDispatch(30 * time.Millisecond)
	m.SetQueueDepth("default", 4, 2)
	m.SetQueueDepth("", 7, 1)

	got := scrape(t, reg)
	checkSamples(t, got, map[string]float64{
		`brig_dispatch_total{outcome="accepted",pool="default"}`: 2,
		`brig_dispatch_total{outcome="no_worker",pool="gpu"}`:    1,
		`brig_dispatch_total{outcome="rejected",pool=""}`:        1,

		`brig_dispatch_seconds_bucket{le="0.0005"}`: 0,
		`brig_dispatch_seconds_bucket{le="0.001"}`:  1,
		`brig_dispatch_seconds_bucket{le="0.05"}`:   2,
		`brig_dispatch_seconds_count`:               2,

		`brig_queue_jobs{pool="default",state="pending"}`: 4,
		`brig_queue_jobs{pool="default",state="running"}`: 2,
		`brig_queue_jobs{pool="submit",state="pending"}`:  7,
		`brig_queue_jobs{pool="submit",state="running"}`:  1,
	})

	m.forgetQueue("default")
	got = scrape(t, reg)
	if _, ok := got[`brig_queue_jobs{pool="default",state="pending"}`]; ok {
		t.Error("forgetQueue(default) kept its series")
	}
	if got[`brig_queue_jobs{pool="submit",state="pending"}`] != 7 {
		t.Error("forgetQueue(default) dropped the submission queue")
	}
}

func TestWorkerWithoutID(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	NewWorker(reg, "").ContainerStarted("cold")
	checkSamples(t, scrape(t, reg), map[string]float64{`brig_container_starts_total{kind="cold"}`: 1})
}

// A worker built twice on one registry (restarted in one process) shares
// its series; workers with other ids have their own.
func TestWorkerRegisteredTwice(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	NewWorker(reg, "a").ContainerStarted("cold")
	NewWorker(reg, "a").ContainerStarted("cold")
	NewWorker(reg, "b").ContainerStarted("cold")
	NewDispatcher(reg).Dispatched("default", "accepted")
	NewDispatcher(reg).Dispatched("default", "accepted")
	checkSamples(t, scrape(t, reg), map[string]float64{
		`brig_container_starts_total{kind="cold",worker="a"}`:    2,
		`brig_container_starts_total{kind="cold",worker="b"}`:    1,
		`brig_dispatch_total{outcome="accepted",pool="default"}`: 2,
	})
}

func TestNil(t *testing.T) {
	t.Parallel()
	if NewWorker(nil, "w") != nil || NewDispatcher(nil) != nil {
		t.Fatal("a nil registry must give nil (off) metrics")
	}
	var w *Worker
	w.JobEnded("default", "succeeded", time.Second, time.Second)
	w.ContainerStarted("cold")
	w.SetCacheSizes(1, 1)
	w.SetSlots(1, 1)
	var d *Dispatcher
	d.Dispatched("default", "accepted")
	d.ObserveDispatch(time.Second)
	d.SetQueueDepth("default", 1, 1)
	d.forgetQueue("default")
	PollQueues(t.Context(), nil, nil, time.Millisecond, nil) // returns at once
}

func TestPollQueues(t *testing.T) {
	t.Parallel()
	_, nc, js := natstest.Start(t)
	ctx := t.Context()
	reg := prometheus.NewRegistry()
	m := NewDispatcher(reg)

	// Before the streams exist: no error, no series.
	p := &queuePoller{js: js, m: m, log: testLogger(t), pools: map[string]bool{}}
	p.poll(ctx)
	if p.failing {
		t.Fatal("a missing stream failed the poll")
	}

	if err := bus.EnsureStreams(ctx, js, bus.Config{}); err != nil {
		t.Fatal(err)
	}
	gpu, err := js.CreateConsumer(ctx, schema.StreamWork, jetstream.ConsumerConfig{
		Durable: bus.WorkConsumer("gpu"), FilterSubject: schema.WorkSubject("gpu"), AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateConsumer(ctx, schema.StreamSubmit, jetstream.ConsumerConfig{
		Durable: bus.DispatcherConsumer, FilterSubject: schema.SubmitPrefix + ">", AckPolicy: jetstream.AckExplicitPolicy,
	}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := js.Publish(ctx, schema.WorkSubject("gpu"), fmt.Appendf(nil, "job %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// BRIG_SUBMIT acknowledges nothing: publish and flush.
	if err := nc.Publish(schema.SubmitSubject(schema.DefaultTenant, "python"), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	pctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		PollQueues(pctx, js, m, 10*time.Millisecond, testLogger(t))
	}()
	t.Cleanup(func() { cancel(); <-done })

	waitSamples(t, reg, map[string]float64{
		`brig_queue_jobs{pool="gpu",state="pending"}`:    3,
		`brig_queue_jobs{pool="gpu",state="running"}`:    0,
		`brig_queue_jobs{pool="submit",state="pending"}`: 1,
	})

	// A delivered, unacked job runs.
	batch, err := gpu.Fetch(1)
	if err != nil {
		t.Fatal(err)
	}
	for range batch.Messages() {
	}
	waitSamples(t, reg, map[string]float64{
		`brig_queue_jobs{pool="gpu",state="pending"}`: 2,
		`brig_queue_jobs{pool="gpu",state="running"}`: 1,
	})

	// A pool whose consumer is gone loses its series.
	if err := js.DeleteConsumer(ctx, schema.StreamWork, bus.WorkConsumer("gpu")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, reg, "the gpu series to go", func(got map[string]float64) bool {
		_, ok := got[`brig_queue_jobs{pool="gpu",state="pending"}`]
		return !ok
	})

	cancel()
	<-done // PollQueues returns when its context ends
}

// waitSamples waits until a scrape of reg shows want.
func waitSamples(t *testing.T, reg *prometheus.Registry, want map[string]float64) {
	t.Helper()
	waitFor(t, reg, fmt.Sprint(want), func(got map[string]float64) bool {
		for series, v := range want {
			if g, ok := got[series]; !ok || g != v {
				return false
			}
		}
		return true
	})
}

// waitFor scrapes reg as PollQueues updates it until ok, for at most 10s.
func waitFor(t *testing.T, reg *prometheus.Registry, what string, ok func(map[string]float64) bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		got := scrape(t, reg)
		if ok(got) {
			return
		}
		select {
		case <-deadline:
			t.Fatalf("waiting for %s; last scrape: %v", what, got)
		case <-tick.C:
		}
	}
}

func TestServe(t *testing.T) {
	t.Parallel()
	reg := NewRegistry()
	NewDispatcher(reg).Dispatched("default", "accepted")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	addr, err := Serve(ctx, "127.0.0.1:0", Handler(reg), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	url := "http://" + addr.String()

	resp, err := client.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var body strings.Builder
	_, err = bufio.NewReader(resp.Body).WriteTo(&body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d, %v", resp.StatusCode, err)
	}
	checkSamples(t, parseExposition(t, body.String()), map[string]float64{
		`brig_dispatch_total{outcome="accepted",pool="default"}`: 1,
		`promhttp_metric_handler_requests_total{code="200"}`:     0, // counted after it is served
	})
	for _, name := range []string{"go_goroutines ", "process_cpu_seconds_total "} {
		if !strings.Contains(body.String(), "\n"+name) {
			t.Errorf("no %s in the exposition", name)
		}
	}

	if resp, err := client.Get(url + "/"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /: %v, %v; want 404", resp, err)
	} else {
		resp.Body.Close()
	}

	if _, err := Serve(t.Context(), addr.String(), Handler(reg), nil); err == nil {
		t.Error("Serve on a busy address: no error")
	}

	cancel()
	deadline := time.After(10 * time.Second)
	for {
		resp, err := client.Get(url + "/metrics")
		if err != nil {
			return // shut down
		}
		resp.Body.Close()
		select {
		case <-deadline:
			t.Fatal("still serving after its context ended")
		case <-time.After(5 * time.Millisecond):
		}
	}
}
