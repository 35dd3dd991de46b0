//go:build !linux

package sitetest

import "os/exec"

// reapWithTest does nothing where the kernel cannot tie a child's life to
// its parent's; a node may then outlive a test process that dies abruptly.
func reapWithTest(*exec.Cmd) {}
