package bus_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/internal/events"
	"github.com/brig-dev/brig/internal/natstest"
	"github.com/brig-dev/brig/schema"
)

func TestStreamsCarryLimits(t *testing.T) {
	t.Parallel()
	want := map[string]jetstream.StreamConfig{
		schema.StreamSubmit: {MaxBytes: bus.DefaultSubmitMaxBytes, MaxMsgs: bus.DefaultSubmitMaxMsgs, Discard: jetstream.DiscardNew},
		schema.StreamWork: {MaxBytes: bus.DefaultWorkMaxBytes, MaxMsgs: bus.DefaultWorkMaxMsgs,
			MaxMsgSize: schema.MaxWorkBytes, Discard: jetstream.DiscardNew},
		schema.StreamEvents: {MaxBytes: bus.DefaultEventsMaxBytes, MaxMsgs: bus.DefaultEventsMaxMsgs,
			MaxMsgSize: schema.MinServerPayload, Discard: jetstream.DiscardOld},
	}
	for _, sc := range bus.Streams(bus.Config{}) {
		w := want[sc.Name]
		delete(want, sc.Name)
		if sc.MaxBytes != w.MaxBytes || sc.MaxMsgs != w.MaxMsgs || sc.MaxMsgSize != w.MaxMsgSize || sc.Discard != w.Discard {
			t.Errorf("%s: MaxBytes %d, MaxMsgs %d, MaxMsgSize %d, Discard %v; want %d, %d, %d, %v", sc.Name,
				sc.MaxBytes, sc.MaxMsgs, sc.MaxMsgSize, sc.Discard, w.MaxBytes, w.MaxMsgs, w.MaxMsgSize, w.Discard)
		}
	}
	if len(want) != 0 {
		t.Errorf("streams missing: %v", want)
	}
}

func TestWithDefaultsLimits(t *testing.T) {
	t.Parallel()
	c := bus.Config{SubmitMaxBytes: 5, WorkMaxMsgs: -3, EventsMaxMsgSize: -1}.WithDefaults()
	if c.SubmitMaxBytes != 5 || c.WorkMaxMsgs != -1 || c.EventsMaxMsgSize != -1 || c.EventsMaxBytes != bus.DefaultEventsMaxBytes {
		t.Errorf("WithDefaults = %+v; want set values kept, negatives -1, zeros defaulted", c)
	}
}

