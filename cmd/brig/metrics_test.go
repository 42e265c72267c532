package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"maps"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/brig-dev/brig/internal/auth"
)

func TestWorkerFlagErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--label", "zone"}, `want KEY=VALUE, got "zone"`},
		{[]string{"--label", "=a"}, `want KEY=VALUE, got "=a"`},
		{[]string{"--label", "zone=a", "--label", "zone=b"}, `label "zone" given twice`},
		{[]string{"--pool-limit", "gpu"}, `want POOL=N, got "gpu"`},
		{[]string{"--pool-limit", "gpu=x"}, `pool gpu: limit "x" is not a whole number ≥ 0`},
		{[]string{"--pool-limit", "gpu=-1"}, `pool gpu: limit "-1" is not a whole number ≥ 0`},
		{[]string{"--pool-limit", "g.pu=1"}, `pool "g.pu": want A-Z a-z 0-9 _ - starting with a letter or digit`},
		{[]string{"--pool-limit", "gpu=1", "--pool-limit", "gpu=2"}, `pool gpu given twice`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			var stderr bytes.Buffer
			// An unroutable server: a parse error must end the command first.
			args := append([]string{"--server", "nats://127.0.0.1:1"}, tt.args...)
			if code := cmdWorker(t.Context(), args, nil, io.Discard, &stderr); code != 2 {
				t.Errorf("exit %d, want 2; stderr: %s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr = %q, want it to say %q", stderr.String(), tt.want)
			}
		})
	}
}

func TestWorkerFlagValues(t *testing.T) {
	t.Parallel()
	labels, limits := labelsFlag{}, poolLimitsFlag{}
	for _, v := range []string{"zone=a", "gpu=", "note=a=b", "zone=a"} {
		if err := labels.Set(v); err != nil {
			t.Fatalf("--label %s: %v", v, err)
		}
	}
	for _, v := range []string{"gpu=2", "default=0"} {
		if err := limits.Set(v); err != nil {
			t.Fatalf("--pool-limit %s: %v", v, err)
		}
	}
	if want := (labelsFlag{"zone": "a", "gpu": "", "note": "a=b"}); !maps.Equal(labels, want) {
		t.Errorf("labels = %v, want %v", labels, want)
	}
	if want := (poolLimitsFlag{"gpu": 2, "default": 0}); !maps.Equal(limits, want) {
		t.Errorf("pool limits = %v, want %v", limits, want)
	}
	if got := limits.String(); got != "default=0,gpu=2" {
		t.Errorf("String() = %q", got)
	}
}

// brig dispatcher --metrics serves its metrics, queue depths included.
func TestDispatcherMetrics(t *testing.T) {
	t.Parallel()
	url, a := startAuthServer(t)
	creds := mintCreds(t, a, auth.User{Role: auth.RoleDispatcher})
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	code := make(chan int, 1)
	go func() {
		defer pw.Close()
		code <- cmdDispatcher(ctx, []string{"--server", url, "--creds", creds, "--key-file", filepath.Join(t.TempDir(), "d.key"),
			"--metrics", "127.0.0.1:0", "--grace", "5s"}, nil, io.Discard, pw)
	}()
	t.Cleanup(func() {
		cancel()
		pr.Close() // unblock its stderr if the test ended before draining it
		if c := <-code; c != 0 {
			t.Errorf("brig dispatcher exited %d", c)
		}
	})

	var metricsURL string
	lines := bufio.NewScanner(pr)
	for lines.Scan() {
		line := lines.Text()
		t.Log(line)
		if u, ok := strings.CutPrefix(line, "metrics "); ok {
			metricsURL = u
		}
		if line == "ready dispatcher" {
			break
		}
	}
	if metricsURL == "" {
		t.Fatal("no metrics line before ready")
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }() // keep the command's stderr flowing

	// The first queue poll runs as the dispatcher is ready.
	deadline := time.After(10 * time.Second)
	for {
		body := get(t, metricsURL)
		if strings.Contains(body, "\n"+`brig_queue_jobs{pool="submit",state="pending"} 0`) {
			if !strings.Contains(body, "\ngo_goroutines ") {
				t.Error("no Go runtime metrics")
			}
			return
		}
		select {
		case <-deadline:
			t.Fatalf("no submission queue depth in:\n%s", body)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d, %v", url, resp.StatusCode, err)
	}
	return string(b)
}

// The roles have no credentials to fall back to: without --creds they say
// how to mint one, before they dial.
func TestRolesNeedCreds(t *testing.T) {
	t.Parallel()
	for name, cmd := range map[string]func(context.Context, []string, io.Reader, io.Writer, io.Writer) int{
		"dispatcher": cmdDispatcher, "worker": cmdWorker,
	} {
		var stderr bytes.Buffer
		if code := cmd(t.Context(), []string{"--server", "nats://127.0.0.1:1"}, nil, io.Discard, &stderr); code != 2 {
			t.Errorf("brig %s without --creds: exit %d, want 2", name, code)
		}
		if want := "brig creds --auth-dir DIR --role " + name; !strings.Contains(stderr.String(), "--creds FILE (env BRIG_CREDS) is required") ||
			!strings.Contains(stderr.String(), want) {
			t.Errorf("brig %s without --creds: stderr %q, want it to say --creds is required and %q", name, stderr.String(), want)
		}
	}
}
