//go:build linux

package sandboxinit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Inode flags a file's owner may set (chattr +d, +A).
const (
	fsNodumpFl  = 0x40
	fsNoatimeFl = 0x80
)

// aclBlob is a POSIX ACL as the kernel takes it in system.posix_acl_*:
// user::rwx, user:1000:rwx, group::r-x, mask::rwx, other::r-x.
func aclBlob() []byte {
	b := binary.LittleEndian.AppendUint32(nil, 2)
	for _, e := range []struct {
		tag, perm uint16
		id        uint32
	}{{1, 7, ^uint32(0)}, {2, 7, 1000}, {4, 5, ^uint32(0)}, {0x10, 7, ^uint32(0)}, {0x20, 5, ^uint32(0)}} {
		b = binary.LittleEndian.AppendUint16(b, e.tag)
		b = binary.LittleEndian.AppendUint16(b, e.perm)
		b = binary.LittleEndian.AppendUint32(b, e.id)
	}
	return b
}

// xattrDir is a temporary folder whose filesystem takes user attributes.
func xattrDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Setxattr(dir, "user.probe", []byte("x"), 0); err != nil {
		t.Skipf("no user xattrs on %s: %v", dir, err)
	}
	must(t, unix.Removexattr(dir, "user.probe"))
	return dir
}

// plant sets on dir what a job would leave: attributes, ACLs, an inode
// flag, mode bits, planted times, and entries of every kind.
func plant(t *testing.T, dir string, round int) {
	t.Helper()
	must(t, unix.Setxattr(dir, "user.leak"+strings.Repeat("x", round), []byte("secret"), 0))
	for _, name := range []string{"system.posix_acl_default", "system.posix_acl_access"} {
		if err := unix.Setxattr(dir, name, aclBlob(), 0); err != nil {
			t.Logf("%s: %v (no ACLs here)", name, err)
		}
	}
	_ = setInodeFlags(dir, fsNodumpFl|fsNoatimeFl) // where the filesystem has them
	past := time.Unix(1_000_000_000, 0)
	must(t, os.WriteFile(filepath.Join(dir, ".hidden"), []byte("x"), 0o600))
	must(t, unix.Mkfifo(filepath.Join(dir, "fifo"), 0o600))
	must(t, os.Mkdir(filepath.Join(dir, "sub"), 0o700))
	must(t, unix.Setxattr(filepath.Join(dir, "sub"), "user.inner", []byte("x"), 0))
	must(t, os.Chmod(dir, 0o1700))
	must(t, os.Chtimes(dir, past, past))
}

// TestWipeRootRestoresBaseline: whatever a job set on a root, the wipe
// brings back to the baseline, round after round (attributes do not pile
// up), and the times then say only when the wipe ran.
func TestWipeRootRestoresBaseline(t *testing.T) {
	dir := xattrDir(t)
	must(t, unix.Setxattr(dir, "user.kept", []byte("from the start"), 0))
	base, err := readRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		plant(t, dir, round)
		must(t, unix.Setxattr(dir, "user.kept", []byte("changed"), 0))
		if err := wipeRoot(&base); err != nil {
			t.Fatalf("round %d: wipeRoot: %v", round, err)
		}
		got, err := readRoot(dir)
		if err != nil {
			t.Fatal(err)
		}
		if d := base.differences(&got); len(d) > 0 || got.atime != got.mtime {
			t.Errorf("round %d: after the wipe %v, atime %v mtime %v", round, d, got.atime, got.mtime)
		}
		if got.mtime.Sec < time.Now().Add(-time.Minute).Unix() {
			t.Errorf("round %d: mtime %v is the planted one", round, got.mtime)
		}
		if left, _ := os.ReadDir(dir); len(left) > 0 {
			t.Errorf("round %d: left %v", round, left)
		}
	}
	// An attribute of the baseline that a job removed comes back.
	must(t, unix.Removexattr(dir, "user.kept"))
	if err := wipeRoot(&base); err != nil {
		t.Fatalf("wipeRoot after a removal: %v", err)
	}
	if val, _ := readXattrs(dir); val["user.kept"] != "from the start" {
		t.Errorf("user.kept = %q", val["user.kept"])
	}
}

// TestWipeRootCannotReset: what the wipe cannot change back (here an
// owner, which only root could change) is an error, naming it.
func TestWipeRootCannotReset(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to change a folder's owner")
	}
	dir := t.TempDir()
	base, err := readRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.Chown(dir, 12345, 12345))
	err = wipeRoot(&base)
	if err == nil || !strings.Contains(err.Error(), "owner 12345:12345") {
		t.Errorf("wipeRoot = %v, want an error naming the owner", err)
	}
}

