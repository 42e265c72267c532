package sdk

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/schema"
)

// Client submits jobs and follows their events.
type Client struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	log    *slog.Logger
	ownsNC bool

	// The live path: jobs submitted without a reply_to of their own name
	// the client's inbox, where brig copies each event once it is stored.
	mu         sync.Mutex
	inbox      string
	inboxSub   *nats.Subscription
	live       map[string]*Handle // by job id
	toReplay   map[*Handle]bool   // live handles whose replay has yet to start
	reconnects uint64
	closed     chan struct{}
	// replayQuiet is replayQuiet (tests shorten it).
	replayQuiet time.Duration

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
// DATA/creds/default.creds; docs/design.md §10).
func WithCreds(file string) Option {
	return func(c *Client) error {
		if file == "" {
			return errors.New("sdk: empty credentials file name")
		}
		c.dial = append(c.dial, nats.UserCredentials(file))
		return nil
	}
}

// WithNATSOptions passes options to the nats.Connect of Connect (TLS with
// nats.RootCAs, reconnect policy, ...). New ignores it: its connection is
// made already.
func WithNATSOptions(opts ...nats.Option) Option {
	return func(c *Client) error {
		c.dial = append(c.dial, opts...)
		return nil
	}
}

// Connect dials a NATS server and returns a client that owns the connection.
func Connect(ctx context.Context, url string, opts ...Option) (*Client, error) {
	var pre Client // collects the dial options
	for _, o := range opts {
		if err := o(&pre); err != nil {
			return nil, err
		}
	}
	nc, err := nats.Connect(url, append([]nats.Option{nats.Name("brig-sdk")}, pre.dial...)...)
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
func New(nc *nats.Conn, opts ...Option) (*Client, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("sdk: jetstream: %w", err)
	}
	c := &Client{nc: nc, js: js, log: slog.New(slog.DiscardHandler), live: map[string]*Handle{}, toReplay: map[*Handle]bool{},
		closed: make(chan struct{}), replayQuiet: replayQuiet}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
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

// Submit publishes a job and returns a handle on its events. An empty
// job.ID gets a fresh one. No event is missed: a job without a reply_to of
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
		return nil, &JobError{Event: rejectedLocally(job.ID, err)}
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
	ack, err := c.publishJob(ctx, &job)
	if err != nil {
		h.Stop()
		return nil, err
	}
	switch {
	case ack.Duplicate && live:
		// brig has this id already, with another reply_to: read the
		// stream, where that job's events are.
		c.forget(h)
		if err := h.replay(ctx); err != nil {
			h.Stop()
			return nil, err
		}
	case live:
		// A dispatcher drops, without a word, a submission whose id brig
		// accepted longer ago than the stream's deduplication window: a
		// handle that hears nothing soon reads the stream as well.
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
		inbox := c.nc.NewInbox()
		sub, err := c.nc.Subscribe(inbox+".>", c.onInbox)
		if err != nil {
			return "", false, fmt.Errorf("sdk: subscribe to the client's inbox: %w", err)
		}
		_ = sub.SetPendingLimits(-1, 256<<20) // a burst of events must not be dropped
		c.inbox, c.inboxSub = inbox, sub
		c.reconnects = c.nc.Stats().Reconnects
		go c.watchReconnects()
	}
	if _, taken := c.live[h.ID]; taken {
		return "", false, nil
	}
	c.live[h.ID] = h
	return c.inbox + "." + h.ID, true, nil
}

// forget takes h off the inbox.
func (c *Client) forget(h *Handle) {
	c.mu.Lock()
	if c.live[h.ID] == h {
		delete(c.live, h.ID)
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
		var hs []*Handle
		for h := range c.toReplay {
			hs = append(hs, h)
		}
		c.mu.Unlock()
		// A replay's first request can fail while the connection is down;
		// it is tried again on the next tick until it is out or the job
		// ends.
		for _, h := range hs {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := h.replay(ctx)
			cancel()
			c.mu.Lock()
			if err == nil || c.live[h.ID] != h {
				delete(c.toReplay, h)
			}
			c.mu.Unlock()
			if err != nil {
				c.log.Warn("replay a job's events after a reconnect; will retry", "job", h.ID, "err", err)
			}
		}
	}
}

// Run submits a job and waits for its terminal event. The error is nil only
// when the job succeeded; otherwise it is a *JobError (see the sentinels)
// or a platform error, and the terminal event, when there is one, is
// returned too.
func (c *Client) Run(ctx context.Context, job schema.Job) (*schema.Event, error) {
	h, err := c.Submit(ctx, job)
	return await(ctx, h, err)
}

