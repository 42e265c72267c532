//go:build linux

package sandboxinit

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// wipeDirs are the places a sandbox's job can write (the root filesystem is
// read-only): reuse mode empties them between jobs.
var wipeDirs = []string{"/work", "/tmp", "/dev/shm", "/dev/mqueue"}

// touchDirs hold the other files a job may write (device nodes, the
// gateway socket): it can set their times.
var touchDirs = []string{"/dev", "/run"}

// wipe removes everything a finished job could leave for the next one in a
// reused sandbox, and checks that the sandbox is as it was before the first
// job: its files, what it set on the writable mount roots (attributes,
// ACLs, inode flags, mode, times), on other writable files (times), on the
// init itself (priorities, affinity, limits) and its System V IPC objects,
// and that the network namespace holds no socket a job left (a TIME_WAIT
// connection's ports are the job's to choose, and stay readable in
// /proc/net/tcp for a minute). Its processes are gone already (killAll).
// What cannot be reset is an error: the sandbox must then not serve
// another job.
//
// What still reaches the next job, because nothing in the sandbox can reset
// it: the namespace's counters (/proc/net/dev's byte and packet counts of
// lo, /proc/net/snmp, /proc/net/netstat, /proc/net/sockstat's totals), and
// kernel caches keyed by address, such as TCP metrics of 127.0.0.1. A job
// can modulate them (bytes sent over lo, connections opened); the next job
// can read them.
func wipe(b *baseline, gatewayPath string) error {
	return errors.Join(wipeButSockets(b), b.checkSockets(gatewayPath))
}

// wipeButSockets is wipe without the check of the network namespace: what
// follows a prewarmed container's warm-up, which ran the function's own
// command with no job's data. Sockets it left (a warm-up may well connect
// somewhere) reach no one a job could tell anything, and must not make
// every prewarmed container of such a function unusable.
func wipeButSockets(b *baseline) error {
	var errs []error
	for i := range b.roots {
		errs = append(errs, wipeRoot(&b.roots[i]))
	}
	for _, f := range b.touch {
		errs = append(errs, resetTimes(f.path, &f))
	}
	errs = append(errs, removeSysVIPC("/proc/sysvipc"))
	errs = append(errs, b.proc.checkThreads("/proc/self/task"))
	return errors.Join(errs...)
}

// wipeRoot empties a writable mount root, resets what a job could set on
// the root itself to its baseline and its times to now, and checks the
// result. Times are set to now rather than to their baseline because only
// an owner may set explicit times (/tmp, /dev/shm and /dev/mqueue are
// root's): now works on every root, and leaves atime and mtime saying what
// ctime, which no one can set, says anyway: when the wipe ran.
func wipeRoot(base *rootState) error {
	dir := base.path
	if base.owned() {
		_ = unix.Chmod(dir, base.mode&0o7777|0o700) // the job may have locked it
	}
	if err := emptyDir(dir); err != nil {
		return err // emptyDir reads dir, and so must come before the times
	}
	since := resetSince()
	resetErr := resetRoot(base)
	got, err := readRoot(dir)
	if err != nil {
		return fmt.Errorf("wipe: %w", err)
	}
	d := base.differences(&got)
	if !timesSetSince(got.atime, got.mtime, since) {
		d = append(d, "times not reset")
	}
	if len(d) > 0 {
		return errors.Join(fmt.Errorf("wipe %s: %s differ from before the first job", dir, strings.Join(d, ", ")), resetErr)
	}
	return nil
}

// resetRoot undoes, as far as this process may, what a job set on an
// emptied root: attributes the baseline lacks go, changed ones are written
// back, then flags, mode and, last, times. wipeRoot checks the outcome.
func resetRoot(base *rootState) error {
	dir := base.path
	var errs []error
	now, err := readXattrs(dir)
	if err != nil {
		errs = append(errs, err)
	}
	for name, val := range now {
		want, ok := base.xattrs[name]
		switch {
		case !ok:
			if err := unix.Lremovexattr(dir, name); err != nil && !errors.Is(err, unix.ENODATA) {
				errs = append(errs, fmt.Errorf("remove %s: %w", name, err))
			}
		case want != val:
			errs = append(errs, setXattr(dir, name, want))
		}
	}
	for name, want := range base.xattrs {
		if _, ok := now[name]; !ok {
			errs = append(errs, setXattr(dir, name, want))
		}
	}
	if flags, ok := inodeFlags(dir); ok && base.hasFlags && flags != base.flags {
		errs = append(errs, setInodeFlags(dir, base.flags))
	}
	if base.owned() {
		errs = append(errs, unix.Chmod(dir, base.mode&0o7777))
	}
	errs = append(errs, resetTimes(dir, nil))
	return errors.Join(errs...)
}

