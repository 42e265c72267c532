package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/brig-dev/brig/internal/gateway"
	"github.com/brig-dev/brig/internal/pyclient"
	"github.com/brig-dev/brig/internal/signing"
	"github.com/brig-dev/brig/internal/token"
	"github.com/brig-dev/brig/schema"
)

// gatewayGrace is how long past its timeout a job's gateway keeps
// answering (the init may still be flushing).
const gatewayGrace = 5 * time.Second

// maxSocketPath keeps gateway socket paths inside sun_path.
const maxSocketPath = 100

// setupGateway prepares what every job's gateway needs: the key ring, the
// gateway itself and the in-container Python client.
func (w *Worker) setupGateway(ctx context.Context) error {
	replicas := w.cfg.Streams.WithDefaults().Replicas
	ring, err := signing.OpenRing(ctx, w.js, replicas)
	if err != nil {
		return err
	}
	w.ring = ring
	w.gw, err = gateway.New(gateway.Config{
		JS:   w.js,
		Keys: ring.Func,
		// Child jobs (function.call) are submitted, followed and cancelled
		// through an SDK client of the calling job's tenant on the worker's
		// connection, which may use every tenant's subjects and inboxes.
		Conn:     w.cfg.Conn,
		Replicas: replicas,
		Logger:   w.log,
	})
	if err != nil {
		return err
	}
	if w.pythonPath, err = pyclient.Install(w.cfg.RuntimeDir); err != nil {
		return fmt.Errorf("python client: %w", err)
	}
	w.sockDir = filepath.Join(w.cfg.RuntimeDir, "gw")
	if err := os.MkdirAll(w.sockDir, 0o711); err != nil {
		return fmt.Errorf("gateway dir: %w", err)
	}
	if len(filepath.Join(w.sockDir, "0123456789abcdef.sock")) > maxSocketPath {
		return fmt.Errorf("runtime dir %s is too long for unix socket paths", w.cfg.RuntimeDir)
	}
	return nil
}

// checkCredential verifies the token a dispatcher minted for the work.
func (w *Worker) checkCredential(ctx context.Context, work *schema.Work) error {
	claims, err := token.Verify(work.Token, w.ring.Func(ctx), time.Now())
	switch {
	case errors.Is(err, token.ErrExpired):
		return &jobFailure{errType: schema.ErrTimeout, status: schema.StatusTimeout,
			msg: "the job's credential expired before it could run (it waited in the queue too long)"}
	case errors.Is(err, token.ErrMalformed), errors.Is(err, token.ErrSignature), errors.Is(err, token.ErrUnknownKey):
		return &jobFailure{errType: schema.ErrInfrastructure, status: schema.StatusError,
			msg: "the work message carries an invalid credential: " + err.Error()}
	case err != nil:
		return fmt.Errorf("verify credential of job %s: %w", work.Job.ID, err)
	case claims.JobID != work.Job.ID || claims.Function != work.Spec.Function:
		return &jobFailure{errType: schema.ErrInfrastructure, status: schema.StatusError,
			msg: "the work message carries another job's credential"}
	}
	return nil
}

// jobGate is one job's gateway socket and the denials it saw: the first
// schema.MaxTerminalAuthErrors of them and how many in all.
type jobGate struct {
	ln      *gateway.Listener
	sock    string
	mu      sync.Mutex
	denied  []schema.AuthError
	deniedN int
	// quota is the first call refused for a quota or the request rate.
	quota *gateway.Error
}

// openGate starts the job's gateway. onDenied is called for each denial.
func (w *Worker) openGate(ctx context.Context, work *schema.Work, onDenied func(schema.AuthError)) (*jobGate, error) {
	g, err := w.newGate(ctx)
	if err != nil {
		return nil, err
	}
	g.bind(work, onDenied)
	return g, nil
}

// newGate creates a gateway socket that serves no job yet (a prewarmed
// container's, until it is handed a job).
func (w *Worker) newGate(ctx context.Context) (*jobGate, error) {
	g := &jobGate{sock: filepath.Join(w.sockDir, randomSuffix()+randomSuffix()+".sock")}
	ln, err := w.gw.Listen(ctx, g.sock, gateway.Binding{})
	if err != nil {
		return nil, err
	}
	g.ln = ln
	return g, nil
}

// bind ties the socket to its job. onDenied hears of the first
// schema.MaxAuthErrorEvents denials one by one; later ones are only
// counted, so that a job looping on denied calls costs brig a counter, not
// an event each (docs/design.md §13).
func (g *jobGate) bind(work *schema.Work, onDenied func(schema.AuthError)) {
	g.mu.Lock()
	g.denied, g.deniedN, g.quota = nil, 0, nil
	g.mu.Unlock()
	g.ln.Bind(gateway.Binding{
		JobID:    work.Job.ID,
		Deadline: time.Now().Add(work.Spec.Timeout() + gatewayGrace),
		Quotas:   work.Spec.Quotas,
		OnQuotaExceeded: func(qe *gateway.Error) {
			g.mu.Lock()
			if g.quota == nil {
				g.quota = qe
			}
			g.mu.Unlock()
		},
		OnDenied: func(ae schema.AuthError) {
			ae = ae.Clipped() // docs/design.md §13
			g.mu.Lock()
			g.deniedN++
			n := g.deniedN
			if len(g.denied) < schema.MaxTerminalAuthErrors {
				g.denied = append(g.denied, ae)
			}
			g.mu.Unlock()
			if n <= schema.MaxAuthErrorEvents {
				onDenied(ae)
			}
		},
	})
}

func (g *jobGate) close() { g.ln.Close() }

// reset unbinds the socket from its finished job and ends the connections
// that job opened (a reused container's socket, waiting for the next job).
func (g *jobGate) reset() { g.ln.Reset() }

// authErrors returns the first denials and how many there were in all.
func (g *jobGate) authErrors() ([]schema.AuthError, int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]schema.AuthError(nil), g.denied...), g.deniedN
}

// brigEnv is the environment brig gives every job.
func brigEnv(work *schema.Work) map[string]string {
	return map[string]string{
		"BRIG_TOKEN":   work.Token,
		"BRIG_GATEWAY": gateway.Socket,
		"BRIG_JOB_ID":  work.Job.ID,
		"PYTHONPATH":   PythonPath,
	}
}

// quotaError returns the first call refused for a quota or the request
// rate, or nil.
func (g *jobGate) quotaError() *gateway.Error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.quota
}

// blameQuota says why a job that failed after a refused call failed: it
// went past a quota (or the request rate). blameDenials runs after it, so
// a denied call, when there was one too, is what the job is blamed for.
func blameQuota(ev *schema.Event, qe *gateway.Error) {
	if qe == nil || ev.Status != schema.StatusFailed {
		return
	}
	ev.Error = &schema.ErrorInfo{Type: schema.ErrQuotaExceeded, Message: schema.ClipText(
		"job failed after a call went past a limit: "+qe.Type+": "+qe.Message, schema.MaxEventTextBytes)}
}
