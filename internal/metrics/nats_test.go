package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/brig-dev/brig/internal/natsserver"
)

func TestNATS(t *testing.T) {
	t.Parallel()
	ns, err := natsserver.Start(t.Context(), natsserver.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Name: "n1", NoAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := js.Publish(ctx, "t.x", []byte("hello")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "c"}); err != nil {
		t.Fatal(err)
	}

	reg := NewRegistry()
	if NewNATS(reg, ns) != NewNATS(reg, ns) {
		t.Error("a node's collector registered twice is not the one already there")
	}
	got := scrape(t, reg)
	checkSamples(t, got, map[string]float64{
		`brig_nats_connections{server="n1"}`:                              1,
		`brig_nats_jetstream_enabled{server="n1"}`:                        1,
		`brig_nats_jetstream_streams{server="n1"}`:                        1,
		`brig_nats_jetstream_consumers{server="n1"}`:                      1,
		`brig_nats_jetstream_messages{server="n1"}`:                       3,
		`brig_nats_stream_messages{account="$G",server="n1",stream="T"}`:  3,
		`brig_nats_stream_consumers{account="$G",server="n1",stream="T"}`: 1,
	})
	for _, series := range []string{
		`brig_nats_in_msgs_total{server="n1"}`,
		`brig_nats_jetstream_bytes{server="n1"}`,
		`brig_nats_jetstream_api_requests_total{server="n1"}`,
		`brig_nats_memory_bytes{server="n1"}`,
	} {
		if got[series] <= 0 {
			t.Errorf("%s = %v, want > 0", series, got[series])
		}
	}
	// A lone server has no meta group to size or lead.
	if _, ok := got[`brig_nats_jetstream_meta_leader{server="n1"}`]; ok {
		t.Error("a lone server reports a meta leader")
	}
	if _, ok := got["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}
}

// A node without JetStream (yet) still scrapes, with its server metrics.
func TestNATSWithoutJetStream(t *testing.T) {
	t.Parallel()
	ns, err := server.NewServer(&server.Options{ServerName: "bare", Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	reg := prometheus.NewRegistry()
	NewNATS(reg, ns)
	got := scrape(t, reg)
	checkSamples(t, got, map[string]float64{
		`brig_nats_connections{server="bare"}`:       0,
		`brig_nats_jetstream_enabled{server="bare"}`: 0,
	})
	for series := range got {
		if strings.HasPrefix(series, "brig_nats_jetstream_") && !strings.HasPrefix(series, "brig_nats_jetstream_enabled") ||
			strings.HasPrefix(series, "brig_nats_stream_") {
			t.Errorf("series %s without JetStream", series)
		}
	}
}

func TestNATSNilRegistry(t *testing.T) {
	t.Parallel()
	if NewNATS(nil, nil) != nil {
		t.Error("a nil registry must give a nil collector")
	}
}
