package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/internal/events"
	"github.com/brig-dev/brig/schema"
)

// Attacks on brig run's input flags and its Ctrl-C (issue 13). Each test
// says what a user would expect; a failing one is a finding.

// interruptBudget is how long brig run may take to give up after SIGINT
// (its context ending: main's signal.NotifyContext) when nothing is sent
// yet: at once, give or take a dial.
const interruptBudget = 10 * time.Second

// unreachable is a server no one answers at: a brig run that gets past
// reading its input fails fast there, and sends nothing anywhere.
var unreachable = []string{"--server", "nats://127.0.0.1:1"}

// enteredReader signals its first Read, then reads r.
type enteredReader struct {
	r       io.Reader
	once    sync.Once
	entered chan struct{}
}

func (e *enteredReader) Read(p []byte) (int, error) {
	e.once.Do(func() { close(e.entered) })
	return e.r.Read(p)
}

// runInterrupted starts brig run with args and stdin, calls interrupt once
// ready says brig run is blocked reading its input, then ends its
// context as SIGINT would, and returns its exit code, or fails when it is
// still reading interruptBudget later; unblock then lets it go on.
func runInterrupted(t *testing.T, args []string, stdin io.Reader, ready <-chan struct{}, unblock func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr lockedBuffer
	done := make(chan int, 1)
	go func() { done <- cmdRun(ctx, args, stdin, &stdout, &stderr) }()
	select {
	case <-ready:
	case code := <-done:
		t.Fatalf("brig run ended (exit %d, stderr %q) before it read its input", code, stderr.String())
	case <-time.After(interruptBudget):
		t.Fatal("brig run never started reading its input")
	}
	cancel() // SIGINT: main's signal.NotifyContext ends the command's context
	select {
	case code := <-done:
		if code != exitCancelled {
			t.Errorf("brig run interrupted while reading its input: exit %d (stderr %q), want %d", code, stderr.String(), exitCancelled)
		}
	case <-time.After(interruptBudget):
		t.Errorf("brig run still blocked reading its input %s after SIGINT: main's signal.NotifyContext swallows "+
			"SIGINT and SIGTERM, and readInput (cmd/brig/runinput.go) never looks at the context; only EOF frees it", interruptBudget)
		unblock()
		<-done
	}
}

// TestRunInterruptWhileReadingStdin: `brig run -` waiting for code on a
// terminal (or a pipe whose writer hangs) ends on Ctrl-C, exit 130, with
// nothing sent. (It used to swallow the signal until EOF, and a user who
// then pressed Ctrl-D sent the half-typed code.)
func TestRunInterruptWhileReadingStdin(t *testing.T) {
	t.Parallel()
	pr, pw := io.Pipe()
	defer pw.Close()
	stdin := &enteredReader{r: pr, entered: make(chan struct{})}
	runInterrupted(t, append(append([]string{}, unreachable...), "-"), stdin, stdin.entered, func() { pw.Close() })
}

// TestRunInterruptWhileOpeningFIFO: `--file FIFO` (a named pipe nobody
// writes, or /dev/fd/N of a stuck process substitution) blocks brig run in
// open(2) and then read(2); Ctrl-C still ends it.
func TestRunInterruptWhileOpeningFIFO(t *testing.T) {
	t.Parallel()
	code := writeFile(t, "main.py", "print(open('in.txt').read())")
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	ready := make(chan struct{})
	var writer *os.File
	var mu sync.Mutex
	go func() {
		// A writer's non-blocking open succeeds only once a reader has
		// the FIFO open: then brig run is in open(2), and stays blocked in
		// read(2) while this writer holds it and writes nothing.
		for {
			f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0)
			if err == nil {
				mu.Lock()
				writer = f
				mu.Unlock()
				close(ready)
				return
			}
			if !errors.Is(err, syscall.ENXIO) {
				t.Errorf("open the FIFO for writing: %v", err)
				return
			}
			select {
			case <-time.After(5 * time.Millisecond):
			case <-t.Context().Done():
				return
			}
		}
	}()
	unblock := func() {
		mu.Lock()
		defer mu.Unlock()
		if writer != nil {
			writer.Close()
		}
	}
	defer unblock()
	args := append(append([]string{}, unreachable...), "--file", fifo+":in.txt", code)
	runInterrupted(t, args, strings.NewReader(""), ready, unblock)
}

