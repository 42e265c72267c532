package httpapi_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/brig-dev/brig/internal/devstack"
	"github.com/brig-dev/brig/internal/testenv/needs"
	"github.com/brig-dev/brig/worker"
)

// stack is a dev stack shared by the package's tests, serving the HTTP API
// (stack.HTTP). Its worker runs echo jobs, which need no container; a
// Docker daemon is needed all the same (the worker starts on one).
var stack *devstack.Stack

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if code, ok := needs.DockerForMain(ctx, os.Stderr, "httpapi"); !ok {
		return code
	}
	dir, err := os.MkdirTemp("", "brig-httpapi-")
	if err != nil {
		return fail("%v", err)
	}
	defer os.RemoveAll(dir)
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	stack, err = devstack.Start(ctx, devstack.Config{
		Listen: "127.0.0.1:0", DataDir: filepath.Join(dir, "jetstream"), Logger: log, SkipImage: true,
		Worker:     worker.Config{ID: "httpapi-" + hex.EncodeToString(id), RuntimeDir: filepath.Join(dir, "run")},
		HTTPListen: "127.0.0.1:0",
	})
	if err != nil {
		return fail("start stack: %v", err)
	}
	code := m.Run()
	sctx, scancel := context.WithTimeout(context.Background(), time.Minute)
	defer scancel()
	if err := stack.Stop(sctx); err != nil {
		return fail("stop stack: %v", err)
	}
	return code
}

func fail(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "httpapi: FAIL: "+format+"\n", args...)
	return 1
}
