package dispatcher

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/schema"
)

// jobFor is a python job's payload with a reply_to.
func jobFor(t *testing.T, id, replyTo string) []byte {
	t.Helper()
	data, err := schema.Marshal(schema.Job{ID: id, Function: "python", Code: "print(1)", ReplyTo: replyTo})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// The same id in two tenants is two jobs: each is accepted and routed
// under its own key, with its own token and Work message id.
func TestSameIDTwoTenants(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	r.addTenant(schema.Tenant{Name: "acme"})
	for _, tenant := range []string{schema.DefaultTenant, "acme"} {
		r.settled(r.submitAs(tenant, jobData(t, "same-1", "print(1)"), schema.JobKey(tenant, "same-1")))
	}
	work, err := r.js.Stream(t.Context(), schema.StreamWork)
	if err != nil {
		t.Fatal(err)
	}
	for seq, tenant := range map[uint64]string{1: schema.DefaultTenant, 2: "acme"} {
		key := schema.JobKey(tenant, "same-1")
		if c := r.stored(key); c[schema.EventAccepted] != 1 || len(c) != 1 {
			t.Errorf("%s: stored %v; want it accepted", key, c)
		}
		raw, err := work.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatal(err)
		}
		w, err := schema.DecodeWork(raw.Data)
		if err != nil {
			t.Fatalf("work message %d: %v", seq, err)
		}
		if got := raw.Header.Get(jetstream.MsgIDHeader); w.Job.ID != key || got != key {
			t.Errorf("work message %d: job %q, Nats-Msg-Id %q; want %s", seq, w.Job.ID, got, key)
		}
	}
}

// A submission whose Nats-Msg-Id is not its key, or whose reply_to lies in
// another tenant's inbox, is rejected InvalidJob; the rejection is never
// copied to the foreign reply_to.
func TestTenantChecks(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	r.addTenant(schema.Tenant{Name: "acme"})
	copies := make(chan *nats.Msg, 16)
	sub, err := r.nc.ChanSubscribe("_INBOX.acme.>", copies)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	for _, tt := range []struct {
		name, id, msgID, replyTo, key, want string
	}{
		{"plain id as Nats-Msg-Id", "msgid-1", "msgid-1", "", "default.msgid-1", "Nats-Msg-Id must be default.msgid-1"},
		{"another tenant's key", "msgid-2", "acme.msgid-2", "", "default.msgid-2", "Nats-Msg-Id must be default.msgid-2"},
		{"another job's key", "msgid-3", "default.other-3", "", "default.other-3", "Nats-Msg-Id must be default.msgid-3"},
		{"reply_to of another tenant", "reply-1", "default.reply-1", "_INBOX.acme.steal", "default.reply-1", "reply_to: must lie under _INBOX.default."},
		{"reply_to of no tenant", "reply-2", "default.reply-2", "_INBOX.abcdef.x", "default.reply-2", "reply_to: must lie under _INBOX.default."},
		{"reply_to in another tenant's events", "reply-3", "default.reply-3", "brig.events.acme.reply-3.x", "default.reply-3", "reply_to"},
	} {
		r.settled(publishRaw(t, r.js, schema.SubmitSubject(schema.DefaultTenant, "python"), jobFor(t, tt.id, tt.replyTo), tt.msgID))
		ev := r.wantTerminal(tt.key, schema.StatusRejected, schema.ErrInvalidJob, 0)
		if !strings.Contains(ev.Error.Message, tt.want) {
			t.Errorf("%s: message %q does not say %q", tt.name, ev.Error.Message, tt.want)
		}
	}
	select {
	case m := <-copies:
		t.Errorf("a rejection was copied to another tenant's inbox %s", m.Subject)
	case <-time.After(100 * time.Millisecond):
	}
	// Submitted as acme, the same reply_to is fine.
	r.settled(r.submitAs("acme", jobFor(t, "reply-1", "_INBOX.acme.mine"), "acme.reply-1"))
	if c := r.stored("acme.reply-1"); c[schema.EventAccepted] != 1 || len(c) != 1 {
		t.Errorf("acme's job stored %v; want it accepted", c)
	}
}

