package sdk

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/brig-dev/brig/internal/creds"
	"github.com/brig-dev/brig/schema"
)

// Client submits jobs and follows their events, all within one tenant
// (docs/design.md §10.3): its jobs' keys are <tenant>.<id>, its inboxes
// _INBOX.<tenant>.<nuid>.
type Client struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	log    *slog.Logger
	ownsNC bool

	// tenant is the client's tenant: WithTenant's, else the tag of
	// WithCreds's credential (credsTenant), else schema.DefaultTenant.
	tenant      string
	credsTenant string

	// The live path: jobs submitted without a reply_to of their own name
	// the client's inbox, where brig copies each event once it is stored.
	mu         sync.Mutex
	inbox      string
	inboxSub   *nats.Subscription
	live       map[string]*Handle // by job key
	toReplay   map[*Handle]bool   // live handles whose replay has yet to start
	reconnects uint64
	closed     chan struct{}

	// cancelOnDone: Run and RunNew cancel their job when their context
	// ends first (WithCancelOnDone).
	cancelOnDone bool

	// dial holds the options WithCreds and WithNATSOptions give Connect.
	dial []nats.Option
}

// Option configures a Client.
type Option func(*Client) error

// WithLogger sets the client's logger.
func WithLogger(l *slog.Logger) Option {
	return func(c *Client) error {
		if l == nil {
			return errors.New("sdk: nil logger")
		}
		c.log = l
		return nil
	}
}

// WithCreds makes Connect authenticate with a NATS .creds file: brig's
// servers refuse anonymous clients (`brig dev` writes
// DATA/creds/default.creds; docs/design.md §10). The credential's tag
// brig-tenant:<name> becomes the client's tenant unless WithTenant names
// one.
func WithCreds(file string) Option {
	return func(c *Client) error {
		if file == "" {
			return errors.New("sdk: empty credentials file name")
		}
		tenant, err := CredsTenant(file)
		if err != nil {
			return err
		}
		c.credsTenant = tenant
		c.dial = append(c.dial, nats.UserCredentials(file))
		return nil
	}
}

// TenantTag prefixes the JWT tag that names a credential's tenant
// (brig-tenant:<name>).
const TenantTag = creds.TenantTag

// CredsTenant returns the tenant a .creds file's user JWT names in its tag
// brig-tenant:<name>, or "" when it names none (an admin's or a role's).
func CredsTenant(file string) (string, error) {
	contents, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("sdk: read credentials: %w", err)
	}
	id, err := creds.Parse(contents)
	if err != nil {
		return "", fmt.Errorf("sdk: credentials %s: %w", file, err)
	}
	if id.Tenant != "" && !schema.ValidTenant(id.Tenant) {
		return "", fmt.Errorf("sdk: credentials %s name an invalid tenant %q", file, id.Tenant)
	}
	return id.Tenant, nil
}

// WithTenant makes the client one of tenant name: its jobs are submitted,
// followed, watched and cancelled in that tenant (docs/design.md §10.3).
// Without it, the tenant is WithCreds's credential's, else
// schema.DefaultTenant.
func WithTenant(name string) Option {
	return func(c *Client) error {
		if !schema.ValidTenant(name) {
			return fmt.Errorf("sdk: invalid tenant name %q: 1-%d of a-z 0-9 -, starting with a letter", name, schema.MaxTenantLen)
		}
		c.tenant = name
		return nil
	}
}

// resolveTenant settles the client's tenant once its options are applied.
func (c *Client) resolveTenant() {
	if c.tenant == "" {
		c.tenant = cmp.Or(c.credsTenant, schema.DefaultTenant)
	}
}

// Tenant returns the client's tenant.
func (c *Client) Tenant() string { return c.tenant }

// WithNATSOptions passes options to the nats.Connect of Connect (TLS with
// nats.RootCAs, reconnect policy, ...). New ignores it: its connection is
// made already.
func WithNATSOptions(opts ...nats.Option) Option {
	return func(c *Client) error {
		c.dial = append(c.dial, opts...)
		return nil
	}
}

