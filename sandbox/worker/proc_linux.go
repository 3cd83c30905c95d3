package worker

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// isolate makes the worker die with its parent.
func isolate(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// residentBytes is the resident memory of process pid, or 0 if unknown.
func residentBytes(pid int) int64 { return statusBytes("/proc/"+strconv.Itoa(pid)+"/status", "VmRSS:") }

// peakResident is this process's peak resident memory since it started
// (since its exec), or 0 if unknown.
func peakResident() int64 { return statusBytes("/proc/self/status", "VmHWM:") }

// statusBytes reads the size in kB on the line of a /proc status file
// starting with key, in bytes.
func statusBytes(path, key string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), key); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// usage is what the exited worker used.
func usage(ps *os.ProcessState) Usage {
	u := Usage{CPU: ps.UserTime() + ps.SystemTime()}
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		u.PeakRSS = ru.Maxrss << 10 // kilobytes on Linux
	}
	return u
}

// alive reports whether process pid runs (exists and is not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) state …: comm may hold spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	return i >= 0 && i+2 < len(b) && b[i+2] != 'Z' && b[i+2] != 'X'
}
