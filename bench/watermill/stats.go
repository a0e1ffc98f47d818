package main

import (
	"math"
	"slices"
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

// resourceUsage is the process's CPU time (user and system) in seconds and
// its peak resident set in bytes (Linux reports ru_maxrss in KiB).
func resourceUsage() (cpuSeconds float64, peakRSS int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return cpu.Seconds(), ru.Maxrss * 1024
}
