package bus

import (
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/schema"
)

// FunctionsBucket holds the deployed function definitions (`brig deploy`,
// internal/functions, docs/design.md §3), keyed by name (global functions)
// or <tenant>.<name> (a tenant's own).
const FunctionsBucket = "BRIG_FUNCTIONS"

// Bounds of the functions bucket (docs/design.md §13.7). A definition is
// at most schema.MaxFunctionBytes, FunctionsHistory revisions of each are
// kept, and a full bucket refuses a new definition (brig deploy fails
// saying so).
const (
	// FunctionsHistory is how many revisions of each definition the
	// bucket keeps.
	FunctionsHistory = 5
	// FunctionsMaxBytes caps the bucket's bytes.
	FunctionsMaxBytes = 16 << 20
	// FunctionsMaxMessages caps the definitions, revisions included.
	FunctionsMaxMessages = 10_000
)

// FunctionsConfig is the configuration of FunctionsBucket, on file: the
// definitions are what brig was told to run, and outlive every restart.
func FunctionsConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:       FunctionsBucket,
		Description:  "brig function definitions (brig deploy)",
		History:      FunctionsHistory,
		Replicas:     max(replicas, 1),
		Storage:      jetstream.FileStorage,
		MaxValueSize: schema.MaxFunctionBytes,
		MaxBytes:     FunctionsMaxBytes,
	}
}
