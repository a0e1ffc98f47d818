// Package opsmetrics exports what JetStream knows about the outbox as
// Prometheus gauges: the backlog of each consumer group (the autoscaling
// signal), the dead letters, and the parked writes. Every worker exports
// the same cluster-wide values, so queries take the max over workers, not
// the sum.
package opsmetrics

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jetbox-dev/jetbox/internal/buildinfo"
	"github.com/jetbox-dev/jetbox/streams"
)

// DefaultCacheTTL is how long one reading of stream and consumer info
// answers scrapes: a scrape within it costs the server nothing, so several
// Prometheus servers, or a fast scrape interval, do not multiply the
// requests.
const DefaultCacheTTL = 5 * time.Second

// readTimeout bounds one reading; Prometheus's default scrape timeout is
// 10 s.
const readTimeout = 4 * time.Second

// Collector reads the outbox's consumers, the dead-letter stream and the
// parking stream when scraped, at most once per CacheTTL.
type Collector struct {
	js       jetstream.JetStream
	cfg      streams.Config
	cacheTTL time.Duration

	pendingDesc, deadDesc, parkedDesc *prometheus.Desc
	errors                            *prometheus.CounterVec

	mu     sync.Mutex
	readAt time.Time
	last   reading
}

// reading is one reading of the streams. A part that could not be read is
// nil and left out of the scrape.
type reading struct {
	pending     map[streams.Mode]uint64 // outbox backlog per group
	deadLetters *uint64
	parked      map[streams.Mode]uint64
}

// New returns a Collector of the streams cfg names. cacheTTL 0 means
// DefaultCacheTTL.
func New(js jetstream.JetStream, cfg streams.Config, cacheTTL time.Duration) *Collector {
	if cacheTTL <= 0 {
		cacheTTL = DefaultCacheTTL
	}
	return &Collector{
		js: js, cfg: cfg, cacheTTL: cacheTTL,
		pendingDesc: prometheus.NewDesc("jetbox_outbox_pending_writes",
			"Writes of the group waiting in the outbox or held by a worker (NumPending + NumAckPending summed over the group's partition consumers); the same on every worker.",
			[]string{"group"}, nil),
		deadDesc: prometheus.NewDesc("jetbox_dead_letters",
			"Dead letters in the dead-letter stream; by class, see jetbox_worker_dead_lettered_total.",
			nil, nil),
		parkedDesc: prometheus.NewDesc("jetbox_parked_writes",
			"Writes of parked tenants waiting in the parking stream, by group.",
			[]string{"group"}, nil),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetbox_stream_info_errors_total",
			Help: "Readings of stream or consumer info that failed; the gauges they feed are missing from that scrape.",
		}, []string{"stream"}),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pendingDesc
	ch <- c.deadDesc
	ch <- c.parkedDesc
	c.errors.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	r := c.read()
	if r.pending != nil {
		for _, m := range streams.Modes {
			ch <- prometheus.MustNewConstMetric(c.pendingDesc, prometheus.GaugeValue, float64(r.pending[m]), string(m))
		}
	}
	if r.deadLetters != nil {
		ch <- prometheus.MustNewConstMetric(c.deadDesc, prometheus.GaugeValue, float64(*r.deadLetters))
	}
	if r.parked != nil {
		for _, m := range streams.Modes {
			ch <- prometheus.MustNewConstMetric(c.parkedDesc, prometheus.GaugeValue, float64(r.parked[m]), string(m))
		}
	}
	c.errors.Collect(ch)
}

// read returns the cached reading, or a new one once it is older than the
// TTL. Scrapes arriving meanwhile wait for it rather than read again.
func (c *Collector) read() reading {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.readAt.IsZero() && time.Since(c.readAt) < c.cacheTTL {
		return c.last
	}
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	var r reading
	var err error
	if r.pending, err = c.outboxBacklog(ctx); err != nil {
		c.errors.WithLabelValues(c.cfg.Stream).Inc()
	}
	if r.deadLetters, err = c.deadLetters(ctx); err != nil {
		c.errors.WithLabelValues(c.cfg.DLQStream).Inc()
	}
	if r.parked, err = c.parkedWrites(ctx); err != nil {
		c.errors.WithLabelValues(c.cfg.ParkingStream).Inc()
	}
	c.last, c.readAt = r, time.Now()
	return r
}