// Connect dials a NATS server and returns a client that owns the
// connection. The connection's inbox prefix is the tenant's
// (_INBOX.<tenant>, nats.CustomInboxPrefix): a client credential may
// subscribe nowhere else, and JetStream's acknowledgements come there.
func Connect(ctx context.Context, url string, opts ...Option) (*Client, error) {
	var pre Client // collects the dial options and the tenant
	for _, o := range opts {
		if err := o(&pre); err != nil {
			return nil, err
		}
	}
	pre.resolveTenant()
	dial := []nats.Option{nats.Name("brig-sdk"), nats.CustomInboxPrefix(schema.InboxPrefix(pre.tenant))}
	nc, err := nats.Connect(url, append(dial, pre.dial...)...)
	if err != nil {
		return nil, fmt.Errorf("sdk: connect %s: %w", url, err)
	}
	c, err := New(nc, opts...)
	if err != nil {
		nc.Close()
		return nil, err
	}
	c.ownsNC = true
	return c, nil
}

// New returns a client on an existing connection; Close leaves it open.
// On a connection with a client credential, the connection must have been
// made with the tenant's inbox prefix (nats.CustomInboxPrefix(
// schema.InboxPrefix(tenant))): JetStream's acknowledgements of its
// submissions come to the connection's own inbox, and the credential may
// subscribe only under _INBOX.<tenant>. The client's own inboxes (events,
// replays, peeks, cancellations) are always _INBOX.<tenant>.<nuid>, so a
// role's or an admin's connection, which may subscribe to _INBOX.>, serves
// a client of any tenant.
func New(nc *nats.Conn, opts ...Option) (*Client, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("sdk: jetstream: %w", err)
	}
	c := &Client{nc: nc, js: js, log: slog.New(slog.DiscardHandler), live: map[string]*Handle{}, toReplay: map[*Handle]bool{},
		closed: make(chan struct{})}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	c.resolveTenant()
	return c, nil
}

// newInbox returns a fresh inbox of the client's tenant.
func (c *Client) newInbox() string { return schema.InboxPrefix(c.tenant) + "." + nuid.Next() }

// key is the key of the client's job id.
func (c *Client) key(id string) string { return schema.JobKey(c.tenant, id) }

// jobID reads what a caller names a job by: its id, or its key (an event's
// job_id) when that is of the client's tenant.
func (c *Client) jobID(s string) (string, error) {
	if schema.ValidID(s) {
		return s, nil
	}
	if tenant, id, ok := schema.SplitJobKey(s); ok {
		if tenant != c.tenant {
			return "", fmt.Errorf("sdk: job %s is tenant %s's, not this client's (%s)", s, tenant, c.tenant)
		}
		return id, nil
	}
	return "", fmt.Errorf("sdk: invalid job id %q", s)
}

// request sends data on subject with a fresh inbox of the client's tenant
// as its reply subject and returns the first answer: the dispatchers
// answer only inboxes of the job's tenant, whatever the connection's own
// inbox prefix.
func (c *Client) request(ctx context.Context, subject string, data []byte) (*nats.Msg, error) {
	sub, err := c.nc.SubscribeSync(c.newInbox())
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := sub.AutoUnsubscribe(1); err != nil {
		return nil, err
	}
	if err := c.nc.PublishRequest(subject, sub.Subject, data); err != nil {
		return nil, err
	}
	msg, err := sub.NextMsgWithContext(ctx)
	if err != nil {
		return nil, err
	}
	if msg.Header.Get(statusHeader) == "503" && len(msg.Data) == 0 {
		return nil, nats.ErrNoResponders
	}
	return msg, nil
}

// Close ends the client's subscriptions, and closes the connection if the
// client opened it. Safe to call twice.
func (c *Client) Close() {
	c.mu.Lock()
	select {
	case <-c.closed:
		c.mu.Unlock()
		return
	default:
	}
	close(c.closed)
	if c.inboxSub != nil {
		_ = c.inboxSub.Unsubscribe()
	}
	c.mu.Unlock()
	if c.ownsNC {
		c.nc.Close()
	}
}