func setXattr(path, name, val string) error {
	if err := unix.Lsetxattr(path, name, []byte(val), 0); err != nil {
		return fmt.Errorf("restore %s: %w", name, err)
	}
	return nil
}

func setInodeFlags(dir string, flags uint32) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("restore inode flags: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags)); err != nil {
		return fmt.Errorf("restore inode flags: %w", err)
	}
	return nil
}

// resetTimes sets path's atime and mtime to now (write permission is
// enough for that), and checks they took: a job can set the times of any
// file it may write, at a moment it chooses. Times still at start, when
// given, pass too: where setting them changes nothing (gVisor and a socket
// mounted from the host), a job could not set them either.
func resetTimes(path string, start *fileTimes) error {
	since := resetSince()
	now := []unix.Timespec{{Nsec: unix.UTIME_NOW}, {Nsec: unix.UTIME_NOW}}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, now, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("wipe: reset times of %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return fmt.Errorf("wipe: %w", &fs.PathError{Op: "stat", Path: path, Err: err})
	}
	if timesSetSince(st.Atim, st.Mtim, since) || start != nil && st.Atim == start.atime && st.Mtim == start.mtime {
		return nil
	}
	return fmt.Errorf("wipe: times of %s not reset", path)
}

// resetSince is a moment no later than any "now" a filesystem stamps from
// here on: file times come from a coarse clock, and /dev/mqueue keeps whole
// seconds only.
func resetSince() time.Time { return time.Now().Add(-time.Second).Truncate(time.Second) }

// timesSetSince tells whether atime and mtime are one "now" taken after
// since. It does not compare them with ctime: gVisor leaves a device
// node's ctime alone when its times are set.
func timesSetSince(atime, mtime unix.Timespec, since time.Time) bool {
	return atime == mtime && !time.Unix(mtime.Unix()).Before(since)
}

// emptyDir removes every entry of dir, and what is left afterwards is
// checked: a job must not be able to hide a file from the wipe.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("wipe %s: %w", dir, err)
	}
	var errs []error
	for _, e := range entries {
		errs = append(errs, removeAll(filepath.Join(dir, e.Name())))
	}
	if left, err := os.ReadDir(dir); err != nil || len(left) > 0 {
		errs = append(errs, fmt.Errorf("wipe %s: %d entries left (%v)", dir, len(left), err))
	}
	return errors.Join(errs...)
}

// removeAll removes path; when that fails (the job made a folder read-only
// or unsearchable), it makes every folder below writable and tries again.
// Symbolic links are removed, never followed.
func removeAll(path string) error {
	if os.RemoveAll(path) == nil {
		return nil
	}
	_ = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if d != nil && d.IsDir() {
			_ = os.Chmod(p, 0o700) // called before the folder is read
		}
		return nil
	})
	if err := os.RemoveAll(path); err != nil {
		return fmt.Errorf("wipe: %w", err)
	}
	return nil
}

// removeSysVIPC removes the System V shared memory segments, message
// queues and semaphore sets of the sandbox's IPC namespace: they outlive
// the processes that made them. procDir is /proc/sysvipc; where it does not
// exist there is nothing this init can enumerate.
func removeSysVIPC(procDir string) error {
	var errs []error
	for _, kind := range []struct {
		file string
		rm   func(id int) error
	}{
		{"shm", func(id int) error { _, err := unix.SysvShmCtl(id, unix.IPC_RMID, nil); return err }},
		{"msg", func(id int) error { return ipcctl(unix.SYS_MSGCTL, id, 0) }},
		{"sem", func(id int) error { return ipcctl(unix.SYS_SEMCTL, id, 0) }},
	} {
		ids, err := ipcIDs(filepath.Join(procDir, kind.file))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, id := range ids {
			if err := kind.rm(id); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.EIDRM) {
				errs = append(errs, fmt.Errorf("remove System V %s %d: %w", kind.file, id, err))
			}
		}
	}
	return errors.Join(errs...)
}

func ipcctl(trap uintptr, id, semnum int) error {
	var args [3]uintptr
	args[0] = uintptr(id)
	if trap == unix.SYS_SEMCTL {
		args[1], args[2] = uintptr(semnum), unix.IPC_RMID
	} else {
		args[1] = unix.IPC_RMID
	}
	if _, _, e := unix.Syscall(trap, args[0], args[1], args[2]); e != 0 {
		return e
	}
	return nil
}

// ipcIDs reads the ids (second column) of a /proc/sysvipc table.
func ipcIDs(path string) ([]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var ids []int
	for first := true; sc.Scan(); first = false {
		fields := strings.Fields(sc.Text())
		if first || len(fields) < 2 {
			continue // header
		}
		id, err := strconv.Atoi(fields[1])
		if err != nil {
			return nil, fmt.Errorf("%s: bad id %q", path, fields[1])
		}
		ids = append(ids, id)
	}
	return ids, sc.Err()
}
