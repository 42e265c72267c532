package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// replyWait bounds the wait for a terminal event on reply_to, which core
// NATS delivers at most once.
const replyWait = 30 * time.Second

// replyClient runs jobs whose events come back as the core-NATS copies a
// job's reply_to asks for, all on one subscription: the bare wire, without
// the SDK's handle per job (which follows its job the same way). Its jobs
// are c's tenant's, so their reply_to lies under that tenant's inbox
// prefix (docs/design.md §10.3), whatever the connection's own inboxes.
type replyClient struct {
	nc     *nats.Conn
	c      *sdk.Client
	prefix string
	sub    *nats.Subscription

	mu      sync.Mutex
	waiting map[string]chan *schema.Event // by job key
}

func newReplyClient(nc *nats.Conn, c *sdk.Client) (*replyClient, error) {
	// A fresh token below the tenant's prefix: the random part of an inbox.
	prefix := schema.InboxPrefix(c.Tenant()) + "." + strings.TrimPrefix(nats.NewInbox(), schema.ReplyPrefix)
	r := &replyClient{nc: nc, c: c, prefix: prefix, waiting: map[string]chan *schema.Event{}}
	sub, err := subscribeAll(nc, r.prefix+".*", r.onMsg)
	if err != nil {
		return nil, fmt.Errorf("subscribe to reply_to: %w", err)
	}
	r.sub = sub
	return r, nil
}

// subscribeAll subscribes without the client's pending limits: the bench
// must see every message it waits for or counts, and reads them as fast as
// its run sends them.
func subscribeAll(nc *nats.Conn, subject string, cb nats.MsgHandler) (*nats.Subscription, error) {
	sub, err := nc.Subscribe(subject, cb)
	if err != nil {
		return nil, err
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	return sub, nil
}

func (r *replyClient) close() { _ = r.sub.Unsubscribe() }

func (r *replyClient) onMsg(m *nats.Msg) {
	ev, err := schema.DecodeEvent(m.Data)
	if err != nil || !schema.IsTerminal(ev.Type) {
		return
	}
	r.mu.Lock()
	ch := r.waiting[ev.JobID]
	delete(r.waiting, ev.JobID)
	r.mu.Unlock()
	if ch != nil {
		ch <- ev
	}
}

// Run submits job and waits for its terminal event, with the errors of
// sdk.Client.Run: a *sdk.JobError unless the job succeeded.
func (r *replyClient) Run(ctx context.Context, job schema.Job) (*schema.Event, error) {
	job.ID = sdk.NewJobID()
	job.ReplyTo = r.prefix + "." + job.ID
	if err := job.Validate(); err != nil {
		return nil, fmt.Errorf("job %s: %w", job.ID, err)
	}
	data, err := json.Marshal(job)
	if err != nil {
		return nil, err
	}
	key := schema.JobKey(r.c.Tenant(), job.ID)
	ch := make(chan *schema.Event, 1)
	r.mu.Lock()
	r.waiting[key] = ch
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.waiting, key)
		r.mu.Unlock()
	}()
	if err := r.publish(ctx, job.Function, key, data); err != nil {
		return nil, fmt.Errorf("job %s: %w", job.ID, err)
	}
	t := time.NewTimer(replyWait)
	defer t.Stop()
	select {
	case ev := <-ch:
		if ev.Status != schema.StatusSucceeded {
			return ev, &sdk.JobError{Event: ev}
		}
		return ev, nil
	case <-t.C:
		return nil, fmt.Errorf("job %s: no terminal event on reply_to within %s", job.ID, replyWait)
	case <-ctx.Done():
		return nil, fmt.Errorf("job %s: %w", job.ID, ctx.Err())
	}
}

// publish sends a submission as the SDK does (a plain publish with the
// job's key as Nats-Msg-Id, flushed), on the bare wire.
func (r *replyClient) publish(ctx context.Context, function, key string, data []byte) error {
	msg := &nats.Msg{Subject: schema.SubmitSubject(r.c.Tenant(), function), Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, key)
	if err := r.nc.PublishMsg(msg); err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok { // FlushWithContext needs a deadline
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, replyWait)
		defer cancel()
	}
	return r.nc.FlushWithContext(ctx)
}