// NewJobID returns a fresh random job id.
func NewJobID() string {
	return "j" + rand.Text()
}

// Submit publishes a job in the client's tenant and returns a handle on
// its events. An empty job.ID gets a fresh one; the job's key is
// <tenant>.<id>. No event is missed: a job without a reply_to of
// its own gets the client's inbox as reply_to, subscribed before the job
// is published, where brig copies each event once it is stored; a job
// with its own reply_to, an id brig has seen before, or a reconnect while
// the job runs (copies may be lost) replay the job's events from the
// stream instead, through the dispatchers' replay service (the client
// needs no JetStream API beyond its submission, docs/design.md §10).
func (c *Client) Submit(ctx context.Context, job schema.Job) (*Handle, error) {
	if job.ID == "" {
		job.ID = NewJobID()
	}
	if err := job.Validate(); err != nil {
		return nil, &JobError{Event: rejectedLocally(c.key(job.ID), err)}
	}
	if err := c.checkReplyTo(&job); err != nil {
		return nil, err
	}
	h := c.newHandle(job.ID)
	live := false
	if job.ReplyTo == "" {
		subject, ok, err := c.follow(h)
		if err != nil {
			h.Stop()
			return nil, err
		}
		job.ReplyTo, live = subject, ok
	}
	if !live {
		if err := h.replay(ctx); err != nil {
			h.Stop()
			return nil, err
		}
	}
	if err := c.publishJob(ctx, h, &job); err != nil {
		h.Stop()
		return nil, err
	}
	if live {
		// A dispatcher drops, without a word, a submission whose key brig
		// already has (another client's, with its own reply_to): a handle
		// that hears nothing soon reads the stream as well.
		time.AfterFunc(silenceWait, func() { c.replayIfSilent(h) })
	}
	return h, nil
}

// silenceWait is how long a submitted job may go without its accepted event
// before its handle reads the stream too (a dispatcher's backlog is the
// usual reason; the replay then costs one request to a dispatcher).
const silenceWait = 2 * time.Second

// follow registers h on the client's inbox and returns the reply_to that
// reaches it; ok is false when another live handle follows the same id.
func (c *Client) follow(h *Handle) (subject string, ok bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.closed:
		return "", false, errors.New("sdk: client closed")
	default:
	}
	if c.inboxSub == nil {
		inbox := c.newInbox()
		sub, err := c.nc.Subscribe(inbox+".>", c.onInbox)
		if err != nil {
			return "", false, fmt.Errorf("sdk: subscribe to the client's inbox: %w", err)
		}
		_ = sub.SetPendingLimits(-1, 256<<20) // a burst of events must not be dropped
		c.inbox, c.inboxSub = inbox, sub
		c.reconnects = c.nc.Stats().Reconnects
		go c.watchReconnects()
	}
	if _, taken := c.live[h.Key]; taken {
		return "", false, nil
	}
	c.live[h.Key] = h
	return c.inbox + "." + h.ID, true, nil
}

// forget takes h off the inbox.
func (c *Client) forget(h *Handle) {
	c.mu.Lock()
	if c.live[h.Key] == h {
		delete(c.live, h.Key)
	}
	c.mu.Unlock()
}

func (c *Client) onInbox(msg *nats.Msg) {
	ev, err := schema.DecodeEvent(msg.Data)
	if err != nil {
		return
	}
	c.mu.Lock()
	h := c.live[ev.JobID]
	c.mu.Unlock()
	if h != nil {
		h.deliver(ev)
	}
}

