// Package procstat reads what a running process has used so far from
// Linux's /proc: its CPU time, its peak resident memory and its read and
// write system calls. The bench reads its workers' with it, and bench/bare
// its own; where /proc is missing each figure is 0.
package procstat

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Usage is what a process has used so far.
type Usage struct {
	CPU      time.Duration // utime + stime of /proc/<pid>/stat, in USER_HZ ticks (10 ms)
	PeakMB   float64       // VmHWM of /proc/<pid>/status
	Syscalls int64         // read and write calls (syscr + syscw of /proc/<pid>/io): sockets, files
}

// Plus adds two processes' usage; their peak memory adds up too.
func (u Usage) Plus(o Usage) Usage {
	return Usage{CPU: u.CPU + o.CPU, PeakMB: u.PeakMB + o.PeakMB, Syscalls: u.Syscalls + o.Syscalls}
}

// userHZ is the unit of the CPU times in /proc/<pid>/stat (USER_HZ, 100 on
// every Linux architecture Go runs on).
const userHZ = 100

// Of reads the usage of the running process pid. Not getrusage's
// ru_maxrss for the peak: a program started by a Go process (vfork, then
// exec) inherits in it the high-water mark of its parent's memory.
func Of(pid int) Usage {
	var u Usage
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// The command name may hold spaces; the fields after it do not.
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 {
			f := strings.Fields(string(stat[i+1:]))
			if len(f) > 12 {
				utime, _ := strconv.ParseInt(f[11], 10, 64)
				stime, _ := strconv.ParseInt(f[12], 10, 64)
				u.CPU = time.Duration(utime+stime) * time.Second / userHZ
			}
		}
	}
	if f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
				u.PeakMB = kb / 1024
			}
		}
		f.Close()
	}
	if io, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid)); err == nil {
		for _, line := range strings.Split(string(io), "\n") {
			name, value, ok := strings.Cut(line, ": ")
			if ok && (name == "syscr" || name == "syscw") {
				n, _ := strconv.ParseInt(value, 10, 64)
				u.Syscalls += n
			}
		}
	}
	return u
}
