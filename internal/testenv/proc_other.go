//go:build !linux

package testenv

import "os/exec"

// setDeathSignal has no portable equivalent outside Linux; cleanups stop
// the server there.
func setDeathSignal(*exec.Cmd) {}
