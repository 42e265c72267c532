package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/internal/natstest"
	"github.com/brig-dev/brig/internal/registry"
	"github.com/brig-dev/brig/schema"
)

// rig is a started dispatcher on its own server, with a live worker of the
// default pool in the registry (no real one: nothing pulls its work), and
// the tenant default's record. nc is a client connection of the default
// tenant (its inboxes are _INBOX.default.…); the dispatcher has its own.
type rig struct {
	t   *testing.T
	url string
	nc  *nats.Conn
	js  jetstream.JetStream
	d   *Dispatcher
}

func newRig(t *testing.T, edit func(*Config)) *rig {
	t.Helper()
	url, _, _ := natstest.Start(t)
	// The rig's requests (cancel, replay) come from the default tenant's
	// inboxes: a dispatcher answers no other (docs/design.md §10.2).
	nc, err := nats.Connect(url, nats.CustomInboxPrefix(schema.InboxPrefix(schema.DefaultTenant)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Conn:       nc,
		Logger:     slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})),
		MaxDeliver: 3,
		Backoff:    10 * time.Millisecond,
		// The tests publish raw submissions, trusted, and read their
		// sequences from the acknowledgements.
		Streams: bus.Config{SubmitAcks: true},
	}
	if edit != nil {
		edit(&cfg)
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Stop(context.Background()) })
	reg, err := registry.Open(t.Context(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Put(t.Context(), registry.Worker{ID: "w1", Pools: []string{schema.DefaultPool}, Slots: 1}); err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, url: url, nc: tenantConn(t, url, schema.DefaultTenant), js: js, d: d}
	r.addTenant(schema.Tenant{Name: schema.DefaultTenant})
	return r
}

