package gateway

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/gatewayproto"
)

// tokenBucket limits a session's request rate: it holds up to burst
// tokens, refilled at rate a second; each request takes one.
type tokenBucket struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newTokenBucket(rate, burst int, now time.Time) *tokenBucket {
	return &tokenBucket{rate: float64(rate), burst: float64(burst), tokens: float64(burst), last: now}
}

// take takes a token, reporting false when there is none.
func (b *tokenBucket) take(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(b.burst, b.tokens+d.Seconds()*b.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// quotaError is a call refused because it would go past one of the job's
// quotas; its message names the limit. It becomes a QuotaExceeded response.
type quotaError struct{ msg string }

func (e *quotaError) Error() string { return e.msg }

func quotaErr(format string, args ...any) error {
	return &quotaError{msg: fmt.Sprintf(format, args...)}
}

// overQuota tells the binding of a refusal for a quota or the rate, and
// returns resp.
func (s *session) overQuota(resp *gatewayproto.Response) *gatewayproto.Response {
	if s.b.OnQuotaExceeded != nil {
		s.b.OnQuotaExceeded(resp.Error)
	}
	return resp
}

// takeResource counts one dict or queue the job is about to create.
func (s *session) takeResource(kind, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.created >= s.q.Resources {
		return quotaErr("cannot create %s %s: a job may create at most %d dicts and queues (quota resources)",
			kind, name, s.q.Resources)
	}
	s.created++
	return nil
}

// takeChild counts one child job the job is about to start.
func (s *session) takeChild() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.children >= s.q.Calls {
		return quotaErr("a job may start at most %d child jobs (quota calls)", s.q.Calls)
	}
	s.children++
	return nil
}

// JetStream's refusals of a write to a full stream or bucket, and of a
// stream the server has no room for (nats-server's JSStreamStoreFailedF
// with ErrMaxBytes, ErrMaxMsgs or ErrMaxMsgsPerSubject; its
// JSInsufficientResourcesErr and JSStorageResourcesExceededErr).
const (
	jsStoreFailed          = 10077
	jsInsufficientRes      = 10023
	jsMemoryResExceeded    = 10028
	jsStorageResExceeded   = 10047
	jsMaxBytesExceeded     = "maximum bytes exceeded"
	jsMaxMessagesExceeded  = "maximum messages exceeded"
	jsMaxPerSubjectReached = "maximum messages per subject exceeded"
)

// storeRefusal turns JetStream's refusal to store a write into a
// quotaError naming the limit (what the resource was created with), or
// returns nil when err is something else.
func storeRefusal(err error, what string, maxBytes, maxMsgs int64, unit string) error {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return nil
	}
	switch {
	case apiErr.ErrorCode == jsStoreFailed && apiErr.Description == jsMaxBytesExceeded:
		return quotaErr("%s is full: it holds at most %d MiB", what, maxBytes>>20)
	case apiErr.ErrorCode == jsStoreFailed && (apiErr.Description == jsMaxMessagesExceeded || apiErr.Description == jsMaxPerSubjectReached):
		return quotaErr("%s is full: it holds at most %d %s", what, maxMsgs, unit)
	case apiErr.ErrorCode == jsInsufficientRes || apiErr.ErrorCode == jsMemoryResExceeded || apiErr.ErrorCode == jsStorageResExceeded:
		return quotaErr("%s cannot be created: the server has no room for it (%s)", what, apiErr.Description)
	}
	return nil
}
