package e2e

import (
	"context"
	"maps"
	"reflect"
	"testing"

	"github.com/brig-dev/brig/schema"
)

// metadataCode reports what a job finds on every writable mount root and
// on the other files it may write, then sets everything it can there (each
// attempt's outcome recorded: on root's roots most fail, and should), and
// reports the planted state. It sleeps before it ends so that the wipe's
// "now" is a later second than its own, even on /dev/mqueue, whose times
// have whole seconds only.
const metadataCode = `import array, errno, fcntl, json, os, struct, sys, time
ROOTS = ["/work", "/tmp", "/dev/shm", "/dev/mqueue"]
TOUCH = ["/dev/null", "/dev/zero", "/run/brig/gateway.sock"]
LAYOUT = {"main.py", "args.json", "out"}
PAST = 1_000_000_000
TAG = json.load(open("/work/args.json"))["tag"]
# user::rwx user:1000:rwx group::r-x mask::rwx other::r-x
ACL = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", t, p, i) for t, p, i in
    [(1, 7, 0xffffffff), (2, 7, 1000), (4, 5, 0xffffffff), (0x10, 7, 0xffffffff), (0x20, 5, 0xffffffff)])

def name(e):
    return errno.errorcode.get(e.errno, str(e.errno))

def flags(p, value=None):
    fd = os.open(p, os.O_RDONLY | os.O_DIRECTORY)
    try:
        a = array.array("i", [value or 0])
        fcntl.ioctl(fd, 0x40086602 if value else 0x80086601, a)
        return a[0]
    finally:
        os.close(fd)

def state(p):
    s = os.lstat(p)
    try:
        xattrs = {n: os.getxattr(p, n, follow_symlinks=False).hex() for n in os.listxattr(p, follow_symlinks=False)}
    except OSError as e:
        xattrs = {"<listxattr>": name(e)}
    try:
        f = flags(p)
    except OSError as e:
        f = name(e)
    return {"mode": s.st_mode, "uid": s.st_uid, "gid": s.st_gid, "xattrs": xattrs, "flags": f,
            "atime": s.st_atime_ns, "mtime": s.st_mtime_ns}

def times():
    out = {}
    for p in TOUCH:
        try:
            s = os.lstat(p)
            out[p] = {"atime": s.st_atime_ns, "mtime": s.st_mtime_ns}
        except FileNotFoundError:
            pass
    return out

def attempt(log, key, f):
    try:
        f()
        log[key] = "ok"
    except OSError as e:
        log[key] = name(e)

def plant(d):
    log = {}
    attempt(log, "hidden file", lambda: open(d + "/.leak", "w").write(TAG))
    attempt(log, "fifo", lambda: os.mkfifo(d + "/.fifo"))
    attempt(log, "folder", lambda: os.makedirs(d + "/.dir/sub"))
    attempt(log, "inner xattr", lambda: os.setxattr(d + "/.dir", "user.leak", TAG.encode()))
    attempt(log, "inner acl", lambda: os.setxattr(d + "/.dir", "system.posix_acl_default", ACL))
    attempt(log, "locked folder", lambda: os.chmod(d + "/.dir", 0))
    attempt(log, "user xattr", lambda: os.setxattr(d, "user.leak." + TAG, TAG.encode()))
    attempt(log, "default acl", lambda: os.setxattr(d, "system.posix_acl_default", ACL))
    attempt(log, "access acl", lambda: os.setxattr(d, "system.posix_acl_access", ACL))
    attempt(log, "inode flags", lambda: flags(d, 0xc0))  # noatime, nodump
    attempt(log, "mode", lambda: os.chmod(d, 0o3773))
    attempt(log, "past times", lambda: os.utime(d, (PAST, PAST)))
    if log["past times"] != "ok":
        attempt(log, "times now", lambda: os.utime(d, None))
    return log

found = {"roots": {d: state(d) for d in ROOTS}, "touch": times(), "entries": {}}  # before listing: that sets atime
for d in ROOTS + ["/work/out"]:
    names = sorted(os.listdir(d))
    found["entries"][d] = [n for n in names if d != "/work" or n not in LAYOUT]
planted = {d: plant(d) for d in ROOTS}
for p in TOUCH:
    if os.path.exists(p):
        attempt(planted.setdefault(p, {}), "times now", lambda: os.utime(p, None))
after = {"roots": {d: state(d) for d in ROOTS}, "touch": times()}
time.sleep(1.1)
json.dump({"found": found, "planted": planted, "after": after}, open("/work/out/result.json", "w"))
`

