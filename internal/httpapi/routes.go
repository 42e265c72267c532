package httpapi

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/brig-dev/brig/sdk"
)

// call is one request in hand: what a route's handler works with.
type call struct {
	w  http.ResponseWriter
	r  *http.Request
	rc *http.ResponseController
	// conn is the token's pooled connection, client its SDK client and
	// tenant its tenant (nil and "" on a route without a token).
	conn   *pooled
	client *sdk.Client
	tenant string
}

// extendWrite gives the response d more on top of the write timeout (a
// ?wait).
func (c *call) extendWrite(d, writeTimeout time.Duration) {
	_ = c.rc.SetWriteDeadline(time.Now().Add(d + writeTimeout))
}

// route is one method and path of the API.
type route struct {
	method, pattern string
	// public routes take no token; stream routes count as event streams,
	// not as requests, once their token is read.
	public, stream bool
	handle         func(ctx context.Context, c *call) error
}

// routes is the API; openapi.json documents exactly these
// (TestOpenAPIMatchesRoutes).
func (s *Server) routes() []route {
	return []route{
		{method: http.MethodPost, pattern: "/v1/jobs", handle: s.postJob},
		{method: http.MethodGet, pattern: "/v1/jobs/{id}", handle: s.getJob},
		{method: http.MethodGet, pattern: "/v1/jobs/{id}/events", handle: s.streamEvents, stream: true},
		{method: http.MethodPost, pattern: "/v1/jobs/{id}/cancel", handle: s.cancelJob},
		{method: http.MethodGet, pattern: "/v1/functions", handle: s.listFunctions},
		{method: http.MethodGet, pattern: "/v1/functions/{name}", handle: s.getFunction},
		{method: http.MethodPut, pattern: "/v1/functions/{name}", handle: s.putFunction},
		{method: http.MethodDelete, pattern: "/v1/functions/{name}", handle: s.deleteFunction},
		{method: http.MethodGet, pattern: "/v1/status", handle: s.status},
		{method: http.MethodGet, pattern: "/openapi.json", handle: serveOpenAPI, public: true},
	}
}

// Handler is the API's handler (Start serves it).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	allow := map[string][]string{}
	for _, rt := range s.routes() {
		mux.Handle(rt.method+" "+rt.pattern, s.wrap(rt))
		allow[rt.pattern] = append(allow[rt.pattern], rt.method)
	}
	for pattern, methods := range allow {
		if slices.Contains(methods, http.MethodGet) {
			methods = append(methods, http.MethodHead)
		}
		mux.Handle(pattern, methodNotAllowed(strings.Join(methods, ", ")))
	}
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		problem(http.StatusNotFound, TypeNotFound, "no route %s %s", r.Method, clipText(r.URL.Path)).write(w)
	}))
	return mux
}

func methodNotAllowed(allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := problem(http.StatusMethodNotAllowed, TypeMethodNotAllowed, "%s is not allowed here; allowed: %s", clipText(r.Method), allow)
		p.allow = allow
		p.write(w)
	})
}

// wrap runs a route's handler: bounds on requests in hand, the token, and
// the problem of a failed handler.
func (s *Server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.requests.enter() {
			busy("%d requests are in hand, the server's bound", s.cfg.MaxRequests).write(w)
			return
		}
		counted := true
		defer func() {
			if counted {
				s.requests.leave()
			}
		}()
		c := &call{w: w, r: r, rc: http.NewResponseController(w)}
		c.extendWrite(0, s.cfg.WriteTimeout)
		if !rt.public {
			release, p := s.authorize(c)
			if p != nil {
				p.write(w)
				return
			}
			defer release()
		}
		switch {
		case rt.stream:
			s.requests.leave() // a stream counts as one from here on
			counted = false
		case rt.public:
		case !s.requests.enterTenant(c.tenant):
			p := problem(http.StatusTooManyRequests, TypeQuotaExceeded, "tenant %s has %d requests in hand, the server's bound per tenant", c.tenant, s.cfg.MaxTenantRequests)
			p.retryAfter = 1
			p.write(w)
			return
		default:
			defer s.requests.leaveTenant(c.tenant)
		}
		if err := rt.handle(r.Context(), c); err != nil {
			p := asProblem(err, "request")
			if c.conn != nil {
				if rerr := c.conn.refused(); rerr != nil { // revoked meanwhile
					p = problem(http.StatusUnauthorized, TypeUnauthorized, "brig's NATS server refused the token: %v", rerr)
				}
			}
			p.write(w)
		}
	})
}

// authorize reads the request's token and takes its pooled connection.
func (s *Server) authorize(c *call) (release func(), _ *Problem) {
	token, p := bearer(c.r)
	if p != nil {
		return nil, p
	}
	ctx, cancel := context.WithTimeout(c.r.Context(), s.cfg.AskTimeout)
	defer cancel()
	conn, err := s.pool.acquire(ctx, token)
	if err != nil {
		return nil, asProblem(err, "connect")
	}
	c.conn, c.client, c.tenant = conn, conn.client, conn.tenant
	return func() { s.pool.release(conn) }, nil
}

// clipText cuts a client's text for a problem's detail.
func clipText(s string) string {
	const n = 128
	if len(s) > n {
		return strings.ToValidUTF8(s[:n], "") + "…"
	}
	return strings.ToValidUTF8(s, "?")
}
