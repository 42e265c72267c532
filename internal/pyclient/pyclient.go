// Package pyclient ships brig's in-container Python client: the module
// `brig` (stdlib only), with which a job's code reaches the dicts, queues
// and functions its credential grants, through the job's gateway socket
// (the protocol is internal/gatewayproto's). The worker installs it once in
// its runtime dir and bind-mounts the result read-only into every
// container, on PYTHONPATH.
package pyclient

import (
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
)

// source is the module's source, brig/__init__.py.
//
//go:embed brig/__init__.py
var source []byte

// Install writes the module to <dir>/python/brig/__init__.py (directories
// 0755, file 0644, so that any uid in a container can read them), replacing
// any earlier version atomically, and returns <dir>/python: the directory to
// put on PYTHONPATH.
func Install(dir string) (string, error) {
	root := filepath.Join(dir, "python")
	pkg := filepath.Join(root, "brig")
	if err := os.MkdirAll(pkg, 0o755); err != nil {
		return "", fmt.Errorf("install python client: %w", err)
	}
	// MkdirAll obeys the umask; the container's uid needs to read through.
	for _, d := range []string{root, pkg} {
		if err := os.Chmod(d, 0o755); err != nil {
			return "", fmt.Errorf("install python client: %w", err)
		}
	}
	if err := writeFile(filepath.Join(pkg, "__init__.py"), source); err != nil {
		return "", fmt.Errorf("install python client: %w", err)
	}
	return root, nil
}

// writeFile replaces path with data (mode 0644) through a temporary file in
// the same directory, so that a reader sees the old file or the new one.
func writeFile(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Chmod(0o644)
	}
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		_ = os.Remove(tmp)
		return werr
	}
	return nil
}
