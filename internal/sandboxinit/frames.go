//go:build linux

package sandboxinit

import (
	"io"
	"sync"

	"github.com/brig-dev/brig/internal/initproto"
)

// frameWriter serialises frames onto the container's stdout.
type frameWriter struct {
	mu sync.Mutex
	w  io.Writer
	f  *initproto.Framer
}

func (f *frameWriter) frame(typ byte, p []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.f.WriteFrame(f.w, typ, p)
}

// forward copies r into frames of typ until limit+1 bytes have gone out,
// then drains r so that the job never blocks on a full pipe.
func (f *frameWriter) forward(typ byte, r io.Reader, limit int64) {
	buf := make([]byte, initproto.MaxChunk)
	left := limit + 1
	for {
		n, err := r.Read(buf)
		if n > 0 && left > 0 {
			chunk := buf[:min(int64(n), left)]
			left -= int64(len(chunk))
			if f.frame(typ, chunk) != nil {
				left = 0 // the worker is gone; keep draining
			}
		}
		if err != nil {
			return
		}
	}
}

// writeExit sends the Exit frame, encoded so that it fits its cap and the
// result's bytes arrive as the job wrote them.
func (f *frameWriter) writeExit(e *initproto.Exit) error {
	data, err := initproto.EncodeExit(e)
	if err != nil {
		return err
	}
	return f.frame(initproto.FrameExit, data)
}
