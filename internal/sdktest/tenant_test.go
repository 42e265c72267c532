package sdktest

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/internal/natstest"
	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// A client's tenant: WithTenant's, else the credential's brig-tenant tag,
// else default. A job is named by its id, or by its key when that is of
// the client's tenant.
func TestClientTenant(t *testing.T) {
	t.Parallel()
	_, nc, _ := natstest.Start(t)
	acme := writeCreds(t, "brig-role:client", "brig-tenant:acme")
	admin := writeCreds(t, "brig-role:admin")
	for _, tt := range []struct {
		name string
		opts []sdk.Option
		want string
	}{
		{"nothing", nil, schema.DefaultTenant},
		{"WithTenant", []sdk.Option{sdk.WithTenant("acme")}, "acme"},
		{"creds tag", []sdk.Option{sdk.WithCreds(acme)}, "acme"},
		{"creds without a tenant", []sdk.Option{sdk.WithCreds(admin)}, schema.DefaultTenant},
		{"WithTenant wins, after", []sdk.Option{sdk.WithCreds(acme), sdk.WithTenant("other")}, "other"},
		{"WithTenant wins, before", []sdk.Option{sdk.WithTenant("other"), sdk.WithCreds(acme)}, "other"},
	} {
		c, err := sdk.New(nc, tt.opts...)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := c.Tenant(); got != tt.want {
			t.Errorf("%s: tenant %q, want %q", tt.name, got, tt.want)
		}
		// Watch reads the name as Cancel does, and refuses a bad one
		// before it sends anything; no dispatcher needs to answer.
		for s, want := range map[string]string{"j1": "j1", tt.want + ".j1": "j1", "zz-other.j1": "", "a.b.c": "", "": ""} {
			h, err := c.Watch(t.Context(), s)
			if (err == nil) != (want != "") {
				t.Errorf("%s: Watch(%q): %v; want id %q", tt.name, s, err, want)
			}
			if err != nil {
				continue
			}
			if h.ID != want || h.Key != tt.want+"."+want {
				t.Errorf("%s: Watch(%q): handle id %q key %q", tt.name, s, h.ID, h.Key)
			}
			h.Stop()
		}
		c.Close()
	}
	if tenant, err := sdk.CredsTenant(writeCreds(t, "BRIG-TENANT:Acme")); err != nil || tenant != "acme" {
		t.Errorf("upper-case tag: %q, %v", tenant, err)
	}
	for _, bad := range []string{"", "Acme", "a.b", "a_b", strings.Repeat("a", schema.MaxTenantLen+1)} {
		if _, err := sdk.New(nc, sdk.WithTenant(bad)); err == nil {
			t.Errorf("WithTenant(%q) accepted", bad)
		}
	}
	if _, err := sdk.New(nc, sdk.WithCreds(writeCreds(t, "brig-tenant:no.dots"))); err == nil {
		t.Error("a credential naming an invalid tenant was accepted")
	}
	if _, err := sdk.New(nc, sdk.WithCreds(filepath.Join(t.TempDir(), "missing.creds"))); err == nil {
		t.Error("a missing credentials file was accepted")
	}
}

