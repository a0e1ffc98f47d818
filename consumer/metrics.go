package consumer

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
)

// otherTenants is the label shared by every tenant past the label budget.
const otherTenants = "_other"

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
		return otherTenants
	}
	l.seen[tenant] = struct{}{}
	return tenant
}

type metrics struct {
	tenants       *tenantLabels
	received      *prometheus.CounterVec
	applied       *prometheus.CounterVec
	retried       *prometheus.CounterVec
	deferred      *prometheus.CounterVec
	deadLettered  *prometheus.CounterVec
	foreignMsgIDs *prometheus.CounterVec
	// misconfigured is 1 while the memory API refuses the worker itself
	// (401, 403, 404 to a write), misconfigRefusals counts its refusals.
	misconfigured     prometheus.Gauge
	misconfigRefusals prometheus.Counter
	latency           *prometheus.HistogramVec
	breakerState      *prometheus.GaugeVec
	breakers          *prometheus.GaugeVec
	inFlight          prometheus.Gauge
	waiting           *prometheus.GaugeVec
	parked            *prometheus.CounterVec
	replayed          *prometheus.CounterVec
	parkedTenants     *prometheus.GaugeVec
	partitions        *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer, maxTenants int) *metrics {
	m := &metrics{
		tenants: &tenantLabels{max: maxTenants, seen: map[string]struct{}{}},
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetbox_worker_received_total", Help: "Writes published to the group, counted at their first delivery.",
		}, []string{"group", "tenant"}),
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetbox_worker_applied_total", Help: "Writes the memory API applied (2xx).",
		}, []string{"group", "tenant"}),
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetbox_worker_retried_total", Help: "Transient failures scheduled for another attempt.",
		}, []string{"group", "tenant"}),
		deferred: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetbox_worker_deferred_total", Help: "Attempts not made because the tenant's breaker was open.",
		}, []string{"group", "tenant"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetbox_worker_dead_lettered_total", Help: "Writes moved to the dead-letter stream, by class.",
		}, []string{"group", "tenant", "class"}),
		foreignMsgIDs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetbox_worker_foreign_msg_ids_total", Help: "Writes dead-lettered because their Nats-Msg-Id claims another tenant, by the tenant that published them.",
		}, []string{"group", "tenant"}),
		misconfigured: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jetbox_worker_memory_api_misconfigured", Help: "1 while the memory API refuses this worker itself (401, 403, or 404 to a write route): every write is held, none dead-lettered.",
		}),
		misconfigRefusals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jetbox_worker_memory_api_refusals_total", Help: "Memory API answers that refuse the worker itself (401, 403, or 404 to a write route).",
		}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "jetbox_worker_delivery_seconds",
			Help:    "From the stream storing a write to the memory API applying it.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 18),
		}, []string{"group"}),
		breakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "jetbox_worker_breaker_state", Help: "A tenant's breaker: 0 closed, 1 half-open, 2 open. Only non-closed breakers are listed.",
		}, []string{"group", "tenant"}),
		breakers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "jetbox_worker_breakers", Help: "Tenants with a breaker in memory.",
		}, []string{"group"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jetbox_worker_in_flight", Help: "Memory API calls in flight.",
		}),
		waiting: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "jetbox_worker_lane_waiting", Help: "Writes held behind an earlier write to the same memory.",
		}, []string{"group"}),
		parked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetbox_worker_parked_total", Help: "Writes moved aside to their tenant's parking subject.",
		}, []string{"group", "tenant"}),
		replayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetbox_worker_replayed_total", Help: "Parked writes settled by a replayer.",
		}, []string{"group", "tenant"}),
		parkedTenants: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "jetbox_worker_parked_tenants", Help: "Tenants parked, as this worker knows them.",
		}, []string{"group"}),
		partitions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "jetbox_worker_partitions", Help: "Partitions this worker owns.",
		}, []string{"group"}),
	}
	if reg != nil {
		reg.MustRegister(m.received, m.applied, m.retried, m.deferred, m.deadLettered, m.foreignMsgIDs, m.misconfigured, m.misconfigRefusals, m.latency, m.breakerState, m.breakers, m.inFlight, m.waiting, m.partitions, m.parked, m.replayed, m.parkedTenants)
	}
	return m
}

// breakerChanged keeps the breaker gauge to the tenants whose breaker is not
// closed, so the series count follows trouble, not the tenant count.
func (m *metrics) breakerChanged(group, tenant string, to gobreaker.State) {
	label := m.tenants.label(tenant)
	if to == gobreaker.StateClosed {
		m.breakerState.DeleteLabelValues(group, label)
		return
	}
	m.breakerState.WithLabelValues(group, label).Set(float64(to))
}
