package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/auth"
	"github.com/brig-dev/brig/internal/natsserver"
	"github.com/brig-dev/brig/internal/sandbox"
	"github.com/brig-dev/brig/internal/testenv"
	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// clusterNode is one embedded server of the test's cluster.
type clusterNode struct {
	cfg natsserver.Config
	srv *server.Server
}

// freeAddr returns a 127.0.0.1 address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startCluster starts n nodes of one JetStream cluster, all trusting a,
// and waits until it has a JetStream meta leader. (Their routes are not
// authenticated: only the nodes reach them, on loopback.)
func startCluster(ctx context.Context, t *testing.T, dir string, n int, a *auth.Authority) []*clusterNode {
	t.Helper()
	nodes := make([]*clusterNode, n)
	var routes []string
	for i := range nodes {
		nodes[i] = &clusterNode{cfg: natsserver.Config{
			Listen: freeAddr(t), DataDir: filepath.Join(dir, fmt.Sprintf("n%d", i+1)), Name: fmt.Sprintf("n%d", i+1),
			ClusterName: "brig-e2e", ClusterListen: freeAddr(t), ReadyTimeout: 30 * time.Second, Auth: a,
		}}
		routes = append(routes, "nats-route://"+nodes[i].cfg.ClusterListen)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, node := range nodes {
		node.cfg.Routes = routes
		wg.Add(1)
		go func() {
			defer wg.Done()
			node.srv, errs[i] = natsserver.Start(ctx, node.cfg)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start node %d: %v", i+1, err)
		}
	}
	t.Cleanup(func() {
		for _, node := range nodes {
			if node.srv != nil {
				node.srv.Shutdown()
				node.srv.WaitForShutdown()
			}
		}
	})
	return nodes
}

func (n *clusterNode) url() string { return "nats://" + n.cfg.Listen }

// TestCluster runs brig on a three-node JetStream cluster (streams with
// three replicas) with two dispatchers and two workers, each a `brig`
// process: it submits a few hundred jobs, kills the NATS node that leads
// the work queue and
// SIGKILLs one worker while they run, and checks that every job ends in
// exactly one terminal event, that nothing stays queued, and that the
// node, brought back, catches up.
func TestCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "brig-c-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	a, _, err := auth.OpenOrCreate(filepath.Join(dir, "auth"))
	if err != nil {
		t.Fatal(err)
	}
	nodes := startCluster(ctx, t, dir, 3, a)
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.url())
	}
	all := strings.Join(urls, ",")

	fe := &faultEnv{t: t, dir: dir, auth: a}
	adminCreds := fe.credsFile(auth.RoleAdmin)
	var dispatchers []*roleProc
	// Each role starts on another node (nats.go shuffles the list; the
	// first URL decides only the first connection).
	rotate := func(i int) string { return strings.Join(append(urls[i%3:], urls[:i%3]...), ",") }
	for i := range 2 {
		dispatchers = append(dispatchers, fe.startRole(ctx, "dispatcher", "--server", rotate(i), "--creds", fe.credsFile(auth.RoleDispatcher), "--key-file", filepath.Join(dir, fmt.Sprintf("d%d.key", i)),
			"--grace", "5s", "--ack-wait", "5s", "--log-level", "warn", "--metrics", "127.0.0.1:0"))
	}
	var workers []*roleProc
	for i := range 2 {
		id := fmt.Sprintf("%s-cluster%d", workerID, i+1)
		workers = append(workers, fe.startRole(ctx, "worker", "--server", rotate(i+1), "--creds", fe.credsFile(auth.RoleWorker), "--id", id,
			"--runtime-dir", filepath.Join(dir, "run"+strconv.Itoa(i)), "--slots", "3", "--grace", "5s", "--ack-wait", "5s",
			"--log-level", "warn", "--label", "node="+strconv.Itoa(i+1), "--metrics", "127.0.0.1:0"))
		// A killed worker leaves containers behind; expected here.
		t.Cleanup(func() { _ = testenv.RemoveLeftovers(context.Background(), id) })
	}

	// The jobs are a tenant's, submitted and followed on its client
	// credential; nc, an admin's, inspects the streams.
	clusterConn := func(name string, u auth.User) *nats.Conn {
		token, seed, err := a.UserJWT(u)
		if err != nil {
			t.Fatal(err)
		}
		nc, err := nats.Connect(all, append(inboxOf(u), nats.Name(name), nats.UserJWTAndSeed(token, string(seed)),
			nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))...)
		if err != nil {
			t.Fatalf("connect %s: %v", name, err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	nc := clusterConn("cluster-admin", auth.User{Role: auth.RoleAdmin})
	putTenant(ctx, t, nc, schema.Tenant{Name: schema.DefaultTenant}, 3)
	c, err := sdk.New(clusterConn("cluster-client", auth.User{Role: auth.RoleClient, Tenant: auth.DefaultTenant}), sdk.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// A few hundred jobs: most queue-only, some in containers.
	const echoJobs, pythonJobs = 240, 60
	var handles []*sdk.Handle
	for i := range echoJobs + pythonJobs {
		job := schema.Job{ID: newID("cluster"), Function: "echo", Stdin: strconv.Itoa(i)}
		if i%5 == 0 {
			job = pythonJob("cluster-py", fmt.Sprintf("import time; time.sleep(0.2); print(%d)", i))
		}
		h, err := c.Submit(ctx, job)
		if err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
		handles = append(handles, h)
	}
	defer func() {
		for _, h := range handles {
			h.Stop()
		}
	}()

	// Mid-run: wait until some containers run, then kill a node and a
	// worker.
	eventually(t, jobBudget, func(ctx context.Context) (bool, string) {
		n := len(containersLabelled(t, workerID+"-cluster1")) + len(containersLabelled(t, workerID+"-cluster2"))
		return n > 0, "no job container runs yet"
	})
	// brig status sees the fleet at work: both workers, and jobs running.
	eventually(t, pollBudget, func(ctx context.Context) (bool, string) {
		out, err := exec.CommandContext(ctx, brigBin, "status", "--server", all, "--creds", adminCreds, "--json").Output()
		if err != nil {
			return false, fmt.Sprintf("brig status --json: %v", err)
		}
		var st struct {
			Workers []struct{ ID string } `json:"workers"`
			Running []struct {
				JobID string `json:"job_id"`
			} `json:"running"`
		}
		if err := json.Unmarshal(out, &st); err != nil {
			return false, err.Error()
		}
		return len(st.Workers) == 2 && len(st.Running) > 0, fmt.Sprintf("status shows %d workers, %d running jobs", len(st.Workers), len(st.Running))
	})
	if out, err := exec.CommandContext(ctx, brigBin, "status", "--server", all, "--creds", adminCreds).CombinedOutput(); err != nil {
		t.Errorf("brig status: %v\n%s", err, out)
	} else {
		t.Logf("brig status while jobs run:\n%s", out)
	}
	// The harder case: the node that leads the work queue.
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	killed := nodes[1]
	if s, err := js.Stream(ctx, schema.StreamWork); err == nil && s.CachedInfo().Cluster != nil {
		for _, n := range nodes {
			if n.cfg.Name == s.CachedInfo().Cluster.Leader {
				killed = n
			}
		}
	}
	killed.srv.Shutdown()
	killed.srv.WaitForShutdown()
	if err := workers[0].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed NATS node %s (the work queue's leader) and worker 1 (SIGKILL)", killed.cfg.Name)

	// Every job ends, exactly once.
	results := map[string]*schema.Event{}
	for _, h := range handles {
		rctx, rcancel := context.WithTimeout(ctx, 3*time.Minute)
		ev, err := h.Result(rctx)
		rcancel()
		if ev == nil {
			t.Errorf("job %s: no terminal event: %v", h.ID, err)
			continue
		}
		results[h.ID] = ev
	}
	lost, duplicated, failed := 0, 0, 0
	for _, h := range handles {
		if results[h.ID] == nil {
			lost++
			// Lost by brig, or only by the client's handle?
			t.Errorf("job %s: %d terminal events stored; its events: %s", h.ID, terminalCountOn(t, nc, h.Key), describe(eventsOn(t, c, h.ID)))
			continue
		}
		if results[h.ID].Status != schema.StatusSucceeded {
			failed++
			t.Errorf("job %s: %s", h.ID, brief(results[h.ID]))
		}
		if n := terminalCountOn(t, nc, h.Key); n != 1 {
			duplicated++
			t.Errorf("job %s has %d terminal events stored", h.ID, n)
		}
	}
	t.Logf("%d jobs: lost %d, duplicated %d, failed %d", len(handles), lost, duplicated, failed)

	// The roles' metrics saw the work: the surviving worker ended jobs, and
	// the dispatchers routed them all (a resubmitted delivery may count
	// twice, never less).
	ended := scrape(t, workers[1], `brig_jobs_total{pool="default",status="succeeded"`)
	routed := scrape(t, dispatchers[0], `brig_dispatch_total{outcome="routed",pool="default"}`) +
		scrape(t, dispatchers[1], `brig_dispatch_total{outcome="routed",pool="default"}`)
	if ended < 1 || routed < float64(len(handles)) {
		t.Errorf("metrics: surviving worker ended %v jobs, dispatchers routed %v of %d", ended, routed, len(handles))
	}
	t.Logf("metrics: the surviving worker ended %v jobs; the dispatchers routed %v", ended, routed)

	// Nothing stays queued.
	for _, cc := range [][2]string{{schema.StreamSubmit, "dispatchers"}, {schema.StreamWork, "pool-default"}} {
		eventually(t, pollBudget, consumerIdle(nc, cc[0], cc[1]))
	}

	// The node comes back and catches up.
	if killed.srv, err = natsserver.Start(ctx, killed.cfg); err != nil {
		t.Fatalf("restart node %s: %v", killed.cfg.Name, err)
	}
	for _, name := range []string{schema.StreamSubmit, schema.StreamWork, schema.StreamEvents} {
		eventually(t, 2*time.Minute, func(ctx context.Context) (bool, string) {
			s, err := js.Stream(ctx, name)
			if err != nil {
				return false, err.Error()
			}
			info := s.CachedInfo()
			if info.Cluster == nil {
				return false, name + ": no cluster info"
			}
			state := []string{"leader " + info.Cluster.Leader}
			done := len(info.Cluster.Replicas) == 2
			for _, p := range info.Cluster.Replicas {
				state = append(state, fmt.Sprintf("%s current=%v lag=%d", p.Name, p.Current, p.Lag))
				done = done && p.Current && p.Lag == 0
			}
			return done, name + ": " + strings.Join(state, ", ")
		})
	}
	t.Logf("node %s caught up on every stream", killed.cfg.Name)
	if out, err := exec.CommandContext(ctx, brigBin, "status", "--server", killed.url(), "--creds", adminCreds).CombinedOutput(); err == nil {
		t.Logf("brig status from the restarted node:\n%s", out)
	}
}

// containersLabelled lists a worker's containers.
func containersLabelled(t *testing.T, workerID string) []container.Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pollBudget)
	defer cancel()
	list, err := docker.ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", sandbox.LabelWorker+"="+workerID))})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// scrape reads a role's /metrics (the address it printed) and sums the
// samples whose series starts with prefix.
func scrape(t *testing.T, p *roleProc, prefix string) float64 {
	t.Helper()
	var addr string
	for _, line := range strings.Split(p.output(), "\n") {
		if u, ok := strings.CutPrefix(line, "metrics "); ok {
			addr = strings.TrimSpace(u)
		}
	}
	if addr == "" {
		t.Fatalf("brig %s printed no metrics address:\n%s", p.name, p.output())
	}
	resp, err := http.Get(addr)
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}
