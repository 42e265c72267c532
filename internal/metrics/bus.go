package metrics

import (
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// busConn exports one role's NATS connection counters, read at each
// scrape: what the role sends to and receives from the bus, as
// brig_<role>_bus_*. Divided by brig_jobs_total (or brig_dispatch_total)
// it is the role's share of the bus messages a job costs (docs/design.md
// §8, "Messages per job"). One name per role: the worker's series carry a
// worker label, and one registry may hold both roles (brig dev).
type busConn struct {
	nc            *nats.Conn
	msgs, bytes   *prometheus.Desc
	reconnections *prometheus.Desc
}

// watchBus registers nc's counters on reg as brig_<role>_bus_*; a nil reg
// or nc registers nothing.
func watchBus(reg prometheus.Registerer, role string, nc *nats.Conn) {
	if reg == nil || nc == nil {
		return
	}
	desc := func(name, help string, variable ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, role+"_bus", name), help, variable, nil)
	}
	register(reg, &busConn{
		nc:            nc,
		msgs:          desc("messages_total", "Messages this role's NATS connection sent (out) and received (in).", "direction"),
		bytes:         desc("bytes_total", "Payload bytes this role's NATS connection sent (out) and received (in).", "direction"),
		reconnections: desc("reconnects_total", "Times this role's NATS connection reconnected."),
	})
}

// Describe implements prometheus.Collector.
func (b *busConn) Describe(ch chan<- *prometheus.Desc) {
	ch <- b.msgs
	ch <- b.bytes
	ch <- b.reconnections
}

// Collect implements prometheus.Collector.
func (b *busConn) Collect(ch chan<- prometheus.Metric) {
	s := b.nc.Stats()
	for _, m := range []struct {
		d       *prometheus.Desc
		v       uint64
		variant string
	}{{b.msgs, s.OutMsgs, "out"}, {b.msgs, s.InMsgs, "in"}, {b.bytes, s.OutBytes, "out"}, {b.bytes, s.InBytes, "in"}} {
		ch <- prometheus.MustNewConstMetric(m.d, prometheus.CounterValue, float64(m.v), m.variant)
	}
	ch <- prometheus.MustNewConstMetric(b.reconnections, prometheus.CounterValue, float64(s.Reconnects))
}
