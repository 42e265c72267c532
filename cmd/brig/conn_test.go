package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/internal/auth"
	"github.com/brig-dev/brig/internal/natstest"
	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// noBrigBudget bounds a command against a server without brig: it must
// answer at once, and without the check it would wait for ever.
const noBrigBudget = 20 * time.Second

// runBounded runs a command with args under a context that ends after
// noBrigBudget.
func runBounded(t *testing.T, cmd command, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), noBrigBudget)
	defer cancel()
	var out, errOut bytes.Buffer
	code = cmd(ctx, args, strings.NewReader(stdin), &out, &errOut)
	if ctx.Err() != nil {
		t.Errorf("still running after %s", noBrigBudget)
	}
	return code, out.String(), errOut.String()
}

// TestNoBrig: against a NATS server without brig, every client command
// says "no brig at URL" and why, exits 125, and changes nothing there.
// A bare server (anyone may connect, no streams, no dispatcher) and a
// brig server no role has run against yet (no dispatcher) both count.
func TestNoBrig(t *testing.T) {
	t.Parallel()
	code := writeFile(t, "main.py", `print("hi")`)
	defs := filepath.Join("..", "..", "examples", "functions.yaml")

	bareURL, _, bareJS := natstest.Start(t)
	authURL, a := startAuthServer(t)
	client := mintCreds(t, a, auth.User{Role: auth.RoleClient, Tenant: schema.DefaultTenant})
	bare := []string{"--server", bareURL}
	tenant := []string{"--server", authURL, "--creds", client}
	tests := []struct {
		name string
		cmd  command
		args []string
		why  string
	}{
		{"run", cmdRun, append([]string{code}, bare...), "no dispatcher answered"},
		{"run --json", cmdRun, append([]string{"--json", code}, bare...), "no dispatcher answered"},
		{"watch", cmdWatch, append([]string{"j1"}, bare...), "no dispatcher answered"},
		{"cancel", cmdCancel, append([]string{"j1"}, bare...), "no dispatcher answered"},
		{"status", cmdStatus, bare, "the server lets anyone in"},
		{"deploy", cmdDeploy, append([]string{defs}, bare...), "the server lets anyone in"},
		{"run on a brig server without roles", cmdRun, append([]string{code}, tenant...), "no dispatcher answered"},
		{"watch on a brig server without roles", cmdWatch, append([]string{"j1"}, tenant...), "no dispatcher answered"},
		{"cancel on a brig server without roles", cmdCancel, append([]string{"j1"}, tenant...), "no dispatcher answered"},
		{"status on a brig server without roles", cmdStatus, tenant, "no dispatcher answered"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, stdout, stderr := runBounded(t, tt.cmd, "", tt.args...)
			url := bareURL
			if strings.Contains(tt.name, "brig server") {
				url = authURL
			}
			want := "no brig at " + url + ": " + tt.why
			if got != exitBrig || stdout != "" || !strings.Contains(stderr, want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d and %q", got, stdout, stderr, exitBrig, want)
			}
		})
	}
	t.Run("changes nothing", func(t *testing.T) {
		t.Parallel()
		runBounded(t, cmdDeploy, "", append([]string{defs}, bare...)...)
		runBounded(t, cmdStatus, "", bare...)
		var names []string
		streams := bareJS.StreamNames(t.Context())
		for n := range streams.Name() {
			names = append(names, n)
		}
		if err := streams.Err(); err != nil {
			t.Fatal(err)
		}
		if len(names) != 0 {
			t.Errorf("the bare server has streams %v after brig deploy and brig status, want none", names)
		}
	})
}

