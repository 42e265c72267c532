package dispatcher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/schema"
)

// The replay service (docs/design.md §6). Clients hold no JetStream API
// (§10): a client that could create a consumer on BRIG_EVENTS could choose
// a push consumer's deliver subject, and the server would publish there on
// its behalf. So a client asks on brig.replay.<key> (<tenant>.<id>), and
// the dispatcher that takes the request (queue group CancelQueue) reads the
// job's events with a consumer of its own and publishes them to the
// request's reply subject, which must be an inbox of the job's tenant
// (_INBOX.<tenant>.>, §10.3): the dispatcher never publishes anywhere a
// client names outside its tenant's inboxes.

// Bounds of the replay service (docs/design.md §13.7).
const (
	// MaxReplays is the default of Config.MaxReplays: the replay requests
	// (follows and peeks) one dispatcher has in hand. Past it a request is
	// answered `busy` at once, so a flood of requests costs a dispatcher a
	// fixed number of consumers and goroutines.
	MaxReplays = 1024
	// ReplayFollow is how long one request follows a job that has not
	// ended; then the client gets `idle` and asks again, so a client that
	// vanished holds a follow for at most this long.
	ReplayFollow = 10 * time.Minute
	// ReplayFollowUnknown is how long a request follows a key that has no
	// event yet: a job may still be on its way, but a flood of requests
	// for keys that never come must not hold consumers for ReplayFollow.
	ReplayFollowUnknown = 30 * time.Second
	// MaxTenantReplays bounds the requests one tenant has in hand on one
	// dispatcher, so that one tenant cannot take the MaxReplays of every
	// tenant (nor BRIG_EVENTS' consumers); past it the tenant is answered
	// `busy`.
	MaxTenantReplays = 64
	// ReplayHeartbeat is how often a follow says `alive` (the first time as
	// soon as it starts): a client that hears nothing for a few of these
	// knows its request or its dispatcher was lost, and asks again.
	ReplayHeartbeat = 5 * time.Second
	// replayBatch is how many events a follow's consumer pulls ahead: with
	// MaxReplays follows and events of at most 1 MiB it bounds what a
	// dispatcher buffers.
	replayBatch = 32
	// replayConsumerIdle is when the server deletes a follow's consumer
	// that nobody pulls from: the dispatcher deletes its own when the
	// follow ends, this catches a dispatcher that died first.
	replayConsumerIdle = time.Minute
	// replayLookup bounds a peek's lookups and the deletion of a follow's
	// consumer.
	replayLookup = 5 * time.Second
	// maxReplayRequest bounds a request's body.
	maxReplayRequest = 1 << 10
	// maxReplayErrorText clips the Brig-Error header.
	maxReplayErrorText = 256
)

// Headers of the replay protocol. Each forwarded event carries
// ReplaySeqHeader; a control message has an empty body and ReplayHeader.
const (
	ReplayHeader      = "Brig-Replay"
	ReplaySeqHeader   = "Brig-Seq"
	ReplayErrorHeader = "Brig-Error"
)

// ReplayControl is the value of a control message's ReplayHeader.
type ReplayControl string

// Control messages. After end, idle, busy or error the dispatcher sends
// nothing more on that reply subject.
const (
	// ReplayEnd follows the job's terminal event.
	ReplayEnd ReplayControl = "end"
	// ReplayIdle: the follow ran for ReplayFollow, or its dispatcher
	// stopped, before the job ended; ask again.
	ReplayIdle ReplayControl = "idle"
	// ReplayBusy: MaxReplays requests are in hand; ask again later.
	ReplayBusy ReplayControl = "busy"
	// ReplayError: the request was invalid or brig failed; the text is in
	// ReplayErrorHeader.
	ReplayError ReplayControl = "error"
	// ReplayAlive is the follow's heartbeat (ReplayHeartbeat).
	ReplayAlive ReplayControl = "alive"
)

// ReplayRequest is the body of a request on brig.replay.<key>. An empty
// body asks for the job's events.
type ReplayRequest struct {
	// Peek asks only whether the job has events: one PeekReply answers.
	Peek bool `json:"peek,omitempty"`
}

