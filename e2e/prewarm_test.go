package e2e

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/brig-dev/brig/internal/devstack"
	"github.com/brig-dev/brig/internal/sandbox"
	"github.com/brig-dev/brig/worker"
)

// TestPrewarmedContainersServeOneJobEach runs jobs on a stack that keeps
// started containers ready: each job gets a container of its own (never one
// another job used), sees nothing another job left, keeps every isolation
// default, and nothing is left when the worker stops.
func TestPrewarmedContainersServeOneJobEach(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	dir := t.TempDir()
	id := workerID + "-prewarm"
	st, err := devstack.Start(ctx, devstack.Config{
		Listen: "127.0.0.1:0", DataDir: filepath.Join(dir, "jetstream"), SkipImage: true, Logger: logger,
		Worker: worker.Config{ID: id, InitBinary: brigBin, RuntimeDir: filepath.Join(dir, "run"), Slots: 2, Prewarm: 2},
	})
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			stopWithin(t, "prewarm stack", st.Stop)
		}
	})
	c := tenantClient(t, st)
	warm := func() []container.Summary {
		list, err := docker.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
			filters.Arg("label", sandbox.LabelWorker+"="+id), filters.Arg("label", sandbox.LabelJob+"=prewarmed"))})
		if err != nil {
			t.Fatal(err)
		}
		return list
	}
	// The first job of a template starts cold and fills its pool.
	code := `import json, os
leaked = sorted(p for p in ["/work/leak", "/tmp/leak"] if os.path.exists(p))
for p in ["/work/leak", "/tmp/leak"]:
    open(p, "w").write("secret")
start = open("/proc/1/stat").read().split()[21]
st = open("/proc/self/status").read()
caps = [l.split()[1] for l in st.splitlines() if l.startswith("CapEff")][0]
json.dump({"leaked": leaked, "init_start": start, "uid": os.getuid(), "caps": caps,
           "ro": not os.access("/", os.W_OK)}, open("/work/out/result.json", "w"))`
	if _, err := c.Run(ctx, pythonJob("prewarm-first", code)); err != nil {
		t.Fatalf("first job: %v", err)
	}
	eventually(t, pollBudget, func(context.Context) (bool, string) {
		n := len(warm())
		return n == 2, "prewarmed containers: " + names(warm())
	})
	seen := map[string]bool{}
	for i := range 4 {
		before := warm()
		ev, err := c.Run(ctx, pythonJob("prewarm", code))
		if err != nil {
			t.Fatalf("job %d: %v (stderr %q)", i, err, ev.Stderr)
		}
		var got struct {
			Leaked    []string `json:"leaked"`
			InitStart string   `json:"init_start"`
			UID       int      `json:"uid"`
			Caps      string   `json:"caps"`
			RO        bool     `json:"ro"`
		}
		if err := json.Unmarshal(ev.Output, &got); err != nil {
			t.Fatal(err)
		}
		if len(got.Leaked) > 0 {
			t.Errorf("job %d saw files another job left: %v", i, got.Leaked)
		}
		if seen[got.InitStart] {
			t.Errorf("job %d ran in a container another job used (init start %s)", i, got.InitStart)
		}
		seen[got.InitStart] = true
		if got.UID != 65534 || got.Caps != "0000000000000000" || !got.RO {
			t.Errorf("job %d in a prewarmed container: uid %d caps %s read-only root %v", i, got.UID, got.Caps, got.RO)
		}
		if i < 2 && len(before) == 0 { // the pool held two; later jobs may outrun its refill
			t.Errorf("job %d: no prewarmed container was ready", i)
		}
		// The container that ran it is gone, whichever it was.
		eventually(t, pollBudget, func(context.Context) (bool, string) {
			for _, b := range before {
				if _, err := docker.ContainerInspect(ctx, b.ID); err == nil {
					still := false
					for _, now := range warm() {
						still = still || now.ID == b.ID
					}
					if !still {
						return false, "a used prewarmed container still exists: " + b.ID[:12]
					}
				}
			}
			return true, ""
		})
	}
	if err := st.Stop(ctx); err != nil {
		t.Errorf("stop: %v", err)
	}
	stopped = true
	if left := warm(); len(left) > 0 {
		t.Errorf("prewarmed containers left after the worker stopped: %s", names(left))
	}
}
