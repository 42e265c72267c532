package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/go-units"

	"github.com/brig-dev/brig/internal/egress/wire"
	"github.com/brig-dev/brig/internal/gateway"
	"github.com/brig-dev/brig/schema"
)

// Sandbox filesystems and bounds (docs/design.md §5, §13.3). /work is
// owned by the job's uid through mount options: Docker drops a bare mode=
// when the image's WORKDIR is /work.
const (
	tmpfsTmp       = "rw,nosuid,nodev,noexec,size=64m"
	tmpfsWork      = "rw,nosuid,nodev,noexec,size=64m,uid=65534,gid=65534,mode=0755"
	maxFileBytes   = 64 << 20
	maxOpenFiles   = 1024
	teardownBudget = 30 * time.Second
	startBudget    = time.Minute
	// runscPidsGuard: under gVisor the host's pids cgroup also counts the
	// sandbox's own threads and helper processes, and gVisor panics when it
	// runs out; the job's own limit is enforced inside as RLIMIT_NPROC.
	runscPidsGuard = 4096
	// initPidsHeadroom is what a runc container's pids limit adds to the
	// job's for the init's threads (Go's runtime uses about 8).
	initPidsHeadroom = 16
)

// open starts a sandbox for spec with a gateway socket of its own, bound
// to no job yet; owner is its job's key, or what it waits for
// ("prewarmed", "reuse"). initArgs follow `sandbox-init` on the init's
// command line (prewarmArgs). beforeStart, when set, is given the attached
// sandbox before its container starts.
func (r *Runner) open(ctx context.Context, spec schema.RunSpec, owner string, initArgs []string, beforeStart func(*Sandbox)) (*Sandbox, error) {
	sock := filepath.Join(r.sockDir, randomSuffix()+randomSuffix()+".sock")
	ln, err := r.cfg.Listen(ctx, sock)
	if err != nil {
		return nil, err
	}
	eln, esock, err := r.openEgress(ctx, spec)
	if err != nil {
		ln.Close()
		return nil, err
	}
	closeSockets := func() {
		ln.Close()
		if eln != nil {
			eln.Close()
		}
	}
	id, err := r.createContainer(ctx, spec, owner, sock, esock, initArgs)
	if err != nil {
		closeSockets()
		return nil, err
	}
	hijack, err := r.cfg.Engine.ContainerAttach(ctx, id, container.AttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		closeSockets()
		r.removeContainer(ctx, id)
		return nil, fmt.Errorf("attach container for job %s: %w", owner, err)
	}
	sb := newSandbox(id, hijack, ln, sock)
	sb.egress = eln
	if beforeStart != nil {
		beforeStart(sb)
	}
	sctx, cancelStart := context.WithTimeout(ctx, startBudget) // a wedged runtime must not hold the slot
	err = r.cfg.Engine.ContainerStart(sctx, id, container.StartOptions{})
	cancelStart()
	if err != nil {
		r.discard(ctx, sb)
		return nil, dockerError("start", owner, err, spec)
	}
	return sb, nil
}

// discard ends a sandbox: its attach stream, its gateway socket and its
// container.
func (r *Runner) discard(ctx context.Context, sb *Sandbox) {
	sb.close()
	sb.ln.Close()
	sb.closeEgress()
	r.removeContainer(ctx, sb.id)
}

// removeContainer removes a container off the caller's cancellation.
func (r *Runner) removeContainer(ctx context.Context, id string) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), teardownBudget)
	defer cancel()
	if err := r.cfg.Engine.ContainerRemove(rctx, id, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		r.log.Warn("remove container", "container", id, "err", err)
	}
}

