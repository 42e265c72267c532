package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Names of the JetStream objects behind a job's resources.
const (
	dictBucketPrefix = "BRIG_DICT_"
	queueStreamPfx   = "BRIG_QUEUE_"
	queueSubjectPfx  = "brig.queue."
	queueConsumer    = "brig"
	queuePoll        = 50 * time.Millisecond
)

// DictBucket is the KV bucket behind dict name.
func DictBucket(name string) string { return dictBucketPrefix + name }

// QueueStream is the stream behind queue name.
func QueueStream(name string) string { return queueStreamPfx + name }

// resources performs calls on JetStream, creating dicts and queues on first
// write.
type resources struct {
	js       jetstream.JetStream
	replicas int
	mu       sync.Mutex
	queues   map[string]jetstream.Consumer
}

func newResources(js jetstream.JetStream, replicas int) *resources {
	return &resources{js: js, replicas: replicas, queues: map[string]jetstream.Consumer{}}
}

func (r *resources) dictGet(ctx context.Context, name, key string) ([]byte, bool, error) {
	kv, err := r.js.KeyValue(ctx, DictBucket(name))
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("open dict %s: %w", name, err)
	}
	entry, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("dict %s get: %w", name, err)
	}
	if !json.Valid(entry.Value()) { // written by something other than a job
		return nil, false, fmt.Errorf("dict %s: the value of %q is not JSON", name, key)
	}
	return entry.Value(), true, nil
}

func (r *resources) dictPut(ctx context.Context, name, key string, value []byte) error {
	kv, err := r.dict(ctx, name)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, key, value); err != nil {
		return fmt.Errorf("dict %s put: %w", name, err)
	}
	return nil
}

func (r *resources) dictDelete(ctx context.Context, name, key string) error {
	kv, err := r.js.KeyValue(ctx, DictBucket(name))
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open dict %s: %w", name, err)
	}
	if err := kv.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("dict %s delete: %w", name, err)
	}
	return nil
}

// dict opens a dict's bucket, creating it on first write.
func (r *resources) dict(ctx context.Context, name string) (jetstream.KeyValue, error) {
	kv, err := r.js.KeyValue(ctx, DictBucket(name))
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = r.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: DictBucket(name), Replicas: r.replicas, MaxValueSize: MaxValueBytes,
		})
	}
	if err != nil {
		return nil, fmt.Errorf("open dict %s: %w", name, err)
	}
	return kv, nil
}

func (r *resources) queuePut(ctx context.Context, name string, value []byte) error {
	if _, err := r.queue(ctx, name, true); err != nil {
		return err
	}
	if _, err := r.js.Publish(ctx, queueSubjectPfx+name, value); err != nil {
		return fmt.Errorf("queue %s put: %w", name, err)
	}
	return nil
}

// queueGet takes one value, waiting until ctx's deadline for one to come,
// and returns it unacked: settle acks it once the job has it, or offers it
// again. A queue nobody has written to yet is created, so that the wait can
// see the first put. It polls with no-wait pulls: a pull request left
// waiting at the server would take a later value for a caller that is gone.
func (r *resources) queueGet(ctx context.Context, name string) (value []byte, settle func(bool), err error) {
	cons, err := r.queue(ctx, name, true)
	if err != nil {
		return nil, nil, err
	}
	for {
		batch, err := cons.FetchNoWait(1)
		if err != nil {
			return nil, nil, fmt.Errorf("queue %s get: %w", name, err)
		}
		for msg := range batch.Messages() {
			if !json.Valid(msg.Data()) { // published by something other than a job
				_ = msg.TermWithReason("not JSON")
				return nil, nil, fmt.Errorf("queue %s: dropped a value that is not JSON", name)
			}
			return msg.Data(), func(delivered bool) {
				if delivered {
					_ = msg.Ack()
				} else {
					_ = msg.Nak()
				}
			}, nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, nil, nil // nothing came in time: not an error
			}
			return nil, nil, ctx.Err()
		case <-time.After(queuePoll):
		}
	}
}

// queue opens a queue's consumer; create makes the stream when missing.
// It returns nil, nil for a queue that does not exist and create is false.
// The consumer acks explicitly with a short wait, so a value taken by a
// call that died is offered again soon.
func (r *resources) queue(ctx context.Context, name string, create bool) (jetstream.Consumer, error) {
	r.mu.Lock()
	cons, ok := r.queues[name]
	r.mu.Unlock()
	if ok {
		return cons, nil
	}
	stream, err := r.js.Stream(ctx, QueueStream(name))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if !create {
			return nil, nil
		}
		stream, err = r.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name: QueueStream(name), Subjects: []string{queueSubjectPfx + name},
			Retention: jetstream.WorkQueuePolicy, Replicas: r.replicas, MaxMsgSize: MaxValueBytes,
		})
	}
	if err != nil {
		return nil, fmt.Errorf("open queue %s: %w", name, err)
	}
	cons, err = stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: queueConsumer, AckPolicy: jetstream.AckExplicitPolicy, AckWait: 5 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("open queue %s: %w", name, err)
	}
	r.mu.Lock()
	r.queues[name] = cons
	r.mu.Unlock()
	return cons, nil
}
