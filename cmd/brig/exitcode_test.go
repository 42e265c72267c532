package main

import (
	"bytes"
	"strings"
	"testing"

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
		{"--help", []string{"--help"}, 0, "Usage:", nil},
		{"help help", []string{"help", "help"}, 0, "Usage:", nil},
		{"help run", []string{"help", "run"}, 0, "Usage: brig run [flags] FILE|-", nil},
		{"help tenant add", []string{"help", "tenant", "add"}, 0, "Usage: brig tenant add NAME", nil},
		{"help image", []string{"help", "image"}, 0, "usage: brig image build [NAME]", nil},
		{"help of an unknown command", []string{"help", "nosuch"}, 2, "", []string{`unknown command "nosuch"`, "Usage:"}},
		{"run -h", []string{"run", "-h"}, 0, "--stdin FILE", nil},
		{"run --help after a file", []string{"run", "x.py", "--help"}, 0, "Usage: brig run", nil},
		{"unknown flag", []string{"run", "--nosuch"}, 2, "", []string{"flag provided but not defined: -nosuch", "usage: brig run [flags] FILE|-", "brig run -h"}},
		{"run without a file", []string{"run"}, 2, "", []string{"usage: brig run [flags] FILE|-"}},
		{"--version", []string{"--version"}, 0, "brig ", nil},
		{"version with an argument", []string{"version", "x"}, 2, "", []string{"usage: brig version"}},
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
