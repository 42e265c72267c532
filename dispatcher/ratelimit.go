package dispatcher

import (
	"strings"
	"sync"
	"time"

	"github.com/brig-dev/brig/schema"
)

// Bounds of the requests a tenant's clients send the dispatchers: cancel,
// replay and status (docs/design.md §13.7).
const (
	// TenantRequestRate and TenantRequestBurst bound one tenant's requests
	// to one dispatcher: a token bucket of TenantRequestBurst refilled at
	// TenantRequestRate a second. A request past it is dropped without an
	// answer, so a tenant that floods the dispatchers costs them the
	// reading of its requests and nothing else: no answer, no lookup, no
	// place among the requests in hand that other tenants need.
	TenantRequestRate  = 500
	TenantRequestBurst = 1000
)

// tenantRate is the token buckets of the tenants that sent requests; a
// client can only send on its own tenant's subjects, so there are at most
// as many buckets as tenants.
type tenantRate struct {
	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// allow takes one token of tenant's bucket at now.
func (r *tenantRate) allow(tenant string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.buckets == nil {
		r.buckets = map[string]*bucket{}
	}
	b := r.buckets[tenant]
	if b == nil {
		b = &bucket{tokens: TenantRequestBurst, last: now}
		r.buckets[tenant] = b
	}
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(TenantRequestBurst, b.tokens+d.Seconds()*TenantRequestRate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// subjectTenant is the tenant token of a request subject
// prefix + tenant [+ "." + ...].
func subjectTenant(subject, prefix string) string {
	tenant, _, _ := strings.Cut(strings.TrimPrefix(subject, prefix), ".")
	return tenant
}

// answerable reports whether reply is a literal inbox of the tenant of the
// request subject: the only place a dispatcher answers a client's request
// (docs/design.md §10.2). Anywhere else, answering would publish with the
// dispatcher's rights where the client says, or show one tenant's job to
// another.
func answerable(subject, prefix, reply string) (tenant string, ok bool) {
	tenant = subjectTenant(subject, prefix)
	return tenant, schema.IsInboxOf(tenant, reply)
}

// allowSubject applies allow to the tenant of a request subject
// (prefix + tenant + ...).
func (d *Dispatcher) allowSubject(subject, prefix string) bool {
	if d.rate.allow(subjectTenant(subject, prefix), time.Now()) {
		return true
	}
	d.log.Debug("dropping a request past its tenant's rate", "subject", subject)
	return false
}
