package sandbox

import (
	"os"
	"path/filepath"
	"testing"
)

func TestIsStatic(t *testing.T) {
	t.Parallel()
	if _, err := isStatic(os.Args[0]); err != nil {
		t.Errorf("isStatic(test binary): %v", err)
	}
	notELF := filepath.Join(t.TempDir(), "script.sh")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\ntrue\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{notELF, filepath.Join(t.TempDir(), "missing")} {
		if _, err := isStatic(path); err == nil {
			t.Errorf("isStatic(%s) = nil error, want one", path)
		}
	}
}
