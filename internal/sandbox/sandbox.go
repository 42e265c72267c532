package sandbox

import (
	"io"
	"sync"
	"sync/atomic"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/brig-dev/brig/schema"
)

// Sandbox is one started container with brig's init in it, the Runner's
// end of its attach stream (the init reads requests on stdin and answers
// with frames) and its gateway socket. It runs one job at a time.
type Sandbox struct {
	id     string // the container's
	hijack types.HijackedResponse
	// frames is the init's stdout, demultiplexed from the attach stream
	// for as long as the container lives (a reused one serves many jobs).
	frames io.Reader
	// initLog receives the init's stderr for the job in hand.
	initLog atomic.Pointer[Capture]
	// ln is the sandbox's gateway socket, made with it, bound to each job
	// as it is handed over; sock is its path on the host.
	ln   Listener
	sock string
	// egress is the sandbox's egress socket when its job has an egress
	// list (nil otherwise), bound to that one job.
	egress EgressListener
	// reuse: the init serves successive jobs (single_use: false), all of
	// tenant's (reuse.go).
	reuse  bool
	tenant string
	jobs   int
	// prewarmed: started before its job arrived.
	prewarmed bool
	once      sync.Once
}

// kind says how the sandbox came to the job it runs now.
func (sb *Sandbox) kind() schema.SandboxKind {
	switch {
	case sb.reuse && sb.jobs > 0:
		return schema.SandboxReused
	case sb.prewarmed:
		return schema.SandboxPrewarmed
	}
	return schema.SandboxCold
}

func newSandbox(id string, hijack types.HijackedResponse, ln Listener, sock string) *Sandbox {
	pr, pw := io.Pipe()
	sb := &Sandbox{id: id, hijack: hijack, frames: pr, ln: ln, sock: sock}
	go func() {
		_, err := stdcopy.StdCopy(pw, writerFunc(func(p []byte) (int, error) {
			if c := sb.initLog.Load(); c != nil {
				c.Add(p)
			}
			return len(p), nil
		}), hijack.Reader)
		pw.CloseWithError(err)
	}()
	return sb
}

// close ends the attach stream (the container itself stays until removed).
func (sb *Sandbox) close() {
	sb.once.Do(func() {
		sb.hijack.Close()
		if pr, ok := sb.frames.(*io.PipeReader); ok {
			pr.Close()
		}
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
