package dispatcher

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/functions"
	"github.com/brig-dev/brig/internal/registry"
	"github.com/brig-dev/brig/internal/signing"
	"github.com/brig-dev/brig/internal/token"
	"github.com/brig-dev/brig/schema"
)

// The tests of this file drive dispatch end to end on an embedded server,
// without Docker: a submission goes in on brig.submit.>, and what dispatch
// decided is read back from what it stored (events, BRIG_WORK).

// workFor returns the work messages stored in BRIG_WORK for the job key,
// in order.
func (r *rig) workFor(key string) []*jetstream.RawStreamMsg {
	r.t.Helper()
	ctx := r.t.Context()
	s, err := r.js.Stream(ctx, schema.StreamWork)
	if err != nil {
		r.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		raw, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue // deleted
		}
		if raw.Header.Get(jetstream.MsgIDHeader) == key {
			out = append(out, raw)
		}
	}
	return out
}

// submitJob publishes job as a client of the default tenant does: on its
// function's subject, under its key, and returns its stream sequence.
func (r *rig) submitJob(job schema.Job) uint64 {
	r.t.Helper()
	data, err := schema.Marshal(job)
	if err != nil {
		r.t.Fatal(err)
	}
	return publishRaw(r.t, r.js, schema.SubmitSubject(schema.DefaultTenant, job.Function), data, k(job.ID))
}

// verifiedWork decodes the job's one work message, checks that it was
// routed to pool under the job's key, and verifies its credential against
// the public keys on the bus.
func (r *rig) verifiedWork(key, pool string) (*schema.Work, *token.Claims) {
	r.t.Helper()
	msgs := r.workFor(key)
	if len(msgs) != 1 {
		r.t.Fatalf("job %s: %d work messages; want 1", key, len(msgs))
	}
	if msgs[0].Subject != schema.WorkSubject(pool) {
		r.t.Errorf("job %s routed on %s; want %s", key, msgs[0].Subject, schema.WorkSubject(pool))
	}
	work, err := schema.DecodeWork(msgs[0].Data)
	if err != nil {
		r.t.Fatalf("job %s: a worker refuses its work message: %v", key, err)
	}
	ring, err := signing.OpenRing(r.t.Context(), r.js, 1)
	if err != nil {
		r.t.Fatal(err)
	}
	claims, err := token.Verify(work.Token, ring.Func(r.t.Context()), time.Now())
	if err != nil {
		r.t.Fatalf("job %s: credential does not verify: %v", key, err)
	}
	if work.Job.ID != key || work.Spec.Pool != pool || claims.JobID != key || claims.KeyID != r.d.cfg.Signer.ID {
		r.t.Errorf("job %s: work for %s in pool %s, credential for %s by key %s; want all %s, pool %s, key %s",
			key, work.Job.ID, work.Spec.Pool, claims.JobID, claims.KeyID, key, pool, r.d.cfg.Signer.ID)
	}
	return work, claims
}

// TestDispatchRoutesAcceptedJob: a valid job is accepted (one accepted
// event naming its submission and reply subject) and routed to its
// function's pool as one work message under its key, whose credential
// verifies and states the job, its function, the scopes granted (none
// for a restricted job) and an expiry of queue allowance, timeout and
// grace past its acceptance.
func TestDispatchRoutesAcceptedJob(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	scopes := []string{"dict:a:read", "queue:q:put"}
	for _, tt := range []struct {
		name       string
		restricted bool
		asked      []string // a restricted job may ask for none (schema.Job.Validate)
		want       []string
	}{
		{"unrestricted", false, scopes, scopes},
		{"restricted", true, nil, nil},
	} {
		id := "route-" + tt.name
		job := schema.Job{ID: id, Function: "python", Code: "print(1)", TimeoutMS: 5000, Scopes: tt.asked,
			Restricted: schema.Ptr(tt.restricted), ReplyTo: schema.InboxPrefix(schema.DefaultTenant) + "." + id}
		seq := r.submitJob(job)
		r.settled(seq)
		if c := r.stored(id); c[schema.EventAccepted] != 1 || len(c) != 1 {
			t.Fatalf("%s: stored %v; want the accepted event only", id, c)
		}
		acc, err := r.d.events.Find(t.Context(), k(id), schema.EventAccepted)
		if err != nil || acc.SubmitSeq != seq || acc.ReplyTo != job.ReplyTo || acc.Seq != 1 {
			t.Errorf("%s: accepted event %+v, %v; want submit_seq %d, reply_to %s, seq 1", id, acc, err, seq, job.ReplyTo)
		}
		work, claims := r.verifiedWork(k(id), schema.DefaultPool)
		if claims.Function != "python" || !slices.Equal(claims.Scopes, tt.want) || !slices.Equal(work.Spec.Scopes, tt.want) {
			t.Errorf("%s: credential for %s with scopes %q, spec scopes %q; want python with %q", id, claims.Function, claims.Scopes, work.Spec.Scopes, tt.want)
		}
		wantLife := (r.d.cfg.QueueAllowance + 5*time.Second + r.d.cfg.TokenGrace).Milliseconds()
		if claims.IssuedAt != work.AcceptedAt.UnixMilli() || claims.Expiry-claims.IssuedAt != wantLife {
			t.Errorf("%s: credential issued %d, expires %d; want issued at acceptance %d, valid %d ms",
				id, claims.IssuedAt, claims.Expiry, work.AcceptedAt.UnixMilli(), wantLife)
		}
		if work.Spec.TimeoutMS != 5000 || work.Job.Code != "print(1)" || work.Job.ReplyTo != job.ReplyTo {
			t.Errorf("%s: work %+v; want the job as submitted, timeout 5000 ms", id, work)
		}
	}
}