// Connect gives the connection the tenant's inbox prefix; the client's own
// inboxes are the tenant's on any connection.
func TestConnectInboxPrefix(t *testing.T) {
	t.Parallel()
	url, nc, _ := natstest.Start(t)
	conns := make(chan *nats.Conn, 1)
	c, err := sdk.Connect(t.Context(), url, sdk.WithTenant("acme"),
		sdk.WithNATSOptions(nats.ConnectHandler(func(nc *nats.Conn) { conns <- nc })))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case conn := <-conns:
		if inbox := conn.NewInbox(); !strings.HasPrefix(inbox, "_INBOX.acme.") {
			t.Errorf("connection inbox %q, want _INBOX.acme.…", inbox)
		}
	case <-t.Context().Done():
		t.Fatal("Connect's connection never reported itself connected")
	}

	// On a connection with another prefix, the client's requests still
	// take their replies on the tenant's inboxes.
	other, err := sdk.New(nc, sdk.WithTenant("other"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	answer, err := nc.Subscribe(schema.CancelSubject(schema.JobKey("other", "j1")), func(m *nats.Msg) {
		if !strings.HasPrefix(m.Reply, "_INBOX.other.") || strings.Count(m.Reply, ".") != 2 {
			_ = m.Respond([]byte(`{"error":"reply inbox ` + m.Reply + `"}`))
			return
		}
		_ = m.Respond([]byte(`{"status":"cancelled"}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = answer.Unsubscribe() }()
	if status, err := other.Cancel(t.Context(), "j1"); err != nil || status != schema.StatusCancelled {
		t.Errorf("cancel: %q %v; want its reply on _INBOX.other.<nuid>", status, err)
	}
}

// Submit publishes on the tenant's subject with the key as Nats-Msg-Id, and
// the live reply_to lies in the tenant's inbox; the same id in two tenants
// is two jobs, each handle hearing only its own.
func TestSubmitInTenants(t *testing.T) {
	f, nc := startFake(t)
	f.addTenant(schema.Tenant{Name: "acme"})
	subs := make(chan *nats.Msg, 4)
	sub, err := nc.ChanSubscribe(schema.SubmitPrefix+">", subs)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	var handles []*sdk.Handle
	for _, tenant := range []string{schema.DefaultTenant, "acme"} {
		c, err := sdk.New(nc, sdk.WithTenant(tenant))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		h, err := c.Submit(t.Context(), schema.Job{ID: "same-1", Function: "python", Code: "x"})
		if err != nil {
			t.Fatal(err)
		}
		m := <-subs
		if m.Subject != schema.SubmitSubject(tenant, "python") || m.Header.Get("Nats-Msg-Id") != tenant+".same-1" {
			t.Errorf("%s: submitted on %s with Nats-Msg-Id %q", tenant, m.Subject, m.Header.Get("Nats-Msg-Id"))
		}
		job := f.next()
		if job.ID != tenant+".same-1" || !strings.HasPrefix(job.ReplyTo, schema.InboxPrefix(tenant)+".") {
			t.Errorf("%s: routed job %q with reply_to %q", tenant, job.ID, job.ReplyTo)
		}
		handles = append(handles, h)
		f.emit(job, schema.EventResult, 2, job.ReplyTo)
	}
	for _, h := range handles {
		result(t, h)
		for ev := range h.Events() {
			if ev.JobID != h.Key {
				t.Errorf("handle %s got an event of %s", h.Key, ev.JobID)
			}
		}
	}
}

// Cancel of a job brig has no event of is ErrNotFound.
func TestCancelNotFound(t *testing.T) {
	_, nc := startFake(t)
	c, err := sdk.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Cancel(t.Context(), "nobody"); !errors.Is(err, sdk.ErrNotFound) {
		t.Fatalf("cancel of an unknown job: %v, want ErrNotFound", err)
	}
}

// A reply_to outside the client's tenant's inboxes is refused before
// anything is sent, as a dispatcher would refuse it.
func TestSubmitReplyToOfAnotherTenant(t *testing.T) {
	t.Parallel()
	_, nc, _ := natstest.Start(t)
	c, err := sdk.New(nc, sdk.WithTenant("acme"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, replyTo := range []string{"_INBOX.default.x", "_INBOX.x", "brig.events.default.j1.x"} {
		job := schema.Job{ID: "j1", Function: "python", ReplyTo: replyTo}
		if _, err := c.Submit(t.Context(), job); !errors.Is(err, sdk.ErrRejected) {
			t.Errorf("Submit with reply_to %s: %v, want ErrRejected", replyTo, err)
		}
		if _, err := c.SubmitNew(t.Context(), job); !errors.Is(err, sdk.ErrRejected) {
			t.Errorf("SubmitNew with reply_to %s: %v, want ErrRejected", replyTo, err)
		}
	}
}
