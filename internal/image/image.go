package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// Importer is the slice of the Docker Engine API the builder needs;
// *client.Client satisfies it.
type Importer interface {
	ImageImport(ctx context.Context, source image.ImportSource, ref string, options image.ImportOptions) (io.ReadCloser, error)
	ImageInspect(ctx context.Context, imageID string, opts ...client.ImageInspectOption) (image.InspectResponse, error)
}

// ErrNoMmdebstrap means mmdebstrap, which Build needs, is not on PATH.
var ErrNoMmdebstrap = errors.New("mmdebstrap not found on PATH")

// cleanupGrace is how long a cancelled mmdebstrap gets to unmount and
// remove its temporary chroot before it is killed.
const cleanupGrace = 30 * time.Second

// Exists reports whether ref is present locally.
func Exists(ctx context.Context, docker Importer, ref string) (bool, error) {
	_, err := docker.ImageInspect(ctx, ref)
	switch {
	case err == nil:
		return true, nil
	case cerrdefs.IsNotFound(err):
		return false, nil
	default:
		return false, fmt.Errorf("inspect image %s: %w", ref, err)
	}
}

// Ensure builds spec when its image is missing and reports whether it
// built. Concurrent calls for the same ref, in this process or another,
// build once: the others wait and then find the image.
func Ensure(ctx context.Context, docker Importer, spec Spec, progress io.Writer, log *slog.Logger) (built bool, err error) {
	if err := spec.validate(); err != nil {
		return false, err
	}
	progress, log = orDiscard(progress, log)
	if ok, err := Exists(ctx, docker, spec.Ref); err != nil || ok {
		return false, err
	}
	unlock, err := lockRef(ctx, spec.Ref, progress, log)
	if err != nil {
		return false, err
	}
	defer unlock()
	if ok, err := Exists(ctx, docker, spec.Ref); err != nil || ok {
		return false, err
	}
	if err := build(ctx, docker, spec, progress, log); err != nil {
		return false, err
	}
	return true, nil
}

// Build builds spec offline and tags the result spec.Ref, replacing any
// image of that ref. mmdebstrap writes the rootfs to a pipe that is the
// body of the import, so nothing is staged on disk. Progress lines (the
// stages of mmdebstrap, the megabytes imported, and a final line with image
// id, size and time taken) go to progress; either may be nil.
//
// A missing mmdebstrap is an error wrapping ErrNoMmdebstrap. A failed
// build's error ends with the last lines mmdebstrap wrote on stderr.
func Build(ctx context.Context, docker Importer, spec Spec, progress io.Writer, log *slog.Logger) error {
	if err := spec.validate(); err != nil {
		return err
	}
	progress, log = orDiscard(progress, log)
	unlock, err := lockRef(ctx, spec.Ref, progress, log)
	if err != nil {
		return err
	}
	defer unlock()
	return build(ctx, docker, spec, progress, log)
}

// build is Build without the lock, which Ensure already holds.
func build(ctx context.Context, docker Importer, spec Spec, progress io.Writer, log *slog.Logger) error {
	bin, err := exec.LookPath("mmdebstrap")
	if err != nil {
		return fmt.Errorf("build image %s: %w: install it with `apt-get update && apt-get install -y mmdebstrap`", spec.Ref, ErrNoMmdebstrap)
	}
	out := &syncWriter{w: progress}
	defer out.close()

	start := time.Now()
	mirror := mirrorFor(spec.Suite, debianSources, sourcesList)
	hooks := mergedUsrHookDir(bin)
	if hooks == "" {
		log.Warn("mmdebstrap's merged-usr hooks not found; the image will carry usrmerge and perl")
	}
	fmt.Fprintf(out, "building %s: Debian %s from %s with %s\n", spec.Ref, spec.Suite, mirror, strings.Join(spec.Packages, ", "))
	log.Info("building sandbox image", "ref", spec.Ref, "suite", spec.Suite, "mirror", mirror, "packages", spec.Packages)

	if err := runBuild(ctx, docker, spec, bin, mmdebstrapArgs(spec, mirror, hooks), out, log); err != nil {
		return fmt.Errorf("build image %s: %w", spec.Ref, err)
	}
	info, err := docker.ImageInspect(ctx, spec.Ref)
	if err != nil {
		return fmt.Errorf("build image %s: inspect the imported image: %w", spec.Ref, err)
	}
	elapsed := time.Since(start).Round(100 * time.Millisecond)
	fmt.Fprintf(out, "built %s %s (%.1f MB) in %s\n", spec.Ref, shortID(info.ID), float64(info.Size)/1e6, elapsed)
	log.Info("sandbox image built", "ref", spec.Ref, "id", info.ID, "size", info.Size, "elapsed", elapsed)
	return nil
}

// runBuild runs mmdebstrap with its stdout piped into the image import and
// waits for both. When one side fails it stops the other and reports the
// side that failed first, with mmdebstrap's last stderr lines.
func runBuild(parent context.Context, docker Importer, spec Spec, bin string, args []string, out io.Writer, log *slog.Logger) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	pr, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("create pipe for the rootfs: %w", err)
	}
	stderr := newLineSink(out, log)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = pw, stderr
	cmd.WaitDelay = cleanupGrace
	ownProcessGroup(cmd)
	err = cmd.Start()
	pw.Close() // the child holds its own copy; EOF comes when it exits
	if err != nil {
		pr.Close()
		return fmt.Errorf("start mmdebstrap: %w", err)
	}
	proc := waitAsync(cmd)

	importErr := importRootfs(ctx, docker, spec, &rootfsStream{r: pr, proc: proc, out: out})
	mmdebstrapFailedFirst := proc.exited() && proc.err != nil
	pr.Close() // an early import failure leaves mmdebstrap writing: EPIPE
	if importErr != nil {
		cancel()
	}
	exitErr := proc.wait()
	if importErr != nil || exitErr != nil {
		killProcessGroup(cmd)
	}
	stderr.flush()
	return buildError(parent.Err(), mmdebstrapFailedFirst, exitErr, importErr, stderr.tailText())
}

// buildError picks the cause to report: the caller's cancellation, then
// mmdebstrap if it failed on its own, then the import (mmdebstrap killed
// because of an import failure is a consequence, not a cause).
func buildError(ctxErr error, mmdebstrapFailedFirst bool, exitErr, importErr error, tail string) error {
	switch {
	case exitErr == nil && importErr == nil:
		return nil
	case ctxErr != nil:
		return fmt.Errorf("interrupted: %w%s", ctxErr, tail)
	case mmdebstrapFailedFirst || importErr == nil:
		return fmt.Errorf("mmdebstrap: %w%s", exitErr, tail)
	default:
		return fmt.Errorf("docker image import: %w%s", importErr, tail)
	}
}