// TestDispatchRejects: what dispatch refuses ends in one terminal event
// of its kind, before the job is accepted, and routes nothing.
func TestDispatchRejects(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	for _, tt := range []struct {
		name    string
		submit  func(id string) uint64
		errType schema.ErrorType
		want    string // in the message
	}{
		{"unknown function", func(id string) uint64 { return r.submitTo("nosuch", id) },
			schema.ErrNotFound, `function "nosuch" not found`},
		{"undecodable", func(id string) uint64 {
			return r.submit([]byte(`{"id":"`+id+`","function":"python","colour":1}`), id)
		}, schema.ErrInvalidJob, "colour"},
		{"invalid for its function", func(id string) uint64 {
			return r.submitJob(schema.Job{ID: id, Function: "python", Runtime: schema.RuntimeRunsc, SingleUse: schema.Ptr(false)})
		}, schema.ErrInvalidJob, `invalid job for function "python"`},
		{"function not its subject", func(id string) uint64 {
			return r.submit([]byte(`{"id":"`+id+`","function":"echo"}`), id)
		}, schema.ErrInvalidJob, "was submitted on " + schema.SubmitSubject(schema.DefaultTenant, "python")},
		{"Nats-Msg-Id not its key", func(id string) uint64 {
			return r.submit(jobData(t, id, "print(1)"), id+"-other")
		}, schema.ErrInvalidJob, "the Nats-Msg-Id must be " + k("reject-Nats-Msg-Id-not-its-key")},
	} {
		id := "reject-" + strings.ReplaceAll(tt.name, " ", "-") // a valid job id
		r.settled(tt.submit(id))
		key := k(id)
		if tt.name == "Nats-Msg-Id not its key" {
			key = k(id + "-other") // the rejection names the key the client published under
		}
		ev := r.wantTerminal(key, schema.StatusRejected, tt.errType, 0)
		if !strings.Contains(ev.Error.Message, tt.want) {
			t.Errorf("%s: message %q; want it to say %q", tt.name, ev.Error.Message, tt.want)
		}
		if n := len(r.workFor(key)) + len(r.workFor(k(id))); n != 0 {
			t.Errorf("%s: %d work messages; want none", tt.name, n)
		}
	}
}

// TestDispatchDuplicateRoutesOnce: another submission under a job's key
// (past the dedup window: no Nats-Msg-Id) is terminated without a word, and
// a redelivery of the accepted submission routes the very same work
// message, which BRIG_WORK keeps once: one job, one work message.
func TestDispatchDuplicateRoutesOnce(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	id := "dup-1"
	seq := r.submit(jobData(t, id, "print(1)"), id)
	r.settled(seq)
	r.settled(r.submit(jobData(t, id, "print(2)"), ""))
	// The same, seen by handle: the other submission is terminated, not
	// routed (BRIG_WORK's dedup window would hide a second routing).
	other := &fakeMsg{subject: schema.SubmitSubject(schema.DefaultTenant, "python"), data: jobData(t, id, "print(3)"), seq: seq + 100, delivered: 1}
	r.d.handle(t.Context(), other)
	if other.settled != "term" {
		t.Errorf("another submission under the key settled %q; want term", other.settled)
	}
	redelivered := &fakeMsg{subject: schema.SubmitSubject(schema.DefaultTenant, "python"), data: jobData(t, id, "print(1)"), seq: seq, delivered: 2}
	r.d.handle(t.Context(), redelivered)
	if redelivered.settled != "ack" {
		t.Errorf("redelivery of the accepted submission settled %q; want ack (routed again)", redelivered.settled)
	}
	if c := r.stored(id); c[schema.EventAccepted] != 1 || len(c) != 1 {
		t.Errorf("stored %v; want one accepted event", c)
	}
	work, _ := r.verifiedWork(k(id), schema.DefaultPool)
	if work.Job.Code != "print(1)" {
		t.Errorf("routed code %q; want the accepted submission's", work.Job.Code)
	}
}

