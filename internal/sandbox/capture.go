package sandbox

import "sync"

// Capture keeps the first limit bytes written to it and remembers whether
// anything was cut: a job's stdout or stderr, capped at output_bytes
// (docs/design.md §5), or its init's own stderr.
type Capture struct {
	mu        sync.Mutex
	limit     int
	buf       []byte
	truncated bool
}

// NewCapture returns a Capture that keeps up to limit bytes.
func NewCapture(limit int64) *Capture { return &Capture{limit: int(limit)} }

// Add stores what fits and returns it.
func (c *Capture) Add(p []byte) []byte {
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

// Result is what was kept, and whether anything was cut.
func (c *Capture) Result() (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.buf), c.truncated
}
