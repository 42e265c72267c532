package dispatcher

import (
	"strings"
	"sync"
	"time"
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

// allowSubject applies allow to the tenant of a request subject
// (prefix + tenant + ...).
func (d *Dispatcher) allowSubject(subject, prefix string) bool {
	tenant, _, _ := strings.Cut(strings.TrimPrefix(subject, prefix), ".")
	if d.rate.allow(tenant, time.Now()) {
		return true
	}
	d.log.Debug("dropping a request past its tenant's rate", "subject", subject)
	return false
}
