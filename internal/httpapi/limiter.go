package httpapi

import "sync"

// limiter bounds things in hand (requests, event streams): in all, and of
// one tenant. The two are taken apart: a request counts in all from its
// start, and for its tenant once its token says which that is.
type limiter struct {
	mu        sync.Mutex
	total     int
	perTenant map[string]int
	max       int
	maxTenant int
}

func newLimiter(max, maxTenant int) *limiter {
	return &limiter{perTenant: map[string]int{}, max: max, maxTenant: maxTenant}
}

// enter counts one more in all, unless max are in hand.
func (l *limiter) enter() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.max {
		return false
	}
	l.total++
	return true
}

func (l *limiter) leave() {
	l.mu.Lock()
	l.total--
	l.mu.Unlock()
}

// enterTenant counts one more of tenant, unless maxTenant are in hand.
func (l *limiter) enterTenant(tenant string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perTenant[tenant] >= l.maxTenant {
		return false
	}
	l.perTenant[tenant]++
	return true
}

func (l *limiter) leaveTenant(tenant string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perTenant[tenant]--; l.perTenant[tenant] <= 0 {
		delete(l.perTenant, tenant)
	}
}
