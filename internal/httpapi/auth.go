package httpapi

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/internal/creds"
	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// The token pool (docs/design.md §11). A token is a tenant's NATS
// credential (creds.ParseToken); the server opens one NATS connection per
// token, with that credential, and keeps it for the token's next
// requests: NATS alone decides what the token may do. Tokens are keyed by
// their credential's fingerprint (creds.Credential.Fingerprint), so the
// pool holds no token as a map key, and every spelling of one credential
// shares its one connection: a tenant holds at most a connection per
// credential, and at most MaxTenantClients of them.

// tokenKey is a credential's fingerprint.
type tokenKey [sha256.Size]byte

// pooled is one token's connection.
type pooled struct {
	ready  chan struct{} // closed once the connection is made or failed
	dead   chan struct{} // closed when the made connection closes
	err    error
	nc     *nats.Conn
	client *sdk.Client
	tenant string

	refs     int // requests and followed jobs using it (pool.mu)
	lastUsed time.Time
	gone     bool // out of the pool: closed when refs reaches 0
}

// pool holds the connections of the tokens in use.
type pool struct {
	cfg        Config
	mu         sync.Mutex
	conns      map[tokenKey]*pooled
	refused    map[tokenKey]time.Time // until when a refused token is answered 401 at once
	connecting chan struct{}
	closed     bool
}

func newPool(cfg Config) *pool {
	return &pool{cfg: cfg, conns: map[tokenKey]*pooled{}, refused: map[tokenKey]time.Time{},
		connecting: make(chan struct{}, cfg.MaxConnecting)}
}

// bearer reads the request's token.
func bearer(r *http.Request) (string, *Problem) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if h == "" {
		return "", problem(http.StatusUnauthorized, TypeUnauthorized, "no Authorization header: send Authorization: Bearer <token>")
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return "", problem(http.StatusUnauthorized, TypeUnauthorized, "the Authorization header is not Bearer <token>")
	}
	return strings.TrimSpace(token), nil
}

// acquire returns the token's connection, opening it when the pool has
// none; release it when done. It answers 401 for a malformed token or one
// NATS refuses, 403 for a credential of no tenant.
func (p *pool) acquire(ctx context.Context, token string) (*pooled, error) {
	cred, err := creds.ParseToken(token)
	if err != nil {
		return nil, problem(http.StatusUnauthorized, TypeUnauthorized, "%v", err)
	}
	if cred.Role != "client" || cred.Tenant == "" || !schema.ValidTenant(cred.Tenant) {
		return nil, problem(http.StatusForbidden, TypeForbidden,
			"the token is a credential of no tenant (role %q): the HTTP API serves tenants", cred.Role)
	}
	key := tokenKey(cred.Fingerprint)
	c, fresh, err := p.take(key, cred.Tenant)
	if err != nil {
		return nil, err
	}
	if fresh {
		p.connect(ctx, key, c, cred)
	}
	select {
	case <-c.ready:
	case <-ctx.Done():
		p.release(c)
		return nil, ctx.Err()
	}
	if c.err != nil {
		p.release(c)
		return nil, c.err
	}
	return c, nil
}

// take finds the token's connection, or makes room for a fresh one of
// tenant's.
func (p *pool) take(key tokenKey, tenant string) (_ *pooled, fresh bool, _ error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, false, busy("the server is stopping")
	}
	if until, ok := p.refused[key]; ok && time.Now().Before(until) {
		return nil, false, problem(http.StatusUnauthorized, TypeUnauthorized, "brig's NATS server refused the token")
	}
	if c, ok := p.conns[key]; ok && !c.broken() {
		c.refs++
		return c, false, nil
	} else if ok {
		p.drop(key, c)
	}
	if p.tenantConns(tenant) >= p.cfg.MaxTenantClients && !p.evictIdle(tenant) {
		q := problem(http.StatusTooManyRequests, TypeQuotaExceeded,
			"tenant %s has %d credentials in use at once, the server's bound per tenant", tenant, p.cfg.MaxTenantClients)
		q.retryAfter = 1
		return nil, false, q
	}
	if len(p.conns) >= p.cfg.MaxClients && !p.evictIdle("") {
		return nil, false, busy("%d tokens are in use at once, the server's bound", p.cfg.MaxClients)
	}
	c := &pooled{ready: make(chan struct{}), dead: make(chan struct{}), refs: 1, tenant: tenant}
	p.conns[key] = c
	return c, true, nil
}

// broken reports whether a made connection is closed, or NATS refused
// its credential (revoked: it is closing); the next request opens a new
// one, which gets NATS's answer. p.mu held.
func (c *pooled) broken() bool {
	select {
	case <-c.ready:
		return c.err != nil || c.nc.IsClosed() || c.refused() != nil
	default:
		return false
	}
}

// refused is NATS's refusal of the made connection's credential (revoked,
// expired), nil while NATS takes it. A request that failed on a refused
// connection is 401, not an Infrastructure failure.
func (c *pooled) refused() error {
	if c.nc == nil || c.nc.IsConnected() {
		return nil
	}
	if err := c.nc.LastError(); err != nil && authRefused(err) {
		return err
	}
	return nil
}

