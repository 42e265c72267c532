package bus

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/schema"
)

// Durable consumer names.
const (
	// DispatcherConsumer is the consumer of BRIG_SUBMIT that all
	// dispatchers share.
	DispatcherConsumer = "dispatchers"
	// HeldConsumer is the consumer of StreamHold that all dispatchers
	// share.
	HeldConsumer = "held"
)

// WorkConsumer is the durable consumer all workers of one pool share.
func WorkConsumer(pool string) string { return "pool-" + pool }

// SubmitConsumerConfig is the configuration of DispatcherConsumer: every
// submission, acknowledged explicitly, in flight for at most ackWait, and
// delivered at most maxDeliver times (a dispatcher's platform retries and
// its looks for a worker together).
func SubmitConsumerConfig(ackWait time.Duration, maxDeliver int) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       DispatcherConsumer,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    maxDeliver,
		FilterSubject: schema.SubmitPrefix + ">",
	}
}

// WorkConsumerConfig is the configuration of WorkConsumer(pool): the
// pool's Work messages, acknowledged explicitly, in flight for at most
// ackWait, delivered at most maxDeliver times. maxAckPending is the pool's
// cap on running jobs over all its workers (-1: none): a job is unacked
// exactly while a worker holds it.
func WorkConsumerConfig(pool string, ackWait time.Duration, maxDeliver, maxAckPending int) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       WorkConsumer(pool),
		FilterSubject: schema.WorkSubject(pool),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    maxDeliver,
		MaxAckPending: maxAckPending,
	}
}

// HeldConsumerConfig is the configuration of HeldConsumer: the held jobs
// (docs/design.md §10.3), each looked at for at most ackWait before it is
// given to another dispatcher, at most maxAckPending at once across all
// dispatchers. Waiting for a running slot takes no delivery (MaxDeliver
// -1), so a job never ends for waiting.
func HeldConsumerConfig(ackWait time.Duration, maxAckPending int) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       HeldConsumer,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    -1,
		MaxAckPending: maxAckPending,
		FilterSubject: HoldPrefix + ">",
	}
}