// tenantConn connects as a client of tenant does: its inboxes are the
// tenant's.
func tenantConn(t *testing.T, url, tenant string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.CustomInboxPrefix(schema.InboxPrefix(tenant)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// addTenant stores a tenant's record, as `brig tenant add` does.
func (r *rig) addTenant(rec schema.Tenant) {
	r.t.Helper()
	kv, err := bus.OpenTenants(r.t.Context(), r.js, 1)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := bus.PutTenant(r.t.Context(), kv, rec); err != nil {
		r.t.Fatal(err)
	}
}

// k is the key of a job id of the default tenant; a key is left as it is.
func k(id string) string {
	if strings.Contains(id, ".") {
		return id
	}
	return schema.JobKey(schema.DefaultTenant, id)
}

// submit publishes a python job's payload as a client of the default
// tenant would, without the Nats-Msg-Id header when msgID is "" (a plain
// id becomes its key), and returns its stream sequence.
func (r *rig) submit(data []byte, msgID string) uint64 {
	r.t.Helper()
	return r.submitAs(schema.DefaultTenant, data, msgID)
}

// submitAs publishes a python job's payload as a client of tenant would,
// with msgID as it is.
func (r *rig) submitAs(tenant string, data []byte, msgID string) uint64 {
	r.t.Helper()
	msg := &nats.Msg{Subject: schema.SubmitSubject(tenant, "python"), Data: data, Header: nats.Header{}}
	if msgID != "" {
		if tenant == schema.DefaultTenant {
			msgID = k(msgID)
		}
		msg.Header.Set(jetstream.MsgIDHeader, msgID)
	}
	ack, err := r.js.PublishMsg(r.t.Context(), msg)
	if err != nil {
		r.t.Fatalf("submit: %v", err)
	}
	return ack.Sequence
}

// terminal waits for the job's terminal event, reading its events as they
// are stored.
func (r *rig) terminal(id string) *schema.Event {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.t.Context(), 20*time.Second)
	defer cancel()
	cons, err := r.js.OrderedConsumer(ctx, schema.StreamEvents, jetstream.OrderedConsumerConfig{FilterSubjects: []string{schema.EventsFilter(k(id))}})
	if err != nil {
		r.t.Fatal(err)
	}
	for {
		msg, err := cons.Next(jetstream.FetchContext(ctx))
		if err != nil {
			r.t.Fatalf("job %s: no terminal event: %v", id, err)
		}
		if ev, err := schema.DecodeEvent(msg.Data()); err == nil && schema.IsTerminal(ev.Type) {
			return ev
		}
	}
}

// stored counts the stored events of a job by type.
func (r *rig) stored(id string) map[schema.EventType]int {
	r.t.Helper()
	s, err := r.js.Stream(r.t.Context(), schema.StreamEvents)
	if err != nil {
		r.t.Fatal(err)
	}
	info, err := s.Info(r.t.Context(), jetstream.WithSubjectFilter(schema.EventsFilter(k(id))))
	if err != nil {
		r.t.Fatal(err)
	}
	counts := map[schema.EventType]int{}
	for subj, n := range info.State.Subjects {
		counts[schema.EventType(subj[strings.LastIndexByte(subj, '.')+1:])] = int(n)
	}
	return counts
}

// settled waits until the submission stored at seq has left BRIG_SUBMIT
// (acked or terminated). JetStream says nothing when a work queue drops a
// message, so this polls.
func (r *rig) settled(seq uint64) {
	r.t.Helper()
	s, err := r.js.Stream(r.t.Context(), schema.StreamSubmit)
	if err != nil {
		r.t.Fatal(err)
	}
	waitFor(r.t, fmt.Sprintf("submission %d settled", seq), func() (bool, string) {
		_, err := s.GetMsg(r.t.Context(), seq)
		return errors.Is(err, jetstream.ErrMsgNotFound), fmt.Sprintf("lookup: %v", err)
	})
}

// rawJob is a python job's payload with code as is: raw bytes that are
// not UTF-8 stay one byte each (an encoder would write \ufffd).
func rawJob(id, code string) []byte {
	return []byte(`{"id":"` + id + `","function":"python","code":"` + code + `"}`)
}

func jobData(t *testing.T, id, code string) []byte {
	t.Helper()
	data, err := schema.Marshal(schema.Job{ID: id, Function: "python", Code: code})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// wantTerminal checks that a job has exactly one terminal event, of the
// given status and error type, and accepted events as given.
func (r *rig) wantTerminal(id string, status schema.Status, errType schema.ErrorType, accepted int) *schema.Event {
	r.t.Helper()
	ev := r.terminal(id)
	if ev.JobID != k(id) || ev.Status != status || ev.Error == nil || ev.Error.Type != errType {
		r.t.Errorf("terminal event of %s: %+v; want status %s, error %s", id, ev, status, errType)
	}
	counts := r.stored(id)
	terminal := counts[schema.EventResult] + counts[schema.EventTimeout] + counts[schema.EventError] + counts[schema.EventCancelled]
	if terminal != 1 || counts[schema.EventAccepted] != accepted {
		r.t.Errorf("job %s stored %v; want 1 terminal and %d accepted", id, counts, accepted)
	}
	return ev
}

// TestOversizeWorkRejectedBeforeAccepted: a job under MaxJobBytes whose
// work message would pass MaxWorkBytes once re-encoded (each invalid UTF-8
// byte becomes the three of U+FFFD) is rejected, not accepted.
func TestOversizeWorkRejectedBeforeAccepted(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	id := "grow-1"
	r.submit(rawJob(id, "# "+strings.Repeat("\xff", 400<<10)), id)
	ev := r.wantTerminal(id, schema.StatusRejected, schema.ErrInvalidJob, 0)
	for _, want := range []string{"limit", strconv.Itoa(schema.MaxWorkBytes), "MaxWorkBytes"} {
		if !strings.Contains(ev.Error.Message, want) {
			t.Errorf("message %q does not name %q", ev.Error.Message, want)
		}
	}
}

// TestWorkMessageAtTheLimit: the size checked is the message sent, headers
// included; one byte more is refused.
func TestWorkMessageAtTheLimit(t *testing.T) {
	t.Parallel()
	_, nc, _ := natstest.Start(t)
	d, err := New(Config{Conn: nc})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	meta := &jetstream.MsgMetadata{Timestamp: now}
	job := &schema.Job{ID: k("edge-1"), Function: "python", Code: "x"}
	spec := buildSpec(job, schema.Ptr(schema.Python()))
	out, err := d.workMessage(job, &spec, meta, now)
	if err != nil {
		t.Fatal(err)
	}
	size := out.Size() - len(out.Subject)
	job.Code = strings.Repeat("<", 1+schema.MaxWorkBytes-size)
	out, err = d.workMessage(job, &spec, meta, now)
	if err != nil {
		t.Fatalf("work message of exactly %d bytes: %v", schema.MaxWorkBytes, err)
	}
	if got := out.Size() - len(out.Subject); got != schema.MaxWorkBytes {
		t.Fatalf("work message is %d bytes, want %d (nothing HTML-escaped)", got, schema.MaxWorkBytes)
	}
	if _, err := schema.DecodeWork(out.Data); err != nil {
		t.Errorf("a worker refuses the work message at the limit: %v", err)
	}
	job.Code += "<"
	_, err = d.workMessage(job, &spec, meta, now)
	var rej *rejection
	if !errors.As(err, &rej) || rej.errType != schema.ErrInvalidJob || !strings.Contains(rej.msg, strconv.Itoa(schema.MaxWorkBytes+1)+" bytes") {
		t.Fatalf("one byte over: %v; want an InvalidJob rejection naming the size", err)
	}
}

// TestRoutingFailureEndsTheJob: BRIG_WORK refuses the job (full) on every
// attempt; the job ends in exactly one terminal Infrastructure error, its
// own, after its accepted event.
func TestRoutingFailureEndsTheJob(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(c *Config) { c.Streams.WorkMaxMsgs = 1 })
	// Another pool's backlog fills the work queue.
	if _, err := r.js.Publish(t.Context(), schema.WorkSubject("backlog"), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	id := "full-1"
	seq := r.submit(jobData(t, id, `print(1)`), id)
	ev := r.wantTerminal(id, schema.StatusError, schema.ErrInfrastructure, 1)
	if !strings.Contains(ev.Error.Message, "maximum messages") {
		t.Errorf("message %q does not say the work queue is full", ev.Error.Message)
	}
	acc, err := r.d.events.Find(t.Context(), k(id), schema.EventAccepted)
	if err != nil || acc == nil || acc.SubmitSeq != seq {
		t.Errorf("accepted event %+v (%v); want submit_seq %d", acc, err, seq)
	}
}

// TestReusedIDLeavesTheJobAlone: submissions that reuse an accepted job's id
// (past the dedup window: no Nats-Msg-Id) are refused, whatever they hold,
// and add nothing to that job's events.
func TestReusedIDLeavesTheJobAlone(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil) // nothing pulls BRIG_WORK: the job stays queued
	id := "taken-1"
	r.settled(r.submit(jobData(t, id, `print("first")`), id))
	before := r.stored(id)
	if before[schema.EventAccepted] != 1 {
		t.Fatalf("first job not accepted: %v", before)
	}
	for name, data := range map[string][]byte{
		"valid":            jobData(t, id, `print("second")`),
		"invalid":          []byte(`{"id":"` + id + `","colour":1}`),
		"over the job cap": jobData(t, id, strings.Repeat("x", schema.DefaultMaxJobBytes)),
		"too big to route": rawJob(id, strings.Repeat("\xff", 400<<10)),
	} {
		r.settled(r.submit(data, ""))
		if after := r.stored(id); len(after) != len(before) || after[schema.EventAccepted] != 1 || len(after) != 1 {
			t.Errorf("%s reuse of %s changed its events: %v, was %v", name, id, after, before)
		}
	}
}

// TestRedeliveryEndsOnlyItsOwnJob drives handle with redeliveries: the
// submission that was accepted ends its job when it fails for good; another
// one under the same id, however often delivered, does not.
func TestRedeliveryEndsOnlyItsOwnJob(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(c *Config) { c.Streams.WorkMaxMsgs = 1 })
	id := "redeliver-1"
	// Accepted from the submission stored at sequence 7.
	if _, err := r.d.events.Publish(t.Context(), &schema.Event{JobID: k(id), Type: schema.EventAccepted, Seq: 1, ExitCode: -1, SubmitSeq: 7}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := r.js.Publish(t.Context(), schema.WorkSubject("backlog"), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	other := &fakeMsg{subject: schema.SubmitSubject(schema.DefaultTenant, "python"), data: jobData(t, id, "print(2)"), seq: 8, delivered: 3}
	r.d.handle(t.Context(), other)
	if other.settled != "term" || len(r.stored(id)) != 1 {
		t.Fatalf("another submission's last delivery: settled %q, events %v; want term and the job untouched", other.settled, r.stored(id))
	}
	own := &fakeMsg{subject: schema.SubmitSubject(schema.DefaultTenant, "python"), data: jobData(t, id, "print(1)"), seq: 7, delivered: 3}
	r.d.handle(t.Context(), own)
	if own.settled != "term" {
		t.Fatalf("own submission's last delivery settled %q, want term", own.settled)
	}
	r.wantTerminal(id, schema.StatusError, schema.ErrInfrastructure, 1)
}

func TestAcceptedFrom(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		submitSeq  uint64
		seq, tries uint64
		want       bool
	}{
		{"same submission, first delivery", 7, 7, 1, true},
		{"same submission, redelivered", 7, 7, 4, true},
		{"another submission", 7, 8, 1, false},
		{"another submission, redelivered", 7, 8, 4, false},
		{"older brig, first delivery", 0, 8, 1, false},
		{"older brig, redelivery", 0, 8, 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			meta := &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: tt.seq}, NumDelivered: tt.tries}
			if got := acceptedFrom(&schema.Event{SubmitSeq: tt.submitSeq}, meta); got != tt.want {
				t.Errorf("acceptedFrom = %v, want %v", got, tt.want)
			}
		})
	}
}

