package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"
)

// maxAfter bounds Last-Event-ID and ?after: no job has more events.
const maxAfter = 1 << 31

// streamEvents serves a job's events as Server-Sent Events: GET
// /v1/jobs/{id}/events. It replays them from the first (or after
// Last-Event-ID / ?after), follows, and ends after the terminal one.
func (s *Server) streamEvents(ctx context.Context, c *call) error {
	id, p := jobIDOf(c.r)
	if p != nil {
		return p
	}
	after, p := lastEventID(c.r)
	if p != nil {
		return p
	}
	f, err := s.hub.attach(ctx, c, id)
	if err != nil {
		return err
	}
	defer s.hub.detach(c.tenant, f)
	h := c.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	c.w.WriteHeader(http.StatusOK)
	if !s.send(c, nil) {
		return nil
	}
	s.follow(ctx, c, f, after)
	return nil
}

// follow writes the job's frames after position after until its last, the
// client goes away or stalls, or the server stops.
func (s *Server) follow(ctx context.Context, c *call, f *followed, after int) {
	keepalive := time.NewTicker(s.cfg.Keepalive)
	defer keepalive.Stop()
	for {
		frames, done, failed, wake := f.since(after)
		for _, frame := range frames {
			if !s.send(c, frame) {
				return
			}
			after++
		}
		if done && len(frames) == 0 {
			if failed != nil {
				s.send(c, failed)
			}
			return
		}
		if len(frames) > 0 {
			continue // done is read again with the frames that came
		}
		select {
		case <-wake:
		case <-keepalive.C:
			if !s.send(c, []byte(": keepalive\n\n")) {
				return
			}
		case <-ctx.Done():
			return
		case <-s.stopping:
			return
		}
	}
}

// send writes and flushes one frame (nil: only flush) within
// StreamWriteTimeout; a client that takes longer is dropped.
func (s *Server) send(c *call, frame []byte) bool {
	_ = c.rc.SetWriteDeadline(time.Now().Add(s.cfg.StreamWriteTimeout))
	if frame != nil {
		if _, err := c.w.Write(frame); err != nil {
			return false
		}
	}
	return c.rc.Flush() == nil
}

// lastEventID reads where a resumed stream starts: the Last-Event-ID
// header, else ?after; 0 (from the first event) when neither is given.
func lastEventID(r *http.Request) (int, *Problem) {
	field, v := "Last-Event-ID", r.Header.Get("Last-Event-ID")
	if v == "" {
		field, v = "after", r.URL.Query().Get("after")
	}
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > maxAfter {
		return 0, invalidRequest(field, "%s %q: a whole number from 0 to %d", field, clipText(v), maxAfter)
	}
	return n, nil
}
