package image

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/brig-dev/brig/internal/testenv/needs"
)

func TestLookup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want bool
	}{
		{"python", true},
		{"brig/python", true},
		{"brig/python:latest", true},
		{"docker.io/brig/python:latest", true},
		{"brig/python:3.11", false},
		{"python:latest", false},
		{"library/python", false},
		{"ruby", false},
		{"", false},
		{"Not A Ref", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			spec, ok := Lookup(tt.in)
			if ok != tt.want {
				t.Fatalf("Lookup(%q) ok = %v, want %v", tt.in, ok, tt.want)
			}
			if ok && (spec.Name != "python" || spec.Ref != "brig/python:latest" || spec.Suite != "bookworm" || !slices.Equal(spec.Packages, []string{"python3"})) {
				t.Fatalf("Lookup(%q) = %+v", tt.in, spec)
			}
		})
	}
}

func TestKnownReturnsFreshValues(t *testing.T) {
	t.Parallel()
	k := Known()
	k[0].Packages[0] = "changed"
	k[0].Ref = "changed"
	if got := Known()[0]; got.Packages[0] != "python3" || got.Ref != "brig/python:latest" {
		t.Fatalf("Known() shares state between calls: %+v", got)
	}
	for _, s := range Known() {
		if err := s.validate(); err != nil {
			t.Errorf("built-in spec %q invalid: %v", s.Name, err)
		}
	}
}

func TestSpecValidate(t *testing.T) {
	t.Parallel()
	good := Spec{Name: "python", Ref: "brig/python:latest", Suite: "bookworm", Packages: []string{"python3", "libc6:amd64"}}
	tests := []struct {
		name   string
		change func(*Spec)
		ok     bool
	}{
		{"good", func(*Spec) {}, true},
		{"empty name", func(s *Spec) { s.Name = "" }, false},
		{"bad ref", func(s *Spec) { s.Ref = "Brig/Python" }, false},
		{"empty suite", func(s *Spec) { s.Suite = "" }, false},
		{"option as suite", func(s *Spec) { s.Suite = "--variant=x" }, false},
		{"no packages", func(s *Spec) { s.Packages = nil }, false},
		{"option as package", func(s *Spec) { s.Packages = []string{"--foo"} }, false},
		{"comma in package", func(s *Spec) { s.Packages = []string{"a,b"} }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := good
			s.Packages = slices.Clone(good.Packages)
			tt.change(&s)
			if err := s.validate(); (err == nil) != tt.ok {
				t.Fatalf("validate(%+v) = %v, want ok=%v", s, err, tt.ok)
			}
		})
	}
}

func TestMirrorFor(t *testing.T) {
	t.Parallel()
	const hostSources = `Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main
`
	tests := []struct {
		name  string
		file  string // file name inside the temp dir; "" means no file
		text  string
		suite string
		want  string
	}{
		{"deb822 host file", "debian.sources", hostSources, "bookworm", "http://mirror.example/debian"},
		{"deb822 other stanza", "debian.sources", hostSources, "bookworm-security", "http://security.example/debian-security"},
		{"deb822 suite missing", "debian.sources", hostSources, "trixie", defaultMirror},
		{"deb822 disabled", "debian.sources", "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nEnabled: no\n\nTypes: deb\nURIs: http://on.example/debian\nSuites: bookworm\n", "bookworm", "http://on.example/debian"},
		{"deb822 source only", "debian.sources", "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n", "bookworm", defaultMirror},
		{"deb822 folded and multiple URIs", "x.sources", "Types: deb\nURIs: cdrom:[Debian]/\n http://second.example/debian\nSuites:\n bookworm\n", "bookworm", "http://second.example/debian"},
		{"one-line", "sources.list", "# deb http://commented.example/debian bookworm main\ndeb-src http://src.example/debian bookworm main\ndeb http://one.example/debian bookworm main # trailing\n", "bookworm", "http://one.example/debian"},
		{"one-line with options", "sources.list", "deb [ arch=amd64 signed-by=/k.gpg ] http://opts.example/debian bookworm main\n", "bookworm", "http://opts.example/debian"},
		{"one-line other suite", "sources.list", "deb http://one.example/debian bullseye main\n", "bookworm", defaultMirror},
		{"missing file", "", "", "bookworm", defaultMirror},
		{"empty file", "sources.list", "", "bookworm", defaultMirror},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "absent.sources")
			if tt.file != "" {
				path = filepath.Join(dir, tt.file)
				if err := os.WriteFile(path, []byte(tt.text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got := mirrorFor(tt.suite, path); got != tt.want {
				t.Fatalf("mirrorFor(%q) = %q, want %q", tt.suite, got, tt.want)
			}
		})
	}
}

func TestMirrorForFallsThroughFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sources := filepath.Join(dir, "debian.sources")
	list := filepath.Join(dir, "sources.list")
	mustWrite(t, sources, "Types: deb\nURIs: http://a.example/debian\nSuites: trixie\n")
	mustWrite(t, list, "deb http://b.example/debian bookworm main\n")
	if got := mirrorFor("bookworm", sources, list); got != "http://b.example/debian" {
		t.Fatalf("mirrorFor = %q, want the sources.list mirror", got)
	}
}

func TestMmdebstrapArgs(t *testing.T) {
	t.Parallel()
	spec := Spec{Name: "python", Ref: "brig/python:latest", Suite: "bookworm", Packages: []string{"python3", "python3-venv"}}
	args := mmdebstrapArgs(spec, "http://m.example/debian", "/hooks/maybe-merged-usr")
	for _, want := range []string{
		"--variant=essential",
		"--include=python3,python3-venv",
		"--dpkgopt=path-exclude=/usr/share/doc/*",
		"--dpkgopt=path-exclude=/usr/share/man/*",
		"--dpkgopt=path-exclude=/usr/share/locale/*",
		"--hook-dir=/hooks/maybe-merged-usr",
		"--customize-hook=" + customizeHook,
	} {
		if !slices.Contains(args, want) {
			t.Errorf("args lack %q: %q", want, args)
		}
	}
	if tail := args[len(args)-3:]; !slices.Equal(tail, []string{"bookworm", "-", "http://m.example/debian"}) {
		t.Errorf("args end in %q, want suite, stdout target, mirror", tail)
	}
	if slices.ContainsFunc(mmdebstrapArgs(spec, "m", ""), func(a string) bool { return strings.HasPrefix(a, "--hook-dir") }) {
		t.Error("--hook-dir passed without a hook directory")
	}
	// The copyright files are re-included after the doc exclusion; dpkg
	// applies the filters in order.
	if slices.Index(args, "--dpkgopt=path-include=/usr/share/doc/*/copyright") < slices.Index(args, "--dpkgopt=path-exclude=/usr/share/doc/*") {
		t.Error("copyright include must follow the doc exclude")
	}
}

