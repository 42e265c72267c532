package bench

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// maxClasses bounds the subject classes a counter keeps apart; messages
// of any further class count under otherClass.
const (
	maxClasses = 64
	otherClass = "other"
)

// classify names the class of a subject that a message-per-job breakdown
// counts it under: brig's own subjects by their first two tokens
// (brig.submit, brig.events, …); the JetStream API by its verb
// ($JS.API.CONSUMER.MSG.NEXT, $JS.API.DIRECT.GET, …), acks by stream
// ($JS.ACK.BRIG_WORK), KV operations by bucket ($KV.BRIG_WORKERS); every
// inbox (replies, and JetStream's deliveries to pull requests) as _INBOX;
// anything else by its first token.
func classify(subject string) string {
	tokens := strings.Split(subject, ".")
	switch {
	case len(tokens) < 2:
		return tokens[0]
	case tokens[0] == "$JS" && tokens[1] == "API":
		return strings.Join(apiVerb(tokens), ".")
	case tokens[0] == "$JS" && tokens[1] == "ACK" && len(tokens) > 2:
		return strings.Join(tokens[:3], ".")
	case tokens[0] == "$JS", tokens[0] == "$KV", tokens[0] == "brig":
		return strings.Join(tokens[:2], ".")
	case strings.HasPrefix(tokens[0], "_INBOX"):
		return "_INBOX"
	}
	return tokens[0]
}

// apiVerb is $JS.API and the verb tokens after it (at most three, all
// capital letters: stream and consumer names that follow hold '_' or other
// characters in brig, as BRIG_WORK and KV_BRIG_WORKERS do).
func apiVerb(tokens []string) []string {
	n := 2
	for n < len(tokens) && n < 5 && isVerb(tokens[n]) {
		n++
	}
	return tokens[:n]
}

func isVerb(t string) bool {
	for _, c := range t {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return t != ""
}

// isRequest reports whether a message waits for an answer: its reply
// subject is an inbox (JetStream's deliveries carry $JS.ACK ones instead).
func isRequest(reply string) bool { return strings.HasPrefix(reply, "_INBOX") }

// tally is what a counter saw between two marks.
type tally struct {
	Total, Requests int
	ByClass         map[string]int
	Elapsed         time.Duration
}

// msgCounter counts every message of the account that its connection may
// subscribe to (an admin's sees all of brig's), by class, between marks.
type msgCounter struct {
	nc     *nats.Conn
	sub    *nats.Subscription
	marker string

	mu      sync.Mutex
	cur     tally
	since   time.Time
	markers chan tally
}

// startCounter subscribes to every subject on nc.
func startCounter(nc *nats.Conn) (*msgCounter, error) {
	c := &msgCounter{nc: nc, marker: "brig.bench.mark." + randomHex(8), markers: make(chan tally, 1)}
	c.reset(time.Now())
	sub, err := subscribeAll(nc, ">", c.onMsg)
	if err != nil {
		return nil, fmt.Errorf("count messages: subscribe to >: %w", err)
	}
	c.sub = sub
	return c, nil
}

func (c *msgCounter) stop() { _ = c.sub.Unsubscribe() }

func (c *msgCounter) reset(now time.Time) {
	c.cur, c.since = tally{ByClass: map[string]int{}}, now
}

func (c *msgCounter) onMsg(m *nats.Msg) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m.Subject == c.marker {
		now := time.Now()
		t := c.cur
		t.Elapsed = now.Sub(c.since)
		c.reset(now)
		select { // a mark whose wait ended already is dropped
		case c.markers <- t:
		default:
		}
		return
	}
	c.add(m.Subject, m.Reply)
}

// add counts one message; c.mu is held.
func (c *msgCounter) add(subject, reply string) {
	class := classify(subject)
	if _, ok := c.cur.ByClass[class]; !ok && len(c.cur.ByClass) >= maxClasses {
		class = otherClass
	}
	c.cur.ByClass[class]++
	c.cur.Total++
	if isRequest(reply) {
		c.cur.Requests++
	}
}

// mark returns what the counter saw since the last mark (or its start)
// and begins anew. It publishes a marker on the counter's connection and
// waits for it to come back: the server delivers to one subscription in
// order, so every message it routed before the marker has been counted.
func (c *msgCounter) mark(ctx context.Context) (tally, error) {
	if err := c.nc.Publish(c.marker, nil); err != nil {
		return tally{}, fmt.Errorf("count messages: mark: %w", err)
	}
	select {
	case t := <-c.markers:
		return t, nil
	case <-ctx.Done():
		return tally{}, fmt.Errorf("count messages: mark: %w", ctx.Err())
	}
}
