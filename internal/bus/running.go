package bus

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A tenant's max_running (docs/design.md §10.3) is kept the way max_queued
// is: by a per-tenant stream of markers that refuses new ones when full.
// A job holds a marker on RunningSubject(key) from the moment a dispatcher
// routes it until its terminal event is stored (internal/events purges
// it). A job that finds the stream full waits in BRIG_HOLD until a
// marker is free.
const (
	// RunningPrefix starts the subjects of the running markers:
	// brig.running.<tenant>.<id>, stored in RunningStream(tenant).
	RunningPrefix = "brig.running."
	// HoldPrefix starts the subjects of the held jobs: brig.hold.<tenant>,
	// stored in StreamHold.
	HoldPrefix = "brig.hold."
	// StreamHold holds the Work messages of jobs that wait for a running
	// slot of their tenant.
	StreamHold = "BRIG_HOLD"
	// RunningMaxAge is the backstop of the running markers: a marker whose
	// job's terminal event was stored without purging it (the purge is
	// best effort) frees its slot after this long.
	RunningMaxAge = 24 * time.Hour
)

// RunningStream is the stream of a tenant's running markers.
func RunningStream(tenant string) string { return "BRIG_RUNNING_" + tenant }

// RunningSubject is the running marker subject of the job with key jobKey.
func RunningSubject(jobKey string) string { return RunningPrefix + jobKey }

// HoldSubject is the subject of the held jobs of a tenant.
func HoldSubject(tenant string) string { return HoldPrefix + tenant }

// RunningConfig is the configuration of a tenant's running stream
// (docs/design.md §10.3, §13.7): one marker per job routed and not yet
// ended, at most maxRunning of them, refusing new ones when full.
// MaxMsgsPerSubject 1 makes a job's marker idempotent past the dedup
// window too: on a single server a second publish of it replaces the first
// instead of taking a second slot.
func RunningConfig(tenant string, maxRunning, replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              RunningStream(tenant),
		Description:       "brig: jobs of tenant " + tenant + " routed and not yet ended (max_running)",
		Subjects:          []string{RunningPrefix + tenant + ".*"},
		Retention:         jetstream.LimitsPolicy,
		Storage:           jetstream.FileStorage,
		Replicas:          max(replicas, 1),
		MaxMsgs:           int64(max(maxRunning, 1)),
		MaxMsgsPerSubject: 1,
		MaxAge:            RunningMaxAge,
		Discard:           jetstream.DiscardNew,
		Duplicates:        RunningDedupWindow,
	}
}

// RunningDedupWindow is the running stream's deduplication window: a
// marker published again within it (a redelivery) is a duplicate, not a
// second slot. Past it a dispatcher looks whether the job's marker is
// already there before it takes a refusal for "no slot".
const RunningDedupWindow = 10 * time.Minute

// HoldConfig is the configuration of StreamHold: a work queue sized like
// BRIG_WORK, whose messages are the very Work messages the jobs will be
// routed with (so the same MaxMsgSize), refusing new ones when full.
func HoldConfig(cfg Config) jetstream.StreamConfig {
	sc := workQueue(cfg.WithDefaults(), StreamHold, HoldPrefix+">")
	sc.Description = "brig: jobs waiting for a running slot of their tenant (max_running)"
	return sc
}
