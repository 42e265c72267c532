package sandbox_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"

	"github.com/brig-dev/brig/internal/gateway"
	"github.com/brig-dev/brig/internal/gatewayproto"
	"github.com/brig-dev/brig/internal/sandbox"
	"github.com/brig-dev/brig/schema"
)

// Guards of the move of the container side from worker/ into this package
// (a refactor meant to change no behaviour): every isolation default of
// docs/design.md §5 on every way a job gets its sandbox, and the gateway
// socket's binding (§4.3) across a reused and a prewarmed sandbox's life.

// inspect returns the container's configuration as the daemon holds it.
func (rg *rig) inspect(id string) container.InspectResponse {
	rg.t.Helper()
	info, err := rg.docker.ContainerInspect(context.Background(), id)
	if err != nil {
		rg.t.Fatalf("inspect %s: %v", id, err)
	}
	return info
}

// socketOf is the host path of the gateway socket mounted into a container.
func socketOf(t *testing.T, info container.InspectResponse) string {
	t.Helper()
	for _, m := range info.HostConfig.Mounts {
		if m.Target == gatewayproto.Socket {
			return m.Source
		}
	}
	t.Fatalf("container %s mounts no gateway socket: %+v", info.ID, info.HostConfig.Mounts)
	return ""
}

// wantIsolation checks every setting of §5 that the Runner gives a
// container: owner is its brig.job label, pids its cgroup limit.
func (rg *rig) wantIsolation(info container.InspectResponse, spec schema.RunSpec, owner string, pids int64) {
	t := rg.t
	t.Helper()
	cfg, host := info.Config, info.HostConfig
	if host.NetworkMode != "none" || !cfg.NetworkDisabled {
		t.Errorf("network: mode %q, disabled %v; want none, disabled", host.NetworkMode, cfg.NetworkDisabled)
	}
	if !host.ReadonlyRootfs {
		t.Error("root filesystem is writable")
	}
	if !slices.Equal(host.CapDrop, []string{"ALL"}) || len(host.CapAdd) != 0 || host.Privileged {
		t.Errorf("capabilities: drop %v, add %v, privileged %v; want every one dropped", host.CapDrop, host.CapAdd, host.Privileged)
	}
	// Docker's default seccomp profile applies unless an option names
	// another: no-new-privileges must be the only option.
	if !slices.Equal(host.SecurityOpt, []string{"no-new-privileges"}) {
		t.Errorf("security options %v; want exactly no-new-privileges", host.SecurityOpt)
	}
	wantTmpfs := map[string]string{
		"/tmp":  "rw,nosuid,nodev,noexec,size=64m",
		"/work": "rw,nosuid,nodev,noexec,size=64m,uid=65534,gid=65534,mode=0755",
	}
	if len(host.Tmpfs) != len(wantTmpfs) || host.Tmpfs["/tmp"] != wantTmpfs["/tmp"] || host.Tmpfs["/work"] != wantTmpfs["/work"] {
		t.Errorf("tmpfs %v; want %v", host.Tmpfs, wantTmpfs)
	}
	if cfg.User != "65534:65534" {
		t.Errorf("user %q; want 65534:65534", cfg.User)
	}
	if string(host.IpcMode) != "private" {
		t.Errorf("IPC mode %q; want private", host.IpcMode)
	}
	if host.LogConfig.Type != "none" {
		t.Errorf("log driver %q; want none", host.LogConfig.Type)
	}
	if host.Runtime != spec.Runtime {
		t.Errorf("runtime %q; want %q", host.Runtime, spec.Runtime)
	}
	mem := spec.Limits.MemoryMB << 20
	if len(cfg.Entrypoint) > 2 && cfg.Entrypoint[2] == "--zygote" {
		mem += sandbox.ZygoteHeadroomMB << 20 // the preload's, not the job's
	}
	if host.Memory != mem || host.MemorySwap != mem {
		t.Errorf("memory %d, swap %d; want both %d", host.Memory, host.MemorySwap, mem)
	}
	if want := int64(spec.Limits.CPUs * 1e9); host.NanoCPUs != want {
		t.Errorf("NanoCPUs %d; want %d", host.NanoCPUs, want)
	}
	if host.PidsLimit == nil || *host.PidsLimit != pids {
		t.Errorf("pids limit %v; want %d", host.PidsLimit, pids)
	}
	limits := map[string][2]int64{}
	for _, u := range host.Ulimits {
		limits[u.Name] = [2]int64{u.Soft, u.Hard}
	}
	wantLimits := map[string][2]int64{"nofile": {1024, 1024}, "fsize": {64 << 20, 64 << 20}, "core": {0, 0}}
	if len(limits) != len(wantLimits) || limits["nofile"] != wantLimits["nofile"] || limits["fsize"] != wantLimits["fsize"] || limits["core"] != wantLimits["core"] {
		t.Errorf("ulimits %v; want %v", limits, wantLimits)
	}
	// Mounts: the init and the Python client read-only, the socket.
	targets := map[string]mount.Mount{}
	for _, m := range host.Mounts {
		targets[m.Target] = m
	}
	if len(host.Mounts) != 3 || len(host.Binds) != 0 {
		t.Errorf("mounts %+v, binds %v; want the init, the Python client and the socket only", host.Mounts, host.Binds)
	}
	for _, target := range []string{sandbox.InitPath, sandbox.PythonPath} {
		if m, ok := targets[target]; !ok || m.Type != mount.TypeBind || !m.ReadOnly {
			t.Errorf("mount at %s: %+v; want a read-only bind", target, m)
		}
	}
	if m, ok := targets[gatewayproto.Socket]; !ok || m.Type != mount.TypeBind {
		t.Errorf("gateway socket mount: %+v", m)
	}
	if cfg.Labels[sandbox.LabelJob] != owner || cfg.Labels[sandbox.LabelWorker] != rg.id {
		t.Errorf("labels %v; want %s=%s, %s=%s", cfg.Labels, sandbox.LabelJob, owner, sandbox.LabelWorker, rg.id)
	}
	if len(cfg.Entrypoint) > 2 && cfg.Entrypoint[2] == "--zygote" {
		rg.wantZygote(cfg.Entrypoint, spec)
	} else if len(cfg.Entrypoint) < 2 || cfg.Entrypoint[0] != sandbox.InitPath || cfg.Entrypoint[1] != "sandbox-init" ||
		len(cfg.Entrypoint) > 2 && !slices.Equal(cfg.Entrypoint[2:], append([]string{"--warmup"}, spec.Warmup...)) {
		t.Errorf("entrypoint %q; want brig's init (and the function's warm-up)", cfg.Entrypoint)
	}
	// Nothing of brig's in the environment: the image's own, no more.
	img, err := rg.docker.ImageInspect(context.Background(), spec.Image)
	if err != nil {
		t.Fatal(err)
	}
	var imageEnv []string
	if img.Config != nil {
		imageEnv = img.Config.Env
	}
	for _, kv := range cfg.Env {
		if strings.HasPrefix(kv, "BRIG_") || !slices.Contains(imageEnv, kv) {
			t.Errorf("environment entry %q is not the image's", kv)
		}
	}
}