// fakeMsg is a submission as a consumer delivers it, recording how the
// dispatcher settles it.
type fakeMsg struct {
	subject        string
	data           []byte
	seq, delivered uint64
	settled        string
}

func (m *fakeMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: m.seq}, NumDelivered: m.delivered, Timestamp: time.Now()}, nil
}
func (m *fakeMsg) Data() []byte                     { return m.data }
func (m *fakeMsg) Headers() nats.Header             { return nats.Header{} }
func (m *fakeMsg) Subject() string                  { return m.subject }
func (m *fakeMsg) Reply() string                    { return "" }
func (m *fakeMsg) Ack() error                       { m.settled = "ack"; return nil }
func (m *fakeMsg) DoubleAck(context.Context) error  { m.settled = "ack"; return nil }
func (m *fakeMsg) Nak() error                       { m.settled = "nak"; return nil }
func (m *fakeMsg) NakWithDelay(time.Duration) error { m.settled = "nak"; return nil }
func (m *fakeMsg) InProgress() error                { return nil }
func (m *fakeMsg) Term() error                      { m.settled = "term"; return nil }
func (m *fakeMsg) TermWithReason(string) error      { m.settled = "term"; return nil }

// TestGiveUpEndsOnlyItsOwnJob: when JetStream gives up on a submission
// (max deliveries), the job that submission was accepted as ends in a
// terminal event; a submission reusing another job's id ends nothing.
func TestGiveUpEndsOnlyItsOwnJob(t *testing.T) {
	t.Parallel()
	_, nc, js := natstest.Start(t)
	if err := bus.EnsureStreams(t.Context(), js, bus.Config{SubmitAcks: true}); err != nil {
		t.Fatal(err)
	}
	d, err := New(Config{Conn: nc, Logger: slog.New(slog.NewTextHandler(t.Output(), nil)), Streams: bus.Config{SubmitAcks: true}})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, nc: nc, js: js, d: d}
	for _, tt := range []struct {
		id    string
		other uint64 // accepted from a submission this much later
		want  int    // terminal events
	}{{"own-1", 0, 1}, {"other-1", 5, 0}} {
		seq := r.submit(jobData(t, tt.id, "print(1)"), tt.id)
		accepted := &schema.Event{JobID: k(tt.id), Type: schema.EventAccepted, Seq: 1, ExitCode: -1, SubmitSeq: seq + tt.other}
		if _, err := d.events.Publish(t.Context(), accepted, ""); err != nil {
			t.Fatal(err)
		}
		if err := d.giveUp(t.Context(), schema.StreamSubmit, seq, 40); err != nil {
			t.Fatalf("%s: give up: %v", tt.id, err)
		}
		r.settled(seq)
		counts := r.stored(tt.id)
		if counts[schema.EventError] != tt.want || counts[schema.EventAccepted] != 1 {
			t.Errorf("%s: events %v; want %d terminal", tt.id, counts, tt.want)
		}
	}
}
