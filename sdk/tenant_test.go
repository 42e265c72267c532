package sdk

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/brig-dev/brig/internal/natstest"
	"github.com/brig-dev/brig/schema"
)

// writeCreds writes a .creds file whose user JWT carries tags.
func writeCreds(t *testing.T, tags ...string) string {
	t.Helper()
	akp, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	ukp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	upub, _ := ukp.PublicKey()
	uc := jwt.NewUserClaims(upub)
	uc.Tags.Add(tags...)
	token, err := uc.Encode(akp)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := ukp.Seed()
	creds, err := jwt.FormatUserConfig(token, seed)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "user.creds")
	if err := os.WriteFile(file, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// A client's tenant: WithTenant's, else the credential's brig-tenant tag,
// else default.
func TestClientTenant(t *testing.T) {
	t.Parallel()
	_, nc, _ := natstest.Start(t)
	acme := writeCreds(t, "brig-role:client", "brig-tenant:acme")
	admin := writeCreds(t, "brig-role:admin")
	for _, tt := range []struct {
		name string
		opts []Option
		want string
	}{
		{"nothing", nil, schema.DefaultTenant},
		{"WithTenant", []Option{WithTenant("acme")}, "acme"},
		{"creds tag", []Option{WithCreds(acme)}, "acme"},
		{"creds without a tenant", []Option{WithCreds(admin)}, schema.DefaultTenant},
		{"WithTenant wins, after", []Option{WithCreds(acme), WithTenant("other")}, "other"},
		{"WithTenant wins, before", []Option{WithTenant("other"), WithCreds(acme)}, "other"},
	} {
		c, err := New(nc, tt.opts...)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := c.Tenant(); got != tt.want {
			t.Errorf("%s: tenant %q, want %q", tt.name, got, tt.want)
		}
		if h := c.newHandle("j1"); h.Key != tt.want+".j1" || h.ID != "j1" {
			t.Errorf("%s: handle id %q key %q", tt.name, h.ID, h.Key)
		}
		for s, want := range map[string]string{"j1": "j1", tt.want + ".j1": "j1", "zz-other.j1": "", "a.b.c": "", "": ""} {
			if id, err := c.jobID(s); id != want || (err == nil) != (want != "") {
				t.Errorf("%s: jobID(%q) = %q, %v; want %q", tt.name, s, id, err, want)
			}
		}
		c.Close()
	}
	if tenant, err := CredsTenant(writeCreds(t, "BRIG-TENANT:Acme")); err != nil || tenant != "acme" {
		t.Errorf("upper-case tag: %q, %v", tenant, err)
	}
	for _, bad := range []string{"", "Acme", "a.b", "a_b", strings.Repeat("a", schema.MaxTenantLen+1)} {
		if _, err := New(nc, WithTenant(bad)); err == nil {
			t.Errorf("WithTenant(%q) accepted", bad)
		}
	}
	if _, err := New(nc, WithCreds(writeCreds(t, "brig-tenant:no.dots"))); err == nil {
		t.Error("a credential naming an invalid tenant was accepted")
	}
	if _, err := New(nc, WithCreds(filepath.Join(t.TempDir(), "missing.creds"))); err == nil {
		t.Error("a missing credentials file was accepted")
	}
}

// Connect gives the connection the tenant's inbox prefix; the client's own
// inboxes are the tenant's on any connection.
func TestConnectInboxPrefix(t *testing.T) {
	t.Parallel()
	url, nc, _ := natstest.Start(t)
	c, err := Connect(t.Context(), url, WithTenant("acme"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if inbox := c.nc.NewInbox(); !strings.HasPrefix(inbox, "_INBOX.acme.") {
		t.Errorf("connection inbox %q, want _INBOX.acme.…", inbox)
	}
	other, err := New(nc, WithTenant("other"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if inbox := other.newInbox(); !strings.HasPrefix(inbox, "_INBOX.other.") || strings.Count(inbox, ".") != 2 {
		t.Errorf("client inbox %q, want _INBOX.other.<nuid>", inbox)
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
	var handles []*Handle
	for _, tenant := range []string{schema.DefaultTenant, "acme"} {
		c, err := New(nc, WithTenant(tenant))
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
	c, err := New(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Cancel(t.Context(), "nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cancel of an unknown job: %v, want ErrNotFound", err)
	}
}

// A reply_to outside the client's tenant's inboxes is refused before
// anything is sent, as a dispatcher would refuse it.
func TestSubmitReplyToOfAnotherTenant(t *testing.T) {
	t.Parallel()
	_, nc, _ := natstest.Start(t)
	c, err := New(nc, WithTenant("acme"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, replyTo := range []string{"_INBOX.default.x", "_INBOX.x", "brig.events.default.j1.x"} {
		job := schema.Job{ID: "j1", Function: "python", ReplyTo: replyTo}
		if _, err := c.Submit(t.Context(), job); !errors.Is(err, ErrRejected) {
			t.Errorf("Submit with reply_to %s: %v, want ErrRejected", replyTo, err)
		}
		if _, err := c.SubmitNew(t.Context(), job); !errors.Is(err, ErrRejected) {
			t.Errorf("SubmitNew with reply_to %s: %v, want ErrRejected", replyTo, err)
		}
	}
}
