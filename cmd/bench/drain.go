package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/streams"
)

// The backlog of a drain at scale 1: this many writes over drainTenants
// tenants, each its own memory, stored before the consumer starts. jetbox's
// drain and Watermill's drain-only run take the same shape.
const (
	drainBacklog = 50000
	drainTenants = 1000
)

// drainCallers is how many memory API calls the ceiling's POSTs make at
// once: as many as a worker has in flight (SOMABRAIN_OUTBOX_CONCURRENCY's
// default), and as Watermill's handlers.
const drainCallers = 64

// drainPhase measures, on one fresh pipeline, what the machine allows a
// drain (pulling and acking the backlog with no HTTP, and POSTing as many
// writes to the memory API), then preloads the backlog with no worker
// running, starts the workers and times them from their /readyz until
// every write is applied.
func (b *bench) drainPhase(ctx context.Context) error {
	if err := b.buildJetbox(); err != nil {
		return err
	}
	e, err := b.newEnv(ctx)
	if err != nil {
		return err
	}
	defer e.close()
	e.bin = b.bin
	e.profiles = b.opts.profile != ""
	n := b.n(drainBacklog)
	if err := b.drainCeiling(ctx, e, n); err != nil {
		return err
	}
	if err := b.bareDrain(ctx, e, n); err != nil {
		return fmt.Errorf("bare drain: %w", err)
	}
	pre, _, err := b.producerRun(ctx, e, "drain: preload background c=1", streams.ModeBackground, n, 1, drainTenants, nil)
	if err != nil {
		return err
	}
	pre.Name = "preload_background"
	b.add(pre)
	e.applied.reset() // the ceiling's POSTs

	start := time.Now()
	if err := e.startWorkers(b.opts.workers); err != nil {
		return err
	}
	profiled := make(chan error, 1)
	if e.profiles {
		go func() { profiled <- b.profileDrain(ctx, e) }()
	} else {
		profiled <- nil
	}
	if err := e.waitReady(ctx); err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	ready, appliedAtReady, atReady := time.Now(), e.applied.count(), e.workersUsage()
	bar := newProgressSince(fmt.Sprintf("drain: %d worker(s) apply", b.opts.workers), n, start)
	_, err = e.waitApplied(ctx, n, bar, 0)
	bar.done()
	if err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	running := e.workersUsage()
	b.res.WorkerSyscalls["drain"] = float64(running.Syscalls) / float64(n)
	if err := <-profiled; err != nil {
		return fmt.Errorf("drain: profiling: %w", err)
	}
	e.stopWorkers()

	// Reached in turn: the first write applied, 10% and 90% (a rate with
	// no start-up and no tail), all.
	applied := e.applied.times()
	var at [4]time.Time
	for i, want := range []int{1, max(1, n/10), max(1, n*9/10), n} {
		at[i] = applied[want-1]
	}
	m := newMeasurement("drain", b.opts.workers, n, at[3].Sub(start), nil)
	m.Note = fmt.Sprintf("/readyz %.2f s and first write applied %.2f s after the workers started", ready.Sub(start).Seconds(), at[0].Sub(start).Seconds())
	b.add(m)
	if drained := n - appliedAtReady; drained > 0 && at[3].After(ready) {
		m := newMeasurement("drain_from_ready", b.opts.workers, drained, at[3].Sub(ready), nil)
		m.Note = fmt.Sprintf("%d writes applied before /readyz answered", appliedAtReady)
		b.add(m)
		b.res.WorkerCPUus["drain"] = us(running.CPU-atReady.CPU) / float64(drained)
	}
	if n > 1 {
		b.add(newMeasurement("drain_from_first", b.opts.workers, n-1, at[3].Sub(at[0]), nil))
	}
	if n >= 10 && at[2].After(at[1]) {
		b.add(newMeasurement("drain_10_90", b.opts.workers, n*9/10-n/10, at[2].Sub(at[1]), nil))
	}
	b.res.WorkerStartupSeconds = at[0].Sub(start).Seconds()
	b.res.WorkerReadySeconds = ready.Sub(start).Seconds()
	b.res.WorkerCPUus["drain_from_start"] = us(running.CPU) / float64(n)
	b.res.WorkerPeakMB["drain"] = running.PeakMB
	b.res.WorkerPeakMB["drain_at_ready"] = atReady.PeakMB
	return nil
}

// drainCeiling measures the two halves of a drain on e, each alone with the
// machine: n writes stored as the drain's backlog, pulled from the
// outbox's own consumers and acked with no HTTP (drain_pull_ack), and n
// POSTs of the same writes to the memory API from drainCallers callers
// (drain_post).
func (b *bench) drainCeiling(ctx context.Context, e *env, n int) error {
	if _, _, err := b.producerRun(ctx, e, "drain ceiling: preload background c=1", streams.ModeBackground, n, 1, drainTenants, nil); err != nil {
		return err
	}
	m, err := e.pullAndAck(ctx, streams.ModeBackground, n)
	if err != nil {
		return err
	}
	b.add(m)
	client := newAPIClient(drainCallers)
	defer client.CloseIdleConnections()
	run := b.nextRun()
	elapsed, lat, err := load(ctx, fmt.Sprintf("drain ceiling: memory API POSTs c=%d", drainCallers), n, drainCallers, func(ctx context.Context, i int) error {
		return postMemory(ctx, client, e.apiURL, b.write(run, i, drainTenants))
	}, nil)
	if err != nil {
		return err
	}
	b.add(newMeasurement("drain_post", drainCallers, n, elapsed, lat))
	return nil
}

