package sandbox

import (
	"debug/elf"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
)

// installInit copies the init binary into runtimeDir, where containers
// mount it read-only; the copy survives a `go run` binary being deleted and
// lives where a containerised worker shares paths with the host.
func installInit(src, runtimeDir string, log *slog.Logger) (string, error) {
	if err := os.MkdirAll(runtimeDir, 0o755); err != nil {
		return "", fmt.Errorf("runtime dir: %w", err)
	}
	if static, err := isStatic(src); err != nil {
		return "", fmt.Errorf("init binary %s: %w", src, err)
	} else if !static {
		log.Info("init binary is dynamically linked; sandbox images must provide a compatible libc (build brig with CGO_ENABLED=0 to avoid this)", "binary", src)
	}
	in, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("open init binary: %w", err)
	}
	defer in.Close()
	tmp, err := os.CreateTemp(runtimeDir, ".init-*")
	if err != nil {
		return "", fmt.Errorf("copy init binary: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return "", fmt.Errorf("copy init binary: %w", err)
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return "", fmt.Errorf("copy init binary: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("copy init binary: %w", err)
	}
	dst := filepath.Join(runtimeDir, "brig-init")
	// Rename over any older copy: containers that mount it keep their inode.
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", fmt.Errorf("install init binary: %w", err)
	}
	return dst, nil
}

// isStatic reports whether an ELF binary has no program interpreter.
func isStatic(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false, nil
		}
	}
	return true, nil
}