func TestCustomizeHook(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Skip("the hook chowns /work to 65534, which needs root on Linux")
	}
	root := t.TempDir()
	for _, d := range []string{"etc", "var/log/apt", "var/cache/debconf"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mustWrite(t, filepath.Join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")
	mustWrite(t, filepath.Join(root, "etc/group"), "root:x:0:\n")
	mustWrite(t, filepath.Join(root, "etc/hostname"), "buildhost\n")
	mustWrite(t, filepath.Join(root, "var/log/dpkg.log"), "x\n")
	for range 2 { // idempotent: nobody is added once
		if out, err := exec.Command("sh", "-c", customizeHook, "exec", root).CombinedOutput(); err != nil {
			t.Fatalf("hook: %v\n%s", err, out)
		}
	}
	passwd, _ := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if strings.Count(string(passwd), "nobody:x:65534:65534:") != 1 {
		t.Errorf("passwd:\n%s", passwd)
	}
	group, _ := os.ReadFile(filepath.Join(root, "etc/group"))
	if strings.Count(string(group), "nogroup:x:65534:") != 1 {
		t.Errorf("group:\n%s", group)
	}
	owner, err := exec.Command("stat", "-c", "%F %u:%g", filepath.Join(root, "work")).Output()
	if got := strings.TrimSpace(string(owner)); err != nil || got != "directory 65534:65534" {
		t.Errorf("/work is %q (%v), want a directory owned by 65534:65534", got, err)
	}
	for _, gone := range []string{"etc/hostname", "var/log/dpkg.log", "var/log/apt"} {
		if _, err := os.Lstat(filepath.Join(root, gone)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still present (%v)", gone, err)
		}
	}
}

func TestLineSink(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	s := newLineSink(&out, slog.New(slog.DiscardHandler))
	fmt.Fprint(s, "I: running apt-get update...\nI: running --customize-hook in shell: sh -c 'set -e; r=...' exec /tmp/x\n(Reading database ... 5%\r(Reading database ... 100%\r(Reading database ... 3744 files)\n")
	for i := 1; i <= 25; i++ {
		fmt.Fprintf(s, "noise %d\n", i)
	}
	fmt.Fprint(s, "E: setup failed") // no newline: kept by flush
	s.flush()

	if got, want := out.String(), "  I: running apt-get update...\n  I: running --customize-hook in shell\n  E: setup failed\n"; got != want {
		t.Errorf("progress = %q, want %q", got, want)
	}
	tail := s.tailText()
	if !strings.Contains(tail, "last 20 lines") || !strings.Contains(tail, "noise 7\n") || strings.Contains(tail, "noise 6\n") || !strings.HasSuffix(tail, "E: setup failed") {
		t.Errorf("tail = %q", tail)
	}
	if strings.Contains(tail, "5%") {
		t.Errorf("carriage-return progress kept: %q", tail)
	}
}

func TestReadImportResponse(t *testing.T) {
	t.Parallel()
	if err := readImportResponse(strings.NewReader(`{"status":"sha256:abc"}` + "\n")); err != nil {
		t.Errorf("ok stream: %v", err)
	}
	err := readImportResponse(strings.NewReader(`{"status":"x"}{"errorDetail":{"message":"no space left"},"error":"no space left"}`))
	if err == nil || err.Error() != "no space left" {
		t.Errorf("error stream: %v", err)
	}
	if err := readImportResponse(strings.NewReader(`{"status":`)); err == nil {
		t.Error("truncated stream: no error")
	}
}

// The tests below put a fake mmdebstrap first on PATH, so they cannot run
// in parallel (t.Setenv).

func TestBuildWithoutMmdebstrap(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	spec, _ := Lookup("python")
	err := Build(t.Context(), newFakeDocker(), spec, nil, nil)
	if !errors.Is(err, ErrNoMmdebstrap) {
		t.Fatalf("err = %v, want ErrNoMmdebstrap", err)
	}
	if !strings.Contains(err.Error(), "apt-get update && apt-get install -y mmdebstrap") {
		t.Errorf("err does not say how to install mmdebstrap: %v", err)
	}
}

func TestBuildStreamsRootfsIntoImport(t *testing.T) {
	argsFile := fakeMmdebstrap(t, "ok")
	docker := newFakeDocker()
	var progress bytes.Buffer
	spec := Spec{Name: "python", Ref: "brig-test/fake:latest", Suite: "bookworm", Packages: []string{"python3"}}

	if err := Build(t.Context(), docker, spec, &progress, testLogger(t)); err != nil {
		t.Fatalf("Build: %v", err)
	}
	if docker.imported != 3_000_000 {
		t.Errorf("import read %d bytes, want the whole 3000000-byte stream", docker.imported)
	}
	wantChanges := []string{
		"ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"ENV LANG=C.UTF-8",
		"USER 65534:65534",
		"WORKDIR /work",
		"LABEL brig.image=python",
	}
	if docker.ref != spec.Ref || docker.source != "-" || !slices.Equal(docker.changes, wantChanges) {
		t.Errorf("import ref=%q source=%q changes=%q", docker.ref, docker.source, docker.changes)
	}
	args, _ := os.ReadFile(argsFile)
	if !strings.Contains(string(args), "--include=python3\n") || !strings.HasSuffix(string(args), "bookworm\n-\n"+mirrorFor("bookworm", debianSources, sourcesList)+"\n") {
		t.Errorf("mmdebstrap args:\n%s", args)
	}
	p := progress.String()
	for _, want := range []string{"  I: stage 1\n", "  I: stage 30\n", "MB into the image import", "built brig-test/fake:latest 0123456789ab (3.0 MB) in "} {
		if !strings.Contains(p, want) {
			t.Errorf("progress lacks %q:\n%s", want, p)
		}
	}
}

func TestBuildFailingMmdebstrapAbortsImport(t *testing.T) {
	fakeMmdebstrap(t, "fail")
	docker := newFakeDocker()
	spec := Spec{Name: "python", Ref: "brig-test/fake:latest", Suite: "bookworm", Packages: []string{"python3"}}

	err := Build(t.Context(), docker, spec, nil, testLogger(t))
	if err == nil {
		t.Fatal("Build succeeded with a failing mmdebstrap")
	}
	if docker.readErr == nil {
		t.Error("the import saw a clean end of stream from a failed mmdebstrap")
	}
	if ok, _ := Exists(t.Context(), docker, spec.Ref); ok {
		t.Error("image exists after a failed build")
	}
	msg := err.Error()
	for _, want := range []string{"mmdebstrap: exit status 3", "last 20 lines", "I: stage 12", "E: setup failed: boom"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if strings.Contains(msg, "I: stage 11\n") {
		t.Errorf("error keeps more than 20 lines: %v", err)
	}
}

func TestBuildFailingImportStopsMmdebstrap(t *testing.T) {
	fakeMmdebstrap(t, "endless")
	docker := newFakeDocker()
	docker.failAfter = 1 << 20
	spec := Spec{Name: "python", Ref: "brig-test/fake:latest", Suite: "bookworm", Packages: []string{"python3"}}

	start := time.Now()
	err := Build(t.Context(), docker, spec, nil, testLogger(t))
	if err == nil || !strings.Contains(err.Error(), "docker image import: no space left on device") || !strings.Contains(err.Error(), "I: stage 30") {
		t.Fatalf("err = %v, want the import failure with mmdebstrap's stderr", err)
	}
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("Build took %s to stop an endless mmdebstrap", elapsed)
	}
}

func TestBuildCancelled(t *testing.T) {
	fakeMmdebstrap(t, "endless")
	docker := newFakeDocker()
	docker.cancelAfter = 1 << 20
	ctx, cancel := context.WithCancel(t.Context())
	docker.cancel = cancel
	spec := Spec{Name: "python", Ref: "brig-test/fake:latest", Suite: "bookworm", Packages: []string{"python3"}}

	err := Build(ctx, docker, spec, nil, testLogger(t))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestEnsureBuildsOnce(t *testing.T) {
	fakeMmdebstrap(t, "ok")
	docker := newFakeDocker()
	spec := Spec{Name: "python", Ref: "brig-test/fake:latest", Suite: "bookworm", Packages: []string{"python3"}}

	const callers = 4
	var wg sync.WaitGroup
	built := make(chan bool, callers)
	for range callers {
		wg.Go(func() {
			b, err := Ensure(t.Context(), docker, spec, nil, testLogger(t))
			if err != nil {
				t.Errorf("Ensure: %v", err)
			}
			built <- b
		})
	}
	wg.Wait()
	close(built)
	n := 0
	for b := range built {
		if b {
			n++
		}
	}
	if n != 1 || docker.imports != 1 {
		t.Fatalf("%d callers report building, %d imports; want 1 and 1", n, docker.imports)
	}
	if b, err := Ensure(t.Context(), docker, spec, nil, nil); b || err != nil {
		t.Fatalf("Ensure on a present image = %v, %v", b, err)
	}
}

// TestBuildPython builds the real python image from Debian, under a ref of
// its own, and runs a sandbox-like container from it.
func TestBuildPython(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Debian rootfs (about 30 s); skipped with -short")
	}
	docker := dockerOrSkip(t)
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		unavailable(t, "mmdebstrap", err)
	}
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // keep the per-ref lock file out of ~/.cache
	spec, _ := Lookup("python")
	spec.Ref = "brig-test/python-" + randomHex(t) + ":latest"
	t.Cleanup(func() { removeImage(t, docker, spec.Ref) })

	start := time.Now()
	if err := Build(t.Context(), docker, spec, &testWriter{t: t}, testLogger(t)); err != nil {
		t.Fatalf("Build: %v", err)
	}
	t.Logf("built %s in %s", spec.Ref, time.Since(start).Round(100*time.Millisecond))

	info, err := docker.ImageInspect(t.Context(), spec.Ref)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image %s: %.1f MB", info.ID, float64(info.Size)/1e6)
	cfg := info.Config
	if cfg.User != "65534:65534" || cfg.WorkingDir != "/work" || cfg.Labels["brig.image"] != "python" ||
		!slices.Contains(cfg.Env, "LANG=C.UTF-8") || !slices.Contains(cfg.Env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin") {
		t.Errorf("image config: user=%q workdir=%q labels=%v env=%q", cfg.User, cfg.WorkingDir, cfg.Labels, cfg.Env)
	}
	if ok, err := Exists(t.Context(), docker, spec.Ref); !ok || err != nil {
		t.Errorf("Exists after Build = %v, %v", ok, err)
	}
	if built, err := Ensure(t.Context(), docker, spec, nil, testLogger(t)); built || err != nil {
		t.Errorf("Ensure after Build = %v, %v; want no build", built, err)
	}

	out := runPython(t, docker, spec.Ref, "import json,sys; print(json.dumps({'ok': sys.version_info >= (3,11)}))")
	if out != `{"ok": true}` {
		t.Errorf("python printed %q, want {\"ok\": true}", out)
	}
	out = runPython(t, docker, spec.Ref, rootfsCheck)
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("rootfs check printed %q: %v", out, err)
	}
	want := map[string]any{"user": "nobody", "cwd": "/work", "work_uid": 65534.0, "work": []any{}, "man": 0.0, "locale": 0.0, "apt_lists": []any{}}
	for k, v := range want {
		if fmt.Sprint(got[k]) != fmt.Sprint(v) {
			t.Errorf("in the container %s = %v, want %v", k, got[k], v)
		}
	}
}