func TestRootDifferences(t *testing.T) {
	base := rootState{mode: unix.S_IFDIR | 0o755, uid: 1, gid: 1, flags: 0, hasFlags: true, xattrs: map[string]string{"user.a": "1"}}
	tests := []struct {
		name string
		edit func(r *rootState)
		want string
	}{
		{"same", func(*rootState) {}, ""},
		{"mode", func(r *rootState) { r.mode |= unix.S_ISVTX }, "mode 41755, was 40755"},
		{"owner", func(r *rootState) { r.gid = 2 }, "owner 1:2, was 1:1"},
		{"flags", func(r *rootState) { r.flags = fsNoatimeFl }, "inode flags 0x80, were 0x0"},
		{"new attribute", func(r *rootState) { r.xattrs["system.posix_acl_default"] = "x" }, "extended attribute system.posix_acl_default"},
		{"changed attribute", func(r *rootState) { r.xattrs["user.a"] = "2" }, "extended attribute user.a"},
		{"removed attribute", func(r *rootState) { delete(r.xattrs, "user.a") }, "extended attribute user.a gone"},
		{"times only", func(r *rootState) { r.atime.Sec = 5 }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := base
			got.xattrs = map[string]string{"user.a": "1"}
			tt.edit(&got)
			if d := strings.Join(base.differences(&got), "; "); d != tt.want {
				t.Errorf("differences = %q, want %q", d, tt.want)
			}
		})
	}
}

// TestResetTimes: a file's planted times give way to now.
func TestResetTimes(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	must(t, os.WriteFile(p, nil, 0o666))
	past := time.Unix(1_000_000_000, 0)
	must(t, os.Chtimes(p, past, past))
	if err := resetTimes(p, nil); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	must(t, unix.Lstat(p, &st))
	if st.Mtim.Sec == past.Unix() || st.Atim != st.Mtim {
		t.Errorf("times after reset: atime %v mtime %v ctime %v", st.Atim, st.Mtim, st.Ctim)
	}
	if err := resetTimes(filepath.Join(t.TempDir(), "missing"), nil); err == nil {
		t.Error("reset of a missing file succeeded")
	}
}

func TestTimesSetSince(t *testing.T) {
	since := time.Unix(100, 0)
	tests := []struct {
		name         string
		atime, mtime unix.Timespec
		want         bool
	}{
		{"now", unix.Timespec{Sec: 101, Nsec: 5}, unix.Timespec{Sec: 101, Nsec: 5}, true},
		{"whole second", unix.Timespec{Sec: 100}, unix.Timespec{Sec: 100}, true},
		{"planted past", unix.Timespec{Sec: 1}, unix.Timespec{Sec: 1}, false},
		{"atime apart", unix.Timespec{Sec: 1}, unix.Timespec{Sec: 101}, false},
	}
	for _, tt := range tests {
		if got := timesSetSince(tt.atime, tt.mtime, since); got != tt.want {
			t.Errorf("%s: timesSetSince = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestWritableFiles(t *testing.T) {
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, "pts"), 0o755))
	must(t, os.MkdirAll(filepath.Join(dir, "shm"), 0o777))
	must(t, os.WriteFile(filepath.Join(dir, "null"), nil, 0o666))
	must(t, os.WriteFile(filepath.Join(dir, "pts/ptmx"), nil, 0o666))
	must(t, os.WriteFile(filepath.Join(dir, "shm/wiped"), nil, 0o666))
	must(t, os.Symlink("null", filepath.Join(dir, "stdout")))
	var got []string
	for _, f := range writableFiles(dir, []string{filepath.Join(dir, "shm")}) {
		got = append(got, f.path)
	}
	want := []string{filepath.Join(dir, "null"), filepath.Join(dir, "pts/ptmx")}
	if !slices.Equal(got, want) {
		t.Errorf("writableFiles = %v, want %v", got, want)
	}
	if got := writableFiles(filepath.Join(dir, "missing"), nil); len(got) > 0 {
		t.Errorf("under a missing folder: %v", got)
	}
}

func TestProcStateDifferences(t *testing.T) {
	base := readProcState(os.Getpid())
	if err := base.checkThreads("/proc/self/task"); err != nil {
		t.Fatalf("threads differ from the main one: %v", err)
	}
	if err := base.checkThreads(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("no error without a thread list")
	}
	changed := base
	changed.nice, changed.rlimits[unix.RLIMIT_NOFILE].Cur = base.nice+19, 10
	changed.affinity.Zero()
	d := base.differences(&changed)
	if len(d) != 3 || !strings.HasPrefix(d[0], "nice") || !strings.Contains(d[1], "CPU affinity") || !strings.Contains(d[2], "resource limit 7 10/") {
		t.Errorf("differences = %q", d)
	}
}

// TestCheckThreadsFindsOneChangedThread: a job can renice one thread of its
// init alone; that is found.
func TestCheckThreadsFindsOneChangedThread(t *testing.T) {
	base := readProcState(os.Getpid())
	done := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		tid := unix.Gettid()
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, base.nice+1); err != nil {
			done <- err
			return
		}
		err := base.checkThreads("/proc/self/task")
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("nice %d, was %d (thread %d)", base.nice+1, base.nice, tid)) {
			done <- fmt.Errorf("checkThreads = %v, want the reniced thread %d named", err, tid)
			return
		}
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Error(err)
	}
}

func TestNewBaselineSkipsMissingRoots(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	must(t, os.WriteFile(file, nil, 0o600))
	b, err := newBaseline([]string{dir, filepath.Join(dir, "missing")}, []string{dir})
	if err != nil || len(b.roots) != 1 || b.roots[0].path != dir {
		t.Fatalf("newBaseline = %+v, %v", b, err)
	}
	if _, err := newBaseline([]string{file}, nil); err == nil || errors.Is(err, os.ErrNotExist) {
		t.Errorf("a file as root: %v", err)
	}
}
