//go:build !linux

package baresip

import "os/exec"

// setProcAttr has nothing to set where parent-death signals do not exist.
func setProcAttr(*exec.Cmd) {}
