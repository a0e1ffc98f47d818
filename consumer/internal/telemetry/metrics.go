package telemetry

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"github.com/jetbox-dev/jetbox/streams"
)

// OtherTenants is the label shared by every tenant past the label budget.
const OtherTenants = "_other"

// tenantLabels bounds the tenant label's cardinality: the first max tenants
// a worker sees keep their own label value for the life of the process, every
// later one is counted under "_other". Totals stay exact; only the split by
// tenant is coarse past the budget.
type tenantLabels struct {
	mu   sync.Mutex
	max  int
	seen map[string]struct{}
}

func (l *tenantLabels) label(tenant string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.seen[tenant]; ok {
		return tenant
	}
	if len(l.seen) >= l.max {
		return OtherTenants
	}
	l.seen[tenant] = struct{}{}
	return tenant
}

// Metrics are the worker's Prometheus metrics. Every tenant label goes
// through TenantLabel.
type Metrics struct {
	tenants       *tenantLabels
	Received      *prometheus.CounterVec
	Applied       *prometheus.CounterVec
	Retried       *prometheus.CounterVec
	Deferred      *prometheus.CounterVec
	DeadLettered  *prometheus.CounterVec
	ForeignMsgIDs *prometheus.CounterVec
	// Misconfigured is 1 while the memory API refuses the worker itself
	// (401, 403, 404 to a write), MisconfigRefusals counts its refusals.
	Misconfigured     prometheus.Gauge
	MisconfigRefusals prometheus.Counter
	Latency           *prometheus.HistogramVec
	BreakerState      *prometheus.GaugeVec
	Breakers          *prometheus.GaugeVec
	InFlight          prometheus.Gauge
	Waiting           *prometheus.GaugeVec
	Parked            *prometheus.CounterVec
	Replayed          *prometheus.CounterVec
	ParkedTenants     *prometheus.GaugeVec
	Partitions        *prometheus.GaugeVec
}

// NewMetrics makes the worker's metrics and registers them with reg (nil:
// not registered), the tenant label bounded to maxTenants values.
func NewMetrics(reg prometheus.Registerer, maxTenants int) *Metrics {
	m := &Metrics{
		tenants: &tenantLabels{max: maxTenants, seen: map[string]struct{}{}},
		Received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetbox_worker_received_total", Help: "Writes published to the group, counted at their first delivery.",
		}, []string{"group", "tenant"}),
		Applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetbox_worker_applied_total", Help: "Writes the memory API applied (2xx).",
		}, []string{"group", "tenant"}),
		Retried: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetbox_worker_retried_total", Help: "Transient failures scheduled for another attempt.",
		}, []string{"group", "tenant"}),
		Deferred: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetbox_worker_deferred_total", Help: "Attempts not made because the tenant's breaker was open.",
		}, []string{"group", "tenant"}),
		DeadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetbox_worker_dead_lettered_total", Help: "Writes moved to the dead-letter stream, by class.",
		}, []string{"group", "tenant", "class"}),
		ForeignMsgIDs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetbox_worker_foreign_msg_ids_total", Help: "Writes dead-lettered because their Nats-Msg-Id claims another tenant, by the tenant that published them.",
		}, []string{"group", "tenant"}),
		Misconfigured: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jetbox_worker_memory_api_misconfigured", Help: "1 while the memory API refuses this worker itself (401, 403, or 404 to a write route): every write is held, none dead-lettered.",
		}),
		MisconfigRefusals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jetbox_worker_memory_api_refusals_total", Help: "Memory API answers that refuse the worker itself (401, 403, or 404 to a write route).",
		}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "jetbox_worker_delivery_seconds",
			Help:    "From the stream storing a write to the memory API applying it.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 18),
		}, []string{"group"}),
		BreakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "jetbox_worker_breaker_state", Help: "A tenant's breaker: 0 closed, 1 half-open, 2 open. Only non-closed breakers are listed.",
		}, []string{"group", "tenant"}),
		Breakers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "jetbox_worker_breakers", Help: "Tenants with a breaker in memory.",
		}, []string{"group"}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jetbox_worker_in_flight", Help: "Memory API calls in flight.",
		}),
		Waiting: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "jetbox_worker_lane_waiting", Help: "Writes held behind an earlier write to the same memory.",
		}, []string{"group"}),
		Parked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetbox_worker_parked_total", Help: "Writes moved aside to their tenant's parking subject.",
		}, []string{"group", "tenant"}),
		Replayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetbox_worker_replayed_total", Help: "Parked writes settled by a replayer.",
		}, []string{"group", "tenant"}),
		ParkedTenants: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "jetbox_worker_parked_tenants", Help: "Tenants parked, as this worker knows them.",
		}, []string{"group"}),
		Partitions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "jetbox_worker_partitions", Help: "Partitions this worker owns.",
		}, []string{"group"}),
	}
	if reg != nil {
		reg.MustRegister(m.Received, m.Applied, m.Retried, m.Deferred, m.DeadLettered, m.ForeignMsgIDs, m.Misconfigured, m.MisconfigRefusals, m.Latency, m.BreakerState, m.Breakers, m.InFlight, m.Waiting, m.Partitions, m.Parked, m.Replayed, m.ParkedTenants)
	}
	return m
}

