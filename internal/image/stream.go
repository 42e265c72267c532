package image

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"
)

// progressInterval is the least time between two "streamed N MB" lines.
const progressInterval = time.Second

// syncWriter serialises progress lines written by mmdebstrap's stderr
// reader, the HTTP transport reading the rootfs stream, and Build itself.
// After close, writes are dropped: a transport goroutine that is still
// winding down must not write to the caller's writer once Build returned.
type syncWriter struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return len(p), nil
	}
	return w.w.Write(p)
}

func (w *syncWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
}

// process is a started command whose Wait runs in the background.
type process struct {
	done chan struct{}
	err  error // valid once done is closed
}

func waitAsync(cmd *exec.Cmd) *process {
	p := &process{done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p
}

func (p *process) wait() error {
	<-p.done
	return p.err
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// rootfsStream is the body of the image import: the read end of
// mmdebstrap's stdout. It reports how much has gone through, and it only
// returns io.EOF once mmdebstrap has exited successfully. Otherwise the
// import would take a rootfs cut short by a failed build for a whole one;
// returning an error instead aborts the upload, and the daemon discards it.
type rootfsStream struct {
	r    *os.File
	proc *process
	out  io.Writer

	n        int64
	reported time.Time
}

func (s *rootfsStream) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 && s.n == 0 {
		s.reported = time.Now() // first report one interval into the stream
	}
	s.n += int64(n)
	if n > 0 && time.Since(s.reported) >= progressInterval {
		s.report()
	}
	if err == io.EOF {
		s.report()
		if werr := s.proc.wait(); werr != nil {
			return n, fmt.Errorf("rootfs stream incomplete: mmdebstrap failed: %w", werr)
		}
	}
	return n, err
}

func (s *rootfsStream) report() {
	s.reported = time.Now()
	fmt.Fprintf(s.out, "  streamed %.0f MB into the image import\n", float64(s.n)/1e6)
}
