package httpapi

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/schema"
)

// Defaults of Config (docs/design.md §11 lists every bound).
const (
	DefaultListen = "127.0.0.1:4280"
	// DefaultMaxRequests bounds the requests in hand at once, event
	// streams aside; past it: 503 Busy.
	DefaultMaxRequests = 1024
	// DefaultMaxTenantRequests bounds one tenant's requests in hand, event
	// streams aside; past it: 429 QuotaExceeded.
	DefaultMaxTenantRequests = 256
	// DefaultMaxStreams and DefaultMaxTenantStreams bound the open event
	// streams, in all and of one tenant; past them: 503 Busy.
	DefaultMaxStreams       = 4096
	DefaultMaxTenantStreams = 1024
	// DefaultMaxClients bounds the pooled NATS connections (one per credential
	// in use); past it the least recently used idle one is closed, and
	// with none idle: 503 Busy.
	DefaultMaxClients = 1024
	// DefaultMaxTenantClients bounds one tenant's pooled connections (its
	// credentials in use: every spelling of one credential shares one);
	// past it the tenant's least recently used idle one is closed, and
	// with none idle: 429 QuotaExceeded. So no tenant holds all of
	// DefaultMaxClients.
	DefaultMaxTenantClients = 16
	// DefaultClientIdle is how long a pooled connection stays unused
	// before it is closed.
	DefaultClientIdle = 5 * time.Minute
	// DefaultMaxConnecting bounds the NATS connections being opened at
	// once: a flood of new tokens costs the server a fixed number of
	// handshakes.
	DefaultMaxConnecting = 16
	// DefaultRefusedFor is how long a token NATS refused is answered 401
	// without asking NATS again; DefaultMaxRefused bounds how many are
	// kept (past it the oldest are forgotten).
	DefaultRefusedFor = 30 * time.Second
	DefaultMaxRefused = 4096
	// DefaultConnectTimeout bounds opening one NATS connection.
	DefaultConnectTimeout = 5 * time.Second
	// DefaultReadHeaderTimeout bounds a request's line and headers (a
	// slowloris is cut off), DefaultMaxHeaderBytes their size.
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultMaxHeaderBytes    = 16 << 10
	// DefaultBodyTimeout bounds reading a request's body: 512 KiB in 10 s
	// is 52 KB/s; a slower body is answered 408 and the connection closed.
	DefaultBodyTimeout = 10 * time.Second
	// DefaultWriteTimeout bounds writing a response, on top of ?wait.
	DefaultWriteTimeout = 30 * time.Second
	// DefaultAskTimeout bounds one request's questions to brig (a submit,
	// a peek, a cancel, status, functions).
	DefaultAskTimeout = 30 * time.Second
	// DefaultIdleTimeout closes a kept-alive connection that sends no new
	// request.
	DefaultIdleTimeout = 2 * time.Minute
	// MaxWait bounds ?wait.
	MaxWait = 15 * time.Minute
	// DefaultStreamWriteTimeout drops an event-stream client that takes
	// longer than this to take one event (a stalled reader).
	DefaultStreamWriteTimeout = 30 * time.Second
	// DefaultKeepalive is how often an event stream sends ": keepalive".
	DefaultKeepalive = 15 * time.Second
	// DefaultMaxJobBuffer bounds the events the hub keeps of one job
	// (encoded frames). A job's own caps keep it far lower: 1 MiB of each
	// output stream and a terminal event of at most max_payload per
	// attempt. Past it the job's streams end with an error event.
	DefaultMaxJobBuffer = 64 << 20
	// DefaultMaxBuffer bounds the hub's events of every job together; past
	// it a new stream of a job not yet followed is answered 503 Busy.
	DefaultMaxBuffer = 512 << 20
)