// watchReconnects switches every live handle to a replay from the stream
// after a reconnect (copies published while the client was away are lost),
// and starts the replays of silent handles, retrying those that fail. A
// replay that runs already asks again by itself after a reconnect.
func (c *Client) watchReconnects() {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-c.closed:
			return
		case <-t.C:
		}
		n := c.nc.Stats().Reconnects
		c.mu.Lock()
		if n != c.reconnects {
			for _, h := range c.live {
				c.toReplay[h] = true
			}
		}
		c.reconnects = n
		var hs, quiet []*Handle
		for h := range c.toReplay {
			hs = append(hs, h)
		}
		for _, h := range c.live {
			if !c.toReplay[h] && h.quiet(quietCheck) {
				quiet = append(quiet, h)
			}
		}
		c.mu.Unlock()
		for _, h := range quiet {
			go c.checkQuiet(h)
		}
		// A replay's first request can fail while the connection is down;
		// it is tried again on the next tick until it is out or the job
		// ends.
		for _, h := range hs {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := h.replay(ctx)
			cancel()
			c.mu.Lock()
			if err == nil || c.live[h.Key] != h {
				delete(c.toReplay, h)
			}
			c.mu.Unlock()
			if err != nil {
				c.log.Warn("replay a job's events after a reconnect; will retry", "job", h.Key, "err", err)
			}
		}
	}
}

// quietCheck is how long a live handle hears nothing before it asks
// whether its job has ended. A copy on the client's inbox is a core-NATS
// message: it is lost when the server of the worker that published it dies
// (the client's own connection never notices), and a handle that waited on
// copies alone would then wait forever. Asking costs one request to a
// dispatcher per quiet job per quietCheck.
const quietCheck = 10 * time.Second

// quiet reports whether a live handle has heard nothing, and asked
// nothing, for d; it then counts as asking.
func (h *Handle) quiet(d time.Duration) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.terminal != nil || h.checking || time.Since(h.quietSince) < d {
		return false
	}
	h.checking = true
	return true
}

// checkQuiet asks whether a quiet handle's job has ended, and replays its
// events when it has: the terminal copy was lost. When brig has no event
// of the key at all, the handle's own submission is published again.
func (c *Client) checkQuiet(h *Handle) {
	ctx, cancel := context.WithTimeout(context.Background(), peekWait)
	defer cancel()
	p, err := c.peekState(ctx, h.ID)
	exists, ended := p.Exists, p.Terminal
	h.mu.Lock()
	h.checking, h.quietSince = false, time.Now()
	replaying := h.replaying
	h.mu.Unlock()
	if err == nil && !exists {
		c.resubmitJob(ctx, h)
	}
	if err != nil || !ended || replaying {
		return
	}
	c.mu.Lock()
	if c.live[h.Key] == h {
		c.toReplay[h] = true // the next tick starts it
	}
	c.mu.Unlock()
}

// Run submits a job and waits for its terminal event. The error is nil only
// when the job succeeded; otherwise it is a *JobError (see the sentinels)
// or a platform error, and the terminal event, when there is one, is
// returned too. When ctx ends first, Run returns and the job runs on,
// unless the client was made WithCancelOnDone.
func (c *Client) Run(ctx context.Context, job schema.Job) (*schema.Event, error) {
	h, err := c.Submit(ctx, job)
	return c.await(ctx, h, err)
}

// await waits for the terminal event of a job that a submit call returned.
func (c *Client) await(ctx context.Context, h *Handle, err error) (*schema.Event, error) {
	var je *JobError
	switch {
	case errors.As(err, &je): // rejected before it was sent
		return je.Event, err
	case err != nil:
		return nil, err
	}
	defer h.Stop()
	ev, err := h.Result(ctx)
	if ev != nil || ctx.Err() == nil || !c.cancelOnDone {
		return ev, err
	}
	return h.cancelOnDone(ctx, ctx.Err())
}

// checkReplyTo refuses, as the dispatchers would, a reply_to outside the
// client's tenant's inboxes (docs/design.md §10.3).
func (c *Client) checkReplyTo(job *schema.Job) error {
	if schema.ReplyToAllowed(c.tenant, c.key(job.ID), job.ReplyTo) {
		return nil
	}
	return &JobError{Event: rejectedLocally(c.key(job.ID), fmt.Errorf("reply_to: must lie under %s. (the inboxes of tenant %s)",
		schema.InboxPrefix(c.tenant), c.tenant))}
}

