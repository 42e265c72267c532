//go:build linux

package sandboxinit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// baseline is the sandbox as the init found it at start, before any job
// (or warm-up) ran: what a reuse-mode wipe resets to and then checks
// against, so that nothing a job set reaches the next one (docs/design.md
// §5, Reuse).
type baseline struct {
	roots []rootState
	// touch are the writable files outside the roots (device nodes, the
	// gateway socket): a job can set their times to now, nothing else.
	touch []fileTimes
	proc  procState
	// sockets are those the network namespace held before any job: the
	// init's own and any a Docker network keeps there (checkSockets).
	// socketsErr, when they could not be read, fails every wipe.
	sockets    socketSet
	socketsErr error
}

// fileTimes is a file with its times.
type fileTimes struct {
	path         string
	atime, mtime unix.Timespec
}

// rootState is what a job could set on a writable mount root. Times are
// read but not part of the comparison: the wipe sets them to now.
type rootState struct {
	path     string
	mode     uint32 // st_mode: type, permissions, setuid/setgid/sticky
	uid, gid uint32
	flags    uint32 // inode flags (chattr), when the filesystem has them
	hasFlags bool
	xattrs   map[string]string // every attribute name, ACLs included
	atime    unix.Timespec
	mtime    unix.Timespec
}

// newBaseline records roots (missing ones are skipped: a job cannot create
// them either) and the writable files found under touchDirs.
func newBaseline(roots, touchDirs []string) (*baseline, error) {
	// Thread 1 started the process; none of its threads was changed yet.
	b := &baseline{proc: readProcState(os.Getpid())}
	for _, dir := range roots {
		st, err := readRoot(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("baseline: %w", err)
		}
		b.roots = append(b.roots, st)
	}
	for _, dir := range touchDirs {
		b.touch = append(b.touch, writableFiles(dir, roots)...)
	}
	b.sockets, b.socketsErr = readSocketSet("/proc/net", "/proc/self/fd")
	return b, nil
}

// readRoot reads what a job could have set on dir.
func readRoot(dir string) (rootState, error) {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return rootState{}, &fs.PathError{Op: "stat", Path: dir, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return rootState{}, fmt.Errorf("%s is not a directory", dir)
	}
	xattrs, err := readXattrs(dir)
	if err != nil {
		return rootState{}, err
	}
	r := rootState{
		path: dir, mode: st.Mode, uid: st.Uid, gid: st.Gid, xattrs: xattrs,
		atime: st.Atim, mtime: st.Mtim,
	}
	r.flags, r.hasFlags = inodeFlags(dir)
	return r, nil
}

// readXattrs returns every extended attribute of path (not following a
// link): names and values. A filesystem without them has none.
func readXattrs(path string) (map[string]string, error) {
	names, err := xattrCall(func(buf []byte) (int, error) { return unix.Llistxattr(path, buf) })
	if errors.Is(err, unix.ENOTSUP) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, &fs.PathError{Op: "listxattr", Path: path, Err: err}
	}
	out := map[string]string{}
	for name := range strings.SplitSeq(strings.TrimSuffix(string(names), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		val, err := xattrCall(func(buf []byte) (int, error) { return unix.Lgetxattr(path, name, buf) })
		if err != nil && !errors.Is(err, unix.ENODATA) {
			return nil, &fs.PathError{Op: "getxattr " + name, Path: path, Err: err}
		}
		out[name] = string(val)
	}
	return out, nil
}

// xattrCall runs a list/get call that fills buf, growing buf while the
// answer outgrows it.
func xattrCall(call func(buf []byte) (int, error)) ([]byte, error) {
	for {
		n, err := call(nil)
		if err != nil {
			return nil, err
		}
		buf := make([]byte, n)
		n, err = call(buf)
		if errors.Is(err, unix.ERANGE) {
			continue // it grew between the calls
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

// inodeFlags reads dir's inode flags (FS_IOC_GETFLAGS); ok is false where
// the filesystem has none (mqueue).
func inodeFlags(dir string) (flags uint32, ok bool) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, false
	}
	defer unix.Close(fd)
	flags, err = unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	return flags, err == nil
}

// differences lists how got differs from the baseline r, times aside.
func (r *rootState) differences(got *rootState) []string {
	var d []string
	if got.mode != r.mode {
		d = append(d, fmt.Sprintf("mode %o, was %o", got.mode, r.mode))
	}
	if got.uid != r.uid || got.gid != r.gid {
		d = append(d, fmt.Sprintf("owner %d:%d, was %d:%d", got.uid, got.gid, r.uid, r.gid))
	}
	if got.hasFlags != r.hasFlags || got.flags != r.flags {
		d = append(d, fmt.Sprintf("inode flags %#x, were %#x", got.flags, r.flags))
	}
	for name, val := range got.xattrs {
		if want, ok := r.xattrs[name]; !ok || want != val {
			d = append(d, "extended attribute "+name)
		}
	}
	for name := range r.xattrs {
		if _, ok := got.xattrs[name]; !ok {
			d = append(d, "extended attribute "+name+" gone")
		}
	}
	slices.Sort(d)
	return d
}

// writableFiles lists the files under dir, other than directories, links
// and what lies under skip, that this process may write: a job (same uid)
// can set their times.
func writableFiles(dir string, skip []string) []fileTimes {
	var out []fileTimes
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return nil // unreadable: nothing below it is ours
		case d.IsDir() && slices.Contains(skip, p):
			return fs.SkipDir
		case d.IsDir() || d.Type()&fs.ModeSymlink != 0:
			return nil
		}
		var st unix.Stat_t
		if unix.Access(p, unix.W_OK) == nil && unix.Lstat(p, &st) == nil {
			out = append(out, fileTimes{path: p, atime: st.Atim, mtime: st.Mtim})
		}
		return nil
	})
	return out
}

// owned tells whether this process owns a root, and so may reset its
// mode, flags and attributes.
func (r *rootState) owned() bool { return int(r.uid) == os.Geteuid() }
