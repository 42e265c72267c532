package bus

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// EnsureBucket creates or updates one of brig's own KV buckets and caps its
// message count at maxMsgs. A bucket's byte limits (MaxBytes, MaxValueSize)
// are part of cfg; its message limit is not, so it is set on the bucket's
// stream afterwards. A KV bucket discards new writes when full: a Put past
// a limit fails with JetStream's "maximum bytes/messages exceeded".
func EnsureBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig, maxMsgs int64) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := CapBucket(ctx, js, cfg.Bucket, maxMsgs); err != nil {
		return nil, err
	}
	return kv, nil
}

// CapBucket sets the message limit of KV bucket name, which a bucket's own
// config cannot carry, on the bucket's stream.
func CapBucket(ctx context.Context, js jetstream.JetStream, name string, maxMsgs int64) error {
	stream, err := js.Stream(ctx, bucketStream(name))
	if err != nil {
		return fmt.Errorf("open the stream of bucket %s: %w", name, err)
	}
	sc := stream.CachedInfo().Config
	if sc.MaxMsgs == maxMsgs {
		return nil
	}
	sc.MaxMsgs = maxMsgs
	if _, err := js.UpdateStream(ctx, sc); err != nil {
		return fmt.Errorf("limit bucket %s to %d messages: %w", name, maxMsgs, err)
	}
	return nil
}

// bucketStream is the stream behind KV bucket name.
func bucketStream(name string) string { return "KV_" + name }
