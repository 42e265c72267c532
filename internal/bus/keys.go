package bus

import "github.com/nats-io/nats.go/jetstream"

// KeysBucket holds the dispatchers' public keys by key id
// (internal/signing, docs/design.md §4.2). Keys are never removed: one
// entry per dispatcher key ever used.
const KeysBucket = "BRIG_KEYS"

// Bounds of the keys bucket (docs/design.md §13.7). A full bucket refuses
// a new key, and the dispatcher that brings it fails to start, saying so.
const (
	// KeysMaxValueSize caps one entry: a 32-byte Ed25519 public key.
	KeysMaxValueSize = 256
	// KeysMaxBytes caps the bucket's bytes.
	KeysMaxBytes = 1 << 20
	// KeysMaxMessages caps the keys, one per dispatcher key ever used.
	KeysMaxMessages = 4096
)

// KeysConfig is the configuration of KeysBucket; a dispatcher publishing
// its key or a worker opening the ring creates it, whichever comes first.
// A key id names one key for good (a new key gets a new id), so one
// revision is all there is to keep.
func KeysConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:       KeysBucket,
		Replicas:     max(replicas, 1),
		History:      1,
		MaxValueSize: KeysMaxValueSize,
		MaxBytes:     KeysMaxBytes,
	}
}