// rootfsCheck reports, as JSON, what the sandbox sees of its image.
const rootfsCheck = `import json, os, pwd
def files(d): return sum(len(f) for _, _, f in os.walk(d))
print(json.dumps({
  "user": pwd.getpwuid(os.getuid()).pw_name,
  "cwd": os.getcwd(),
  "work_uid": os.stat("/work").st_uid,
  "work": os.listdir("/work"),
  "man": files("/usr/share/man"),
  "locale": files("/usr/share/locale"),
  "apt_lists": [n for n in os.listdir("/var/lib/apt/lists") if n not in ("lock", "partial")],
}))`

// runPython runs python3 -c code in a locked-down container and returns
// its trimmed stdout; anything on stderr or a non-zero exit fails the test.
func runPython(t *testing.T, docker *client.Client, ref, code string) string {
	t.Helper()
	ctx := t.Context()
	created, err := docker.ContainerCreate(ctx,
		&container.Config{Image: ref, User: "65534", Cmd: []string{"python3", "-c", code}},
		&container.HostConfig{
			ReadonlyRootfs: true,
			NetworkMode:    "none",
			CapDrop:        []string{"ALL"},
			SecurityOpt:    []string{"no-new-privileges"},
		}, nil, nil, "")
	if err != nil {
		t.Fatalf("create container: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := docker.ContainerRemove(ctx, created.ID, container.RemoveOptions{Force: true}); err != nil {
			t.Errorf("remove container %s: %v", created.ID, err)
		}
	})
	waitC, errC := docker.ContainerWait(ctx, created.ID, container.WaitConditionNextExit)
	if err := docker.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start container: %v", err)
	}
	select {
	case res := <-waitC:
		if res.StatusCode != 0 {
			t.Errorf("container exited %d", res.StatusCode)
		}
	case err := <-errC:
		t.Fatalf("wait for container: %v", err)
	}
	logs, err := docker.ContainerLogs(ctx, created.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatalf("container logs: %v", err)
	}
	defer logs.Close()
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&stdout, &stderr, logs); err != nil {
		t.Fatalf("read container logs: %v", err)
	}
	if stderr.Len() > 0 {
		t.Errorf("container stderr: %s", stderr.String())
	}
	return strings.TrimSpace(stdout.String())
}

