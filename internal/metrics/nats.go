package metrics

import (
	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"
)

// NATS exports a `brig nats` node's state, read from its embedded server at
// each scrape.
type NATS struct {
	srv  *server.Server
	desc natsDescs
}

type natsDescs struct {
	connections, routes, inMsgs, outMsgs, inBytes, outBytes, slowConsumers, memory, cpu *prometheus.Desc

	jsEnabled, streams, consumers, messages, bytes, apiRequests, apiErrors, metaSize, metaLeader *prometheus.Desc

	streamMessages, streamConsumers *prometheus.Desc
}

// NewNATS registers the collector of srv's metrics, brig_nats_* labelled
// server=<srv's name>, on reg. A nil reg returns nil.
func NewNATS(reg prometheus.Registerer, srv *server.Server) *NATS {
	if reg == nil {
		return nil
	}
	node := prometheus.Labels{"server": srv.Name()}
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "nats", name), help, labels, node)
	}
	return register(reg, &NATS{srv: srv, desc: natsDescs{
		connections:   desc("connections", "Client connections open."),
		routes:        desc("routes", "Route connections to other cluster nodes (nats-server pools several per node)."),
		inMsgs:        desc("in_msgs_total", "Messages received from clients, routes and leaf nodes."),
		outMsgs:       desc("out_msgs_total", "Messages sent to clients, routes and leaf nodes."),
		inBytes:       desc("in_bytes_total", "Payload bytes received."),
		outBytes:      desc("out_bytes_total", "Payload bytes sent."),
		slowConsumers: desc("slow_consumers_total", "Clients disconnected for reading too slowly."),
		memory:        desc("memory_bytes", "Resident memory of the process."),
		cpu:           desc("cpu_percent", "CPU use of the process, in percent of one core."),

		jsEnabled:   desc("jetstream_enabled", "1 when JetStream is running on this node, else 0 (and no other jetstream series)."),
		streams:     desc("jetstream_streams", "Streams this node holds."),
		consumers:   desc("jetstream_consumers", "Consumers of the streams this node holds."),
		messages:    desc("jetstream_messages", "Messages in the streams this node holds."),
		bytes:       desc("jetstream_bytes", "Bytes of the messages in the streams this node holds."),
		apiRequests: desc("jetstream_api_requests_total", "JetStream API requests this node served."),
		apiErrors:   desc("jetstream_api_errors_total", "JetStream API requests this node answered with an error."),
		metaSize:    desc("jetstream_meta_cluster_size", "Nodes in the JetStream meta group (clustered nodes only)."),
		metaLeader:  desc("jetstream_meta_leader", "1 when this node leads the JetStream meta group, else 0 (clustered nodes only)."),

		streamMessages:  desc("stream_messages", "Messages in a stream this node holds.", "account", "stream"),
		streamConsumers: desc("stream_consumers", "Consumers of a stream this node holds.", "account", "stream"),
	}})
}

// Describe implements prometheus.Collector.
func (n *NATS) Describe(ch chan<- *prometheus.Desc) {
	d := n.desc
	for _, desc := range []*prometheus.Desc{
		d.connections, d.routes, d.inMsgs, d.outMsgs, d.inBytes, d.outBytes, d.slowConsumers, d.memory, d.cpu,
		d.jsEnabled, d.streams, d.consumers, d.messages, d.bytes, d.apiRequests, d.apiErrors, d.metaSize, d.metaLeader,
		d.streamMessages, d.streamConsumers,
	} {
		ch <- desc
	}
}

// Collect implements prometheus.Collector. What the server cannot tell yet
// (JetStream starting, no meta leader) is left out, never an error: a
// scrape of a node that is coming up still succeeds.
func (n *NATS) Collect(ch chan<- prometheus.Metric) {
	if v, err := n.srv.Varz(nil); err == nil {
		n.collectServer(ch, v)
	}
	js, err := n.srv.Jsz(&server.JSzOptions{Streams: true})
	if err != nil || js.Disabled {
		ch <- gauge(n.desc.jsEnabled, 0)
		return
	}
	n.collectJetStream(ch, js)
}

func (n *NATS) collectServer(ch chan<- prometheus.Metric, v *server.Varz) {
	d := n.desc
	ch <- gauge(d.connections, float64(v.Connections))
	ch <- gauge(d.routes, float64(v.Routes))
	ch <- counter(d.inMsgs, float64(v.InMsgs))
	ch <- counter(d.outMsgs, float64(v.OutMsgs))
	ch <- counter(d.inBytes, float64(v.InBytes))
	ch <- counter(d.outBytes, float64(v.OutBytes))
	ch <- counter(d.slowConsumers, float64(v.SlowConsumers))
	ch <- gauge(d.memory, float64(v.Mem))
	ch <- gauge(d.cpu, v.CPU)
}

func (n *NATS) collectJetStream(ch chan<- prometheus.Metric, js *server.JSInfo) {
	d := n.desc
	ch <- gauge(d.jsEnabled, 1)
	ch <- gauge(d.streams, float64(js.Streams))
	ch <- gauge(d.consumers, float64(js.Consumers))
	ch <- gauge(d.messages, float64(js.Messages))
	ch <- gauge(d.bytes, float64(js.Bytes))
	ch <- counter(d.apiRequests, float64(js.API.Total))
	ch <- counter(d.apiErrors, float64(js.API.Errors))
	if m := js.Meta; m != nil {
		ch <- gauge(d.metaSize, float64(m.Size))
		ch <- gauge(d.metaLeader, boolFloat(m.Leader != "" && m.Leader == n.srv.Name()))
	}
	for _, acc := range js.AccountDetails {
		for _, s := range acc.Streams {
			ch <- gauge(d.streamMessages, float64(s.State.Msgs), acc.Name, s.Name)
			ch <- gauge(d.streamConsumers, float64(s.State.Consumers), acc.Name, s.Name)
		}
	}
}

func gauge(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func counter(d *prometheus.Desc, v float64) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
