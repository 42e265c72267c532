package bench

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
)

const oneLiner = `print("hello")`

// rawConfig is a sandbox with the isolation flags brig uses, run straight
// through the Engine API.
func rawConfig(image string, cmd []string, stdin bool) (*container.Config, *container.HostConfig) {
	pids := int64(128)
	return &container.Config{
			Image: image, Entrypoint: cmd, User: "65534:65534", NetworkDisabled: true,
			AttachStdout: true, AttachStderr: true, AttachStdin: stdin, OpenStdin: stdin, StdinOnce: stdin,
		}, &container.HostConfig{
			NetworkMode: "none", ReadonlyRootfs: true, CapDrop: []string{"ALL"},
			SecurityOpt: []string{"no-new-privileges"}, LogConfig: container.LogConfig{Type: "none"},
			Tmpfs:     map[string]string{"/tmp": "rw,nosuid,nodev,noexec,size=64m"},
			Resources: container.Resources{Memory: 256 << 20, MemorySwap: 256 << 20, NanoCPUs: 1e9, PidsLimit: &pids},
		}
}

// rawCold creates, starts and waits for a container running the one-liner
// (the floor of a cold sandbox); removal happens after the clock stops.
func rawCold(docker *client.Client, image string, removeLater func(string)) func(context.Context) error {
	return func(ctx context.Context) error {
		cfg, host := rawConfig(image, []string{"python3", "-c", oneLiner}, false)
		c, err := docker.ContainerCreate(ctx, cfg, host, nil, nil, "")
		if err != nil {
			return err
		}
		defer removeLater(c.ID)
		att, err := docker.ContainerAttach(ctx, c.ID, container.AttachOptions{Stream: true, Stdout: true, Stderr: true})
		if err != nil {
			return err
		}
		defer att.Close()
		if err := docker.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
			return err
		}
		return expectHello(att.Reader)
	}
}

// warmRaw is a started container waiting for code on stdin.
type warmRaw struct {
	id  string
	att interface {
		io.Writer
		CloseWrite() error
	}
	out io.Reader
}

// rawPrewarmed returns setup (outside the clock) and run (the floor of
// feeding a job to an already-started container); the caller removes the
// containers.
func rawPrewarmed(docker *client.Client, image string) (func(context.Context) (*warmRaw, error), func(context.Context, *warmRaw) error) {
	setup := func(ctx context.Context) (*warmRaw, error) {
		cfg, host := rawConfig(image, []string{"python3", "-c", "import sys; exec(sys.stdin.read())"}, true)
		c, err := docker.ContainerCreate(ctx, cfg, host, nil, nil, "")
		if err != nil {
			return nil, err
		}
		att, err := docker.ContainerAttach(ctx, c.ID, container.AttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true})
		if err != nil {
			return nil, err
		}
		if err := docker.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
			return nil, err
		}
		return &warmRaw{id: c.ID, att: hijacked{att.Conn, att.CloseWrite}, out: att.Reader}, nil
	}
	run := func(_ context.Context, w *warmRaw) error {
		if _, err := io.WriteString(w.att, oneLiner); err != nil {
			return err
		}
		_ = w.att.CloseWrite()
		return expectHello(w.out)
	}
	return setup, run
}

type hijacked struct {
	io.Writer
	closeWrite func() error
}

func (h hijacked) CloseWrite() error { return h.closeWrite() }

// expectHello reads a container's multiplexed output to its end.
func expectHello(r io.Reader) error {
	var out, errOut strings.Builder
	if _, err := stdcopy.StdCopy(&out, &errOut, r); err != nil {
		return err
	}
	if out.String() != "hello\n" {
		return fmt.Errorf("container printed %q (stderr %q)", out.String(), errOut.String())
	}
	return nil
}