// await waits for the terminal event of a job that a submit call returned.
func await(ctx context.Context, h *Handle, err error) (*schema.Event, error) {
	var je *JobError
	switch {
	case errors.As(err, &je): // rejected before it was sent
		return je.Event, err
	case err != nil:
		return nil, err
	}
	defer h.Stop()
	return h.Result(ctx)
}

// PublishRaw publishes arbitrary bytes as a submission for function, with
// msgID as Nats-Msg-Id. It exists for tools and tests that probe brig's
// validation; normal callers use Submit.
func (c *Client) PublishRaw(ctx context.Context, function, msgID string, data []byte) error {
	msg := &nats.Msg{Subject: schema.SubmitSubject(function), Data: data, Header: nats.Header{}}
	if msgID != "" {
		msg.Header.Set(jetstream.MsgIDHeader, msgID)
	}
	if _, err := c.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("sdk: publish: %w", err)
	}
	return nil
}

func rejectedLocally(id string, err error) *schema.Event {
	return &schema.Event{
		JobID: id, Type: schema.EventError, Status: schema.StatusRejected, ExitCode: -1,
		Error: &schema.ErrorInfo{Type: schema.ErrInvalidJob, Message: "invalid job: " + err.Error()},
	}
}

// Cancel cancels a queued or running job and returns its terminal status:
// cancelled, or how it had already ended. A job cancelled while queued
// never runs; a running one is killed and keeps the output it made.
func (c *Client) Cancel(ctx context.Context, jobID string) (string, error) {
	if !schema.ValidID(jobID) {
		return "", fmt.Errorf("sdk: invalid job id %q", jobID)
	}
	msg, err := c.nc.RequestWithContext(ctx, schema.CancelSubject(jobID), nil)
	if err != nil {
		return "", fmt.Errorf("sdk: cancel job %s: %w", jobID, err)
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		return "", fmt.Errorf("sdk: cancel job %s: bad answer: %w", jobID, err)
	}
	if r.Error != "" {
		return r.Status, fmt.Errorf("sdk: cancel job %s: %s", jobID, r.Error)
	}
	return r.Status, nil
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
		return nil, &JobError{Event: rejectedLocally(job.ID, err)}
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
	ack, err := c.publishJob(ctx, &job)
	switch {
	case err != nil:
	case ack.Duplicate:
		err = dup
	case !live:
		// Every event of the id is this job's: it had none before, and
		// the submission was not a duplicate.
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
	ctx, cancel := context.WithTimeout(ctx, peekWait)
	defer cancel()
	msg, err := c.nc.RequestWithContext(ctx, schema.ReplaySubject(jobID), []byte(`{"peek":true}`))
	if err != nil {
		return false, fmt.Errorf("ask whether job id %s is taken: %w", jobID, err)
	}
	if ctl := msg.Header.Get(replayHeader); ctl != "" {
		return false, fmt.Errorf("ask whether job id %s is taken: %s %s", jobID, ctl, msg.Header.Get(replayErrorHeader))
	}
	var r struct {
		Exists bool `json:"exists"`
	}
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		return false, fmt.Errorf("ask whether job id %s is taken: bad answer: %w", jobID, err)
	}
	return r.Exists, nil
}

// publishJob publishes a submission, deduplicated by the job's id.
func (c *Client) publishJob(ctx context.Context, job *schema.Job) (*jetstream.PubAck, error) {
	data, err := schema.Marshal(job)
	if err != nil {
		return nil, fmt.Errorf("sdk: encode job: %w", err)
	}
	msg := &nats.Msg{Subject: schema.SubmitSubject(job.Function), Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, job.ID)
	ack, err := c.js.PublishMsg(ctx, msg)
	if err != nil {
		return nil, fmt.Errorf("sdk: submit job %s: %w", job.ID, err)
	}
	return ack, nil
}

// replayIfSilent has a live handle that has heard nothing read the stream
// too (see Submit).
func (c *Client) replayIfSilent(h *Handle) {
	if !h.silent() {
		return
	}
	c.mu.Lock()
	if c.live[h.ID] == h {
		c.toReplay[h] = true // watchReconnects starts it, and retries
	}
	c.mu.Unlock()
}

// RunNew is Run through SubmitNew: it fails with ErrDuplicateID rather
// than answer with the events of a job it did not submit.
func (c *Client) RunNew(ctx context.Context, job schema.Job) (*schema.Event, error) {
	h, err := c.SubmitNew(ctx, job)
	return await(ctx, h, err)
}