// TestGuardIsolationEveryPath: a cold, a reused, a prewarmed and a gVisor
// sandbox each carry every isolation default, whichever way they came to
// their job.
func TestGuardIsolationEveryPath(t *testing.T) {
	rg := newRig(t, func(c *sandbox.Config) { c.Prewarm = 1 })

	cold := rg.work("iso-cold", `print(1)`)
	res := rg.run(t.Context(), cold)
	if res.err != nil {
		t.Fatal(res.err)
	}
	rg.wantIsolation(rg.inspect(res.out.Container), cold.Spec, cold.Job.ID, cold.Spec.Limits.Pids+16)
	res.out.Release()

	reused := rg.work("iso-reuse", `print(1)`)
	reused.Spec.SingleUse = false
	res = rg.run(t.Context(), reused)
	if res.err != nil {
		t.Fatal(res.err)
	}
	rg.wantIsolation(rg.inspect(res.out.Container), reused.Spec, "reuse", reused.Spec.Limits.Pids+16)
	res.out.Release()

	// The cold job above made its template warm.
	rg.waitPrewarmed(1)
	warm := rg.work("iso-warm", `print(1)`)
	res = rg.run(t.Context(), warm)
	if res.err != nil {
		t.Fatal(res.err)
	}
	if res.kind != schema.SandboxPrewarmed {
		t.Fatalf("third job got a %s sandbox, want a prewarmed one", res.kind)
	}
	rg.wantIsolation(rg.inspect(res.out.Container), warm.Spec, "prewarmed", warm.Spec.Limits.Pids+16)
	res.out.Release()

	gvisor := rg.work("iso-runsc", `print(1)`)
	gvisor.Spec.Runtime = schema.RuntimeRunsc
	res = rg.run(t.Context(), gvisor)
	if res.err != nil {
		var f *sandbox.Failure
		if errors.As(res.err, &f) && f.ErrType == schema.ErrInvalidJob {
			t.Skipf("runsc not available: %v", res.err)
		}
		t.Fatal(res.err)
	}
	// Under gVisor the cgroup only guards the host; the job's own limit is
	// RLIMIT_NPROC inside.
	rg.wantIsolation(rg.inspect(res.out.Container), gvisor.Spec, gvisor.Job.ID, max(4096, 64*gvisor.Spec.Limits.Pids))
	res.out.Release()
}

