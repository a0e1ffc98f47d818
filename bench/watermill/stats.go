package main

import (
	"bufio"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// quantiles sorts ds and returns the nearest-rank value of each quantile.
func quantiles(ds []time.Duration, qs ...float64) []time.Duration {
	slices.Sort(ds)
	out := make([]time.Duration, len(qs))
	if len(ds) == 0 {
		return out
	}
	for i, q := range qs {
		rank := int(math.Ceil(q*float64(len(ds)))) - 1
		out[i] = ds[max(0, min(rank, len(ds)-1))]
	}
	return out
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// cpuTime is the process's CPU time so far, user and system, all threads.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSS is the process's peak resident set in bytes: VmHWM of
// /proc/self/status, 0 where there is none. Not getrusage's ru_maxrss: a
// program started by a Go process (vfork, then exec) inherits in ru_maxrss
// the high-water mark of its parent's memory, which for a benchmark
// harness holding a nats-server is far above this program's own.
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}
