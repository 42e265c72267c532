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

	"golang.org/x/sys/unix"
)

// wipeDirs are the places a sandbox's job can write (the root filesystem is
// read-only): reuse mode empties them between jobs.
var wipeDirs = []string{"/work", "/tmp", "/dev/shm", "/dev/mqueue"}

// wipe removes everything a finished job could leave for the next one in a
// reused sandbox: its files and System V IPC objects. Its processes are
// gone already (killAll).
func wipe() error {
	var errs []error
	for _, dir := range wipeDirs {
		errs = append(errs, emptyDir(dir))
	}
	errs = append(errs, removeSysVIPC("/proc/sysvipc"))
	return errors.Join(errs...)
}

// emptyDir removes every entry of dir, and what is left afterwards is
// checked: a job must not be able to hide a file from the wipe.
func emptyDir(dir string) error {
	if dir == "/work" {
		_ = os.Chmod(dir, 0o755) // the job owns it and may have locked it
	}
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
