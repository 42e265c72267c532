package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Server serves the HTTP API.
type Server struct {
	cfg  Config
	log  *slog.Logger
	pool *pool
	hub  *hub
	http *http.Server

	requests *limiter // requests in hand, event streams aside

	mu       sync.Mutex
	ln       net.Listener
	started  bool
	stopped  bool
	stopping chan struct{} // closed when Stop begins: event streams end
	served   chan struct{} // closed when Serve returned
	janitor  context.CancelFunc
}

// New validates cfg and returns a Server ready to Start.
func New(cfg Config) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("role", "http"), pool: newPool(cfg),
		requests: newLimiter(cfg.MaxRequests, cfg.MaxTenantRequests),
		stopping: make(chan struct{}), served: make(chan struct{})}
	s.hub = newHub(cfg, s.pool, s.log)
	s.http = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		IdleTimeout:       cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		// No ReadTimeout or WriteTimeout: they would cut event streams and
		// ?wait; each request sets its own deadlines (deadlines.go).
	}
	return s, nil
}

// Start listens and serves in the background. Safe to call twice.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return errors.New("httpapi: server stopped")
	}
	if s.started {
		return nil
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("httpapi: listen %s: %w", s.cfg.Listen, err)
	}
	s.ln, s.started = ln, true
	jctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.janitor = cancel
	go s.expireClients(jctx)
	go func() {
		defer close(s.served)
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("serve HTTP", "err", err)
		}
	}()
	return nil
}

// Addr is the address the server listens on (after Start).
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// URL is http://HOST:PORT of the listener (after Start).
func (s *Server) URL() string {
	if a := s.Addr(); a != nil {
		return "http://" + a.String()
	}
	return ""
}

// Stop ends event streams, lets requests in hand finish until ctx ends
// (then closes their connections), and closes the pooled NATS
// connections. Safe to call twice.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	started := s.started
	close(s.stopping)
	s.mu.Unlock()
	var err error
	if started {
		s.janitor()
		if err = s.http.Shutdown(ctx); err != nil {
			err = errors.Join(err, s.http.Close())
		}
		<-s.served
	}
	s.hub.close()
	s.pool.close()
	return err
}

// expireClients closes idle pooled connections, every ClientIdle/4.
func (s *Server) expireClients(ctx context.Context) {
	t := time.NewTicker(max(s.cfg.ClientIdle/4, time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.pool.expire(now)
		}
	}
}

// Stats is what the server has in hand.
type Stats struct {
	// Clients is the pooled NATS connections (tokens in use).
	Clients int
	// FollowedJobs is the jobs the event-stream hub follows, Streams the
	// event streams open, BufferBytes their events' bytes in memory.
	FollowedJobs, Streams int
	BufferBytes           int64
}

// Stats returns what the server has in hand now.
func (s *Server) Stats() Stats {
	s.hub.streams.mu.Lock()
	streams := s.hub.streams.total
	s.hub.streams.mu.Unlock()
	return Stats{Clients: s.pool.size(), FollowedJobs: s.hub.followedJobs(), Streams: streams, BufferBytes: s.hub.size.Load()}
}
