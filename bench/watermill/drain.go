package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// drainResult is how long the router took to apply every published
// message, and each message's latency from its Publish call to its
// handler's success.
//
// The figures "from ready" start when the router is running (every
// subscription made), as a jetbox worker's drain starts when its /readyz
// answers: the rate of the writes applied after that moment, and the
// process's CPU time over the same interval.
type drainResult struct {
	N        int     `json:"n"`
	Secs     float64 `json:"seconds"`
	PerSec   float64 `json:"per_sec"`
	E2EP50ms float64 `json:"e2e_p50_ms"`
	E2EP99ms float64 `json:"e2e_p99_ms"`
	Errors   int64   `json:"errors"`
	Repeats  int64   `json:"repeats"`

	ReadySecs       float64 `json:"ready_seconds"`    // router started to running
	AppliedAtReady  int64   `json:"applied_at_ready"` // applied before it was running
	FromReadySecs   float64 `json:"from_ready_seconds"`
	FromReadyPerSec float64 `json:"from_ready_per_sec"`
	CPUSeconds      float64 `json:"cpu_seconds"`    // from ready to the last message applied
	PeakRSS         int64   `json:"peak_rss_bytes"` // the process's, at the end of the drain
}

// drainAll starts the router on the published backlog and waits until every
// message has been applied.
func drainAll(ctx context.Context, s settings, logger watermill.LoggerAdapter) (drainResult, error) {
	sub, err := newSubscriber(s, logger)
	if err != nil {
		return drainResult{}, fmt.Errorf("watermill subscriber: %w", err)
	}
	p := newProgress(s.N)
	api := newMemoryAPI(s.APIURL, s.Token, s.Concurrency)
	router, err := newRouter(sub, func(msg *message.Message) error { return p.store(api, msg) }, logger)
	if err != nil {
		return drainResult{}, err
	}

	start := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- router.Run(ctx) }()
	var ready time.Time
	var readyCPU time.Duration
	var appliedAtReady int64
	select {
	case <-router.Running():
	case <-p.done: // everything applied before the router said it ran
	case <-ctx.Done():
	}
	ready, readyCPU, appliedAtReady = time.Now(), cpuTime(), p.applied.Load()
	select {
	case <-p.done:
	case err := <-stopped:
		if err == nil {
			err = errors.New("router stopped")
		}
		return drainResult{}, fmt.Errorf("router stopped with %d of %d messages applied: %w", p.applied.Load(), s.N, err)
	case <-ctx.Done():
		_ = router.Close()
		return drainResult{}, fmt.Errorf("%d of %d messages applied: %w", p.applied.Load(), s.N, ctx.Err())
	}
	end := time.Now()
	drainCPU, peak := cpuTime()-readyCPU, peakRSS()
	elapsed := end.Sub(start)
	// Every message is applied: a failure to shut down cleanly is worth a
	// line on stderr, not the run's figures.
	if err := router.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "watermill: close router:", err)
	}
	if err := <-stopped; err != nil {
		fmt.Fprintln(os.Stderr, "watermill: router:", err)
	}

	q := quantiles(p.latencies(), 0.50, 0.99)
	return drainResult{
		N:        s.N,
		Secs:     elapsed.Seconds(),
		PerSec:   float64(s.N) / elapsed.Seconds(),
		E2EP50ms: millis(q[0]),
		E2EP99ms: millis(q[1]),
		Errors:   p.errors.Load(),
		Repeats:  p.repeats.Load(),

		ReadySecs:       ready.Sub(start).Seconds(),
		AppliedAtReady:  appliedAtReady,
		FromReadySecs:   end.Sub(ready).Seconds(),
		FromReadyPerSec: float64(int64(s.N)-appliedAtReady) / end.Sub(ready).Seconds(),
		CPUSeconds:      drainCPU.Seconds(),
		PeakRSS:         peak,
	}, nil
}

// progress counts what the handlers applied.
type progress struct {
	e2e     []atomic.Int64 // by message number: nanoseconds to its first success, 0 before
	applied atomic.Int64   // messages applied at least once
	repeats atomic.Int64   // successes of a message already applied (a redelivery)
	errors  atomic.Int64   // failed attempts: transport errors and non-2xx answers
	done    chan struct{}  // closed when every message has been applied
}

func newProgress(n int) *progress {
	return &progress{e2e: make([]atomic.Int64, n), done: make(chan struct{})}
}

// store is the router's handler: apply the message, then record it.
func (p *progress) store(api *memoryAPI, msg *message.Message) error {
	seq, err := strconv.Atoi(msg.Metadata.Get(metaSeq))
	if err != nil || seq < 0 || seq >= len(p.e2e) {
		return fmt.Errorf("message %s: bad %s %q", msg.UUID, metaSeq, msg.Metadata.Get(metaSeq))
	}
	publishedAt, err := strconv.ParseInt(msg.Metadata.Get(metaPublishedAt), 10, 64)
	if err != nil {
		return fmt.Errorf("message %s: bad %s: %w", msg.UUID, metaPublishedAt, err)
	}
	if err := api.store(msg.Context(), msg.Metadata.Get(metaTenant), msg.UUID, msg.Payload); err != nil {
		p.errors.Add(1)
		return err
	}
	e2e := max(1, time.Now().UnixNano()-publishedAt)
	if !p.e2e[seq].CompareAndSwap(0, e2e) {
		p.repeats.Add(1)
		return nil
	}
	if p.applied.Add(1) == int64(len(p.e2e)) {
		close(p.done)
	}
	return nil
}

func (p *progress) latencies() []time.Duration {
	out := make([]time.Duration, len(p.e2e))
	for i := range p.e2e {
		out[i] = time.Duration(p.e2e[i].Load())
	}
	return out
}
