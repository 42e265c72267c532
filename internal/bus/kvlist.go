package bus

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// ListKV reads every stored value of kv whose key matches keys (a KV key
// filter, wildcards allowed), decodes each with decode, and returns them
// sorted by name. One undecodable value fails the whole list: a record
// that is not one brig wrote is never skipped in silence.
func ListKV[T any](ctx context.Context, kv jetstream.KeyValue, keys string, decode func(jetstream.KeyValueEntry) (T, error), name func(T) string) ([]T, error) {
	w, err := kv.Watch(ctx, keys, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", kv.Bucket(), err)
	}
	defer w.Stop()
	var out []T
	for {
		select {
		case entry := <-w.Updates():
			if entry == nil { // the end of the stored values
				slices.SortFunc(out, func(a, b T) int { return strings.Compare(name(a), name(b)) })
				return out, nil
			}
			v, err := decode(entry)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		case <-ctx.Done():
			return nil, fmt.Errorf("list %s: %w", kv.Bucket(), ctx.Err())
		}
	}
}