// rootState is what metadataCode reports of a root.
type rootState struct {
	Mode   int               `json:"mode"`
	UID    int               `json:"uid"`
	GID    int               `json:"gid"`
	Xattrs map[string]string `json:"xattrs"`
	Flags  any               `json:"flags"`
	Atime  int64             `json:"atime"`
	Mtime  int64             `json:"mtime"`
}

// sameBut tells whether two states agree on everything but times.
func (r rootState) sameBut(o rootState) bool {
	return r.Mode == o.Mode && r.UID == o.UID && r.GID == o.GID && maps.Equal(r.Xattrs, o.Xattrs) && r.Flags == o.Flags
}

type fileTimes struct {
	Atime int64 `json:"atime"`
	Mtime int64 `json:"mtime"`
}

// metadataReport is what metadataCode reports.
type metadataReport struct {
	Found struct {
		Roots   map[string]rootState `json:"roots"`
		Touch   map[string]fileTimes `json:"touch"`
		Entries map[string][]string  `json:"entries"`
	} `json:"found"`
	Planted map[string]map[string]string `json:"planted"`
	After   struct {
		Roots map[string]rootState `json:"roots"`
		Touch map[string]fileTimes `json:"touch"`
	} `json:"after"`
}

// writableRoots are the sandbox's writable mounts (docs/design.md §5).
var writableRoots = []string{"/work", "/tmp", "/dev/shm", "/dev/mqueue"}

// TestReuseMetadataWipedBetweenJobs: in reuse mode, nothing a job sets on a
// writable path reaches the next job in the same container: no entry of
// any kind, no extended attribute or ACL (none piles up either: each job
// sets new ones), no inode flag, mode or owner change, and no time it
// chose, on any writable mount root or other writable file.
func TestReuseMetadataWipedBetweenJobs(t *testing.T) {
	t.Parallel()
	fn := deployReuse(t, "reuse-meta")

	var reports []metadataReport
	var container string
	for i, tag := range []string{"one", "two", "three"} {
		j := pythonJob("reuse-meta-"+tag, metadataCode)
		j.Function, j.Args = fn, []byte(`{"tag":"`+tag+`"}`)
		j.Restricted = schema.Ptr(false) // a gateway socket, whose times it can set
		ev, err := runJob(t, j)
		if err != nil {
			t.Fatalf("job %s: %v (%s)", tag, err, brief(ev))
		}
		var r metadataReport
		probeOutput(t, ev, &r)
		reports = append(reports, r)
		started := startedOn(t, brig, j.ID)
		if i == 0 {
			container = started.Container
		} else if started.Container != container || started.Sandbox != schema.SandboxReused {
			t.Fatalf("job %s ran in %.12s (%s), want the reused %.12s", tag, started.Container, started.Sandbox, container)
		}
	}
	checkPlanted(t, reports[0])
	pristine := reports[0].Found
	for i, r := range reports[1:] {
		prev := reports[i]
		for _, d := range writableRoots {
			got, was := r.Found.Roots[d], pristine.Roots[d]
			if !got.sameBut(was) {
				t.Errorf("job %d found %s as %+v; the first job found %+v", i+2, d, got, was)
			}
			planted := prev.After.Roots[d]
			if got.Atime <= planted.Atime || got.Mtime <= planted.Mtime {
				t.Errorf("job %d found %s with atime %d mtime %d; the job before left %d %d", i+2, d, got.Atime, got.Mtime, planted.Atime, planted.Mtime)
			}
		}
		for d, names := range r.Found.Entries {
			if len(names) > 0 {
				t.Errorf("job %d found in %s: %q", i+2, d, names)
			}
		}
		for p, planted := range prev.After.Touch {
			if got := r.Found.Touch[p]; got.Atime <= planted.Atime || got.Mtime <= planted.Mtime {
				t.Errorf("job %d found %s with times %+v; the job before left %+v", i+2, p, got, planted)
			}
		}
	}
}

