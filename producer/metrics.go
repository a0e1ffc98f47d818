package producer

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jetbox-dev/jetbox/streams"
)

// Values of the result label of jetbox_producer_writes_total.
const (
	resultStored      = "stored"
	resultDuplicate   = "duplicate"
	resultError       = "error"
	resultBacklogFull = "tenant_backlog_full"
)

var results = [...]string{resultStored, resultDuplicate, resultError, resultBacklogFull}

// errorResult is the result label of a write that failed with err: a full
// tenant backlog is counted apart, since it is the quota doing its job.
func errorResult(err error) string {
	if errors.Is(err, ErrTenantBacklogFull) {
		return resultBacklogFull
	}
	return resultError
}

// metrics are the producer's Prometheus series. A nil *metrics records
// nothing, so the write path never checks whether metrics are on. The
// children are resolved once: no label lookups per write.
type metrics struct {
	writes   [3][len(results)]prometheus.Counter // [mode][result], indexed by modeIndex and the result's place in results
	publish  [3]prometheus.Observer              // [mode]
	buffered prometheus.Gauge
	failures prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	writes, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jetbox_producer_writes_total",
		Help: "Writes by mode and result: stored (acknowledged by the outbox), duplicate (already in the outbox), tenant_backlog_full (refused: the tenant's quota of waiting writes is reached), error (any other failure).",
	}, []string{"mode", "result"}))
	if err != nil {
		return nil, err
	}
	publish, err := register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "jetbox_producer_publish_seconds",
		Help:    "Time from the first publish attempt of a write to the outbox's ack, retries included.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"mode"}))
	if err != nil {
		return nil, err
	}
	buffered, err := register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "jetbox_producer_background_buffered",
		Help: "Background writes accepted and not yet stored or finally failed (buffered, in flight or waiting to be retried).",
	}))
	if err != nil {
		return nil, err
	}
	failures, err := register(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "jetbox_producer_background_failures_total",
		Help: "Background writes that could not be stored and were reported to OnBackgroundError.",
	}))
	if err != nil {
		return nil, err
	}
	m := &metrics{buffered: buffered, failures: failures}
	for _, mode := range streams.Modes {
		i := modeIndex(mode)
		m.publish[i] = publish.WithLabelValues(string(mode))
		for j, result := range results {
			m.writes[i][j] = writes.WithLabelValues(string(mode), result)
		}
	}
	return m, nil
}

// register registers c, or returns the collector already registered under
// the same description, so that several producers can share a registry.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var already prometheus.AlreadyRegisteredError
	if errors.As(err, &already) {
		if existing, ok := already.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}

func modeIndex(mode streams.Mode) int {
	switch mode {
	case streams.ModeSync:
		return 0
	case streams.ModeFastAck:
		return 1
	default:
		return 2
	}
}

// write counts a finished write.
func (m *metrics) write(mode streams.Mode, result string) {
	if m == nil {
		return
	}
	for j, r := range results {
		if r == result {
			m.writes[modeIndex(mode)][j].Inc()
			return
		}
	}
}

// published records how long a write took from its first publish attempt to
// the outbox's ack.
func (m *metrics) published(mode streams.Mode, since time.Time) {
	if m != nil {
		m.publish[modeIndex(mode)].Observe(time.Since(since).Seconds())
	}
}

func (m *metrics) bufferedAdd(n int) {
	if m != nil {
		m.buffered.Add(float64(n))
	}
}

func (m *metrics) backgroundFailed(err error) {
	if m != nil {
		m.failures.Inc()
		m.write(streams.ModeBackground, errorResult(err))
	}
}
