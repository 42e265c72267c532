//go:build linux

package sandboxinit

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestEmptyDir: what a job leaves, however it locked it, goes; what a
// symbolic link points to outside stays.
func TestEmptyDir(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	keep := filepath.Join(outside, "keep")
	must(t, os.WriteFile(keep, []byte("x"), 0o644))
	must(t, os.MkdirAll(filepath.Join(dir, "a/b/c"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "a/b/c/f"), []byte("x"), 0o400))
	must(t, os.Chmod(filepath.Join(dir, "a/b/c"), 0o000))
	must(t, os.Chmod(filepath.Join(dir, "a/b"), 0o500))
	must(t, os.Symlink(outside, filepath.Join(dir, "link")))
	must(t, os.Symlink(keep, filepath.Join(dir, "a/keeplink")))
	must(t, os.WriteFile(filepath.Join(dir, ".hidden"), nil, 0o000))

	if err := emptyDir(dir); err != nil {
		t.Fatalf("emptyDir: %v", err)
	}
	left, err := os.ReadDir(dir)
	if err != nil || len(left) > 0 {
		t.Errorf("left in dir: %v (%v)", left, err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("a file outside, reached by a link, was touched: %v", err)
	}
	if err := emptyDir(filepath.Join(dir, "missing")); err != nil {
		t.Errorf("missing dir: %v", err)
	}
}

func TestIPCIDs(t *testing.T) {
	p := filepath.Join(t.TempDir(), "shm")
	must(t, os.WriteFile(p, []byte(
		"       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid\n"+
			"         0         7  1600                  4096    12    12      0 65534 65534 65534 65534\n"+
			"      1234     32769   600                  8192    13    13      1 65534 65534 65534 65534\n"), 0o644))
	ids, err := ipcIDs(p)
	if err != nil || !slices.Equal(ids, []int{7, 32769}) {
		t.Errorf("ipcIDs = %v, %v; want [7 32769]", ids, err)
	}
	must(t, os.WriteFile(p, []byte("key shmid\n 0 x\n"), 0o644))
	if _, err := ipcIDs(p); err == nil {
		t.Error("a bad id parsed")
	}
	if err := removeSysVIPC(filepath.Join(t.TempDir(), "none")); err != nil {
		t.Errorf("without /proc/sysvipc: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
