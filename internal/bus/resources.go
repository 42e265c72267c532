package bus

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/gatewayproto"
)

// The jobs' dicts and queues (docs/design.md §4, §13.5): a KV bucket per
// dict and a work-queue stream per queue, which the gateway creates on a
// job's first write, with the caps of the job's quotas.
const (
	// DictBucketPrefix starts the name of every dict's bucket:
	// BRIG_DICT_<tenant>_<name>.
	DictBucketPrefix = "BRIG_DICT_"
	// QueueStreamPrefix starts the name of every queue's stream:
	// BRIG_QUEUE_<tenant>_<name>.
	QueueStreamPrefix = "BRIG_QUEUE_"
	// QueueSubjectPrefix starts the one subject of every queue's stream:
	// brig.queue.<tenant>.<name>.
	QueueSubjectPrefix = "brig.queue."
	// QueueConsumer is the durable consumer of a queue's stream that
	// every job's gets share, on whichever worker they run.
	QueueConsumer = "brig"
	// QueueAckWait is how long a value a get took stays the taker's
	// before the server offers it again: short, so that a value taken by
	// a call that died is soon another's.
	QueueAckWait = 5 * time.Second
)

// A job's dicts and queues lie inside its tenant (docs/design.md §4.1): the
// scope dict:x:read of a job of tenant T names T's dict x, and no scope
// string can name another tenant's. The names cannot collide: a tenant
// name (schema.ValidTenant: [a-z][a-z0-9-]{0,19}) has no "_" and no ".",
// and a resource name (schema.ValidName: [A-Za-z0-9][A-Za-z0-9_-]{0,63})
// has no ".". So in BRIG_DICT_<T>_<name> the tenant is everything between
// the prefix and the first "_" after it, and the name is the rest: one
// bucket name comes from one (tenant, name) pair only. Tenant "a" with dict
// "b_c" is BRIG_DICT_a_b_c; tenant "a_b" cannot exist. The same holds for
// BRIG_QUEUE_<T>_<name>, and brig.queue.<T>.<name> is two tokens, neither
// a wildcard. TestResourceNamesDoNotCollide checks it.

// DictBucket is the KV bucket behind tenant's dict name.
func DictBucket(tenant, name string) string { return DictBucketPrefix + tenant + "_" + name }

// QueueStream is the stream behind tenant's queue name.
func QueueStream(tenant, name string) string { return QueueStreamPrefix + tenant + "_" + name }

// QueueSubject is the one subject of QueueStream(tenant, name).
func QueueSubject(tenant, name string) string { return QueueSubjectPrefix + tenant + "." + name }

// DictConfig is the configuration of tenant's dict name, created by the
// job whose creation description says so: at most maxBytes (the job's
// dict_mb), every value at most gatewayproto.MaxValueBytes, the limit the
// gateway checks a put against. A bucket's key cap (dict_keys) is no part
// of its config: the gateway sets it afterwards (CapBucket).
func DictConfig(tenant, name, description string, replicas int, maxBytes int64) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:       DictBucket(tenant, name),
		Description:  description,
		Replicas:     max(replicas, 1),
		MaxValueSize: gatewayproto.MaxValueBytes,
		MaxBytes:     maxBytes,
	}
}

// QueueConfig is the configuration of tenant's queue name, created by the
// job whose creation description says so: a work queue on its one
// subject, so a value taken and acked is gone, holding at most maxBytes
// and maxMsgs (the job's queue_mb and queue_messages) and refusing new
// values when full (DiscardNew: a put fails with QuotaExceeded rather than
// dropping a value no one has taken). Every value is at most
// gatewayproto.MaxValueBytes, the limit the gateway checks a put against.
func QueueConfig(tenant, name, description string, replicas int, maxBytes, maxMsgs int64) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        QueueStream(tenant, name),
		Description: description,
		Subjects:    []string{QueueSubject(tenant, name)},
		Retention:   jetstream.WorkQueuePolicy,
		Replicas:    max(replicas, 1),
		MaxMsgSize:  gatewayproto.MaxValueBytes,
		MaxBytes:    maxBytes,
		MaxMsgs:     maxMsgs,
		Discard:     jetstream.DiscardNew,
	}
}

// QueueConsumerConfig is the configuration of QueueConsumer: every value
// of the queue, acknowledged explicitly once the job has it, and offered
// again after QueueAckWait when the taker never acks.
func QueueConsumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:   QueueConsumer,
		AckPolicy: jetstream.AckExplicitPolicy,
		AckWait:   QueueAckWait,
	}
}
