package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/brig-dev/brig/internal/natstest"
)

// TestWatchBus: each role's connection counters are exported under the
// role's name, by direction, both roles on one registry (brig dev), read at the scrape, and a nil *Worker or *Dispatcher, nil
// registry or nil connection registers nothing.
func TestWatchBus(t *testing.T) {
	t.Parallel()
	_, nc, _ := natstest.Start(t)
	reg := prometheus.NewRegistry()
	NewWorker(reg, "w1").WatchBus(nc)
	NewDispatcher(reg).WatchBus(nc)
	var nilWorker *Worker
	nilWorker.WatchBus(nc)
	(*Dispatcher)(nil).WatchBus(nc)
	NewDispatcher(prometheus.NewRegistry()).WatchBus(nil)

	before := scrape(t, reg)
	for range 5 {
		if err := nc.Publish("bus.test", []byte("12345")); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	after := scrape(t, reg)
	for _, series := range []string{
		`brig_worker_bus_messages_total{direction="out",worker="w1"}`,
		`brig_dispatcher_bus_messages_total{direction="out"}`,
	} {
		if d := after[series] - before[series]; d != 5 {
			t.Errorf("%s grew by %v after 5 publishes, want 5", series, d)
		}
	}
	if d := after[`brig_dispatcher_bus_bytes_total{direction="out"}`] - before[`brig_dispatcher_bus_bytes_total{direction="out"}`]; d != 25 {
		t.Errorf("out bytes grew by %v, want 25", d)
	}
	if _, ok := after[`brig_dispatcher_bus_reconnects_total`]; !ok {
		t.Error("no reconnects series")
	}
}