// TestEnsureStreamsLimitsOlderStreams: streams an older brig made with no
// limits take them on the next start, keeping what they hold.
func TestEnsureStreamsLimitsOlderStreams(t *testing.T) {
	t.Parallel()
	_, _, js := natstest.Start(t)
	for _, sc := range bus.Streams(bus.Config{}) {
		sc.MaxBytes, sc.MaxMsgs, sc.MaxMsgSize, sc.Discard = 0, 0, 0, jetstream.DiscardOld
		if _, err := js.CreateStream(t.Context(), sc); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		if _, err := js.Publish(t.Context(), schema.WorkSubject("p"), []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	if err := bus.EnsureStreams(t.Context(), js, bus.Config{WorkMaxMsgs: 2}); err != nil {
		t.Fatalf("update streams of an older brig: %v", err)
	}
	work, err := js.Stream(t.Context(), schema.StreamWork)
	if err != nil {
		t.Fatal(err)
	}
	info := work.CachedInfo()
	if info.Config.MaxMsgs != 2 || info.Config.Discard != jetstream.DiscardNew || info.State.Msgs != 3 {
		t.Errorf("BRIG_WORK: MaxMsgs %d, Discard %v, %d msgs; want 2, DiscardNew and the 3 it held", info.Config.MaxMsgs, info.Config.Discard, info.State.Msgs)
	}
	if _, err := js.Publish(t.Context(), schema.WorkSubject("p"), []byte("{}")); err == nil || !strings.Contains(err.Error(), "maximum messages") {
		t.Errorf("publish to a full work queue: %v; want maximum messages exceeded", err)
	}
	if err := bus.EnsureStreams(t.Context(), js, bus.Config{WorkMaxMsgs: 2}); err != nil {
		t.Errorf("second start: %v", err)
	}
}

// TestFullStreams: a full submission queue refuses a new submission; a
// full events stream takes the new event and drops the oldest.
func TestFullStreams(t *testing.T) {
	t.Parallel()
	_, nc, js := natstest.Start(t)
	if err := bus.EnsureStreams(t.Context(), js, bus.Config{SubmitMaxMsgs: 2, EventsMaxMsgs: 2}); err != nil {
		t.Fatal(err)
	}
	// BRIG_SUBMIT acknowledges nothing (NoAck, docs/design.md §10.2): the
	// third submission is dropped without a word, and the first two stay.
	for range 3 {
		if err := nc.Publish(schema.SubmitSubject(schema.DefaultTenant, "python"), []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	submit, err := js.Stream(t.Context(), schema.StreamSubmit)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := submit.Info(t.Context()); err != nil || info.State.Msgs != 2 || !info.Config.NoAck {
		t.Errorf("a queue of 2 after 3 submissions: %v, %+v; want 2 messages, no acks", err, info)
	}
	if _, err := js.Publish(t.Context(), schema.SubmitSubject(schema.DefaultTenant, "python"), []byte("{}")); err == nil {
		t.Error("a submission was acknowledged: the server would acknowledge to any reply subject a client names")
	}
	for _, typ := range []schema.EventType{schema.EventAccepted, schema.EventStarted, schema.EventResult} {
		if _, err := js.Publish(t.Context(), schema.EventSubject("default.j1", typ), []byte("{}")); err != nil {
			t.Fatalf("%s event into a full events stream: %v", typ, err)
		}
	}
	if ok, err := events.NewLog(nc, js, nil).Has(t.Context(), "default.j1", schema.EventAccepted); err != nil || ok {
		t.Errorf("oldest event kept (%v, %v); want it dropped", ok, err)
	}
	if ok, err := events.NewLog(nc, js, nil).Has(t.Context(), "default.j1", schema.EventResult); err != nil || !ok {
		t.Errorf("terminal event missing (%v, %v)", ok, err)
	}
}

func TestEnsureBucket(t *testing.T) {
	t.Parallel()
	_, _, js := natstest.Start(t)
	cfg := jetstream.KeyValueConfig{Bucket: "T", History: 1}
	if _, err := js.CreateKeyValue(t.Context(), cfg); err != nil { // as an older brig did
		t.Fatal(err)
	}
	cfg.MaxBytes, cfg.MaxValueSize = 1<<20, 64
	for range 2 { // idempotent
		if _, err := bus.EnsureBucket(t.Context(), js, cfg, 2); err != nil {
			t.Fatal(err)
		}
	}
	s, err := js.Stream(t.Context(), "KV_T")
	if err != nil {
		t.Fatal(err)
	}
	if c := s.CachedInfo().Config; c.MaxMsgs != 2 || c.MaxBytes != 1<<20 || c.MaxMsgSize != 64 || c.Discard != jetstream.DiscardNew {
		t.Errorf("bucket stream: MaxMsgs %d, MaxBytes %d, MaxMsgSize %d, Discard %v", c.MaxMsgs, c.MaxBytes, c.MaxMsgSize, c.Discard)
	}
}

// TestConsumerConfigs: the durable consumers brig shares are accepted by
// the server on their streams, each bound to its own subjects.
func TestConsumerConfigs(t *testing.T) {
	t.Parallel()
	_, _, js := natstest.Start(t)
	if err := bus.EnsureStreams(t.Context(), js, bus.Config{}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateOrUpdateStream(t.Context(), bus.HoldConfig(bus.Config{})); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		stream      string
		cfg         jetstream.ConsumerConfig
		name, subj  string
		maxDeliver  int
		maxPending  int
		ackWaitWant time.Duration
	}{
		{schema.StreamSubmit, bus.SubmitConsumerConfig(30*time.Second, 7), bus.DispatcherConsumer, schema.SubmitPrefix + ">", 7, 0, 30 * time.Second},
		{schema.StreamWork, bus.WorkConsumerConfig("gpu", time.Minute, 9, 3), "pool-gpu", schema.WorkSubject("gpu"), 9, 3, time.Minute},
		{bus.StreamHold, bus.HeldConsumerConfig(20*time.Second, 1024), bus.HeldConsumer, bus.HoldPrefix + ">", -1, 1024, 20 * time.Second},
	} {
		cons, err := js.CreateOrUpdateConsumer(t.Context(), tt.stream, tt.cfg)
		if err != nil {
			t.Fatalf("%s on %s: %v", tt.name, tt.stream, err)
		}
		c := cons.CachedInfo().Config
		if c.Durable != tt.name || c.FilterSubject != tt.subj || c.AckPolicy != jetstream.AckExplicitPolicy ||
			c.MaxDeliver != tt.maxDeliver || c.AckWait != tt.ackWaitWant || tt.maxPending != 0 && c.MaxAckPending != tt.maxPending {
			t.Errorf("%s: %+v; want durable %s on %s, explicit acks, MaxDeliver %d, AckWait %s, MaxAckPending %d",
				tt.stream, c, tt.name, tt.subj, tt.maxDeliver, tt.ackWaitWant, tt.maxPending)
		}
	}
}
