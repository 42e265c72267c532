package worker

import (
	"context"
	"io"
	"sync"
	"sync/atomic"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/brig-dev/brig/schema"
)

// box is a started sandbox container and the worker's end of its attach
// stream: its init reads requests on stdin and answers with frames.
type box struct {
	id     string
	hijack types.HijackedResponse
	// frames is the init's stdout, demultiplexed from the attach stream
	// for as long as the container lives (a reused one serves many jobs).
	frames io.Reader
	// initLog receives the init's stderr for the job in hand.
	initLog atomic.Pointer[capture]
	// gate is the container's gateway socket when it was made before its
	// job (prewarmed or reused); a cold single-use job brings its own.
	gate *jobGate
	// reuse: the init serves successive jobs (single_use: false).
	reuse bool
	jobs  int
	// prewarmed: started before its job arrived.
	prewarmed bool
	once      sync.Once
}

// kind says how the box came to the job it runs now (schema.Sandbox*).
func (b *box) kind() string {
	switch {
	case b.reuse && b.jobs > 0:
		return schema.SandboxReused
	case b.prewarmed:
		return schema.SandboxPrewarmed
	}
	return schema.SandboxCold
}

func newBox(id string, hijack types.HijackedResponse) *box {
	pr, pw := io.Pipe()
	b := &box{id: id, hijack: hijack, frames: pr}
	go func() {
		_, err := stdcopy.StdCopy(pw, writerFunc(func(p []byte) (int, error) {
			if c := b.initLog.Load(); c != nil {
				c.add(p)
			}
			return len(p), nil
		}), hijack.Reader)
		pw.CloseWithError(err)
	}()
	return b
}

// close ends the attach stream (the container itself stays until removed).
func (b *box) close() {
	b.once.Do(func() {
		b.hijack.Close()
		if pr, ok := b.frames.(*io.PipeReader); ok {
			pr.Close()
		}
	})
}

// discard closes b, its gateway socket and removes its container.
func (w *Worker) discard(ctx context.Context, b *box) {
	b.close()
	if b.gate != nil {
		b.gate.close()
	}
	w.removeContainer(ctx, b.id)
}
