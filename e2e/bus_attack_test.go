package e2e

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/auth"
	eventlog "github.com/brig-dev/brig/internal/events"
	"github.com/brig-dev/brig/internal/functions"
	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// TestBusAttack acts as an attacker holding a tenant's client credential
// (docs/design.md §10.2): everything outside the client's allow-list is
// refused by the server, and changes nothing, while the client's own jobs
// still run through the same connection.
func TestBusAttack(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	violations := &violationLog{}
	nc, err := stack.Connect(auth.User{Role: auth.RoleClient, Tenant: auth.DefaultTenant, Name: "attacker"},
		nats.ErrorHandler(violations.handle))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c, err := sdk.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// A job of the attacker's own tenant runs, end to end, on the client's
	// permissions alone.
	victim := pythonJob("bus-attack", `print("real")`)
	ev, err := c.Run(ctx, victim)
	if err != nil || ev.Stdout != "real\n" {
		t.Fatalf("a client's own job: %v (%s)", err, brief(ev))
	}
	victimKey := keyOf(victim.ID)
	storedBefore := countStored(t, schema.EventsFilter(victimKey))

	// JetStream API: purge, delete, consumers, stream info, direct gets.
	for _, subject := range []string{
		"$JS.API.STREAM.PURGE." + schema.StreamEvents,
		"$JS.API.STREAM.DELETE." + schema.StreamSubmit,
		"$JS.API.STREAM.INFO." + schema.StreamEvents,
		"$JS.API.STREAM.LIST",
		"$JS.API.CONSUMER.CREATE." + schema.StreamEvents,
		"$JS.API.CONSUMER.CREATE." + schema.StreamEvents + ".spy." + schema.EventsFilter(victimKey),
		"$JS.API.CONSUMER.DELETE." + schema.StreamWork + ".pool-default",
		"$JS.API.DIRECT.GET." + schema.StreamEvents,
		"$JS.API.DIRECT.GET.KV_BRIG_FUNCTIONS.$KV.BRIG_FUNCTIONS.python",
	} {
		_, err := nc.Request(subject, []byte(`{"deliver_subject":"brig.cancel.x","filter_subject":"brig.events.>"}`), time.Second)
		if err == nil {
			t.Errorf("request on %s was answered", subject)
		}
		violations.want(t, "Publish to \""+subject+"\"")
	}
	// Puts on brig's buckets (tenant records included), forged events (its
	// own job's and another's), Work, and submissions on someone else's
	// behalf through events.
	for _, subject := range []string{
		"$KV.BRIG_FUNCTIONS.python", "$KV.BRIG_KEYS.forged", "$KV.BRIG_WORKERS.forged",
		"$KV." + schema.TenantsBucket + "." + schema.DefaultTenant,
		schema.EventSubject(victimKey, schema.EventResult), schema.EventSubject(keyOf("other-job"), schema.EventResult),
		schema.WorkSubject("default"), "$JS.ACK.BRIG_WORK.pool-default.1.1.1.1.1",
		// Another tenant's submit, cancel and replay subjects.
		schema.SubmitSubject("other", "python"), schema.CancelSubject(schema.JobKey("other", victim.ID)),
		schema.ReplaySubject(schema.JobKey("other", victim.ID)),
	} {
		if err := nc.Publish(subject, []byte(`{"job_id":"`+victimKey+`","type":"result","status":"succeeded"}`)); err != nil {
			t.Fatal(err)
		}
		_ = nc.Flush()
		violations.want(t, "Publish to \""+subject+"\"")
	}
	// Subscriptions to everything, to brig's subjects, to events, to every
	// inbox (the roles' and the other tenants').
	for _, subject := range []string{">", "brig.>", "brig.events.>", "brig.work.>", "$JS.>", "$KV.>", "_INBOX.>"} {
		if _, err := nc.SubscribeSync(subject); err != nil {
			t.Fatal(err)
		}
		_ = nc.Flush()
		violations.want(t, "Subscription to \""+subject+"\"")
	}

	// Nothing changed: the job's stored events and outcome are as they were,
	// no function was written.
	if got := countStored(t, schema.EventsFilter(victimKey)); got != storedBefore {
		t.Errorf("job %s has %d stored events after the attack, %d before", victim.ID, got, storedBefore)
	}
	js, err := jetstream.New(stack.Conn)
	if err != nil {
		t.Fatal(err)
	}
	if term, err := eventlog.NewLog(stack.Conn, js, nil).Terminal(ctx, victimKey); err != nil || term.Stdout != "real\n" || term.Status != schema.StatusSucceeded {
		t.Errorf("job %s's outcome after the attack: %v (%s)", victim.ID, err, brief(term))
	}
	if kv, err := js.KeyValue(ctx, functions.Bucket); err == nil {
		if _, err := kv.Get(ctx, "python"); !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Errorf("BRIG_FUNCTIONS python after the attack: %v, want absent", err)
		}
	}
	// And the connection still works for what is allowed.
	if ev, err := c.Run(ctx, pythonJob("bus-attack-after", `print("still")`)); err != nil || ev.Stdout != "still\n" {
		t.Errorf("a job after the attack: %v (%s)", err, brief(ev))
	}
}

// TestBusRefusesStrangers: anonymous clients, credentials of another
// authority and expired credentials are refused at connect.
func TestBusRefusesStrangers(t *testing.T) {
	t.Parallel()
	other, _, err := auth.OpenOrCreate(filepath.Join(t.TempDir(), "other"))
	if err != nil {
		t.Fatal(err)
	}
	token, seed, err := other.UserJWT(auth.User{Role: auth.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	for name, opts := range map[string][]nats.Option{
		"anonymous":         nil,
		"user and password": {nats.UserInfo("admin", "admin")},
		"another authority": {nats.UserJWTAndSeed(token, string(seed))},
	} {
		nc, err := nats.Connect(stack.URL(), opts...)
		if err == nil {
			nc.Close()
			t.Errorf("%s: connected", name)
			continue
		}
		if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
			t.Errorf("%s: %v, want an authorization error", name, err)
		}
	}
	if nc, err := stack.Connect(auth.User{Role: auth.RoleAdmin, Expires: time.Now().Add(-time.Second)}); err == nil {
		nc.Close()
		t.Error("expired credential: connected")
	}
}

// violationLog collects a connection's asynchronous permission errors.
type violationLog struct {
	mu   sync.Mutex
	errs []string
}

func (v *violationLog) handle(_ *nats.Conn, _ *nats.Subscription, err error) {
	v.mu.Lock()
	v.errs = append(v.errs, err.Error())
	v.mu.Unlock()
}

// want waits for a permissions violation that mentions what.
func (v *violationLog) want(t *testing.T, what string) {
	t.Helper()
	eventually(t, 5*time.Second, func(context.Context) (bool, string) {
		v.mu.Lock()
		defer v.mu.Unlock()
		for _, e := range v.errs {
			if strings.Contains(e, "Permissions Violation") && strings.Contains(e, what) {
				return true, ""
			}
		}
		return false, "no permissions violation for " + what
	})
}
