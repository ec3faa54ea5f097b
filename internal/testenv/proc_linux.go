package testenv

import (
	"os/exec"
	"syscall"
)

// setDeathSignal kills the server if the test process dies without running
// its cleanups (a panic or a timeout), so no gateway outlives its test.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
