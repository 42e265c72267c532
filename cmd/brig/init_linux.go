package main

import (
	"io"

	"github.com/brig-dev/brig/internal/sandboxinit"
)

// sandboxInit is the init of every sandbox container (not for humans).
func sandboxInit(stdin io.Reader, stdout, stderr io.Writer) int {
	return sandboxinit.Main(stdin, stdout, stderr)
}
