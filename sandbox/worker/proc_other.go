//go:build !linux

package worker

import (
	"os"
	"os/exec"
)

// isolate has nothing to add outside Linux.
func isolate(*exec.Cmd) {}

// residentBytes is unknown outside Linux: the memory watchdog is off there.
func residentBytes(int) int64 { return 0 }

// usage is what the exited worker used.
func usage(ps *os.ProcessState) Usage { return Usage{CPU: ps.UserTime() + ps.SystemTime()} }

// alive assumes a started process still runs outside Linux.
func alive(int) bool { return true }

// peakResident is unknown outside Linux.
func peakResident() int64 { return 0 }
