package worker

import "sync"

// capture keeps the first limit bytes written to it and remembers whether
// anything was cut.
type capture struct {
	mu        sync.Mutex
	limit     int
	buf       []byte
	truncated bool
}

func newCapture(limit int64) *capture { return &capture{limit: int(limit)} }

// add stores what fits and returns it.
func (c *capture) add(p []byte) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	room := c.limit - len(c.buf)
	if len(p) > room {
		c.truncated = true
		p = p[:max(room, 0)]
	}
	c.buf = append(c.buf, p...)
	return p
}

func (c *capture) result() (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.buf), c.truncated
}
