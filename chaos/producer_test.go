package chaos

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetbox-dev/jetbox/producer"
)

// The producer process's environment: the NATS URLs, the prefix of its
// idempotency keys and when to stop writing.
const (
	envProducerURLs   = "JETBOX_CHAOS_PRODUCER"
	envProducerPrefix = "JETBOX_CHAOS_PREFIX"
	envProducerUntil  = "JETBOX_CHAOS_UNTIL"
)

// TestChaosProducerProcess is not a test: it is the producer process the
// campaign starts, kills and restarts (it runs this test binary again).
// It runs processWriters writers and reports every call on stdout, one
// "start|ack|fail <key> <tenant> <coord>" line each, before and after the
// call. On SIGTERM it starts no new call, lets those in flight return and
// closes the producer.
func TestChaosProducerProcess(t *testing.T) {
	urls := os.Getenv(envProducerURLs)
	if urls == "" {
		t.Skip("started by TestChaos only")
	}
	until, err := time.Parse(time.RFC3339Nano, os.Getenv(envProducerUntil))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	nc, err := nats.Connect(urls, nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	p, err := producer.New(nc, producer.Config{PublishTimeout: 3 * time.Second, SyncTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	report := func(event, key, tenant, coord string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, "%s %s %s %s\n", event, key, tenant, coord)
		out.Flush()
	}
	var writers sync.WaitGroup
	for i := range processWriters {
		writers.Add(1)
		go func() {
			defer writers.Done()
			write(ctx, p, inProcessWriters+i, os.Getenv(envProducerPrefix), until, report)
		}()
	}
	writers.Wait()
	closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Close(closeCtx); err != nil {
		t.Errorf("close producer: %v", err)
	}
}

// producers runs the producer process, one generation at a time.
type producers struct {
	gen int
	cur *producerProc
}

type producerProc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once its output is read and it has exited
	err  error         // its exit
	open int           // calls it started and never reported the end of
}

// start runs a new generation of the producer process; its reports go to
// the ledger.
func (ps *producers) start(t *testing.T, urls string, led *ledger, until time.Time, logDir string) {
	t.Helper()
	ps.gen++
	cmd := exec.Command(os.Args[0], "-test.run=^TestChaosProducerProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		envProducerURLs+"="+urls,
		fmt.Sprintf("%s=p%dw", envProducerPrefix, ps.gen),
		envProducerUntil+"="+until.Format(time.RFC3339Nano))
	logFile, err := os.Create(filepath.Join(logDir, fmt.Sprintf("producer-%d.log", ps.gen)))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logFile
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	proc := &producerProc{cmd: cmd, done: make(chan struct{})}
	go func() {
		defer close(proc.done)
		open := map[string]bool{}
		lines := bufio.NewScanner(stdout)
		for lines.Scan() {
			f := strings.Fields(lines.Text())
			if len(f) != 4 {
				continue
			}
			switch f[0] {
			case "start":
				open[f[1]] = true
			case "ack", "fail":
				delete(open, f[1])
				led.record(f[0], f[1], f[2], f[3])
			}
		}
		proc.open = len(open)
		proc.err = cmd.Wait()
		logFile.Close()
	}()
	ps.cur = proc
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-proc.done
	})
}

// restart stops the current producer process, gracefully (SIGTERM) or not
// (SIGKILL), settles its calls in flight and starts the next generation.
func (ps *producers) restart(t *testing.T, urls string, led *ledger, until time.Time, logDir string, graceful bool) {
	t.Helper()
	old := ps.cur
	sig := syscall.SIGKILL
	if graceful {
		sig = syscall.SIGTERM
	}
	_ = old.cmd.Process.Signal(sig)
	ps.await(t, old, graceful)
	settle(led, old, graceful)
	ps.start(t, urls, led, until, logDir)
}

// wait waits for the last generation to stop writing and exit by itself.
func (ps *producers) wait(t *testing.T, led *ledger) {
	t.Helper()
	ps.await(t, ps.cur, true)
	settle(led, ps.cur, true)
}

// settle counts the calls an exited producer process left without an
// answer: a defect if it was stopped gracefully, calls cut if killed.
func settle(led *ledger, proc *producerProc, graceful bool) {
	if graceful {
		led.unanswered.Add(int64(proc.open))
	} else {
		led.cut.Add(int64(proc.open))
	}
}

func (ps *producers) await(t *testing.T, proc *producerProc, clean bool) {
	t.Helper()
	select {
	case <-proc.done:
	case <-time.After(time.Minute):
		t.Errorf("producer process %d did not exit within a minute; killing it", proc.cmd.Process.Pid)
		_ = proc.cmd.Process.Signal(syscall.SIGKILL)
		<-proc.done
	}
	if clean && proc.err != nil {
		t.Errorf("producer process %d: %v", proc.cmd.Process.Pid, proc.err)
	}
}