// probe sends one dict.get with tok on the socket at path and returns the
// response; dial errors are returned.
func probe(path, tok string) (*gatewayproto.Response, error) {
	conn, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := gatewayproto.EncodeRequest(&gatewayproto.Request{ID: 7, Token: tok, Op: gatewayproto.OpDictGet, Name: "d", Key: "k"})
	if err != nil {
		return nil, err
	}
	if _, err := conn.Write(line); err != nil {
		return nil, err
	}
	data, err := bufio.NewReader(conn).ReadBytes('\n')
	if err != nil {
		return nil, err
	}
	var resp gatewayproto.Response
	return &resp, json.Unmarshal(data, &resp)
}

func wantDenied(t *testing.T, what string, resp *gatewayproto.Response, err error, contains string) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	if resp.OK || resp.Error == nil || resp.Error.Type != gatewayproto.ErrAuthError || !strings.Contains(resp.Error.Message, contains) {
		t.Errorf("%s: %+v; want an AuthError saying %q", what, resp.Error, contains)
	}
}

// tally records the denials one job's binding hears.
type tally struct {
	mu     sync.Mutex
	denied []schema.AuthError
}

func (ta *tally) binding(work *schema.Work) gateway.Binding {
	return gateway.Binding{JobID: work.Job.ID, Quotas: work.Spec.Quotas, OnDenied: func(ae schema.AuthError) {
		ta.mu.Lock()
		ta.denied = append(ta.denied, ae)
		ta.mu.Unlock()
	}}
}

func (ta *tally) get() []schema.AuthError {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	return slices.Clone(ta.denied)
}

// TestGuardReusedSocketBetweenJobs: a reused sandbox's socket serves the
// job that runs in it now and no other. Between jobs it serves none; while
// the second job runs, the first job's token is another job's, and that
// denial is the second job's to hear, never the first's.
func TestGuardReusedSocketBetweenJobs(t *testing.T) {
	rg := newRig(t, nil)
	first := rg.work("sock-a", `print("a")`)
	first.Spec.SingleUse = false
	var firstTally tally
	out, err := rg.runner.Run(t.Context(), &sandbox.Job{Work: first, Binding: firstTally.binding(first)})
	if err != nil {
		t.Fatal(err)
	}
	sock := socketOf(t, rg.inspect(out.Container))
	out.Release()
	if _, reusable := rg.runner.Sizes(); reusable != 1 {
		t.Fatalf("%d reusable sandboxes after the first job, want 1", reusable)
	}
	resp, err := probe(sock, first.Token)
	wantDenied(t, "first job's token between jobs", resp, err, "serves no job")

	second := rg.work("sock-b", "import time\ntime.sleep(3)\n")
	second.Spec.SingleUse = false
	var secondTally tally
	probed := make(chan struct{})
	out2, err := rg.runner.Run(t.Context(), &sandbox.Job{Work: second, Binding: secondTally.binding(second),
		OnStart: func(id string, kind schema.SandboxKind) {
			if id != out.Container || kind != schema.SandboxReused {
				t.Errorf("second job: %s sandbox %s; want the first's (%s), reused", kind, id, out.Container)
			}
			go func() {
				defer close(probed)
				resp, err := probe(sock, first.Token)
				wantDenied(t, "first job's token while the second runs", resp, err, "another job")
			}()
		}})
	if err != nil {
		t.Fatal(err)
	}
	<-probed
	if len(firstTally.get()) != 0 {
		t.Errorf("the first job heard denials after it ended: %+v", firstTally.get())
	}
	if d := secondTally.get(); len(d) != 1 || !strings.Contains(d[0].Message, "another job") {
		t.Errorf("second job's denials %+v; want the one of the first job's token", d)
	}
	out2.Release()
	resp, err = probe(sock, second.Token)
	wantDenied(t, "second job's token after it ended", resp, err, "serves no job")
}