// TestWatchNotFound: brig watch of a job brig has no event of answers
// NotFound at once (exit 125) rather than follow it for a submission on
// its way; a job brig has accepted is followed. The id may also be given
// as the job's key.
func TestWatchNotFound(t *testing.T) {
	t.Parallel()
	url, a, admin := statusServer(t)
	outDir := t.TempDir()
	if code, _, stderr := runCmd(t, cmdTenant, "add", schema.DefaultTenant, "--out-dir", outDir,
		"--server", url, "--creds", admin, "--auth-dir", a.Dir()); code != 0 {
		t.Fatalf("brig tenant add: exit %d: %s", code, stderr)
	}
	client := filepath.Join(outDir, schema.DefaultTenant+".creds")
	conn := []string{"--server", url, "--creds", client}

	for _, id := range []string{"never-submitted", "default.never-submitted"} {
		got, stdout, stderr := runBounded(t, cmdWatch, "", append([]string{id}, conn...)...)
		if got != exitBrig || stdout != "" || !strings.Contains(stderr, "job never-submitted: NotFound: brig has no event of it in tenant default") {
			t.Errorf("brig watch %s: exit %d, stdout %q, stderr %q; want %d and NotFound", id, got, stdout, stderr, exitBrig)
		}
	}
	if got, _, stderr := runBounded(t, cmdWatch, "", append([]string{"other.j1"}, conn...)...); got != exitBrig || !strings.Contains(stderr, "tenant other's") {
		t.Errorf("brig watch of another tenant's key: exit %d, stderr %q", got, stderr)
	}

	// An accepted job (no worker runs it) is followed: its events print,
	// and brig watch waits for more until interrupted (exit 130).
	id := acceptedJob(t, url, client)
	ctx, cancel := context.WithTimeout(t.Context(), noBrigBudget)
	defer cancel()
	var stdout, stderr lockedBuffer
	done := make(chan int, 1)
	go func() { done <- cmdWatch(ctx, append([]string{id}, conn...), strings.NewReader(""), &stdout, &stderr) }()
	for !strings.Contains(stdout.String(), `"type":"accepted"`) {
		select {
		case got := <-done:
			t.Fatalf("brig watch of an accepted job: exit %d, stdout %q, stderr %q", got, stdout.String(), stderr.String())
		case <-stdout.wrote:
		}
	}
	cancel()
	if got := <-done; got != exitCancelled {
		t.Errorf("brig watch interrupted: exit %d, want %d (stderr %q)", got, exitCancelled, stderr.String())
	}
}

// acceptedJob submits a job as the tenant of creds and returns its id once
// brig has accepted it.
func acceptedJob(t *testing.T, url, creds string) string {
	t.Helper()
	c, err := sdk.Connect(t.Context(), url, sdk.WithCreds(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h, err := c.Submit(t.Context(), schema.Job{Function: "python", Code: "print(1)"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), noBrigBudget)
	defer cancel()
	select {
	case ev := <-h.Events():
		if ev.Type != schema.EventAccepted {
			t.Fatalf("first event %s, want accepted", ev.Type)
		}
	case <-ctx.Done():
		t.Fatal("the job was not accepted")
	}
	return h.ID
}

// TestNoBrigErrorType: the no-brig errors are typed, for the callers that
// branch on them.
func TestNoBrigErrorType(t *testing.T) {
	t.Parallel()
	url, _, _ := natstest.Start(t)
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var nb *noBrigError
	if err := requireBrigServer(nc); !errors.As(err, &nb) || nb.URL != url {
		t.Errorf("requireBrigServer on a server anyone may use: %v, want a *noBrigError for %s", err, url)
	}
	c, err := sdk.New(nc, sdk.WithTenant(schema.DefaultTenant))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	jc := &jobConn{Client: c, nc: nc, tenant: schema.DefaultTenant}
	if err := jc.brigAnswers(t.Context()); !errors.As(err, &nb) || nb.Why != errNoDispatcher {
		t.Errorf("brigAnswers with no dispatcher: %v, want a *noBrigError", err)
	}
	if _, err := jc.jobExists(t.Context(), "j1"); !errors.As(err, &nb) {
		t.Errorf("jobExists with no dispatcher: %v, want a *noBrigError", err)
	}
}

// lockedBuffer is a buffer one goroutine writes and another reads; wrote
// signals each write.
type lockedBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	once  sync.Once
	wrote chan struct{}
}

func (b *lockedBuffer) init() { b.once.Do(func() { b.wrote = make(chan struct{}, 1) }) }

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.init()
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	select {
	case b.wrote <- struct{}{}:
	default:
	}
	return n, err
}

func (b *lockedBuffer) String() string {
	b.init()
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