// PeekReply answers a ReplayRequest with Peek. Started and Event came
// after Exists and Terminal; a client that knows only those two reads the
// same answer as before.
type PeekReply struct {
	// Exists: the job has at least one stored event.
	Exists bool `json:"exists"`
	// Terminal: the job has its terminal event.
	Terminal bool `json:"terminal"`
	// Started: the job has a started event (of any attempt). Set only
	// while the job has not ended.
	Started bool `json:"started,omitempty"`
	// Event is the terminal event itself, as stored, when Terminal.
	Event *schema.Event `json:"event,omitempty"`
}

// onReplay answers a replay request on brig.replay.<key>. A request whose
// reply subject is not an inbox of the key's tenant (_INBOX.<tenant>.) is
// ignored: answering it would publish where the client says, or show one
// tenant's job to another.
func (d *Dispatcher) onReplay(m *nats.Msg) {
	if !d.allowSubject(m.Subject, schema.ReplayPrefix) {
		return
	}
	tenant, ok := answerable(m.Subject, schema.ReplayPrefix, m.Reply)
	if !ok {
		d.log.Debug("ignoring a replay request whose reply subject is not an inbox of the job's tenant", "subject", m.Subject, "reply", m.Reply)
		return
	}
	id, ok := schema.KeyFromSubject(m.Subject, schema.ReplayPrefix)
	if !ok {
		d.control(m.Reply, ReplayError, "invalid job key")
		return
	}
	req, err := decodeReplayRequest(m.Data)
	if err != nil {
		d.control(m.Reply, ReplayError, err.Error())
		return
	}
	if !d.tenantReplays.take(tenant) {
		d.control(m.Reply, ReplayBusy, "")
		return
	}
	select {
	case d.replays <- struct{}{}:
	default:
		d.tenantReplays.give(tenant)
		d.control(m.Reply, ReplayBusy, "")
		return
	}
	go func() {
		defer func() { <-d.replays; d.tenantReplays.give(tenant) }()
		if req.Peek {
			d.peek(d.ctx, id, m.Reply)
			return
		}
		d.follow(d.ctx, id, m.Reply)
	}()
}

// decodeReplayRequest strictly decodes a request's body; empty is a follow.
func decodeReplayRequest(data []byte) (ReplayRequest, error) {
	var req ReplayRequest
	trimmed := bytes.TrimSpace(data)
	switch {
	case len(trimmed) == 0:
		return req, nil
	case len(data) > maxReplayRequest:
		return req, fmt.Errorf("invalid replay request: over %d bytes", maxReplayRequest)
	case trimmed[0] != '{':
		return req, errors.New("invalid replay request: not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, fmt.Errorf("invalid replay request: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return req, errors.New("invalid replay request: data after the JSON object")
	}
	return req, nil
}

// peek answers whether the job has events, whether it started, and its
// terminal event.
func (d *Dispatcher) peek(ctx context.Context, id, reply string) {
	ctx, cancel := context.WithTimeout(ctx, replayLookup)
	defer cancel()
	r, err := d.peekJob(ctx, id)
	if err != nil {
		d.control(reply, ReplayError, err.Error())
		return
	}
	data, _ := json.Marshal(r)
	if err := d.cfg.Conn.Publish(reply, data); err != nil {
		d.log.Warn("answer replay peek", "job", id, "err", err)
	}
}

func (d *Dispatcher) peekJob(ctx context.Context, id string) (PeekReply, error) {
	// One lookup for the common case, an id with no events (sdk.SubmitNew).
	exists, err := d.events.Has(ctx, id, "")
	if err != nil || !exists {
		return PeekReply{}, err
	}
	ev, err := d.events.Terminal(ctx, id)
	if err != nil || ev != nil {
		return PeekReply{Exists: true, Terminal: ev != nil, Event: ev}, err
	}
	started, err := d.events.Has(ctx, id, schema.EventStarted)
	return PeekReply{Exists: true, Started: started}, err
}

// follow publishes the job's stored events to reply, in order, and those
// stored after, until its terminal event (then `end`), ReplayFollow or the
// dispatcher's stop (then `idle`: the client asks again, maybe another
// dispatcher), or a failure (`error`).
func (d *Dispatcher) follow(ctx context.Context, id, reply string) {
	limit := ReplayFollow
	if seen, err := d.events.Has(ctx, id, ""); err == nil && !seen {
		limit = ReplayFollowUnknown
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	ended, err := d.forward(ctx, id, reply)
	switch {
	case ended:
		d.control(reply, ReplayEnd, "")
	case err != nil && ctx.Err() == nil:
		d.log.Warn("replay a job's events", "job", id, "err", err)
		d.control(reply, ReplayError, err.Error())
	default:
		d.control(reply, ReplayIdle, "")
	}
}

// forward runs a follow's consumer; it reports whether the job's terminal
// event was forwarded. It returns when ctx ends, without an error.
func (d *Dispatcher) forward(ctx context.Context, id, reply string) (ended bool, err error) {
	cons, err := d.js.OrderedConsumer(ctx, schema.StreamEvents, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{schema.EventsFilter(id)},
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: replayConsumerIdle,
	})
	if err != nil {
		return false, fmt.Errorf("read events of job %s: %w", id, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(replayBatch))
	if err != nil {
		d.dropConsumer(ctx, cons)
		return false, fmt.Errorf("read events of job %s: %w", id, err)
	}
	defer func() { it.Stop(); d.dropConsumer(ctx, cons) }()
	d.control(reply, ReplayAlive, "")
	for {
		msg, err := nextEvent(ctx, it)
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return false, nil
		case errors.Is(err, context.DeadlineExceeded):
			d.control(reply, ReplayAlive, "")
			continue
		default:
			return false, fmt.Errorf("read events of job %s: %w", id, err)
		}
		if err := d.send(reply, msg); err != nil {
			return false, fmt.Errorf("forward an event of job %s: %w", id, err)
		}
		if ev, err := schema.DecodeEvent(msg.Data()); err == nil && schema.IsTerminal(ev.Type) {
			return true, nil
		}
	}
}

// nextEvent waits for the next event, for at most ReplayHeartbeat.
func nextEvent(ctx context.Context, it jetstream.MessagesContext) (jetstream.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, ReplayHeartbeat)
	defer cancel()
	return it.Next(jetstream.NextContext(ctx))
}

