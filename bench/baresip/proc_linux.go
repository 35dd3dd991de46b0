package baresip

import (
	"os/exec"
	"syscall"
)

// setProcAttr kills baresip if the test binary dies without calling Close.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
