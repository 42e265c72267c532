package main

import (
	"io"

	"github.com/brig-dev/brig/internal/sandboxinit"
)

// sandboxInit is the init of every sandbox container (not for humans).
func sandboxInit(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return sandboxinit.Main(args, stdin, stdout, stderr)
}

// sandboxExec runs a job's command under its own limits (not for humans).
func sandboxExec(args []string, stderr io.Writer) int {
	return sandboxinit.Exec(args, stderr)
}