// TestRunFlagGivenTwice: a flag that takes one value, given twice, is
// refused (exit 2) before anything is sent, as --stdin and --args are:
// `--function grader --function python` used to run python, `--id a --id
// b` to submit b (refuseRepeats).
func TestRunFlagGivenTwice(t *testing.T) {
	t.Parallel()
	code := writeFile(t, "main.py", `print("hi")`)
	for _, twice := range [][]string{
		{"--function", "grader", "--function", "python"},
		{"--id", "a", "--id", "b"},
		{"--timeout", "1s", "--timeout", "1h"},
		{"--memory", "64", "--memory", "4096"},
		{"--runtime", "runsc", "--runtime", "runc"},
		{"--tenant", "acme", "--tenant", "default"},
	} {
		args := append(append(append([]string{}, unreachable...), twice...), code)
		got, _, stderr := runBounded(t, cmdRun, "", args...)
		if got != exitUsage {
			t.Errorf("brig run %s: exit %d (stderr %q), want %d: the first %s is silently dropped",
				strings.Join(twice, " "), got, clipArg(stderr), exitUsage, twice[0])
		}
	}
}

// TestRunInterruptBeforeAccepted: Ctrl-C right after brig run sent its
// job, before a dispatcher has taken the submission (a backlog, a
// dispatcher restarting), still cancels the job (exit 130). A dispatcher
// answers NotFound for a key with no event, so brig run asks again
// (Handle.Cancel) until brig knows the job; it used to exit 125 saying
// "the job may still run", and the job ran in full.
//
// The dispatcher's BRIG_SUBMIT consumer is paused for the test so that
// the window stays open; it is resumed once brig run exits, or asks to
// cancel a second time (a brig run that retries until the job is
// accepted gets its job).
func TestRunInterruptBeforeAccepted(t *testing.T) {
	t.Parallel()
	url, a, admin := statusServer(t)
	outDir := t.TempDir()
	if code, _, stderr := runCmd(t, cmdTenant, "add", schema.DefaultTenant, "--out-dir", outDir,
		"--server", url, "--creds", admin, "--auth-dir", a.Dir()); code != 0 {
		t.Fatalf("brig tenant add: exit %d: %s", code, stderr)
	}
	client := filepath.Join(outDir, schema.DefaultTenant+".creds")
	nc, js := adminConn(t, url, a)
	if _, err := js.PauseConsumer(t.Context(), schema.StreamSubmit, bus.DispatcherConsumer, time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("pause the dispatchers' consumer: %v", err)
	}
	resume := sync.OnceFunc(func() {
		if _, err := js.ResumeConsumer(context.WithoutCancel(t.Context()), schema.StreamSubmit, bus.DispatcherConsumer); err != nil {
			t.Errorf("resume the dispatchers' consumer: %v", err)
		}
	})
	defer resume()
	submitted := make(chan *nats.Msg, 4)
	cancels := make(chan *nats.Msg, 16)
	for subject, ch := range map[string]chan *nats.Msg{
		schema.SubmitPrefix + schema.DefaultTenant + ".>": submitted,
		schema.CancelPrefix + schema.DefaultTenant + ".>": cancels,
	} {
		sub, err := nc.ChanSubscribe(subject, ch)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	code := writeFile(t, "main.py", `print("this job should never run")`)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var stdout, stderr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- cmdRun(ctx, []string{"--server", url, "--creds", client, "--json", code}, strings.NewReader(""), &stdout, &stderr)
	}()
	var key string
	select {
	case m := <-submitted:
		job, err := schema.DecodeJob(m.Data, 0)
		if err != nil {
			t.Fatalf("the submission: %v", err)
		}
		key = schema.JobKey(schema.DefaultTenant, job.ID)
	case got := <-done:
		t.Fatalf("brig run exited %d before submitting: %s", got, stderr.String())
	case <-ctx.Done():
		t.Fatal("brig run submitted nothing")
	}
	accepted := make(chan *nats.Msg, 8)
	sub, err := nc.ChanSubscribe(schema.EventsFilter(key), accepted)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	cancel() // Ctrl-C

	var got int
	asked := 0
	for waiting := true; waiting; {
		select {
		case got = <-done:
			waiting = false
		case <-cancels:
			if asked++; asked == 2 {
				resume()
			}
		case <-time.After(time.Minute):
			t.Fatal("brig run never exited after SIGINT")
		}
	}
	resume()
	if got != exitCancelled || strings.Contains(stderr.String(), "may still run") {
		t.Errorf("Ctrl-C after the submission: exit %d, stderr %q; want %d, the job cancelled", got, stderr.String(), exitCancelled)
	}
	// What became of the job once a dispatcher took it.
	select {
	case <-accepted:
	case <-time.After(time.Minute):
		t.Fatal("the submission was never accepted")
	}
	ev, err := events.NewLog(nc, js, nil).Terminal(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if ev == nil || ev.Status != schema.StatusCancelled {
		t.Errorf("job %s after brig run exited %d on Ctrl-C: accepted, terminal event %v; want cancelled: it is queued and runs on the next free worker",
			key, got, ev)
	}
}
