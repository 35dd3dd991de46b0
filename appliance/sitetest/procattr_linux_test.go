package sitetest

import (
	"os/exec"
	"syscall"
)

// reapWithTest makes the kernel kill a node should the test process die
// without its cleanups (a go test timeout, say), so no node outlives a run.
func reapWithTest(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
