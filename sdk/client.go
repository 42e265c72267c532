package sdk

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

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

// Connect dials a NATS server and returns a client that owns the connection.
func Connect(ctx context.Context, url string, opts ...Option) (*Client, error) {
	nc, err := nats.Connect(url, nats.Name("brig-sdk"))
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
	c := &Client{nc: nc, js: js, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Close closes the connection if the client opened it.
func (c *Client) Close() {
	if c.ownsNC {
		c.nc.Close()
	}
}

// NewJobID returns a fresh random job id.
func NewJobID() string {
	return "j" + rand.Text()
}

// Submit publishes a job and returns a handle on its events. An empty
// job.ID gets a fresh one. The handle subscribes before the job is
// published, so no event is missed.
func (c *Client) Submit(ctx context.Context, job schema.Job) (*Handle, error) {
	if job.ID == "" {
		job.ID = NewJobID()
	}
	if err := job.Validate(); err != nil {
		return nil, &JobError{Event: rejectedLocally(job.ID, err)}
	}
	data, err := json.Marshal(job)
	if err != nil {
		return nil, fmt.Errorf("sdk: encode job: %w", err)
	}
	h, err := c.Watch(ctx, job.ID)
	if err != nil {
		return nil, err
	}
	msg := &nats.Msg{Subject: schema.SubmitSubject(job.Function), Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, job.ID)
	if _, err := c.js.PublishMsg(ctx, msg); err != nil {
		h.Stop()
		return nil, fmt.Errorf("sdk: submit job %s: %w", job.ID, err)
	}
	return h, nil
}

// Run submits a job and waits for its terminal event. The error is nil only
// when the job succeeded; otherwise it is a *JobError (see the sentinels)
// or a platform error, and the terminal event, when there is one, is
// returned too.
func (c *Client) Run(ctx context.Context, job schema.Job) (*schema.Event, error) {
	h, err := c.Submit(ctx, job)
	if err != nil {
		var je *JobError
		if errors.As(err, &je) {
			return je.Event, err
		}
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