// A tenant with no record is refused: NotFound, naming the tenant.
func TestUnknownTenant(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	r.settled(r.submitAs("ghost", jobData(t, "boo-1", "print(1)"), "ghost.boo-1"))
	ev := r.wantTerminal("ghost.boo-1", schema.StatusRejected, schema.ErrNotFound, 0)
	if !strings.Contains(ev.Error.Message, "tenant ghost does not exist") {
		t.Errorf("message %q", ev.Error.Message)
	}
	// A submission on no tenant's subject ends without an event.
	seq := publishRaw(t, r.js, schema.SubmitPrefix+"python", jobData(t, "boo-2", "print(1)"), "")
	r.settled(seq)
	if c := r.stored("boo-2"); len(c) != 0 {
		t.Errorf("a submission without a tenant stored %v", c)
	}
	// Added, the tenant's next job is accepted.
	r.addTenant(schema.Tenant{Name: "ghost"})
	r.settled(r.submitAs("ghost", jobData(t, "boo-3", "print(1)"), "ghost.boo-3"))
	if c := r.stored("ghost.boo-3"); c[schema.EventAccepted] != 1 {
		t.Errorf("after the tenant was added: %v", c)
	}
}

// max_queued: of a burst of N+5 submissions exactly N are accepted and
// the rest end QuotaExceeded; once a job's terminal event is stored (here
// as a worker stores it, through internal/events), its place is free and a
// later submission is accepted.
func TestMaxQueued(t *testing.T) {
	t.Parallel()
	const n = 4
	// A short tenantTTL, so that the raised max_queued below applies soon.
	r := newRig(t, func(c *Config) { c.tenantTTL = 200 * time.Millisecond })
	r.addTenant(schema.Tenant{Name: "busy", MaxQueued: n})
	var wg sync.WaitGroup
	seqs := make([]uint64, n+5)
	for i := range seqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := "q-" + strconv.Itoa(i)
			seqs[i] = publishRaw(t, r.js, schema.SubmitSubject("busy", "python"), jobData(t, id, "print(1)"), "busy."+id)
		}()
	}
	wg.Wait()
	var accepted []string
	refused := 0
	for i, seq := range seqs {
		r.settled(seq)
		key := "busy.q-" + strconv.Itoa(i)
		c := r.stored(key)
		switch {
		case c[schema.EventAccepted] == 1 && len(c) == 1:
			accepted = append(accepted, key)
		case c[schema.EventError] == 1 && len(c) == 1:
			refused++
			ev := r.wantTerminal(key, schema.StatusRejected, schema.ErrQuotaExceeded, 0)
			if !strings.Contains(ev.Error.Message, "tenant busy has 4 jobs queued or running, its max-queued") {
				t.Errorf("message %q", ev.Error.Message)
			}
		default:
			t.Errorf("%s: stored %v", key, c)
		}
	}
	if len(accepted) != n || refused != 5 {
		t.Fatalf("%d accepted, %d refused; want %d and 5", len(accepted), refused, n)
	}
	// Full: the next one is refused too.
	r.settled(publishRaw(t, r.js, schema.SubmitSubject("busy", "python"), jobData(t, "late-1", "print(1)"), "busy.late-1"))
	r.wantTerminal("busy.late-1", schema.StatusRejected, schema.ErrQuotaExceeded, 0)
	// One job ends: its place is free.
	end := &schema.Event{JobID: accepted[0], Type: schema.EventResult, Status: schema.StatusSucceeded, Seq: 3, Attempt: 1}
	if _, err := r.d.events.Publish(t.Context(), end, ""); err != nil {
		t.Fatal(err)
	}
	r.settled(publishRaw(t, r.js, schema.SubmitSubject("busy", "python"), jobData(t, "late-2", "print(1)"), "busy.late-2"))
	if c := r.stored("busy.late-2"); c[schema.EventAccepted] != 1 || len(c) != 1 {
		t.Errorf("after a job ended: %v; want the next accepted", c)
	}
	// Another tenant is not bound by busy's quota.
	r.settled(r.submit(jobData(t, "free-1", "print(1)"), "free-1"))
	if c := r.stored("free-1"); c[schema.EventAccepted] != 1 {
		t.Errorf("default tenant's job: %v", c)
	}
	// Raising max_queued applies within tenantTTL.
	r.addTenant(schema.Tenant{Name: "busy", MaxQueued: n + 1})
	r.waitFor("the dispatcher reads busy's new max_queued", func() (bool, string) {
		rec, err := r.d.tenant(t.Context(), nil, "busy")
		if err != nil {
			return false, err.Error()
		}
		return rec.MaxQueued == n+1, fmt.Sprintf("max_queued %d", rec.MaxQueued)
	})
	r.settled(publishRaw(t, r.js, schema.SubmitSubject("busy", "python"), jobData(t, "late-3", "print(1)"), "busy.late-3"))
	if c := r.stored("busy.late-3"); c[schema.EventAccepted] != 1 || len(c) != 1 {
		t.Errorf("after max_queued was raised: %v; want it accepted", c)
	}
}

