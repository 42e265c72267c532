package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/auth"
)

// outputWatcher collects a command's stderr and hands over the URL of its
// `ready URL` line.
type outputWatcher struct {
	mu    sync.Mutex
	buf   strings.Builder
	seen  bool
	ready chan string
}

func newOutputWatcher() *outputWatcher { return &outputWatcher{ready: make(chan string, 1)} }

func (w *outputWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	lines := strings.Split(w.buf.String(), "\n")
	for _, line := range lines[:len(lines)-1] { // complete lines only
		if url, ok := strings.CutPrefix(line, "ready "); ok && !w.seen {
			w.seen = true
			w.ready <- url
		}
	}
	return len(p), nil
}

func (w *outputWatcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// waitReady returns the ready URL, failing the test if the command exits
// or takes too long first.
func (w *outputWatcher) waitReady(t *testing.T, exited <-chan int) string {
	t.Helper()
	select {
	case url := <-w.ready:
		return url
	case code := <-exited:
		t.Fatalf("brig nats exited with %d before it was ready:\n%s", code, w)
	case <-time.After(30 * time.Second):
		t.Fatalf("brig nats not ready after 30s:\n%s", w)
	}
	return ""
}

// natsNode is one `brig nats` run in-process.
type natsNode struct {
	url    string
	out    *outputWatcher
	stop   context.CancelFunc
	exited chan int
}

func startNats(t *testing.T, args ...string) *natsNode {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	n := &natsNode{out: newOutputWatcher(), stop: cancel, exited: make(chan int, 1)}
	go func() { n.exited <- cmdNats(ctx, args, nil, io.Discard, n.out) }()
	t.Cleanup(func() {
		cancel()
		<-n.exited
	})
	n.url = n.out.waitReady(t, n.exited)
	return n
}

// shutdown stops the node as SIGTERM would and returns its exit code.
func (n *natsNode) shutdown(t *testing.T) int {
	t.Helper()
	n.stop()
	select {
	case code := <-n.exited:
		n.exited <- code // for the cleanup
		return code
	case <-time.After(30 * time.Second):
		t.Fatalf("brig nats did not stop within 30s:\n%s", n.out)
		return -1
	}
}

// freeAddrs reserves n loopback addresses for route listeners, which have
// to be known before the nodes start.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs[i] = ln.Addr().String()
		defer ln.Close()
	}
	return addrs
}

func TestNatsCluster(t *testing.T) {
	t.Parallel()
	cluster := freeAddrs(t, 3)
	routes := make([]string, len(cluster))
	for i, a := range cluster {
		routes[i] = "nats-route://" + a
	}
	// The nodes share one authority, which the first to start creates.
	authDir := filepath.Join(t.TempDir(), "auth")
	nodes := make([]*natsNode, len(cluster))
	for i, a := range cluster {
		nodes[i] = startNats(t, "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--auth-dir", authDir,
			"--name", fmt.Sprintf("n%d", i+1), "--cluster-name", "brig-test",
			"--cluster", a, "--routes", strings.Join(routes, ","), "--log-level", "error")
	}
	if !strings.Contains(nodes[0].out.String(), "created authority in "+authDir) {
		t.Errorf("the first node did not say it created the authority:\n%s", nodes[0].out)
	}
	for _, n := range nodes[1:] {
		if strings.Contains(n.out.String(), "created authority") {
			t.Errorf("a later node created an authority of its own:\n%s", n.out)
		}
	}
	a, err := auth.Open(authDir)
	if err != nil {
		t.Fatal(err)
	}
	_, js := adminConn(t, nodes[0].url, a)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cfg := jetstream.StreamConfig{Name: "R3", Subjects: []string{"r3.>"}, Replicas: 3, Storage: jetstream.FileStorage}
	stream := retry(ctx, t, "create R3 stream", func(ctx context.Context) (jetstream.Stream, error) { return js.CreateStream(ctx, cfg) })
	info := retry(ctx, t, "stream info", func(ctx context.Context) (*jetstream.StreamInfo, error) {
		info, err := stream.Info(ctx)
		if err == nil && (info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2) {
			err = fmt.Errorf("cluster info %+v: want a leader and 2 replicas", info.Cluster)
		}
		return info, err
	})
	if info.Config.Replicas != 3 {
		t.Errorf("stream replicas = %d, want 3", info.Config.Replicas)
	}

	// A node that leaves gracefully exits 0, and the other two keep the
	// stream writable.
	if code := nodes[2].shutdown(t); code != 0 {
		t.Errorf("brig nats exited with %d after shutdown, want 0:\n%s", code, nodes[2].out)
	}
	retry(ctx, t, "publish with a node gone", func(ctx context.Context) (*jetstream.PubAck, error) {
		return js.Publish(ctx, "r3.x", []byte("hi"))
	})
	for _, n := range nodes[:2] {
		if code := n.shutdown(t); code != 0 {
			t.Errorf("brig nats exited with %d after shutdown, want 0:\n%s", code, n.out)
		}
	}
}