func (r *Runner) createContainer(ctx context.Context, spec schema.RunSpec, owner, sock, egressSock string, initArgs []string) (string, error) {
	netMode, err := r.networkMode(ctx, spec.Network)
	if err != nil {
		return "", err
	}
	pids := spec.Limits.Pids
	cpus := min(spec.Limits.CPUs, float64(r.hostCPUs))
	cfg := &container.Config{
		Image:        spec.Image,
		Entrypoint:   append([]string{InitPath, "sandbox-init"}, initArgs...),
		User:         "65534:65534",
		Env:          []string{},
		Hostname:     "sandbox",
		AttachStdin:  true,
		AttachStdout: true,
		AttachStderr: true,
		OpenStdin:    true,
		StdinOnce:    true,
		// A job with an egress list keeps its loopback, where its relay
		// listens (docs/design.md §12): network mode none, not disabled.
		NetworkDisabled: !spec.Network && egressSock == "",
		Labels:          map[string]string{LabelJob: owner, LabelWorker: r.cfg.WorkerID},
	}
	ulimits := []*units.Ulimit{
		{Name: "nofile", Soft: maxOpenFiles, Hard: maxOpenFiles},
		{Name: "fsize", Soft: maxFileBytes, Hard: maxFileBytes},
		{Name: "core", Soft: 0, Hard: 0},
	}
	if spec.Runtime == schema.RuntimeRunsc {
		// The job's own limit is RLIMIT_NPROC, set by the init on the job
		// alone (initRequest); Docker's limit only guards the host.
		pids = max(runscPidsGuard, 64*pids)
	} else {
		// The cgroup counts the init's own threads too: without room for
		// them a job at the smallest pids limit could not even start.
		pids += initPidsHeadroom
	}
	host := &container.HostConfig{
		NetworkMode:    netMode,
		ReadonlyRootfs: true,
		CapDrop:        []string{"ALL"},
		SecurityOpt:    []string{"no-new-privileges"},
		Tmpfs:          map[string]string{"/tmp": tmpfsTmp, schema.WorkDir: tmpfsWork},
		IpcMode:        "private",
		LogConfig:      container.LogConfig{Type: "none"},
		Runtime:        spec.Runtime,
		Mounts:         r.mounts(sock, egressSock),
		Resources: container.Resources{
			Memory:     spec.Limits.MemoryMB << 20,
			MemorySwap: spec.Limits.MemoryMB << 20,
			NanoCPUs:   int64(cpus * 1e9),
			PidsLimit:  &pids,
			Ulimits:    ulimits,
		},
	}
	name := "brig-" + owner + "-" + randomSuffix()
	// Off ctx: a create that ctx abandons mid-request (a cancellation) is
	// still carried out by the daemon, and without its id nothing would
	// remove it before this worker's next sweep. So the create runs to its
	// end within startBudget, and a container ctx no longer wants is
	// removed here.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), startBudget)
	defer cancel()
	resp, err := r.cfg.Engine.ContainerCreate(cctx, cfg, host, nil, nil, name)
	if err == nil && ctx.Err() != nil {
		r.removeContainer(ctx, resp.ID)
		return "", fmt.Errorf("create container for job %s: %w", owner, context.Cause(ctx))
	}
	if err != nil {
		if spec.Network && cerrdefs.IsNotFound(err) {
			r.forgetEgress() // removed behind our back: the retry prepares it anew
		}
		return "", dockerError("create", owner, err, spec)
	}
	return resp.ID, nil
}

// prewarmArgs are a prewarmed sandbox's init arguments: the zygote when
// spec has one (which warms the page cache as the warm-up would), else the
// warm-up command its init runs before the job when there is one.
func prewarmArgs(spec schema.RunSpec, warmup []string) []string {
	if args := zygoteArgs(spec); args != nil {
		return args
	}
	if len(warmup) > 0 {
		return append([]string{"--warmup"}, warmup...)
	}
	return nil
}

// networkMode is none for a job without a network and brig's egress
// network for one with it: never Docker's default bridge, from which a job
// would reach the host, NATS and its neighbours (docs/design.md §5).
func (r *Runner) networkMode(ctx context.Context, enabled bool) (container.NetworkMode, error) {
	if !enabled {
		return "none", nil
	}
	name, err := r.egressNetwork(ctx)
	return container.NetworkMode(name), err
}

// mounts are brig's files in the container, all read-only but the
// sockets: with egressSock, the egress socket and brig's resolv.conf too.
func (r *Runner) mounts(sock, egressSock string) []mount.Mount {
	ms := []mount.Mount{
		{Type: mount.TypeBind, Source: r.initBinary, Target: InitPath, ReadOnly: true},
		{Type: mount.TypeBind, Source: r.pythonPath, Target: PythonPath, ReadOnly: true},
	}
	if sock != "" {
		ms = append(ms, mount.Mount{Type: mount.TypeBind, Source: sock, Target: gateway.Socket})
	}
	if egressSock != "" {
		ms = append(ms,
			mount.Mount{Type: mount.TypeBind, Source: egressSock, Target: wire.SocketPath},
			mount.Mount{Type: mount.TypeBind, Source: r.resolvConf, Target: "/etc/resolv.conf", ReadOnly: true})
	}
	return ms
}

// dockerError turns a Docker error that no retry can fix into a *Failure,
// and wraps any other for a retry. Only Docker's own error is read: the
// job id in the wrapping is the client's and must not steer this.
func dockerError(op, jobID string, err error, spec schema.RunSpec) error {
	msg := strings.ToLower(err.Error())
	switch {
	case cerrdefs.IsNotFound(err) && strings.Contains(msg, "image"):
		return &Failure{ErrType: schema.ErrNotFound, Status: schema.StatusError,
			Message: fmt.Sprintf("image %q not found on this worker's Docker daemon (build it with `brig image build`)", spec.Image)}
	case cerrdefs.IsInvalidArgument(err) && strings.Contains(msg, "runtime"):
		return &Failure{ErrType: schema.ErrInvalidJob, Status: schema.StatusRejected,
			Message: fmt.Sprintf("runtime %q is not available on this worker's Docker daemon: %v", spec.Runtime, err)}
	}
	return fmt.Errorf("%s container for job %s: %w", op, jobID, err)
}

func randomSuffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
