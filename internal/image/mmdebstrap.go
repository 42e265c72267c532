package image

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// customizeHook runs on the finished chroot ($1) before mmdebstrap's own
// cleanup (which empties the apt lists and cache). It makes sure the sandbox
// user exists, creates /work for the worker's tmpfs, and drops files that
// would only carry build-host details (hostname, resolver) or dead weight.
const customizeHook = `set -e; r="$1"; ` +
	`grep -q '^nobody:[^:]*:65534:65534:' "$r/etc/passwd" || echo 'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin' >> "$r/etc/passwd"; ` +
	`grep -q '^nogroup:[^:]*:65534:' "$r/etc/group" || echo 'nogroup:x:65534:' >> "$r/etc/group"; ` +
	`install -d -o 65534 -g 65534 -m 0755 "$r/work"; ` +
	`rm -f "$r/etc/hostname" "$r/etc/resolv.conf"; ` +
	`rm -rf "$r"/var/log/* "$r"/var/cache/debconf/*-old "$r"/var/lib/dpkg/*-old`

// mmdebstrapArgs returns the arguments that build spec's rootfs as a tar on
// standard output. The essential variant has no apt and no init; only
// Essential:yes packages plus spec.Packages are installed, without
// documentation (copyright files stay), manuals, info pages or
// translations.
func mmdebstrapArgs(spec Spec, mirror, hookDir string) []string {
	args := []string{
		"--variant=essential",
		"--include=" + strings.Join(spec.Packages, ","),
		"--dpkgopt=path-exclude=/usr/share/doc/*",
		"--dpkgopt=path-include=/usr/share/doc/*/copyright",
		"--dpkgopt=path-exclude=/usr/share/man/*",
		"--dpkgopt=path-exclude=/usr/share/info/*",
		"--dpkgopt=path-exclude=/usr/share/locale/*",
		"--customize-hook=" + customizeHook,
	}
	if hookDir != "" {
		args = append(args, "--hook-dir="+hookDir)
	}
	return append(args, spec.Suite, "-", mirror)
}

// mergedUsrHookDir finds mmdebstrap's maybe-merged-usr hooks next to the
// binary (/usr/bin/mmdebstrap -> /usr/share/mmdebstrap/hooks). Without them
// bookworm's essential set pulls in usrmerge and with it perl, which adds
// about 50 MB to the image; with them the rootfs gets the same merged /usr
// from the small usr-is-merged package. Returns "" when they are missing.
func mergedUsrHookDir(bin string) string {
	if resolved, err := filepath.EvalSymlinks(bin); err == nil {
		bin = resolved
	}
	dir := filepath.Join(filepath.Dir(filepath.Dir(bin)), "share", "mmdebstrap", "hooks", "maybe-merged-usr")
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return dir
	}
	return ""
}

// Limits for what is kept of mmdebstrap's standard error.
const (
	stderrTailLines = 20
	maxLineBytes    = 4 << 10
	maxStageLine    = 200
)

// lineSink receives mmdebstrap's standard error. It forwards the stage
// lines ("I: ...", "W: ...", "E: ...") to the progress writer, logs every
// line at debug level and keeps the last lines for error messages. A
// carriage return starts the line over, as it would on a terminal, so
// apt's and dpkg's progress counters collapse to their final state.
type lineSink struct {
	out io.Writer
	log *slog.Logger

	mu      sync.Mutex
	partial []byte
	tail    []string
}

func newLineSink(out io.Writer, log *slog.Logger) *lineSink {
	return &lineSink{out: out, log: log}
}

func (s *lineSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range p {
		switch {
		case b == '\n':
			s.endLine()
		case b == '\r':
			s.partial = s.partial[:0]
		case len(s.partial) < maxLineBytes:
			s.partial = append(s.partial, b)
		}
	}
	return len(p), nil
}

// flush ends a last line that had no newline.
func (s *lineSink) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endLine()
}

func (s *lineSink) endLine() {
	line := strings.TrimRight(string(s.partial), " \t")
	s.partial = s.partial[:0]
	if line == "" {
		return
	}
	s.log.Debug("mmdebstrap", "line", line)
	if len(s.tail) == stderrTailLines {
		s.tail = s.tail[1:]
	}
	s.tail = append(s.tail, line)
	if isStageLine(line) {
		fmt.Fprintf(s.out, "  %s\n", stageSummary(line))
	}
}

// tailText formats the kept lines for appending to an error message.
func (s *lineSink) tailText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.tail) == 0 {
		return "\nmmdebstrap wrote nothing on stderr"
	}
	return fmt.Sprintf("\nlast %d lines of mmdebstrap's stderr:\n  %s", len(s.tail), strings.Join(s.tail, "\n  "))
}

func isStageLine(line string) bool {
	for _, p := range []string{"I: ", "W: ", "E: "} {
		if strings.HasPrefix(line, p) {
			return true
		}
	}
	return false
}

// stageSummary shortens a stage line for the progress writer: the hook
// line would otherwise repeat the whole customize script.
func stageSummary(line string) string {
	if i := strings.Index(line, " in shell: "); i > 0 {
		line = line[:i] + " in shell"
	}
	if len(line) > maxStageLine {
		line = line[:maxStageLine] + "..."
	}
	return line
}