// tenantConns counts tenant's pooled connections. p.mu held.
func (p *pool) tenantConns(tenant string) int {
	n := 0
	for _, c := range p.conns {
		if c.tenant == tenant {
			n++
		}
	}
	return n
}

// evictIdle closes the least recently used idle connection (of tenant,
// unless tenant is ""). p.mu held.
func (p *pool) evictIdle(tenant string) bool {
	var oldest *pooled
	var oldestKey tokenKey
	for k, c := range p.conns {
		if tenant != "" && c.tenant != tenant {
			continue
		}
		if c.refs == 0 && (oldest == nil || c.lastUsed.Before(oldest.lastUsed)) {
			oldest, oldestKey = c, k
		}
	}
	if oldest == nil {
		return false
	}
	p.drop(oldestKey, oldest)
	return true
}

// drop takes a connection out of the pool and closes it once no request
// uses it. p.mu held.
func (p *pool) drop(key tokenKey, c *pooled) {
	if p.conns[key] == c {
		delete(p.conns, key)
	}
	c.gone = true
	if c.refs == 0 {
		c.close()
	}
}

func (c *pooled) close() {
	select {
	case <-c.ready:
		if c.client != nil {
			c.client.Close()
			c.nc.Close()
		}
	default: // still connecting: connect closes it
	}
}

// connect opens the token's connection (at most MaxConnecting at once).
func (p *pool) connect(ctx context.Context, key tokenKey, c *pooled, cred creds.Credential) {
	defer close(c.ready)
	select {
	case p.connecting <- struct{}{}:
		defer func() { <-p.connecting }()
	case <-ctx.Done():
		c.err = busy("too many connections to brig being opened at once")
		p.forget(key, c, false)
		return
	}
	opts := append([]nats.Option{nats.Name("brig-http " + cred.Tenant), nats.UserJWTAndSeed(cred.JWT, string(cred.Seed)),
		nats.CustomInboxPrefix(schema.InboxPrefix(cred.Tenant)), nats.Timeout(p.cfg.ConnectTimeout)}, p.cfg.NATSOptions...)
	// Last, so that no option of NATSOptions replaces it: the hub ends
	// the streams that a closed connection followed (hub.pump).
	opts = append(opts, nats.ClosedHandler(func(*nats.Conn) { close(c.dead) }))
	nc, err := nats.Connect(p.cfg.NATSURL, opts...)
	if err != nil {
		refused := authRefused(err)
		if refused {
			c.err = problem(http.StatusUnauthorized, TypeUnauthorized, "brig's NATS server refused the token: %v", err)
		} else {
			c.err = problem(http.StatusBadGateway, TypeInfrastructure, "connect to brig's NATS server: %v", err)
		}
		p.forget(key, c, refused)
		return
	}
	cl, err := sdk.New(nc, sdk.WithTenant(cred.Tenant), sdk.WithLogger(p.cfg.Logger))
	if err != nil {
		nc.Close()
		c.err = problem(http.StatusBadGateway, TypeInfrastructure, "%v", err)
		p.forget(key, c, false)
		return
	}
	c.nc, c.client = nc, cl
	p.mu.Lock()
	stale := p.closed || p.conns[key] != c
	p.mu.Unlock()
	if stale { // the pool stopped, or evicted it, meanwhile
		cl.Close()
		nc.Close()
		c.err = busy("the server is stopping")
	}
}

// authRefused reports whether NATS refused the credential itself.
func authRefused(err error) bool {
	return errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) ||
		errors.Is(err, nats.ErrAuthRevoked) || errors.Is(err, nats.ErrAccountAuthExpired) ||
		strings.Contains(strings.ToLower(err.Error()), "authorization violation")
}

// forget takes a failed connection out of the pool; a refused token is
// answered 401 at once for RefusedFor.
func (p *pool) forget(key tokenKey, c *pooled, refused bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns[key] == c {
		delete(p.conns, key)
	}
	if !refused {
		return
	}
	if len(p.refused) >= p.cfg.MaxRefused {
		p.pruneRefused(time.Now(), true)
	}
	p.refused[key] = time.Now().Add(p.cfg.RefusedFor)
}

// pruneRefused forgets expired refusals; all of them when full is set and
// none expired. p.mu held.
func (p *pool) pruneRefused(now time.Time, full bool) {
	for k, until := range p.refused {
		if now.After(until) {
			delete(p.refused, k)
		}
	}
	if full && len(p.refused) >= p.cfg.MaxRefused {
		clear(p.refused)
	}
}

// retain adds a user of c (a followed job).
func (p *pool) retain(c *pooled) {
	p.mu.Lock()
	c.refs++
	p.mu.Unlock()
}

// release ends one use of c.
func (p *pool) release(c *pooled) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c.refs--
	c.lastUsed = time.Now()
	if c.refs == 0 && c.gone {
		c.close()
	}
}

// expire closes connections idle for ClientIdle and forgets expired
// refusals; run it every so often.
func (p *pool) expire(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, c := range p.conns {
		if c.refs == 0 && now.Sub(c.lastUsed) > p.cfg.ClientIdle {
			p.drop(k, c)
		}
	}
	p.pruneRefused(now, false)
}

// size is the number of pooled connections.
func (p *pool) size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// close closes every connection no request uses; the others close when
// their last user releases them.
func (p *pool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for k, c := range p.conns {
		p.drop(k, c)
	}
}
