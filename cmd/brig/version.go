package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// buildVersion is what brig version prints: where the binary came from.
type buildVersion struct {
	// Version is the main module's version: a tag or pseudo-version when
	// the go command could tell one, "(devel)" otherwise.
	Version string `json:"version"`
	// Revision, Time and Modified are the VCS commit the binary was built
	// from, its time and whether the tree had changes; empty when the
	// build recorded none (-buildvcs=false, or a tree outside VCS).
	Revision string `json:"revision,omitempty"`
	Time     string `json:"time,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	// Go is the Go version that built the binary; Platform its GOOS/GOARCH.
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

// versionOf reads a buildVersion from the binary's build information (nil
// when the binary carries none).
func versionOf(info *debug.BuildInfo) buildVersion {
	v := buildVersion{Version: "(unknown)", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if info == nil {
		return v
	}
	if info.Main.Version != "" {
		v.Version = info.Main.Version
	}
	if info.GoVersion != "" {
		v.Go = info.GoVersion
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// String is the one line brig version prints.
func (v buildVersion) String() string {
	s := "brig " + v.Version
	if v.Revision != "" {
		s += ", revision " + v.Revision
		if v.Modified {
			s += " (modified)"
		}
		if v.Time != "" {
			s += " of " + v.Time
		}
	}
	return s + ", built with " + v.Go + " for " + v.Platform
}

func cmdVersion(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("brig version", stdout, stderr)
	asJSON := fs.Bool("json", false, "print the version as one JSON object")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return parseExit(err)
	}
	if len(pos) != 0 {
		fmt.Fprintf(stderr, "usage: %s\n", helpOf(fs.Name()).synopsis)
		return exitUsage
	}
	info, _ := debug.ReadBuildInfo()
	v := versionOf(info)
	if *asJSON {
		data, _ := json.Marshal(v)
		fmt.Fprintf(stdout, "%s\n", data)
		return 0
	}
	fmt.Fprintln(stdout, v)
	return 0
}
