package procstat

import (
	"os"
	"testing"
	"time"
)

// The test process's own usage grows as it works, writes and allocates.
func TestOfSeesTheProcessWork(t *testing.T) {
	before := Of(os.Getpid())
	for start := time.Now(); time.Since(start) < 100*time.Millisecond; {
	}
	f, err := os.CreateTemp(t.TempDir(), "w")
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, err := f.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	after := Of(os.Getpid())
	if after.CPU-before.CPU < 50*time.Millisecond {
		t.Errorf("CPU %v then %v after 100 ms of spinning", before.CPU, after.CPU)
	}
	if after.Syscalls-before.Syscalls < 10 {
		t.Errorf("read and write calls %d then %d after 10 writes", before.Syscalls, after.Syscalls)
	}
	if after.PeakMB <= 0 {
		t.Errorf("peak memory %v MB", after.PeakMB)
	}
	if got := before.Plus(after); got.Syscalls != before.Syscalls+after.Syscalls || got.PeakMB != before.PeakMB+after.PeakMB {
		t.Errorf("%+v plus %+v = %+v", before, after, got)
	}
}

// A process that does not exist has used nothing that can be read.
func TestOfAProcessThatIsGone(t *testing.T) {
	if u := Of(1 << 30); u != (Usage{}) {
		t.Errorf("usage of no process: %+v", u)
	}
}