// TestDispatchQuotaExceeded: a job of a tenant at its max_queued is
// refused QuotaExceeded before it is accepted, and routes nothing.
func TestDispatchQuotaExceeded(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	r.addTenant(schema.Tenant{Name: "full", MaxQueued: 1})
	first, second := schema.JobKey("full", "q-1"), schema.JobKey("full", "q-2")
	r.settled(r.submitAs("full", jobData(t, "q-1", "print(1)"), first))
	if c := r.stored(first); c[schema.EventAccepted] != 1 || len(c) != 1 {
		t.Fatalf("first job: stored %v; want it accepted", c)
	}
	r.settled(r.submitAs("full", jobData(t, "q-2", "print(1)"), second))
	ev := r.wantTerminal(second, schema.StatusRejected, schema.ErrQuotaExceeded, 0)
	if !strings.Contains(ev.Error.Message, "max-queued") {
		t.Errorf("message %q does not name max-queued", ev.Error.Message)
	}
	if n := len(r.workFor(second)); n != 0 {
		t.Errorf("refused job routed %d times", n)
	}
	r.verifiedWork(first, schema.DefaultPool)
}

// TestDispatchPools: a job goes to its function's pool when a live worker
// serves it; a job whose pool no worker serves is accepted, waits
// NoWorkerWait, then ends in an error naming the pool, never routed.
func TestDispatchPools(t *testing.T) {
	t.Parallel()
	r := kvRig(t, nil, func(c *Config) { c.NoWorkerWait = 500 * time.Millisecond })
	reg, err := registry.Open(t.Context(), r.js, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Before any submission: the dispatcher reads the registry at most
	// once a second.
	if err := reg.Put(t.Context(), registry.Worker{ID: "w-gpu", Pools: []string{"gpu"}, Slots: 1}); err != nil {
		t.Fatal(err)
	}
	store := r.d.cfg.Functions.(functions.KVResolver).Store
	for name, pool := range map[string]string{"on-gpu": "gpu", "on-nowhere": "nowhere"} {
		fn := schema.Python()
		fn.Name, fn.Pool = name, pool
		if _, err := store.Put(t.Context(), fn); err != nil {
			t.Fatal(err)
		}
	}
	r.settled(r.submitJob(schema.Job{ID: "gpu-1", Function: "on-gpu", Code: "print(1)"}))
	work, claims := r.verifiedWork(k("gpu-1"), "gpu")
	if work.Spec.Function != "on-gpu" || claims.Function != "on-gpu" {
		t.Errorf("routed spec of %s, credential of %s; want on-gpu", work.Spec.Function, claims.Function)
	}

	r.settled(r.submitJob(schema.Job{ID: "lost-1", Function: "on-nowhere", Code: "print(1)"}))
	ev := r.wantTerminal("lost-1", schema.StatusError, schema.ErrNotFound, 1)
	if !strings.Contains(ev.Error.Message, `no worker serves pool "nowhere"`) {
		t.Errorf("message %q does not name the pool", ev.Error.Message)
	}
	if n := len(r.workFor(k("lost-1"))); n != 0 {
		t.Errorf("job of a pool no worker serves routed %d times", n)
	}
}

// openResolver resolves "open" to a function unrestricted by default that
// allows every scope, and the rest to the built-ins.
type openResolver struct{}

func (openResolver) Resolve(ctx context.Context, tenant, name string) (*schema.Function, error) {
	if name == "open" {
		fn := schema.Python()
		fn.Name, fn.Restricted, fn.Scopes = "open", schema.Ptr(false), []string{"*"}
		return &fn, nil
	}
	return functions.Builtin{}.Resolve(ctx, tenant, name)
}

// TestDispatchScopesOfRestrictedFunction: a job that asks for scopes and
// leaves restricted out takes its function's default. Restricted by it (the
// built-in python), the job is refused with the message a client gives a
// job that says restricted: true, and routes nothing; unrestricted by it,
// the job is granted its scopes (docs/design.md §4.1).
func TestDispatchScopesOfRestrictedFunction(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(c *Config) { c.Functions = openResolver{} })
	scopes := []string{"dict:a:read"}

	r.settled(r.submitJob(schema.Job{ID: "scopes-python", Function: "python", Code: "print(1)", Scopes: scopes}))
	ev := r.wantTerminal("scopes-python", schema.StatusRejected, schema.ErrInvalidJob, 0)
	if !strings.Contains(ev.Error.Message, "restricted: "+schema.ScopesNeedUnrestricted) {
		t.Errorf("message %q; want it to name restricted and say why", ev.Error.Message)
	}
	if n := len(r.workFor(k("scopes-python"))); n != 0 {
		t.Errorf("%d work messages of a refused job", n)
	}

	r.settled(r.submitJob(schema.Job{ID: "scopes-open", Function: "open", Code: "print(1)", Scopes: scopes}))
	work, claims := r.verifiedWork(k("scopes-open"), schema.DefaultPool)
	if !slices.Equal(claims.Scopes, scopes) || work.Spec.Restricted {
		t.Errorf("credential scopes %q, spec restricted %v; want %q, unrestricted", claims.Scopes, work.Spec.Restricted, scopes)
	}
}
