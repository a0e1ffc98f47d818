package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/jetbox-dev/jetbox/consumer/internal/memclient"
	"github.com/jetbox-dev/jetbox/consumer/internal/telemetry"
	"github.com/jetbox-dev/jetbox/internal/config"
	"github.com/jetbox-dev/jetbox/internal/sfmapi"
)

// DefaultMisconfiguredProbe is how often a worker that the memory API
// refuses as misconfigured lets one write through to see whether it is
// accepted again.
const DefaultMisconfiguredProbe = 5 * time.Second

// misconfigured holds every write of the worker back while the memory API
// refuses the worker itself (sfmapi.IsMisconfiguration), letting one write
// through per probe interval, and lets them all go once one is accepted.
// Nothing is dead-lettered and no retry budget is used meanwhile:
// dead-lettering would turn every write into a dead letter for a mistake
// in one setting.
type misconfigured struct {
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

func newMisconfigured(cfg Config, m *telemetry.Metrics) *misconfigured {
	return &misconfigured{
		endpoint: config.RedactURL(cfg.Endpoint), probe: cfg.MisconfiguredProbe, log: cfg.Log,
		gauge: m.Misconfigured, refusals: m.MisconfigRefusals, cleared: make(chan struct{}),
	}
}

// wait returns once a write may go to the memory API: at once while it
// accepts the worker, else when this write is the next probe or the
// memory API accepts again. It returns false when ctx ends first.
func (mc *misconfigured) wait(ctx context.Context) bool {
	if !mc.refused.Load() {
		return true
	}
	for {
		mc.mu.Lock()
		if mc.status == 0 {
			mc.mu.Unlock()
			return true
		}
		now := time.Now()
		if !now.Before(mc.next) {
			mc.next = now.Add(mc.probe)
			mc.mu.Unlock()
			return true
		}
		wait, cleared := mc.next.Sub(now), mc.cleared
		mc.mu.Unlock()
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

// observe records what the memory API answered a write that wait let
// through.
func (mc *misconfigured) observe(a memclient.Answer) {
	refusal := a.Status != 0 && sfmapi.IsMisconfiguration(a.Status)
	if !refusal && !mc.refused.Load() {
		return
	}
	mc.mu.Lock()
	defer mc.mu.Unlock()
	if refusal {
		mc.refusals.Inc()
		if mc.status == 0 {
			mc.gauge.Set(1)
			mc.log.Error().Str("endpoint", mc.endpoint).Int("status", a.Status).Str("check", mc.advice(a.Status)).
				Msg("the memory API refuses this worker: every write is held in the outbox, none is dead-lettered, until it accepts again")
		}
		mc.status, mc.next = a.Status, time.Now().Add(mc.probe)
		mc.refused.Store(true)
		return
	}
	if a.Status == 0 {
		// No answer: says nothing about the configuration.
		return
	}
	if mc.status != 0 {
		mc.log.Info().Str("endpoint", mc.endpoint).Msg("the memory API accepts this worker again; delivery resumes")
		mc.status = 0
		mc.refused.Store(false)
		mc.gauge.Set(0)
		close(mc.cleared)
		mc.cleared = make(chan struct{})
	}
}

func (mc *misconfigured) advice(status int) string {
	if status == 404 {
		return "SOMABRAIN_MEMORY_HTTP_ENDPOINT: the memory API's base URL, without a path of its own (it answered 404 to a write route)"
	}
	return "SOMABRAIN_MEMORY_HTTP_TOKEN: the bearer token the memory API expects, and its permissions"
}

// ErrMemoryAPIMisconfigured says the memory API refuses the worker itself.
var ErrMemoryAPIMisconfigured = errors.New("the memory API refuses this worker")

// err is nil while the memory API accepts the worker.
func (mc *misconfigured) err() error {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	if mc.status == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s answered %d; check %s", ErrMemoryAPIMisconfigured, mc.endpoint, mc.status, mc.advice(mc.status))
}