// checkPlanted checks that the first job did set what a job can set, so
// that the comparison above is not vacuous: everything on /work (its
// own), times on every root and other writable file.
func checkPlanted(t *testing.T, r metadataReport) {
	t.Helper()
	t.Logf("what the first job could set: %v", r.Planted)
	work := r.Planted["/work"]
	for _, key := range []string{"hidden file", "fifo", "folder", "locked folder", "user xattr", "default acl", "access acl", "inode flags", "mode", "past times", "inner xattr", "inner acl"} {
		if work[key] != "ok" {
			t.Errorf("the first job could not set %s on /work: %s", key, work[key])
		}
	}
	if got := r.After.Roots["/work"]; len(got.Xattrs) < 3 || got.Mtime != 1_000_000_000*1_000_000_000 {
		t.Errorf("/work after planting: %+v", got)
	}
	for p, log := range r.Planted {
		if log["past times"] != "ok" && log["times now"] != "ok" {
			t.Errorf("the first job could set no time on %s: %v", p, log)
		}
	}
	if _, ok := r.Planted["/run/brig/gateway.sock"]; !ok {
		t.Error("the job had no gateway socket to touch")
	}
	for _, d := range writableRoots[1:] {
		if r.Planted[d]["hidden file"] != "ok" {
			t.Errorf("the first job could not create a file in %s: %s", d, r.Planted[d]["hidden file"])
		}
	}
}

// TestReuseMetadataDiscardsWhatCannotBeReset: what a job sets that its
// init cannot change back (the init's own nice value, resource limits or
// CPU affinity, which every later job would inherit) ends the container:
// the next job of the function gets a fresh one and finds nothing changed.
func TestReuseMetadataDiscardsWhatCannotBeReset(t *testing.T) {
	t.Parallel()
	const probe = `import json, os, resource
json.dump({"nice": os.getpriority(os.PRIO_PROCESS, 1), "nofile": resource.prlimit(1, resource.RLIMIT_NOFILE),
           "cpus": len(os.sched_getaffinity(1))}, open("/work/out/result.json", "w"))
`
	tests := []struct{ name, code string }{
		{"nice", "import os; os.setpriority(os.PRIO_PROCESS, 1, 19)"},
		{"rlimit", "import resource; resource.prlimit(1, resource.RLIMIT_NOFILE, (64, 64))"},
		{"affinity", "import os; os.sched_setaffinity(1, {min(os.sched_getaffinity(1))})"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fn := deployReuse(t, "reuse-discard")
			run := func(prefix, code string) (map[string]any, schema.Event) {
				t.Helper()
				j := pythonJob(prefix, probe+code)
				j.Function = fn
				ev, err := runJob(t, j)
				if err != nil {
					t.Fatalf("job %s: %v (%s)", prefix, err, brief(ev))
				}
				var got map[string]any
				probeOutput(t, ev, &got)
				return got, startedOn(t, brig, j.ID)
			}
			before, first := run("reuse-discard-"+tt.name, tt.code)
			after, next := run("reuse-discard-next", "")
			if next.Container == first.Container || next.Sandbox == schema.SandboxReused {
				t.Errorf("after a change its init cannot undo, the next job ran in %.12s (%s); the changed one was %.12s",
					next.Container, next.Sandbox, first.Container)
			}
			if !reflect.DeepEqual(after, before) {
				t.Errorf("the next job found its init as %v, the changed job found it first as %v", after, before)
			}
			eventually(t, pollBudget, func(ctx context.Context) (bool, string) {
				_, err := docker.ContainerInspect(ctx, first.Container)
				return err != nil, "the changed container still exists"
			})
		})
	}
}

// deployReuse deploys the python function under a fresh name with
// single_use false, and returns the name.
func deployReuse(t *testing.T, prefix string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pollBudget)
	defer cancel()
	fn := schema.Python()
	fn.Name = newID(prefix)
	fn.SingleUse = schema.Ptr(false)
	deploy(ctx, t, fn)
	return fn.Name
}
