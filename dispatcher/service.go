package dispatcher

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
)

// tenantService is the shape of the dispatchers' request services that a
// tenant's credential asks on <prefix><tenant> (status, functions;
// docs/design.md §10.3): the tenant is the subject's, the answer goes only
// to an inbox of that tenant, and at most cap(inHand) requests are in hand,
// each for at most budget; past that a request is answered busy at once.
type tenantService[R any] struct {
	name   string // for the log: "status", "functions"
	prefix string
	inHand chan struct{}
	budget time.Duration
	busy   func(tenant string) R
	serve  func(ctx context.Context, tenant string, data []byte) R
	answer func(reply string, r R)
}

// handler returns the service's message handler on d.
func (s tenantService[R]) handler(d *Dispatcher) nats.MsgHandler {
	return func(m *nats.Msg) {
		if !d.allowSubject(m.Subject, s.prefix) {
			return
		}
		tenant, ok := answerable(m.Subject, s.prefix, m.Reply)
		if !ok || m.Subject != s.prefix+tenant {
			d.log.Debug("ignoring a request whose reply subject is not an inbox of its tenant", "service", s.name, "subject", m.Subject, "reply", m.Reply)
			return
		}
		select {
		case s.inHand <- struct{}{}:
		default:
			s.answer(m.Reply, s.busy(tenant))
			return
		}
		go func() {
			defer func() { <-s.inHand }()
			ctx, cancel := context.WithTimeout(d.ctx, s.budget)
			defer cancel()
			s.answer(m.Reply, s.serve(ctx, tenant, m.Data))
		}()
	}
}