// retry calls f, each time with a short deadline, until it succeeds or ctx
// ends: a new cluster answers "temporarily unavailable", or not at all,
// until it has elected its leaders.
func retry[T any](ctx context.Context, t *testing.T, what string, f func(context.Context) (T, error)) T {
	t.Helper()
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		v, err := f(actx)
		cancel()
		if err == nil {
			return v
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func TestNatsInvalidFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"cluster without name", []string{"--cluster", "127.0.0.1:0", "--cluster-name", "c"}, "needs a server name"},
		{"routes without cluster", []string{"--routes", "nats-route://127.0.0.1:1"}, "need a cluster listen address"},
		{"bad route", []string{"--name", "a", "--cluster-name", "c", "--cluster", "127.0.0.1:0", "--routes", "::"}, "not a nats-route"},
		{"bad listen", []string{"--listen", "nohost"}, "listen address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stderr strings.Builder
			args := append([]string{"nats", "--data", t.TempDir(), "--auth-dir", t.TempDir()}, tt.args...)
			if code := run(args, nil, io.Discard, &stderr); code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr = %q, want it to contain %q", stderr.String(), tt.want)
			}
		})
	}
}

// TestNatsFromEnvironment configures a whole node through BRIG_* variables
// (no t.Parallel: it sets the process environment).
func TestNatsFromEnvironment(t *testing.T) {
	data := t.TempDir()
	t.Setenv("BRIG_LISTEN", "127.0.0.1:0")
	t.Setenv("BRIG_DATA", data)
	t.Setenv("BRIG_HTTP", "127.0.0.1:0")
	t.Setenv("BRIG_NAME", "from-env")
	t.Setenv("BRIG_AUTH_DIR", filepath.Join(data, "auth"))
	n := startNats(t)
	if _, err := os.Stat(filepath.Join(data, "jetstream")); err != nil {
		t.Errorf("JetStream store not under BRIG_DATA: %v", err)
	}
	if _, err := auth.Open(filepath.Join(data, "auth")); err != nil {
		t.Errorf("no authority in BRIG_AUTH_DIR: %v", err)
	}
	m := regexp.MustCompile(`nats monitoring.* url=(\S+)`).FindStringSubmatch(n.out.String())
	if m == nil {
		t.Fatalf("no monitoring URL in the output:\n%s", n.out)
	}
	resp, err := http.Get(m[1] + "/varz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"server_name": "from-env"`) {
		t.Errorf("/varz = %d %s, want 200 naming server from-env", resp.StatusCode, body)
	}
	if code := n.shutdown(t); code != 0 {
		t.Errorf("exit code %d after shutdown, want 0", code)
	}
}

func TestApplyEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    string // fooBar, n, json, server, explicit
		wantErr string
	}{
		{"defaults", nil, nil, "def 1 false " + defaultServer + " false", ""},
		{"from env", nil, map[string]string{"BRIG_FOO_BAR": "env", "BRIG_N": "7", "BRIG_JSON": "true"}, "env 7 true " + defaultServer + " false", ""},
		{"command line wins", []string{"--foo-bar", "cli", "--n=2"}, map[string]string{"BRIG_FOO_BAR": "env", "BRIG_N": "7"}, "cli 2 false " + defaultServer + " false", ""},
		{"empty is unset", nil, map[string]string{"BRIG_FOO_BAR": "", "BRIG_N": ""}, "def 1 false " + defaultServer + " false", ""},
		{"BRIG_SERVER", nil, map[string]string{"BRIG_SERVER": "nats://x:1"}, "def 1 false nats://x:1 true", ""},
		{"--server over BRIG_SERVER", []string{"--server", "nats://y:2"}, map[string]string{"BRIG_SERVER": "nats://x:1"}, "def 1 false nats://y:2 true", ""},
		{"invalid", nil, map[string]string{"BRIG_N": "many"}, "", `invalid value "many" for BRIG_N (flag -n)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fs := newFlagSet("brig dev", io.Discard, io.Discard)
			fooBar := fs.String("foo-bar", "def", "")
			n := fs.Int("n", 1, "")
			asJSON := fs.Bool("json", false, "")
			srv := addServerFlag(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			err := applyEnv(fs, func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("applyEnv error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := fmt.Sprintf("%s %d %t %s %t", *fooBar, *n, *asJSON, srv.url, srv.explicit)
			if got != tt.want {
				t.Errorf("flags = %q, want %q", got, tt.want)
			}
			// A flag from the environment counts as set, like one given.
			var set []string
			fs.Visit(func(f *flag.Flag) { set = append(set, f.Name) })
			for k := range tt.env {
				if name := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(k, "BRIG_"), "_", "-")); tt.env[k] != "" && !slices.Contains(set, name) {
					t.Errorf("flag %s from %s not reported as set (set: %v)", name, k, set)
				}
			}
		})
	}
}

// TestParseInterleavedEnvError checks that a bad variable is reported like
// a bad flag.
func TestParseInterleavedEnvError(t *testing.T) {
	t.Setenv("BRIG_N", "many")
	var stderr strings.Builder
	fs := newFlagSet("brig test", io.Discard, &stderr)
	fs.Int("n", 1, "")
	_, err := parseInterleaved(fs, nil)
	if err == nil || !strings.Contains(stderr.String(), "brig test: invalid value \"many\" for BRIG_N") {
		t.Errorf("err = %v, stderr = %q; want the bad BRIG_N reported", err, stderr.String())
	}
}

func TestNatsMetrics(t *testing.T) {
	t.Parallel()
	n := startNats(t, "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--auth-dir", t.TempDir(), "--name", "m1",
		"--metrics", "127.0.0.1:0", "--log-level", "error")
	m := regexp.MustCompile(`(?m)^metrics (http://\S+/metrics)$`).FindStringSubmatch(n.out.String())
	if m == nil {
		t.Fatalf("no metrics line in the output:\n%s", n.out)
	}
	resp, err := http.Get(m[1])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`brig_nats_jetstream_enabled{server="m1"} 1`, "go_goroutines "} {
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s = %d, want 200 with %q:\n%s", m[1], resp.StatusCode, want, body)
		}
	}
	if code := n.shutdown(t); code != 0 {
		t.Errorf("exit code %d after shutdown, want 0", code)
	}
}

// TestEnvJobCommands: commands that submit jobs take only BRIG_SERVER; a
// BRIG_ID left in a shell must not give every job the same id.
func TestEnvJobCommands(t *testing.T) {
	t.Parallel()
	fs := newFlagSet("brig run", io.Discard, io.Discard)
	id := fs.String("id", "", "")
	srv := addServerFlag(fs)
	env := map[string]string{"BRIG_ID": "same-every-time", "BRIG_SERVER": "nats://x:1"}
	if err := applyEnv(fs, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if *id != "" || srv.url != "nats://x:1" {
		t.Errorf("brig run took id %q and server %q from the environment; want no id and the server", *id, srv.url)
	}
}
