package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// StorageBucket is the ledger of the tenants' max_storage_mb
// (docs/design.md §10.3, §13.5): key = tenant, value = the bytes reserved
// for the tenant's dicts and queues, in decimal. A gateway reserves a dict's
// or queue's MaxBytes here, by compare-and-swap, before it creates it, so
// that of creations racing across workers only as many succeed as the cap
// has room for. Only brig's roles may write it (a client has no JetStream
// API, docs/design.md §10.2).
const StorageBucket = "BRIG_STORAGE"

// Bounds of the storage ledger (docs/design.md §13.7).
const (
	// StorageMaxMessages caps the ledger: one entry per tenant (it keeps
	// no history), as many as BRIG_TENANTS keeps records.
	StorageMaxMessages = TenantsMaxMessages
	// StorageMaxValueSize caps one entry's message: a decimal int64 (19
	// digits), with its subject and the compare-and-swap header, which
	// the limit counts too.
	StorageMaxValueSize = 1 << 10
	// StorageMaxBytes caps the ledger's bytes: StorageMaxMessages entries
	// of about 150 bytes each, subject and headers included.
	StorageMaxBytes = 32 << 20
)

// StorageConfig is the configuration of StorageBucket; whoever needs it
// first creates it.
func StorageConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:       StorageBucket,
		Description:  "brig: bytes reserved for each tenant's dicts and queues (max_storage_mb)",
		History:      1,
		Replicas:     max(replicas, 1),
		Storage:      jetstream.FileStorage,
		MaxValueSize: StorageMaxValueSize,
		MaxBytes:     StorageMaxBytes,
	}
}

// OpenStorage creates or updates the storage ledger and returns it. Every
// worker's gateway opens it when it first needs it, so several may create
// it at once: the one that loses updates it instead.
func OpenStorage(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.KeyValue, error) {
	kv, err := EnsureBucket(ctx, js, StorageConfig(replicas), StorageMaxMessages)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		kv, err = EnsureBucket(ctx, js, StorageConfig(replicas), StorageMaxMessages)
	}
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", StorageBucket, err)
	}
	return kv, nil
}

// Reserved reads the bytes reserved for tenant's dicts and queues, and the
// revision of the entry to compare-and-swap against: 0 when the tenant has
// none yet (kv.Create it then).
func Reserved(ctx context.Context, kv jetstream.KeyValue, tenant string) (bytes int64, revision uint64, err error) {
	e, err := kv.Get(ctx, tenant)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return 0, 0, nil
	case err != nil:
		return 0, 0, fmt.Errorf("read the storage reserved for tenant %s: %w", tenant, err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(e.Value())), 10, 64)
	if err != nil || n < 0 {
		return 0, 0, fmt.Errorf("tenant %s: stored reservation %q (revision %d) is not a byte count", tenant, e.Value(), e.Revision())
	}
	return n, e.Revision(), nil
}

// EncodeReserved is a ledger value.
func EncodeReserved(bytes int64) []byte { return strconv.AppendInt(nil, bytes, 10) }