// Config of a Server. Zero fields take the defaults above.
type Config struct {
	// Listen is the HTTP address (default DefaultListen; port 0 picks one).
	Listen string
	// NATSURL is brig's NATS server (comma-separated for a cluster).
	// Required.
	NATSURL string
	// NATSOptions are added to every connection the server opens for a
	// token (nats.RootCAs for a server with its own CA, ...).
	NATSOptions []nats.Option
	// Logger (default: discard).
	Logger *slog.Logger
	// MaxJobBytes bounds a submitted job's body (default
	// schema.DefaultMaxJobBytes, the dispatchers' own default).
	MaxJobBytes int

	MaxRequests, MaxTenantRequests int
	MaxStreams, MaxTenantStreams   int
	MaxClients, MaxConnecting      int
	MaxTenantClients               int
	MaxRefused                     int
	ClientIdle, RefusedFor         time.Duration
	ConnectTimeout                 time.Duration
	ReadHeaderTimeout              time.Duration
	MaxHeaderBytes                 int
	BodyTimeout, WriteTimeout      time.Duration
	AskTimeout, IdleTimeout        time.Duration
	StreamWriteTimeout, Keepalive  time.Duration
	MaxJobBuffer, MaxBuffer        int64
}

// WithDefaults fills in the zero fields.
func (c Config) WithDefaults() Config {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	orDefault(&c.MaxJobBytes, schema.DefaultMaxJobBytes)
	orDefault(&c.MaxRequests, DefaultMaxRequests)
	orDefault(&c.MaxTenantRequests, DefaultMaxTenantRequests)
	orDefault(&c.MaxStreams, DefaultMaxStreams)
	orDefault(&c.MaxTenantStreams, DefaultMaxTenantStreams)
	orDefault(&c.MaxClients, DefaultMaxClients)
	orDefault(&c.MaxConnecting, DefaultMaxConnecting)
	orDefault(&c.MaxTenantClients, DefaultMaxTenantClients)
	orDefault(&c.MaxRefused, DefaultMaxRefused)
	orDefault(&c.MaxHeaderBytes, DefaultMaxHeaderBytes)
	orDefault(&c.ClientIdle, DefaultClientIdle)
	orDefault(&c.RefusedFor, DefaultRefusedFor)
	orDefault(&c.ConnectTimeout, DefaultConnectTimeout)
	orDefault(&c.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	orDefault(&c.BodyTimeout, DefaultBodyTimeout)
	orDefault(&c.WriteTimeout, DefaultWriteTimeout)
	orDefault(&c.AskTimeout, DefaultAskTimeout)
	orDefault(&c.IdleTimeout, DefaultIdleTimeout)
	orDefault(&c.StreamWriteTimeout, DefaultStreamWriteTimeout)
	orDefault(&c.Keepalive, DefaultKeepalive)
	orDefault(&c.MaxJobBuffer, DefaultMaxJobBuffer)
	orDefault(&c.MaxBuffer, DefaultMaxBuffer)
	return c
}

// orDefault sets *p to v when it is zero.
func orDefault[T int | int64 | time.Duration](p *T, v T) {
	if *p == 0 {
		*p = v
	}
}

func (c Config) validate() error {
	if c.NATSURL == "" {
		return errors.New("httpapi: NATSURL is required")
	}
	for name, v := range map[string]int{"MaxJobBytes": c.MaxJobBytes, "MaxRequests": c.MaxRequests,
		"MaxTenantRequests": c.MaxTenantRequests, "MaxStreams": c.MaxStreams, "MaxTenantStreams": c.MaxTenantStreams,
		"MaxClients": c.MaxClients, "MaxConnecting": c.MaxConnecting, "MaxTenantClients": c.MaxTenantClients, "MaxRefused": c.MaxRefused, "MaxHeaderBytes": c.MaxHeaderBytes} {
		if v < 0 {
			return fmt.Errorf("httpapi: %s is negative (%d)", name, v)
		}
	}
	for name, v := range map[string]time.Duration{"ClientIdle": c.ClientIdle, "RefusedFor": c.RefusedFor,
		"ConnectTimeout": c.ConnectTimeout, "ReadHeaderTimeout": c.ReadHeaderTimeout, "BodyTimeout": c.BodyTimeout,
		"WriteTimeout": c.WriteTimeout, "AskTimeout": c.AskTimeout, "IdleTimeout": c.IdleTimeout,
		"StreamWriteTimeout": c.StreamWriteTimeout, "Keepalive": c.Keepalive} {
		if v < 0 {
			return fmt.Errorf("httpapi: %s is negative (%s)", name, v)
		}
	}
	if c.MaxJobBuffer < 0 || c.MaxBuffer < c.MaxJobBuffer {
		return fmt.Errorf("httpapi: MaxBuffer (%d) must be at least MaxJobBuffer (%d) >= 0", c.MaxBuffer, c.MaxJobBuffer)
	}
	return nil
}