func rejectedLocally(key string, err error) *schema.Event {
	return &schema.Event{
		JobID: key, Type: schema.EventError, Status: schema.StatusRejected, ExitCode: -1,
		Error: &schema.ErrorInfo{Type: schema.ErrInvalidJob, Message: "invalid job: " + err.Error()},
	}
}

// ErrDuplicateID is returned by SubmitNew and RunNew for a job id brig has
// seen before.
var ErrDuplicateID = errors.New("job id already used")

// SubmitNew is Submit for a job whose id must be new: when brig has seen
// the id before (the submission is a duplicate within the stream's
// deduplication window, or the id already has events), it returns an
// error matching ErrDuplicateID and never the events of the job that
// holds the id. A caller that must trust the answer to be its own job's
// (a gateway running a child job) uses it with an unguessable id.
func (c *Client) SubmitNew(ctx context.Context, job schema.Job) (*Handle, error) {
	if job.ID == "" {
		job.ID = NewJobID()
	}
	if err := job.Validate(); err != nil {
		return nil, &JobError{Event: rejectedLocally(c.key(job.ID), err)}
	}
	if err := c.checkReplyTo(&job); err != nil {
		return nil, err
	}
	dup := fmt.Errorf("sdk: submit job %s: %w", job.ID, ErrDuplicateID)
	if seen, err := c.peek(ctx, job.ID); err != nil {
		return nil, fmt.Errorf("sdk: submit job %s: %w", job.ID, err)
	} else if seen {
		return nil, dup
	}
	h := c.newHandle(job.ID)
	live := false
	if job.ReplyTo == "" {
		subject, ok, err := c.follow(h)
		if err != nil || !ok { // !ok: this client follows the id already
			h.Stop()
			return nil, cmp.Or(err, dup)
		}
		job.ReplyTo, live = subject, true
	}
	err := c.publishJob(ctx, h, &job)
	if err == nil && !live {
		// Every event of the id is this job's: it had none before.
		err = h.replay(ctx)
	}
	if err != nil {
		h.Stop()
		return nil, err
	}
	if live {
		time.AfterFunc(silenceWait, func() { c.replayIfSilent(h) })
	}
	return h, nil
}

// peek asks the replay service whether a job has any stored event. It
// asks again while the dispatchers are busy, none answers (between
// restarts) or an answer is lost, until ctx ends.
func (c *Client) peek(ctx context.Context, jobID string) (bool, error) {
	pause := replayRetryMin
	for {
		seen, err := c.peekOnce(ctx, jobID)
		if err == nil || ctx.Err() != nil {
			return seen, err
		}
		c.log.Debug("ask whether a job id is taken; will ask again", "job", jobID, "err", err)
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return false, fmt.Errorf("%w (last answer: %w)", ctx.Err(), err)
		}
		pause = min(2*pause, replayRetryMax)
	}
}

// peekWait bounds one peek: a dispatcher answers it with a lookup or two.
const peekWait = 5 * time.Second

func (c *Client) peekOnce(ctx context.Context, jobID string) (bool, error) {
	p, err := c.peekState(ctx, jobID)
	return p.Exists, err
}

// peekAnswer is the replay service's answer to a peek (the dispatcher's
// PeekReply): Started and Event are absent from an older dispatcher's.
type peekAnswer struct {
	Exists   bool          `json:"exists"`
	Terminal bool          `json:"terminal"`
	Started  bool          `json:"started"`
	Event    *schema.Event `json:"event"`
}

