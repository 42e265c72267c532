package bus

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// WorkersBucket holds the live workers, one entry per worker rewritten
// every few seconds (internal/registry, docs/design.md §9).
const WorkersBucket = "BRIG_WORKERS"

// Bounds of the workers bucket (docs/design.md §13.7). An entry is one
// worker's, rewritten in place and gone after WorkersTTL; a full bucket
// refuses new workers' entries, and their Put fails saying so.
const (
	// WorkersMaxValueSize caps one worker's entry.
	WorkersMaxValueSize = 64 << 10
	// WorkersMaxBytes caps the bucket's bytes.
	WorkersMaxBytes = 8 << 20
	// WorkersMaxMessages caps the entries: the workers of a fleet.
	WorkersMaxMessages = 10_000
	// WorkersTTL is how long an entry lives unless rewritten: a worker
	// that stops writing (it died or lost its connection) is gone after
	// it.
	WorkersTTL = 10 * time.Second
)

// WorkersConfig is the configuration of WorkersBucket. An entry says only
// that a worker is alive now, so the bucket keeps one revision in memory:
// nothing in it is worth a disk, and it refills within seconds of a
// restart.
func WorkersConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:       WorkersBucket,
		Description:  "brig: live workers (rewritten every few seconds)",
		TTL:          WorkersTTL,
		History:      1,
		Storage:      jetstream.MemoryStorage,
		Replicas:     max(replicas, 1),
		MaxValueSize: WorkersMaxValueSize,
		MaxBytes:     WorkersMaxBytes,
	}
}