// bareDrain stores the drain's backlog and applies it with bench/bare, a
// process of its own that pulls, POSTs and acks with none of a worker's
// policy: the least a Go program does for the same work, and so the floor
// of a worker's CPU per write. Its figures are bench/watermill's.
func (b *bench) bareDrain(ctx context.Context, e *env, n int) error {
	bin, err := b.buildBare()
	if err != nil {
		return err
	}
	if _, _, err := b.producerRun(ctx, e, "bare drain: preload background c=1", streams.ModeBackground, n, 1, drainTenants, nil); err != nil {
		return err
	}
	args := []string{"-nats", e.nats.ClientURL(), "-api", e.apiURL, "-token", apiToken, "-n", strconv.Itoa(n),
		"-partitions", strconv.Itoa(e.partitions), "-mode", string(streams.ModeBackground), "-concurrency", strconv.Itoa(drainCallers)}
	out, err := b.runWatermill(ctx, e, bin, "bare drain: pull, POST, ack", n, args)
	if err != nil {
		return err
	}
	parsed, err := parseWatermill(out)
	if err != nil || parsed.Drain == nil || parsed.Drain.FromReadyPerSec <= 0 {
		return fmt.Errorf("no \"drain\" figures (%v)", err)
	}
	b.res.Bare = parsed.Drain
	e.unpin(context.WithoutCancel(ctx), streams.ModeBackground)
	e.applied.reset()
	return nil
}

// buildBare builds bench/bare into the bench's work directory.
func (b *bench) buildBare() (string, error) {
	bin := filepath.Join(b.work, "bare")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/jetbox-dev/jetbox/bench/bare").CombinedOutput(); err != nil {
		return "", fmt.Errorf("build bench/bare: %v\n%s", err, out)
	}
	return bin, nil
}

// unpin lets the next client of mode's partition consumers have them at
// once, rather than after the pin's time-out. A consumer nobody holds has
// nothing to unpin, and says so with an error that means nothing here.
func (e *env) unpin(ctx context.Context, mode streams.Mode) {
	s, err := e.js.Stream(ctx, streams.DefaultConfig().Stream)
	if err != nil {
		return
	}
	for p := range e.partitions {
		_ = s.UnpinConsumer(ctx, streams.PartitionConsumerName(mode, p), streams.OwnerGroup)
	}
}

// pullAndAck reads the n writes of mode in the outbox through its partition
// consumers, the ones a worker binds, one Consume each, and acks each write
// as it comes: a worker's pulling and acking without the memory API. The
// consumers are pinned to one client at a time, so each is unpinned at the
// end, for the workers that follow.
func (e *env) pullAndAck(ctx context.Context, mode streams.Mode, n int) (Measurement, error) {
	s, err := e.js.Stream(ctx, streams.DefaultConfig().Stream)
	if err != nil {
		return Measurement{}, err
	}
	bar := newProgress("drain ceiling: pull + ack, no HTTP", n)
	defer bar.done()
	var got atomic.Int64
	done := make(chan struct{})
	var consuming []jetstream.ConsumeContext
	defer func() {
		for _, cc := range consuming {
			cc.Stop()
		}
		e.unpin(context.WithoutCancel(ctx), mode)
	}()
	start := time.Now()
	for p := range e.partitions {
		cons, err := s.Consumer(ctx, streams.PartitionConsumerName(mode, p))
		if err != nil {
			return Measurement{}, err
		}
		cc, err := cons.Consume(func(m jetstream.Msg) {
			if m.Ack() != nil {
				return
			}
			bar.add(1)
			if got.Add(1) == int64(n) {
				close(done)
			}
		}, jetstream.PullPriorityGroup(streams.OwnerGroup))
		if err != nil {
			return Measurement{}, err
		}
		consuming = append(consuming, cc)
	}
	select {
	case <-done:
	case <-ctx.Done():
		return Measurement{}, fmt.Errorf("pull + ack: %d of %d: %w", got.Load(), n, ctx.Err())
	}
	return newMeasurement("drain_pull_ack", e.partitions, n, time.Since(start), nil), nil
}

// waitReady waits until every worker's /readyz answers 200: its streams
// are there and its consumers bound.
func (e *env) waitReady(ctx context.Context) error {
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	for _, w := range e.workers {
		for !w.ready(ctx, client) {
			if w.proc.Exited() {
				return fmt.Errorf("worker exited before it was ready (log: %s)", w.log)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return nil
}

func (w *workerProc) ready(ctx context.Context, client *http.Client) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+w.ops+"/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// times is when each write was applied, earliest first.
func (l *appliedLog) times() []time.Time {
	l.mu.Lock()
	out := make([]time.Time, 0, len(l.at))
	for _, t := range l.at {
		out = append(out, t)
	}
	l.mu.Unlock()
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}

// profileDrain takes CPU profiles of the first worker and of this process
// (the nats-server and the memory API) over the same seconds of a drain,
// from one second after the workers start.
func (b *bench) profileDrain(ctx context.Context, e *env) error {
	select {
	case <-time.After(time.Second):
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := os.MkdirAll(b.opts.profile, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(b.opts.profile, "drain-bench.pprof"))
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	err = e.profileWorker(ctx, b.opts.profileSeconds, b.opts.profile)
	pprof.StopCPUProfile()
	return err
}
