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
	stream, err := js.Stream(ctx, bucketStream(cfg.Bucket))
	if err != nil {
		return nil, fmt.Errorf("open the stream of bucket %s: %w", cfg.Bucket, err)
	}
	sc := stream.CachedInfo().Config
	if sc.MaxMsgs == maxMsgs {
		return kv, nil
	}
	sc.MaxMsgs = maxMsgs
	if _, err := js.UpdateStream(ctx, sc); err != nil {
		return nil, fmt.Errorf("limit bucket %s to %d messages: %w", cfg.Bucket, maxMsgs, err)
	}
	return kv, nil
}

// bucketStream is the stream behind KV bucket name.
func bucketStream(name string) string { return "KV_" + name }