// A cancellation of a key with no events is NotFound and stores nothing: a
// later submission under that key is accepted.
func TestCancelUnknownKey(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	m, err := r.nc.Request(schema.CancelSubject(k("nobody-1")), nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var reply CancelReply
	if err := json.Unmarshal(m.Data, &reply); err != nil {
		t.Fatal(err)
	}
	if reply.ErrorType != schema.ErrNotFound || reply.Error != "no job nobody-1 in tenant default" || reply.Status != "" {
		t.Errorf("reply %+v", reply)
	}
	if c := r.stored("nobody-1"); len(c) != 0 {
		t.Errorf("stored %v", c)
	}
	r.settled(r.submit(jobData(t, "nobody-1", "print(1)"), "nobody-1"))
	if c := r.stored("nobody-1"); c[schema.EventAccepted] != 1 || len(c) != 1 {
		t.Errorf("submitted after the cancel: %v; want it accepted", c)
	}
	// Now it exists: cancelled.
	m, err = r.nc.Request(schema.CancelSubject(k("nobody-1")), nil, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	reply = CancelReply{}
	if err := json.Unmarshal(m.Data, &reply); err != nil || reply.Status != schema.StatusCancelled || reply.Error != "" {
		t.Errorf("cancel of a queued job: %+v %v", reply, err)
	}
	// A subject of no tenant: no answer (a dispatcher answers only an
	// inbox of the key's tenant), nothing stored.
	if _, err := r.nc.Request(schema.CancelPrefix+"Default.x", nil, time.Second); !errors.Is(err, nats.ErrTimeout) {
		t.Errorf("cancel of a subject of no tenant: %v, want no answer", err)
	}
	// Not a key: an error, nothing stored.
	for _, subject := range []string{schema.CancelPrefix + "default." + strings.Repeat("x", 65)} {
		m, err := r.nc.Request(subject, nil, 5*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", subject, err)
		}
		reply = CancelReply{}
		if err := json.Unmarshal(m.Data, &reply); err != nil || reply.ErrorType != schema.ErrInvalidJob {
			t.Errorf("%s: %+v %v", subject, reply, err)
		}
	}
}

// A replay request from another tenant's inbox is ignored; from the
// tenant's own, answered.
func TestReplayOtherTenantIgnored(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	r.emit("secret-1", schema.EventAccepted, 1)
	acme := tenantConn(t, r.url, "acme")
	box := make(chan *nats.Msg, 16)
	inbox := acme.NewInbox()
	sub, err := acme.ChanSubscribe(inbox, box)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	for _, body := range [][]byte{nil, []byte(`{"peek":true}`), []byte("junk")} {
		if err := acme.PublishRequest(schema.ReplaySubject(k("secret-1")), inbox, body); err != nil {
			t.Fatal(err)
		}
	}
	// The tenant's own request is answered, after acme's were dropped.
	r.ask("secret-1", []byte(`{"peek":true}`)).next()
	select {
	case m := <-box:
		t.Errorf("acme's inbox got %q %v", m.Data, m.Header)
	case <-time.After(200 * time.Millisecond):
	}
}