// TestGuardPrewarmedSocket: a prewarmed sandbox's socket serves no job
// until it is handed one, and is closed as soon as that job has ended,
// before its Release (that is, before the job's terminal event).
func TestGuardPrewarmedSocket(t *testing.T) {
	rg := newRig(t, func(c *sandbox.Config) { c.Prewarm = 1 })
	first := rg.run(t.Context(), rg.work("pw-a", `print(1)`))
	if first.err != nil {
		t.Fatal(first.err)
	}
	first.out.Release()
	var warmID string
	deadline := time.Now().Add(time.Minute)
	for warmID == "" {
		list, err := rg.docker.ContainerList(t.Context(), container.ListOptions{All: true, Filters: filters.NewArgs(
			filters.Arg("label", sandbox.LabelWorker+"="+rg.id), filters.Arg("label", sandbox.LabelJob+"=prewarmed"))})
		if err != nil {
			t.Fatal(err)
		}
		if prewarmed, _ := rg.runner.Sizes(); prewarmed == 1 && len(list) == 1 {
			warmID = list[0].ID
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no prewarmed sandbox after a minute")
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-t.Context().Done():
			return
		}
	}
	sock := socketOf(t, rg.inspect(warmID))
	job := rg.work("pw-b", "import time\ntime.sleep(3)\n")
	resp, err := probe(sock, job.Token)
	wantDenied(t, "a job's token on a prewarmed socket before hand-over", resp, err, "serves no job")

	other := rg.work("pw-other", `print(1)`) // a job that runs nowhere
	var jobTally tally
	probed := make(chan struct{})
	out, err := rg.runner.Run(t.Context(), &sandbox.Job{Work: job, Binding: jobTally.binding(job),
		OnStart: func(id string, kind schema.SandboxKind) {
			if id != warmID || kind != schema.SandboxPrewarmed {
				t.Errorf("job: %s sandbox %s; want the prewarmed %s", kind, id, warmID)
			}
			go func() {
				defer close(probed)
				resp, err := probe(sock, other.Token)
				wantDenied(t, "another job's token on a bound socket", resp, err, "another job")
			}()
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	<-probed
	if _, err := probe(sock, job.Token); err == nil {
		t.Error("the socket still answers once its single-use job has ended")
	}
}

// TestGuardTimeoutNotReused: a reused sandbox whose job timed out is not
// given back to the reuse cache; its Release removes it.
func TestGuardTimeoutNotReused(t *testing.T) {
	rg := newRig(t, nil)
	work := rg.work("reuse-slow", "import time\ntime.sleep(60)\n")
	work.Spec.SingleUse = false
	work.Spec.TimeoutMS = 1500
	res := rg.run(t.Context(), work)
	if res.err != nil {
		t.Fatal(res.err)
	}
	if !res.out.TimedOut {
		t.Errorf("TimedOut %v, exit %+v; want a timeout", res.out.TimedOut, res.out.Exit)
	}
	res.out.Release()
	if _, reusable := rg.runner.Sizes(); reusable != 0 {
		t.Errorf("%d reusable sandboxes after a timed-out job, want 0", reusable)
	}
	if rg.exists(res.out.Container) {
		t.Error("the timed-out job's container is still there after Release")
	}
}
