package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/bus"
)

// The JetStream objects behind a job's resources, their names and their
// configurations, are declared in internal/bus (bus.DictBucket,
// bus.QueueStream, bus.DictConfig, bus.QueueConfig, bus.QueueConsumerConfig):
// a job's dicts and queues lie inside its tenant, and why no two (tenant,
// name) pairs share a name is told there.
const (
	queuePoll = 50 * time.Millisecond
	// queueAckConfirm bounds the wait for the server to confirm an ack
	// (settleGet), well within bus.QueueAckWait, the time a taken value
	// stays the taker's before the server offers it again.
	queueAckConfirm = 2 * time.Second
)

// resources performs calls on JetStream, creating dicts and queues on first
// write.
type resources struct {
	js       jetstream.JetStream
	replicas int
	storage  *storage // the tenants' max_storage_mb
	log      *slog.Logger
	mu       sync.Mutex
	queues   map[string]jetstream.Consumer // by stream name: tenant and queue
}

func newResources(js jetstream.JetStream, replicas int, log *slog.Logger) *resources {
	return &resources{js: js, replicas: replicas, storage: newStorage(js, replicas, log), log: log,
		queues: map[string]jetstream.Consumer{}}
}

// resourceCalls performs one session's calls, on the resources of its
// job's tenant: a dict or queue it creates counts against its quotas and
// gets their byte and count caps, with DiscardNew, so that a full one
// refuses the write (docs/design.md §13.5), and its byte cap counts
// against its tenant's max_storage_mb (storage.go).
type resourceCalls struct {
	*resources
	s *session
}

func (r resourceCalls) dictBucket(name string) string  { return bus.DictBucket(r.s.tenant, name) }
func (r resourceCalls) queueStream(name string) string { return bus.QueueStream(r.s.tenant, name) }

func (r resourceCalls) dictGet(ctx context.Context, name, key string) ([]byte, bool, error) {
	kv, err := r.js.KeyValue(ctx, r.dictBucket(name))
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

func (r resourceCalls) dictPut(ctx context.Context, name, key string, value []byte) error {
	kv, err := r.dict(ctx, name)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, key, value); err != nil {
		if qe := r.refusal(ctx, err, "dict "+name, "KV_"+r.dictBucket(name), "keys"); qe != nil {
			return qe
		}
		return fmt.Errorf("dict %s put: %w", name, err)
	}
	return nil
}

// refusal is JetStream's refusal of a write to the stream as a quota
// error naming the stream's limits, or nil for another error.
func (r resourceCalls) refusal(ctx context.Context, err error, what, stream, unit string) error {
	var maxBytes, maxMsgs int64
	if s, serr := r.js.Stream(ctx, stream); serr == nil {
		maxBytes, maxMsgs = s.CachedInfo().Config.MaxBytes, s.CachedInfo().Config.MaxMsgs
	}
	return storeRefusal(err, what, maxBytes, maxMsgs, unit)
}

func (r resourceCalls) dictDelete(ctx context.Context, name, key string) error {
	kv, err := r.js.KeyValue(ctx, r.dictBucket(name))
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
func (r resourceCalls) dict(ctx context.Context, name string) (jetstream.KeyValue, error) {
	kv, err := r.js.KeyValue(ctx, r.dictBucket(name))
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = r.createDict(ctx, name)
	}
	if err != nil {
		return nil, fmt.Errorf("open dict %s: %w", name, err)
	}
	return kv, nil
}

// createDict creates a dict's bucket with the session's quotas, once its
// bytes are reserved in the tenant's max_storage_mb. One that another job
// created meanwhile keeps its creator's, and costs this one nothing.
func (r resourceCalls) createDict(ctx context.Context, name string) (jetstream.KeyValue, error) {
	if err := r.s.takeResource("dict", name); err != nil {
		return nil, err
	}
	q, bucket := r.s.q, r.dictBucket(name)
	// Reserving, creating, capping and giving back are one step for brig:
	// the job's session ending between them would leave a dict without its
	// key cap, or a reservation without its dict, for good.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), createBudget)
	defer cancel()
	rel, err := r.storage.reserve(ctx, r.s.tenant, "dict "+name, q.DictMB<<20)
	if err != nil {
		if kv, kerr := r.js.KeyValue(ctx, bucket); kerr == nil {
			return kv, nil // made by another job meanwhile
		}
		return nil, err
	}
	desc := creation("dict", name, r.s.b.JobID)
	kv, err := r.js.CreateKeyValue(ctx, bus.DictConfig(r.s.tenant, name, desc, r.replicas, q.DictMB<<20))
	if err != nil {
		r.storage.settle(ctx, "KV_"+bucket, desc, rel)
		if errors.Is(err, jetstream.ErrBucketExists) {
			return r.js.KeyValue(ctx, bucket)
		}
		if qe := storeRefusal(err, "dict "+name, q.DictMB<<20, q.DictKeys, "keys"); qe != nil {
			return nil, qe
		}
		return nil, err
	}
	// A bucket keeps one message per key, plus a marker per deleted key.
	if err := bus.CapBucket(ctx, r.js, bucket, q.DictKeys); err != nil {
		if derr := r.js.DeleteKeyValue(ctx, bucket); derr == nil { // no uncapped dict is left behind
			rel(ctx)
		}
		return nil, fmt.Errorf("cap the keys of dict %s: %w", name, err)
	}
	return kv, nil
}

