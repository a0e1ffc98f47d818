package relay

import "github.com/prometheus/client_golang/prometheus"

// metrics are the relay's Prometheus series, named like the workers'
// (jetbox_worker_*).
type metrics struct {
	relayed       prometheus.Counter
	failed        *prometheus.CounterVec
	published     prometheus.Counter
	pending       prometheus.Gauge
	leftPending   prometheus.Gauge
	oldestPending prometheus.Gauge
	lastSuccess   prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		relayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jetbox_relay_rows_relayed_total", Help: "outbox_events rows marked sent: every write they map to was stored by the outbox.",
		}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetbox_relay_rows_failed_total", Help: "outbox_events rows marked failed, by reason (unmappable, too_large, unknown_topic).",
		}, []string{"reason"}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jetbox_relay_writes_published_total", Help: "Writes the outbox acknowledged (a bulk row is one per item).",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jetbox_relay_pending_rows", Help: "Pending rows of the topics the relay carries.",
		}),
		leftPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jetbox_relay_left_pending_rows", Help: "Pending rows of topics jetbox does not carry, left alone (SOMABRAIN_RELAY_FAIL_UNKNOWN=false).",
		}),
		oldestPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jetbox_relay_oldest_pending_seconds", Help: "Age of the oldest pending row the relay carries; 0 when none.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jetbox_relay_last_success_timestamp_seconds", Help: "When this relay last marked a row sent or failed (Unix time).",
		}),
	}
	for _, reason := range []string{"unmappable", "too_large", "unknown_topic"} {
		m.failed.WithLabelValues(reason)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.relayed, m.failed, m.published, m.pending, m.leftPending, m.oldestPending, m.lastSuccess} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