// send publishes one stored event to reply, its bytes as stored.
func (d *Dispatcher) send(reply string, msg jetstream.Msg) error {
	out := &nats.Msg{Subject: reply, Data: msg.Data(), Header: nats.Header{}}
	if meta, err := msg.Metadata(); err == nil {
		out.Header.Set(ReplaySeqHeader, strconv.FormatUint(meta.Sequence.Stream, 10))
	}
	return d.cfg.Conn.PublishMsg(out)
}

// dropConsumer deletes a follow's consumer, also when ctx has ended (the
// dispatcher stops): the server would keep it for replayConsumerIdle.
func (d *Dispatcher) dropConsumer(ctx context.Context, cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), replayLookup)
	defer cancel()
	if err := d.js.DeleteConsumer(ctx, schema.StreamEvents, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		d.log.Warn("delete a replay's consumer", "consumer", info.Name, "err", err)
	}
}

// control publishes a control message to reply.
func (d *Dispatcher) control(reply string, c ReplayControl, text string) {
	m := &nats.Msg{Subject: reply, Header: nats.Header{}}
	m.Header.Set(ReplayHeader, string(c))
	if text != "" {
		m.Header.Set(ReplayErrorHeader, headerText(text))
	}
	if err := d.cfg.Conn.PublishMsg(m); err != nil {
		d.log.Warn("answer a replay request", "reply", reply, "control", c, "err", err)
	}
}

// headerText makes text fit for a header value: one line, clipped.
func headerText(text string) string {
	text = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, text)
	if len(text) > maxReplayErrorText {
		text = strings.ToValidUTF8(text[:maxReplayErrorText], "") + "..."
	}
	return text
}

// waitReplays waits until no replay request is in hand, or until ctx ends.
// Follows end with the dispatcher's context; holding every slot proves it.
func (d *Dispatcher) waitReplays(ctx context.Context) {
	taken := 0
	defer func() {
		for range taken {
			<-d.replays
		}
	}()
	for taken < cap(d.replays) {
		select {
		case d.replays <- struct{}{}:
			taken++
		case <-ctx.Done():
			return
		}
	}
}

// tenantCounts counts requests in hand per tenant, up to a bound.
type tenantCounts struct {
	mu    sync.Mutex
	n     map[string]int
	limit int
}

func (c *tenantCounts) take(tenant string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	if c.n[tenant] >= c.limit {
		return false
	}
	c.n[tenant]++
	return true
}

func (c *tenantCounts) give(tenant string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[tenant]--; c.n[tenant] <= 0 {
		delete(c.n, tenant)
	}
}