// outboxBacklog sums, per group, what its partition consumers have not
// delivered yet and what they delivered and is not acked yet: the writes a
// worker still has to apply. One paged list of the outbox's consumers.
func (c *Collector) outboxBacklog(ctx context.Context) (map[streams.Mode]uint64, error) {
	s, err := c.js.Stream(ctx, c.cfg.Stream)
	if err != nil {
		return nil, err
	}
	pending := make(map[streams.Mode]uint64, len(streams.Modes))
	list := s.ListConsumers(ctx)
	for info := range list.Info() {
		if m, _, ok := streams.ParsePartitionConsumerName(info.Name); ok {
			pending[m] += info.NumPending + uint64(info.NumAckPending)
		}
	}
	if err := list.Err(); err != nil {
		return nil, err
	}
	return pending, nil
}

// deadLetters counts the dead-letter stream's messages. Counting them by
// class would mean reading every dead letter's headers on every reading,
// and the stream keeps 30 days of them; the class split is in the
// workers' jetbox_worker_dead_lettered_total{class} instead.
func (c *Collector) deadLetters(ctx context.Context) (*uint64, error) {
	s, err := c.js.Stream(ctx, c.cfg.DLQStream)
	if err != nil {
		return nil, err
	}
	n := s.CachedInfo().State.Msgs
	return &n, nil
}

// parkedWrites sums the parking stream's per-subject counts
// (memory_parked.<tenant>.<mode>.<op>) by mode. Only parked tenants have
// subjects there, so the list is short.
func (c *Collector) parkedWrites(ctx context.Context) (map[streams.Mode]uint64, error) {
	s, err := c.js.Stream(ctx, c.cfg.ParkingStream)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(streams.ParkedSubjectPrefix+".>"))
	if err != nil {
		return nil, err
	}
	parked := make(map[streams.Mode]uint64, len(streams.Modes))
	for subject, n := range info.State.Subjects {
		tokens := strings.Split(subject, ".")
		if len(tokens) != 4 {
			continue
		}
		if m, err := streams.ParseMode(tokens[2]); err == nil {
			parked[m] += n
		}
	}
	return parked, nil
}

// BuildInfo is jetbox_build_info: always 1, with the binary's versions as
// labels, so a dashboard can show which versions run and join them to
// other series.
func BuildInfo(info buildinfo.Info) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "jetbox_build_info",
		Help: "Always 1; the labels say which jetbox, Go toolchain and NATS libraries this binary is built from.",
		ConstLabels: prometheus.Labels{
			"version": info.Version, "revision": info.Revision, "go_version": info.GoVersion,
			"nats_go": info.NATSGo, "nats_server": info.NATSServer,
		},
	})
	g.Set(1)
	return g
}

// Ready is jetbox_worker_ready: 1 while check passes, 0 otherwise, checked
// when scraped, at most once per cacheTTL (0: DefaultCacheTTL). check is
// what /readyz answers with, so an alert sees what Kubernetes sees.
func Ready(check func(context.Context) error, cacheTTL time.Duration) prometheus.Collector {
	if cacheTTL <= 0 {
		cacheTTL = DefaultCacheTTL
	}
	return &ready{check: check, cacheTTL: cacheTTL, desc: prometheus.NewDesc("jetbox_worker_ready",
		"1 while the worker is ready (what /readyz answers: streams, buckets and consumers exist, the worker consumes, the memory API accepts it), else 0.", nil, nil)}
}

type ready struct {
	check    func(context.Context) error
	cacheTTL time.Duration
	desc     *prometheus.Desc

	mu        sync.Mutex
	checkedAt time.Time
	value     float64
}

func (r *ready) Describe(ch chan<- *prometheus.Desc) { ch <- r.desc }

func (r *ready) Collect(ch chan<- prometheus.Metric) {
	r.mu.Lock()
	if r.checkedAt.IsZero() || time.Since(r.checkedAt) >= r.cacheTTL {
		ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
		r.value = 0
		if r.check(ctx) == nil {
			r.value = 1
		}
		cancel()
		r.checkedAt = time.Now()
	}
	v := r.value
	r.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(r.desc, prometheus.GaugeValue, v)
}