// peekState asks the replay service once whether a job has any stored
// event, whether it started, and its terminal event.
func (c *Client) peekState(ctx context.Context, jobID string) (peekAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, peekWait)
	defer cancel()
	msg, err := c.request(ctx, schema.ReplaySubject(c.key(jobID)), []byte(`{"peek":true}`))
	if err != nil {
		return peekAnswer{}, fmt.Errorf("ask about job %s: %w", jobID, err)
	}
	switch ctl := msg.Header.Get(replayHeader); ctl {
	case "":
	case replayBusy:
		return peekAnswer{}, fmt.Errorf("ask about job %s: %w", jobID, ErrBusy)
	default:
		return peekAnswer{}, fmt.Errorf("ask about job %s: %s %s", jobID, ctl, msg.Header.Get(replayErrorHeader))
	}
	var r peekAnswer
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		return peekAnswer{}, fmt.Errorf("ask about job %s: bad answer: %w", jobID, err)
	}
	if r.Event != nil && (r.Event.JobID != c.key(jobID) || !schema.IsTerminal(r.Event.Type)) {
		return peekAnswer{}, fmt.Errorf("ask about job %s: the answer's event is not its terminal one", jobID)
	}
	return r, nil
}

// publishJob publishes a submission of the client's tenant, with its key
// as Nats-Msg-Id, and keeps it on the handle for resubmitJob.
//
// BRIG_SUBMIT acknowledges nothing (NoAck): a stream's acknowledgement
// goes to whatever reply subject the publisher names, from the server
// itself, so a client could aim it at any subject of brig's account
// (docs/design.md §10.2). So a submission is a plain publish, flushed:
// whether brig has it shows in its accepted event, and a handle that hears
// nothing asks and, when brig has no event of the key, publishes it again
// (Client.checkQuiet): a dispatcher accepts one submission per key.
func (c *Client) publishJob(ctx context.Context, h *Handle, job *schema.Job) error {
	data, err := schema.Marshal(job)
	if err != nil {
		return fmt.Errorf("sdk: encode job: %w", err)
	}
	msg := &nats.Msg{Subject: schema.SubmitSubject(c.tenant, job.Function), Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, c.key(job.ID))
	if err := c.publish(ctx, msg); err != nil {
		return fmt.Errorf("sdk: submit job %s: %w", job.ID, err)
	}
	h.mu.Lock()
	h.submission = &nats.Msg{Subject: msg.Subject, Data: data}
	h.mu.Unlock()
	return nil
}

// publish sends msg and waits until the server has it (a flush). Once the
// message is handed to the connection it may reach brig, so the flush runs
// off ctx, for at most publishWait: a caller whose ctx ends in between (a
// Ctrl-C right after the submission) still gets its handle, and can cancel
// the job it sent, rather than an error that leaves the job running unseen.
func (c *Client) publish(ctx context.Context, msg *nats.Msg) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := c.nc.PublishMsg(msg); err != nil {
		return err
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishWait)
	defer cancel()
	return c.nc.FlushWithContext(fctx)
}

// publishWait bounds the flush of a submission.
const publishWait = 10 * time.Second

// resubmitJob publishes a handle's submission again, without a message
// id: the first copy may be lost (a full or leaderless stream drops it
// without a word), or its message id squatted within the stream's
// deduplication window by another tenant, which may publish any
// Nats-Msg-Id on its own submit subject (docs/design.md §10.3).
func (c *Client) resubmitJob(ctx context.Context, h *Handle) {
	h.mu.Lock()
	msg := h.submission
	h.mu.Unlock()
	if msg == nil {
		return
	}
	if err := c.publish(ctx, &nats.Msg{Subject: msg.Subject, Data: msg.Data}); err != nil {
		c.log.Warn("submit a job again", "job", h.Key, "err", err)
	}
}

// replayIfSilent has a live handle that has heard nothing read the stream
// too (see Submit).
func (c *Client) replayIfSilent(h *Handle) {
	if !h.silent() {
		return
	}
	c.mu.Lock()
	if c.live[h.Key] == h {
		c.toReplay[h] = true // watchReconnects starts it, and retries
	}
	c.mu.Unlock()
}

// RunNew is Run through SubmitNew: it fails with ErrDuplicateID rather
// than answer with the events of a job it did not submit.
func (c *Client) RunNew(ctx context.Context, job schema.Job) (*schema.Event, error) {
	h, err := c.SubmitNew(ctx, job)
	return c.await(ctx, h, err)
}
