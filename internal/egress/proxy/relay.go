package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/brig-dev/brig/internal/egress/sniff"
	"github.com/brig-dev/brig/schema"
)

// relay replays what was read from the client to up, then copies both
// ways, each direction half-closed when it ends, until both have ended
// or ctx has. On plain HTTP the client's side goes through walkHTTP; a
// request it refuses ends the connection, with a 403 once the upstream
// has answered the requests before it.
func (c *client) relay(ctx context.Context, up net.Conn, t *target) {
	defer up.Close()
	stop := context.AfterFunc(ctx, func() { up.Close() })
	defer stop()

	var (
		mu       sync.Mutex
		refusing bool
	)
	down := make(chan struct{})
	go func() {
		defer close(down)
		_, _ = io.Copy(c.Conn, up)
		mu.Lock()
		defer mu.Unlock()
		if !refusing {
			closeWrite(c.Conn)
		}
	}()

	err := c.forward(up, t)
	var r *refusal
	if !errors.As(err, &r) {
		if err != nil {
			up.Close() // the client failed: the upstream has nothing more to say to it
		}
		closeWrite(up)
		<-down
		return
	}
	mu.Lock()
	refusing = true
	mu.Unlock()
	c.s.deny(r)
	closeWrite(up)
	select {
	case <-down:
		tell(c.Conn, styleHTTP, r)
	case <-time.After(c.p.wait.drain):
		up.Close()
		c.Close() // the client may not read: unblock the copy to it
		<-down
	}
}

// forward copies the client's bytes to up: the replayed ones, then the
// rest, walking plain HTTP request by request.
func (c *client) forward(up net.Conn, t *target) error {
	if _, err := up.Write(t.replay); err != nil {
		return err
	}
	if !t.http {
		_, err := io.Copy(up, c.br)
		return err
	}
	return c.walkHTTP(up, t)
}

// walkHTTP copies request after request to up, checking each head as the
// first was: Host must stay t.host (domain fronting would otherwise ride
// a checked connection), and each body must be framed so that the next
// head can be found.
func (c *client) walkHTTP(up io.Writer, t *target) error {
	f := t.body
	for {
		if err := copyBody(up, c.br, f); err != nil {
			if errors.Is(err, errFraming) {
				return refuse(t.host, t.port, schema.EgressProtocol, "%v", err)
			}
			return err
		}
		h, raw, err := sniff.ReadHTTPRequestHead(c.br, 0)
		if err != nil {
			if len(raw) == 0 && errors.Is(err, io.EOF) {
				return nil // the client is done
			}
			if r := headRefusal(t.host, t.port, err); r != nil {
				return r
			}
			return err
		}
		if f, err = checkHead(h, raw, t.host, t.port, t.hostPort); err != nil {
			return err
		}
		if _, err := up.Write(raw); err != nil {
			return err
		}
	}
}

// closeWrite half-closes c where it can: the peer reads EOF and may
// still answer.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}
