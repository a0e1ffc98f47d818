// Package misconfig is the gate that holds every write of a worker while
// the memory API refuses the worker itself (sfmapi.IsMisconfiguration: 401
// or 403, a wrong token; 404 to a write route, a wrong base URL).
//
// The contract: every write passes Gate.Wait before its memory API call,
// and what the memory API answered goes to Gate.Observe. While the memory
// API accepts the worker, Wait costs an atomic load. Once it refuses, Wait
// lets one write through per probe interval and holds the others; once a
// probe is accepted, Wait lets them all go. Nothing is dead-lettered and no
// retry budget is used meanwhile: dead-lettering would turn every write
// into a dead letter for a mistake in one setting. Gate.Err says why the
// worker is not ready.
package misconfig

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/jetbox-dev/jetbox/internal/config"
	"github.com/jetbox-dev/jetbox/internal/sfmapi"
)

// Settings configures a Gate.
type Settings struct {
	// Endpoint is the memory API's base URL, named in logs and errors with
	// its credentials redacted.
	Endpoint string
	// Probe is how often one write is let through while the memory API
	// refuses the worker.
	Probe    time.Duration
	Log      zerolog.Logger
	Refused  prometheus.Gauge   // 1 while the memory API refuses the worker
	Refusals prometheus.Counter // every refusal, probes included
}

// Gate holds every write back while the memory API refuses the worker.
type Gate struct {
	endpoint string
	probe    time.Duration
	log      zerolog.Logger
	gauge    prometheus.Gauge
	refusals prometheus.Counter

	// refused mirrors status != 0, so that the common case (the memory API
	// accepts the worker) costs every write an atomic load, not the lock.
	refused atomic.Bool

	mu      sync.Mutex
	status  int           // the refusal's status; 0 when the memory API accepts the worker
	next    time.Time     // when the next probe may go: one per probe interval
	cleared chan struct{} // closed when the memory API accepts again
}

// New returns an open gate: the memory API is taken to accept the worker
// until it refuses.
func New(s Settings) *Gate {
	return &Gate{
		endpoint: config.RedactURL(s.Endpoint), probe: s.Probe, log: s.Log,
		gauge: s.Refused, refusals: s.Refusals, cleared: make(chan struct{}),
	}
}

// Wait returns once a write may go to the memory API: at once while it
// accepts the worker, else when this write is the next probe or the
// memory API accepts again. It returns false when ctx ends first.
func (g *Gate) Wait(ctx context.Context) bool {
	if !g.refused.Load() {
		return true
	}
	for {
		g.mu.Lock()
		if g.status == 0 {
			g.mu.Unlock()
			return true
		}
		now := time.Now()
		if !now.Before(g.next) {
			g.next = now.Add(g.probe)
			g.mu.Unlock()
			return true
		}
		wait, cleared := g.next.Sub(now), g.cleared
		g.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-cleared:
		case <-t.C:
		}
		t.Stop()
	}
}

// Observe records the status the memory API answered a write that Wait let
// through; 0 when no answer came.
func (g *Gate) Observe(status int) {
	refusal := status != 0 && sfmapi.IsMisconfiguration(status)
	if !refusal && !g.refused.Load() {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if refusal {
		g.refusals.Inc()
		if g.status == 0 {
			g.gauge.Set(1)
			g.log.Error().Str("endpoint", g.endpoint).Int("status", status).Str("check", g.advice(status)).
				Msg("the memory API refuses this worker: every write is held in the outbox, none is dead-lettered, until it accepts again")
		}
		g.status, g.next = status, time.Now().Add(g.probe)
		g.refused.Store(true)
		return
	}
	if status == 0 {
		// No answer: says nothing about the configuration.
		return
	}
	if g.status != 0 {
		g.log.Info().Str("endpoint", g.endpoint).Msg("the memory API accepts this worker again; delivery resumes")
		g.status = 0
		g.refused.Store(false)
		g.gauge.Set(0)
		close(g.cleared)
		g.cleared = make(chan struct{})
	}
}

func (g *Gate) advice(status int) string {
	if status == 404 {
		return "SOMABRAIN_MEMORY_HTTP_ENDPOINT: the memory API's base URL, without a path of its own (it answered 404 to a write route)"
	}
	return "SOMABRAIN_MEMORY_HTTP_TOKEN: the bearer token the memory API expects, and its permissions"
}

// ErrRefused says the memory API refuses the worker itself.
var ErrRefused = errors.New("the memory API refuses this worker")

// Err is nil while the memory API accepts the worker, else an ErrRefused
// that names the setting to check.
func (g *Gate) Err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.status == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s answered %d; check %s", ErrRefused, g.endpoint, g.status, g.advice(g.status))
}