// createBudget bounds the creation of a dict or queue, which goes on when
// the job that asked for it ends meanwhile.
const createBudget = 10 * time.Second

func (r resourceCalls) queuePut(ctx context.Context, name string, value []byte) error {
	if _, err := r.queue(ctx, name, true); err != nil {
		return err
	}
	if _, err := r.js.Publish(ctx, bus.QueueSubject(r.s.tenant, name), value); err != nil {
		if qe := r.refusal(ctx, err, "queue "+name, r.queueStream(name), "values"); qe != nil {
			return qe
		}
		return fmt.Errorf("queue %s put: %w", name, err)
	}
	return nil
}

// queueGet takes one value, waiting until ctx's deadline for one to come,
// and returns it unacked: settle acks it once the job has it, or offers it
// again. A queue nobody has written to yet is created, so that the wait can
// see the first put. It polls with no-wait pulls: a pull request left
// waiting at the server would take a later value for a caller that is gone.
func (r resourceCalls) queueGet(ctx context.Context, name string) (value []byte, settle func(context.Context, bool), err error) {
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
			return msg.Data(), func(ctx context.Context, delivered bool) {
				r.settleGet(ctx, name, msg, delivered)
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

// settleGet acks a value taken by a get once the job has it (delivered),
// or offers it again. The ack waits for the server's confirmation: the
// server handles acks apart from the publishes that follow them on the same
// connection, so an unconfirmed ack may not yet have removed the value when
// the job's next put arrives, and a full queue would refuse a job that took
// a value and puts one back. serve reads a connection's next request only
// once this returns. The ack outlives the session (the job has the value,
// whatever becomes of its binding); should it not be confirmed in time, the
// value may be offered again after bus.QueueAckWait: taken twice, never
// lost.
func (r resourceCalls) settleGet(ctx context.Context, name string, msg jetstream.Msg, delivered bool) {
	if !delivered {
		_ = msg.Nak() // the connection is gone: nobody waits on this one
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), queueAckConfirm)
	defer cancel()
	if err := msg.DoubleAck(ctx); err != nil {
		r.log.Warn("queue get: ack not confirmed; the value may be offered again",
			"tenant", r.s.tenant, "queue", name, "job", r.s.b.JobID, "err", err)
	}
}

// queue opens a queue's consumer; create makes the stream when missing.
// It returns nil, nil for a queue that does not exist and create is false.
// The consumer acks explicitly with a short wait, so a value taken by a
// call that died is offered again soon.
func (r resourceCalls) queue(ctx context.Context, name string, create bool) (jetstream.Consumer, error) {
	r.mu.Lock()
	cons, ok := r.queues[r.queueStream(name)]
	r.mu.Unlock()
	if ok {
		return cons, nil
	}
	stream, err := r.js.Stream(ctx, r.queueStream(name))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if !create {
			return nil, nil
		}
		stream, err = r.createQueue(ctx, name)
	}
	var qe *quotaError
	if errors.As(err, &qe) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("open queue %s: %w", name, err)
	}
	cons, err = stream.CreateOrUpdateConsumer(ctx, bus.QueueConsumerConfig())
	if err != nil {
		return nil, fmt.Errorf("open queue %s: %w", name, err)
	}
	r.mu.Lock()
	r.queues[r.queueStream(name)] = cons
	r.mu.Unlock()
	return cons, nil
}

// createQueue creates a queue's stream with the session's quotas, once
// its bytes are reserved in the tenant's max_storage_mb. One that another
// job created meanwhile keeps its creator's, and costs this one nothing.
func (r resourceCalls) createQueue(ctx context.Context, name string) (jetstream.Stream, error) {
	if err := r.s.takeResource("queue", name); err != nil {
		return nil, err
	}
	q, sname := r.s.q, r.queueStream(name)
	// As for a dict: the reservation and the stream go together.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), createBudget)
	defer cancel()
	rel, err := r.storage.reserve(ctx, r.s.tenant, "queue "+name, q.QueueMB<<20)
	if err != nil {
		if stream, serr := r.js.Stream(ctx, sname); serr == nil {
			return stream, nil // made by another job meanwhile
		}
		return nil, err
	}
	desc := creation("queue", name, r.s.b.JobID)
	stream, err := r.js.CreateStream(ctx, bus.QueueConfig(r.s.tenant, name, desc, r.replicas, q.QueueMB<<20, q.QueueMessages))
	if err != nil {
		r.storage.settle(ctx, sname, desc, rel)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return r.js.Stream(ctx, sname)
		}
		if qe := storeRefusal(err, "queue "+name, q.QueueMB<<20, q.QueueMessages, "values"); qe != nil {
			return nil, qe
		}
		return nil, err
	}
	return stream, nil
}
