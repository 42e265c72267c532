package dispatcher

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/schema"
)

// askStatus asks for tenant's status on a connection of that tenant.
func (r *rig) askStatus(tenant string) StatusReply {
	r.t.Helper()
	m, err := tenantConn(r.t, r.url, tenant).RequestWithContext(r.t.Context(), schema.StatusSubject(tenant), nil)
	if err != nil {
		r.t.Fatalf("status of %s: %v", tenant, err)
	}
	return decodeStatus(r.t, m)
}

func decodeStatus(t *testing.T, m *nats.Msg) StatusReply {
	t.Helper()
	var s StatusReply
	if err := json.Unmarshal(m.Data, &s); err != nil {
		t.Fatalf("status answer %q: %v", m.Data, err)
	}
	return s
}

// A tenant's status: its quotas, its jobs accepted and not yet ended (the
// markers of max_queued) and those routed and not yet ended (the markers
// of max_running, for a tenant that has it).
func TestStatus(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	r.addTenant(schema.Tenant{Name: "acme", MaxRunning: 2, MaxQueued: 5, MaxStorageMB: 100, Users: []string{"U" + strings.Repeat("K", 55)}})
	want := StatusReply{Tenant: "acme", MaxRunning: 2, MaxQueued: 5, MaxStorageMB: 100}
	if got := r.askStatus("acme"); got != want {
		t.Errorf("before any job: %+v, want %+v", got, want)
	}
	for _, id := range []string{"s-1", "s-2"} {
		r.settled(r.submitAs("acme", jobData(t, id, "print(1)"), "acme."+id))
	}
	want.Queued, want.Running = 2, 2
	if got := r.askStatus("acme"); got != want {
		t.Errorf("two jobs routed: %+v, want %+v", got, want)
	}
	// The default tenant (no quotas) sees its own.
	r.settled(r.submit(jobData(t, "d-1", "print(1)"), "d-1"))
	if got := r.askStatus(schema.DefaultTenant); got != (StatusReply{Tenant: schema.DefaultTenant, Queued: 1}) {
		t.Errorf("default: %+v", got)
	}
}

// A tenant without a record is answered NotFound.
func TestStatusUnknownTenant(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	got := r.askStatus("ghost")
	if got.ErrorType != schema.ErrNotFound || !strings.Contains(got.Error, "tenant ghost does not exist") {
		t.Errorf("status of ghost: %+v, want NotFound", got)
	}
}

// A request whose reply subject is not an inbox of the subject's tenant
// gets no answer: one tenant never reads another's status, and the
// dispatcher publishes nowhere a client names outside its inboxes.
func TestStatusOnlyToInboxes(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	r.addTenant(schema.Tenant{Name: "acme", MaxQueued: 3})
	wantAnswersOnlyToInboxes(t, r.nc, schema.StatusPrefix, nil, func() {
		if got := r.askStatus("acme"); got.MaxQueued != 3 {
			t.Fatalf("acme's own request: %+v", got)
		}
	})
}

// With MaxStatusRequests in hand, a request is answered ErrBusy at once.
func TestStatusBusy(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	full := make(chan struct{}, 1)
	full <- struct{}{}
	reply := r.nc.NewInbox()
	sub, err := r.nc.SubscribeSync(reply)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	r.d.statusHandler(full)(&nats.Msg{Subject: schema.StatusSubject(schema.DefaultTenant), Reply: reply})
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := decodeStatus(t, m); got.Error != ErrBusy || got.ErrorType != "" {
		t.Errorf("past the bound: %+v, want %q", got, ErrBusy)
	}
}
