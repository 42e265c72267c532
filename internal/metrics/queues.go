package metrics

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/schema"
)

// PollQueues sets m's queue depths from JetStream every `every` until ctx
// ends: for each pool, the pending and ack-pending jobs of its consumer
// on BRIG_WORK, and for the submission queue those of the dispatchers'
// consumer on BRIG_SUBMIT. A missing stream or consumer is not an error
// (the roles create them as they start); its series are dropped. log may
// be nil; every ≤ 0 means 2s. It returns at once when m is nil.
func PollQueues(ctx context.Context, js jetstream.JetStream, m *Dispatcher, every time.Duration, log *slog.Logger) {
	if m == nil {
		return
	}
	if every <= 0 {
		every = 2 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &queuePoller{js: js, m: m, log: log, pools: map[string]bool{}}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		p.poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

type queuePoller struct {
	js      jetstream.JetStream
	m       *Dispatcher
	log     *slog.Logger
	pools   map[string]bool // work pools with series, to drop when gone
	failing bool            // the last poll failed (warn once per outage)
}

func (p *queuePoller) poll(ctx context.Context) {
	err := errors.Join(p.pollSubmit(ctx), p.pollWork(ctx))
	switch {
	case err == nil || ctx.Err() != nil:
		p.failing = false
	case !p.failing:
		p.failing = true
		p.log.Warn("metrics: read queue depths", "err", err)
	default:
		p.log.Debug("metrics: read queue depths", "err", err)
	}
}

func (p *queuePoller) pollSubmit(ctx context.Context) error {
	c, err := p.js.Consumer(ctx, schema.StreamSubmit, bus.DispatcherConsumer)
	if missing(err) {
		p.log.Debug("metrics: no submission consumer yet", "err", err)
		p.m.forgetQueue("")
		return nil
	}
	if err != nil {
		return err
	}
	info := c.CachedInfo()
	p.m.SetQueueDepth("", int(info.NumPending), info.NumAckPending)
	return nil
}

func (p *queuePoller) pollWork(ctx context.Context) error {
	seen := map[string]bool{}
	defer func() {
		for pool := range p.pools {
			if !seen[pool] {
				p.m.forgetQueue(pool)
				delete(p.pools, pool)
			}
		}
	}()
	s, err := p.js.Stream(ctx, schema.StreamWork)
	if missing(err) {
		p.log.Debug("metrics: no work stream yet", "err", err)
		return nil
	}
	if err != nil {
		keepAll(seen, p.pools)
		return err
	}
	list := s.ListConsumers(ctx)
	for info := range list.Info() {
		pool, ok := strings.CutPrefix(info.Name, bus.WorkConsumer(""))
		if !ok || pool == "" {
			continue
		}
		seen[pool], p.pools[pool] = true, true
		p.m.SetQueueDepth(pool, int(info.NumPending), info.NumAckPending)
	}
	if err := list.Err(); err != nil {
		keepAll(seen, p.pools) // a partial listing: keep what it missed
		return err
	}
	return nil
}

// keepAll marks every known pool seen, so that a failed read keeps the
// last values rather than dropping them.
func keepAll(seen, pools map[string]bool) {
	for pool := range pools {
		seen[pool] = true
	}
}

func missing(err error) bool {
	return errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrConsumerNotFound)
}
