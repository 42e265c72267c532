package bus_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/internal/natstest"
)

// TestBucketConfigs pins every field of the bucket configurations built
// here for brig's roles (keys, workers, functions): a change to any of
// them is a change to the bus that running clusters take on their next
// start, and has to be made on purpose, here too. The limits are written
// out as numbers, so that a changed constant fails as well. Each
// configuration is then created on a server, which must accept it.
func TestBucketConfigs(t *testing.T) {
	t.Parallel()
	_, _, js := natstest.Start(t)
	for _, tt := range []struct {
		got, want jetstream.KeyValueConfig
		maxMsgs   int64
		wantMsgs  int64
	}{
		{bus.KeysConfig(0), jetstream.KeyValueConfig{
			Bucket: "BRIG_KEYS", Replicas: 1, History: 1, MaxValueSize: 256, MaxBytes: 1 << 20,
		}, bus.KeysMaxMessages, 4096},
		{bus.WorkersConfig(0), jetstream.KeyValueConfig{
			Bucket: "BRIG_WORKERS", Description: "brig: live workers (rewritten every few seconds)",
			TTL: 10 * time.Second, History: 1, Storage: jetstream.MemoryStorage, Replicas: 1,
			MaxValueSize: 64 << 10, MaxBytes: 8 << 20,
		}, bus.WorkersMaxMessages, 10_000},
		{bus.FunctionsConfig(0), jetstream.KeyValueConfig{
			Bucket: "BRIG_FUNCTIONS", Description: "brig function definitions (brig deploy)",
			History: 5, Replicas: 1, Storage: jetstream.FileStorage, MaxValueSize: 64 << 10, MaxBytes: 16 << 20,
		}, bus.FunctionsMaxMessages, 10_000},
	} {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.want.Bucket, tt.got, tt.want)
		}
		if tt.maxMsgs != tt.wantMsgs {
			t.Errorf("%s: message cap %d, want %d", tt.want.Bucket, tt.maxMsgs, tt.wantMsgs)
		}
		if _, err := bus.EnsureBucket(t.Context(), js, tt.got, tt.maxMsgs); err != nil {
			t.Errorf("create %s: %v", tt.want.Bucket, err)
		}
	}
	// Replicas is the cluster's, at least 1.
	for _, c := range []jetstream.KeyValueConfig{bus.KeysConfig(3), bus.WorkersConfig(3), bus.FunctionsConfig(3)} {
		if c.Replicas != 3 {
			t.Errorf("%s with 3 replicas: Replicas %d", c.Bucket, c.Replicas)
		}
	}
	if bus.WorkersTTL != 10*time.Second || bus.FunctionsHistory != 5 {
		t.Errorf("WorkersTTL %s, FunctionsHistory %d; want 10s, 5", bus.WorkersTTL, bus.FunctionsHistory)
	}
}

// TestResourceConfigs pins every field of a job's dict, queue and queue
// consumer configurations (docs/design.md §13.5) and has a server accept
// them, the queue consumer on its queue stream.
func TestResourceConfigs(t *testing.T) {
	t.Parallel()
	const desc = "created by job acme.j1"
	dict := bus.DictConfig("acme", "d", desc, 0, 7<<20)
	if want := (jetstream.KeyValueConfig{
		Bucket: "BRIG_DICT_acme_d", Description: desc, Replicas: 1, MaxValueSize: 256 << 10, MaxBytes: 7 << 20,
	}); !reflect.DeepEqual(dict, want) {
		t.Errorf("dict:\n got %+v\nwant %+v", dict, want)
	}
	queue := bus.QueueConfig("acme", "q", desc, 0, 9<<20, 11)
	if want := (jetstream.StreamConfig{
		Name: "BRIG_QUEUE_acme_q", Description: desc, Subjects: []string{"brig.queue.acme.q"},
		Retention: jetstream.WorkQueuePolicy, Replicas: 1, MaxMsgSize: 256 << 10,
		MaxBytes: 9 << 20, MaxMsgs: 11, Discard: jetstream.DiscardNew,
	}); !reflect.DeepEqual(queue, want) {
		t.Errorf("queue:\n got %+v\nwant %+v", queue, want)
	}
	cons := bus.QueueConsumerConfig()
	if want := (jetstream.ConsumerConfig{
		Durable: "brig", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 5 * time.Second,
	}); !reflect.DeepEqual(cons, want) {
		t.Errorf("queue consumer:\n got %+v\nwant %+v", cons, want)
	}
	if d, q := bus.DictConfig("acme", "d", desc, 3, 1), bus.QueueConfig("acme", "q", desc, 3, 1, 1); d.Replicas != 3 || q.Replicas != 3 {
		t.Errorf("with 3 replicas: dict %d, queue %d", d.Replicas, q.Replicas)
	}

	_, _, js := natstest.Start(t)
	if _, err := js.CreateKeyValue(t.Context(), dict); err != nil {
		t.Fatalf("create dict: %v", err)
	}
	stream, err := js.CreateStream(t.Context(), queue)
	if err != nil {
		t.Fatalf("create queue: %v", err)
	}
	if _, err := stream.CreateOrUpdateConsumer(t.Context(), cons); err != nil {
		t.Fatalf("create queue consumer: %v", err)
	}
}
