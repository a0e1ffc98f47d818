package consumer

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetbox-dev/jetbox/internal/memapi"
	"github.com/jetbox-dev/jetbox/internal/testrig"
	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
)

const testToken = "test-token-7f3a"

// harness is one jetbox on loopback (internal/testrig): an embedded
// nats-server or a cluster, the outbox, the development memory API behind
// the fault injector (faults_test.go), and workers.
type harness struct {
	t       *testing.T
	rig     *testrig.Rig
	nc      *nats.Conn
	js      jetstream.JetStream
	streams streams.Config
	store   *memapi.Store
	faults  *faults
}

func newHarness(t *testing.T, adjust ...func(*streams.Config)) *harness {
	t.Helper()
	return setUpHarness(t, testrig.Options{Streams: testrig.Streams()}, adjust...)
}

// setUpHarness starts the rig of o, with the outbox adjusted and the
// development memory API behind the fault injector.
func setUpHarness(t *testing.T, o testrig.Options, adjust ...func(*streams.Config)) *harness {
	t.Helper()
	h := &harness{t: t, faults: newFaults()}
	for _, a := range adjust {
		a(&o.Streams)
	}
	o.Token, o.Wrap = testToken, h.faults.wrap
	h.rig = testrig.Start(t, o)
	h.nc, h.js, h.streams, h.store = h.rig.NC, h.rig.JS, h.rig.Streams, h.rig.API.Store
	return h
}

// workerConfig is a worker tuned for tests: short delays, same semantics.
func (h *harness) workerConfig() Config {
	return Config{
		Endpoint:         h.rig.API.URL,
		Token:            testToken,
		Streams:          h.streams,
		Concurrency:      32,
		RequestTimeout:   2 * time.Second,
		BackoffBase:      50 * time.Millisecond,
		BackoffMax:       time.Second,
		FailureThreshold: 3,
		ResetInterval:    time.Second,
		ShutdownTimeout:  10 * time.Second,
		Log:              zerolog.New(zerolog.NewTestWriter(h.t)).Level(zerolog.WarnLevel),
	}
}

// runningWorker is a worker on its own NATS connection, as a separate
// process would have.
type runningWorker struct {
	*Worker
	nc   *nats.Conn
	done chan error // what Run returned
	run  *testrig.RunningWorker
}

func (h *harness) startWorker(cfg Config) *runningWorker {
	h.t.Helper()
	var w *Worker
	run := h.rig.StartWorker(func(nc *nats.Conn) (testrig.Worker, error) {
		var err error
		w, err = New(nc, cfg)
		return w, err
	})
	rw := &runningWorker{Worker: w, nc: run.NC, done: run.Done, run: run}
	h.t.Cleanup(func() { rw.stop(h.t) })
	return rw
}

// stop stops the worker and fails the test if Run failed or did not
// return; a second stop returns at once.
func (rw *runningWorker) stop(t *testing.T) {
	switch err := rw.run.Stop(); {
	case errors.Is(err, testrig.ErrWorkerDidNotStop):
		t.Errorf("worker did not stop")
	case err != nil:
		t.Errorf("worker Run: %v", err)
	}
}

func (h *harness) producer(cfg producer.Config) *producer.Producer {
	h.t.Helper()
	return h.rig.Producer(cfg)
}

// totals sums the memory API's counters over all tenants.
func (h *harness) totals() memapi.TenantStats { return h.rig.API.Totals() }

// waitTenantApplied waits until the memory API has applied n writes of
// tenant and the fault proxy has recorded its answer to the last of them:
// the proxy records a call once the memory API has answered it, a moment
// after the write counts as applied.
func (h *harness) waitTenantApplied(tenant string, n uint64, within time.Duration) {
	h.t.Helper()
	waitFor(h.t, within, fmt.Sprintf("%d writes of %s applied, and the answer recorded", n, tenant), func() bool {
		reqs := h.faults.forTenant(tenant)
		return h.store.TenantStats(tenant).Applied == n && len(reqs) > 0 && reqs[len(reqs)-1].Status == http.StatusOK
	})
}

func (h *harness) waitApplied(n uint64, within time.Duration) {
	h.t.Helper()
	h.rig.WaitApplied(n, within)
}

func (h *harness) deadLetters() []jetstream.Msg {
	h.t.Helper()
	return h.rig.DeadLetters()
}

// waitFor is testrig.WaitFor by the name the tests use.
var waitFor = testrig.WaitFor
