package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/brig-dev/brig/schema"
)

func TestExitCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status   schema.Status
		exitCode int
		want     int
	}{
		{schema.StatusSucceeded, 0, 0},
		{schema.StatusSucceeded, -1, 0},
		{schema.StatusFailed, 3, 3},
		{schema.StatusFailed, 255, 255},
		{schema.StatusFailed, 143, 143},
		{schema.StatusFailed, 0, 1},
		{schema.StatusFailed, -1, 1},
		{schema.StatusFailed, 256, 1},
		{schema.StatusOOM, 137, 137},
		{schema.StatusOOM, -1, 137},
		{schema.StatusOOM, 0, 137},
		{schema.StatusOOM, 1, 1},
		{schema.StatusTimeout, -1, 124},
		{schema.StatusTimeout, 137, 124},
		{schema.StatusRejected, -1, 125},
		{schema.StatusError, -1, 125},
		{schema.StatusError, 3, 125},
		{schema.StatusCancelled, -1, 130},
		{"", 0, 125},
		{"unknown", 0, 125},
	}
	for _, tt := range tests {
		ev := &schema.Event{Status: tt.status, ExitCode: tt.exitCode}
		if got := exitCode(ev); got != tt.want {
			t.Errorf("exitCode(status %q, exit_code %d) = %d, want %d", tt.status, tt.exitCode, got, tt.want)
		}
	}
}

func TestReadCode(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "main.py")
	if err := os.WriteFile(file, []byte("print('file')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		arg     string
		stdin   string
		want    string
		wantErr bool
	}{
		{"stdin", "-", "print('hi')\n", "print('hi')\n", false},
		{"empty stdin", "-", "", "", false},
		{"file", file, "ignored", "print('file')\n", false},
		{"missing file", filepath.Join(t.TempDir(), "nope.py"), "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := readCode(tt.arg, strings.NewReader(tt.stdin))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("readCode(%q) = %q, %v; want %q, error %v", tt.arg, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestReadCodeStdinBounded(t *testing.T) {
	t.Parallel()
	// One byte over the job cap is enough for the dispatcher to refuse it;
	// reading further would only hold an endless pipe in memory.
	big := strings.NewReader(strings.Repeat("x", 2*schema.DefaultMaxJobBytes))
	got, err := readCode("-", big)
	if err != nil || len(got) != schema.DefaultMaxJobBytes+1 {
		t.Errorf("readCode read %d bytes, %v; want %d", len(got), err, schema.DefaultMaxJobBytes+1)
	}
	if _, err := readCode("-", iotest.ErrReader(os.ErrClosed)); err == nil {
		t.Error("readCode of a failing stdin: no error")
	}
}

func TestRunUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		args       []string
		want       int
		wantStdout string
		wantStderr []string
	}{
		{"no args", nil, 2, "", []string{"Usage:", "brig run"}},
		{"empty args", []string{}, 2, "", []string{"Usage:"}},
		{"unknown command", []string{"nosuch"}, 2, "", []string{`unknown command "nosuch"`, "Usage:"}},
		{"help", []string{"help"}, 0, "Usage:", nil},
		{"-h", []string{"-h"}, 0, "Usage:", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			if got := run(tt.args, strings.NewReader(""), &stdout, &stderr); got != tt.want {
				t.Errorf("run(%q) = %d, want %d", tt.args, got, tt.want)
			}
			if tt.wantStdout == "" && stdout.Len() > 0 {
				t.Errorf("stdout = %q, want nothing", stdout.String())
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout = %q, want it to contain %q", stdout.String(), tt.wantStdout)
			}
			for _, s := range tt.wantStderr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr = %q, want it to contain %q", stderr.String(), s)
				}
			}
			if tt.wantStderr == nil && stderr.Len() > 0 {
				t.Errorf("stderr = %q, want nothing", stderr.String())
			}
		})
	}
}
