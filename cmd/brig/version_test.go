package main

import (
	"encoding/json"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionOf(t *testing.T) {
	t.Parallel()
	platform := runtime.GOOS + "/" + runtime.GOARCH
	tests := []struct {
		name string
		info *debug.BuildInfo
		want string
	}{
		{"no build info", nil, "brig (unknown), built with " + runtime.Version() + " for " + platform},
		{"a development build", &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "(devel)"}},
			"brig (devel), built with go1.26.1 for " + platform},
		{"from VCS", &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "v0.0.0-20260101000000-0123456789ab+dirty"},
			Settings: []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "0123456789abcdef"},
				{Key: "vcs.time", Value: "2026-01-01T00:00:00Z"}, {Key: "vcs.modified", Value: "true"}}},
			"brig v0.0.0-20260101000000-0123456789ab+dirty, revision 0123456789abcdef (modified) of 2026-01-01T00:00:00Z, built with go1.26.1 for " + platform},
		{"a clean tree", &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "v1.2.3"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "false"}}},
			"brig v1.2.3, revision abc, built with go1.26.1 for " + platform},
	}
	for _, tt := range tests {
		if got := versionOf(tt.info).String(); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestVersionCommand: brig version prints one line, or one JSON object
// with --json, and takes nothing from the environment (BRIG_JSON is
// status's).
func TestVersionCommand(t *testing.T) {
	t.Setenv("BRIG_JSON", "true")
	code, stdout, stderr := runMain("version")
	if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "brig ") || !strings.HasSuffix(stdout, " for "+runtime.GOOS+"/"+runtime.GOARCH+"\n") {
		t.Errorf("brig version: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, _ = runMain("version", "--json")
	var v buildVersion
	if err := json.Unmarshal([]byte(stdout), &v); code != 0 || err != nil || v.Go != runtime.Version() || v.Version == "" {
		t.Errorf("brig version --json: exit %d, %q (%v)", code, stdout, err)
	}
}
