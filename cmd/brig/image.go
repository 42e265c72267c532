package main

import (
	"context"
	"fmt"
	"io"

	"github.com/docker/docker/client"

	"github.com/brig-dev/brig/internal/image"
)

func cmdImage(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "build" {
		if len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			fmt.Fprintln(stdout, "usage: brig image build [NAME]\nRun 'brig image build -h' for its flags.")
			return 0
		}
		fmt.Fprintln(stderr, "usage: brig image build [NAME]")
		return 2
	}
	fs := newFlagSet("brig image build", stdout, stderr)
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error")
	_ = addServerFlag(fs)
	pos, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return parseExit(err)
	}
	if len(pos) > 1 {
		return 2
	}
	name := "python"
	if len(pos) == 1 {
		name = pos[0]
	}
	spec, ok := image.Lookup(name)
	if !ok {
		fmt.Fprintf(stderr, "brig image build: unknown image %q\n", name)
		return 2
	}
	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		fmt.Fprintf(stderr, "brig image build: docker: %v\n", err)
		return 1
	}
	defer docker.Close()
	if err := image.Build(ctx, docker, spec, stderr, newLogger(stderr, *logLevel)); err != nil {
		fmt.Fprintf(stderr, "brig image build: %v\n", err)
		return 1
	}
	return 0
}