// TenantLabel is the tenant label of tenant: its own id, or OtherTenants
// past the label budget.
func (m *Metrics) TenantLabel(tenant string) string {
	return m.tenants.label(tenant)
}

// BreakerChanged keeps the breaker gauge to the tenants whose breaker is not
// closed, so the series count follows trouble, not the tenant count.
func (m *Metrics) BreakerChanged(group, tenant string, to gobreaker.State) {
	label := m.TenantLabel(tenant)
	if to == gobreaker.StateClosed {
		m.BreakerState.DeleteLabelValues(group, label)
		return
	}
	m.BreakerState.WithLabelValues(group, label).Set(float64(to))
}

// Values of the status_class label of
// jetbox_memory_api_request_duration_seconds: the answer's status by its
// hundreds, or error when no usable answer came (connection refused,
// timeout, a broken answer or a status outside 200-599).
var statusClasses = [...]string{"2xx", "3xx", "4xx", "5xx", "error"}

// statusClassError is the index of "error" in statusClasses.
const statusClassError = len(statusClasses) - 1

// statusClassOf is the index in statusClasses of a call that ended with
// status (0: no answer).
func statusClassOf(status int) int {
	if status < 200 || status > 599 {
		return statusClassError
	}
	return status/100 - 2
}

// APIDurations is jetbox_memory_api_request_duration_seconds with its
// children resolved once, so a call costs no label lookup. A nil
// *APIDurations records nothing.
type APIDurations struct {
	byOp [][len(statusClasses)]prometheus.Observer // [op's place in streams.Ops][status class]
}

// NewAPIDurations registers the memory API histogram with reg (nil: no
// histogram).
func NewAPIDurations(reg prometheus.Registerer) *APIDurations {
	if reg == nil {
		return nil
	}
	vec := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "jetbox_memory_api_request_duration_seconds",
		Help:    "One memory API call, from sending the request to reading the answer, by op and status class (2xx, 4xx, 5xx, ..., error: no answer).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"op", "status_class"})
	reg.MustRegister(vec)
	d := &APIDurations{byOp: make([][len(statusClasses)]prometheus.Observer, len(streams.Ops))}
	for i, op := range streams.Ops {
		for j, class := range statusClasses {
			d.byOp[i][j] = vec.WithLabelValues(string(op), class)
		}
	}
	return d
}

// Observe records one call of op that ended with status (0: no answer)
// and took seconds.
func (d *APIDurations) Observe(op streams.Op, status int, seconds float64) {
	if d == nil {
		return
	}
	for i, o := range streams.Ops {
		if o == op {
			d.byOp[i][statusClassOf(status)].Observe(seconds)
			return
		}
	}
}
