//go:build linux

package sandboxinit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/brig-dev/brig/internal/initproto"
)

// layout writes the job's files under req.Dir and creates its out/ folder.
// Paths were validated by the dispatcher; they are checked again here
// because this is the last place before the filesystem.
func layout(req *initproto.Request) error {
	root := req.Dir
	for name, content := range req.Files {
		if !filepath.IsLocal(name) || filepath.Clean(name) != name {
			return fmt.Errorf("file %q is not a clean relative path", name)
		}
		full := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return fmt.Errorf("create folder for %q: %w", name, err)
		}
		f, err := os.OpenFile(full, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
		if err != nil {
			return fmt.Errorf("create %q: %w", name, err)
		}
		_, werr := io.WriteString(f, content)
		cerr := f.Close()
		if werr != nil || cerr != nil {
			return fmt.Errorf("write %q: %v %v", name, werr, cerr)
		}
	}
	if req.ResultPath != "" {
		if err := os.MkdirAll(filepath.Dir(req.ResultPath), 0o755); err != nil {
			return fmt.Errorf("create result folder: %w", err)
		}
	}
	return nil
}

// readResult returns the bytes the job wrote to path, surrounding
// whitespace trimmed, or why they cannot be sent. The JSON check here only
// names the problem early: the worker checks the bytes again.
func readResult(path string, max int64) ([]byte, string) {
	if path == "" {
		return nil, ""
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if os.IsNotExist(err) {
		return nil, ""
	}
	if err != nil {
		return nil, fmt.Sprintf("open result: %v", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return nil, "result is not a regular file"
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Sprintf("read result: %v", err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Sprintf("result is larger than %d bytes", max)
	}
	data = bytes.TrimSpace(data)
	if !json.Valid(data) {
		return nil, "result is not valid JSON"
	}
	return data, ""
}

// oomKills reads the container cgroup's OOM-kill counter (v2, then v1).
func oomKills() int64 {
	for _, p := range []string{"/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"} {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				return n
			}
		}
	}
	return 0
}