// dockerOrSkip connects to the daemon. Without one the test is skipped,
// except under BRIG_REQUIRE_DOCKER=1 (CI), where it fails.
func dockerOrSkip(t *testing.T) *client.Client {
	t.Helper()
	needs.Docker(t)
	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { docker.Close() })
	return docker
}

func unavailable(t *testing.T, what string, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is required in CI: %v", what, err)
	}
	t.Skipf("%s unavailable: %v", what, err)
}

func removeImage(t *testing.T, docker *client.Client, ref string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := docker.ImageRemove(ctx, ref, image.RemoveOptions{Force: true, PruneChildren: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		t.Errorf("remove image %s: %v", ref, err)
	}
}

func randomHex(t *testing.T) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// fakeMmdebstrap puts a script named mmdebstrap first on PATH and points
// the build lock at a temporary cache directory. The script writes 30
// stage lines on stderr, records its arguments in the returned file, and
// then, by mode: "ok" writes 3,000,000 bytes and succeeds; "fail" writes
// some bytes and exits 3; "endless" writes until its stdout breaks.
func fakeMmdebstrap(t *testing.T, mode string) (argsFile string) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("the fake mmdebstrap is a shell script")
	}
	dir := t.TempDir()
	argsFile = filepath.Join(dir, "args")
	script := `#!/bin/sh
printf '%s\n' "$@" > "$FAKE_ARGS"
i=1; while [ $i -le 30 ]; do echo "I: stage $i" >&2; i=$((i+1)); done
case "$FAKE_MODE" in
ok) head -c 3000000 /dev/zero ;;
fail) head -c 100000 /dev/zero; echo "E: setup failed: boom" >&2; exit 3 ;;
endless) cat /dev/zero ;;
esac
`
	mustWrite(t, filepath.Join(dir, "mmdebstrap"), script)
	if err := os.Chmod(filepath.Join(dir, "mmdebstrap"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("FAKE_ARGS", argsFile)
	t.Setenv("FAKE_MODE", mode)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	return argsFile
}

// fakeDocker imports by reading the whole stream, as the daemon does, and
// remembers what it was asked.
type fakeDocker struct {
	failAfter   int64              // fail the import after reading this much
	cancelAfter int64              // call cancel after reading this much
	cancel      context.CancelFunc // for cancelAfter

	mu       sync.Mutex
	images   map[string]image.InspectResponse
	imports  int
	imported int64
	readErr  error
	ref      string
	source   string
	changes  []string
}

func newFakeDocker() *fakeDocker {
	return &fakeDocker{images: map[string]image.InspectResponse{}}
}

func (f *fakeDocker) ImageImport(ctx context.Context, src image.ImportSource, ref string, opts image.ImportOptions) (io.ReadCloser, error) {
	var r io.Reader = src.Source
	if f.failAfter > 0 {
		r = io.LimitReader(r, f.failAfter)
	}
	if f.cancelAfter > 0 {
		r = io.LimitReader(r, f.cancelAfter)
	}
	n, err := io.Copy(io.Discard, r)
	if f.cancelAfter > 0 {
		f.cancel()
		<-ctx.Done()
		return nil, ctx.Err()
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	f.imports++
	f.imported, f.readErr = n, err
	f.ref, f.source, f.changes = ref, src.SourceName, opts.Changes
	switch {
	case err != nil:
		return nil, err // the client's upload failed
	case f.failAfter > 0:
		return io.NopCloser(strings.NewReader(`{"errorDetail":{"message":"no space left on device"},"error":"no space left on device"}`)), nil
	}
	f.images[ref] = image.InspectResponse{ID: "sha256:0123456789abcdef", Size: n}
	return io.NopCloser(strings.NewReader(`{"status":"sha256:0123456789abcdef"}` + "\n")), nil
}

func (f *fakeDocker) ImageInspect(_ context.Context, ref string, _ ...client.ImageInspectOption) (image.InspectResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if info, ok := f.images[ref]; ok {
		return info, nil
	}
	return image.InspectResponse{}, fmt.Errorf("no such image %s: %w", ref, cerrdefs.ErrNotFound)
}

// testWriter logs each progress line through t.Log.
type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(&testWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func mustWrite(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}
