package bench

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const rawStream = "BRIG_BENCH_RAW"

// rawJetStream measures the queue floor: a WorkQueue stream, a pull
// consumer that answers each message on its reply subject.
func rawJetStream(ctx context.Context, nc *nats.Conn, n int) (lat, thr Figure, err error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return lat, thr, err
	}
	stream, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: rawStream, Subjects: []string{"brig.bench.raw"}, Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage,
	})
	if err != nil {
		return lat, thr, err
	}
	defer js.DeleteStream(context.WithoutCancel(ctx), rawStream)
	cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "bench", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		return lat, thr, err
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		_ = m.Ack()
		if r := m.Headers().Get("Bench-Reply"); r != "" {
			_ = nc.Publish(r, m.Data())
		}
	}, jetstream.PullMaxMessages(512))
	if err != nil {
		return lat, thr, err
	}
	defer cc.Stop()

	lat, err = latency(ctx, "raw JetStream publish → pull → reply", n, func(ctx context.Context) error {
		inbox := nats.NewInbox()
		sub, err := nc.SubscribeSync(inbox)
		if err != nil {
			return err
		}
		defer sub.Unsubscribe()
		msg := &nats.Msg{Subject: "brig.bench.raw", Header: nats.Header{"Bench-Reply": []string{inbox}}, Data: []byte("x")}
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			return err
		}
		_, err = sub.NextMsgWithContext(ctx)
		return err
	})
	if err != nil {
		return lat, thr, err
	}
	// Throughput: async publishes, each acked by the consumer.
	total := n * 100
	done := make(chan struct{}, total)
	inbox := nats.NewInbox()
	sub, err := nc.Subscribe(inbox, func(*nats.Msg) { done <- struct{}{} })
	if err != nil {
		return lat, thr, err
	}
	defer sub.Unsubscribe()
	thr, err = rate(ctx, "raw JetStream throughput", 1, 1, func(ctx context.Context) error {
		for range total {
			msg := &nats.Msg{Subject: "brig.bench.raw", Header: nats.Header{"Bench-Reply": []string{inbox}}, Data: []byte("x")}
			if _, err := js.PublishMsgAsync(msg); err != nil {
				return err
			}
		}
		for range total {
			select {
			case <-done:
			case <-ctx.Done():
				return fmt.Errorf("throughput: %w", ctx.Err())
			}
		}
		return nil
	})
	thr.Rate *= float64(total)
	thr.N = total
	return lat, thr, err
}
