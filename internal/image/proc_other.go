//go:build !unix

package image

import "os/exec"

// mmdebstrap runs only on Linux; elsewhere Build fails with ErrNoMmdebstrap
// before a process is started, so there is no process group to manage.
func ownProcessGroup(*exec.Cmd) {}

func killProcessGroup(*exec.Cmd) {}
