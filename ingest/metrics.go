package ingest

import "github.com/prometheus/client_golang/prometheus"

// Why the gateway refused a write: the reason label of
// jetbox_ingest_refused_total.
const (
	reasonNoReply      = "no_reply"       // a plain publish, dropped
	reasonBadReply     = "bad_reply"      // a reply subject outside the reply prefixes, dropped
	reasonBadSubject   = "bad_subject"    // answered with ErrBadSubject
	reasonForeignMsgID = "foreign_msg_id" // answered with ErrForeignMsgID
	reasonUnavailable  = "unavailable"    // answered with ErrUnavailable
)

// droppedNamed are the headers counted under their own name when the
// gateway drops them: those the nats-server obeys on a publish, and the
// status headers of NATS replies. Any other header dropped is counted as
// "other", so a publisher cannot grow the label set.
var droppedNamed = []string{
	"Nats-Expected-Stream",
	"Nats-Expected-Last-Sequence",
	"Nats-Expected-Last-Subject-Sequence",
	"Nats-Expected-Last-Subject-Sequence-Subject",
	"Nats-Expected-Last-Msg-Id",
	"Nats-Rollup",
	"Nats-TTL",
	"Nats-Incr",
	"Nats-Batch-Id",
	"Nats-Batch-Sequence",
	"Nats-Batch-Commit",
	"Nats-Schedule",
	"Nats-Schedule-TTL",
	"Nats-Schedule-Target",
	"Nats-Schedule-Source",
	"Nats-Schedule-Rollup",
	"Nats-Schedule-Time-Zone",
	"Nats-Required-Api-Level",
	"Nats-Trace-Dest",
	"Nats-Trace-Only",
	"Nats-Pin-Id",
	"Status",
	"Description",
}

// droppedOther is the header label of every other header dropped.
const droppedOther = "other"

type metrics struct {
	forwarded   prometheus.Counter
	refusals    map[string]prometheus.Counter
	droppedBy   map[string]prometheus.Counter
	droppedRest prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	forwarded := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "jetbox_ingest_forwarded_total",
		Help: "Writes the ingest gateway published into the outbox.",
	})
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jetbox_ingest_refused_total",
		Help: "Writes the ingest gateway did not publish, by reason: no_reply and bad_reply are dropped, the others answered with an API error.",
	}, []string{"reason"})
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jetbox_ingest_dropped_headers_total",
		Help: "Headers the ingest gateway left out of the outbox message: those the nats-server obeys by name, any other as other.",
	}, []string{"header"})
	m := &metrics{
		forwarded:   forwarded,
		refusals:    map[string]prometheus.Counter{},
		droppedBy:   map[string]prometheus.Counter{},
		droppedRest: dropped.WithLabelValues(droppedOther),
	}
	for _, r := range []string{reasonNoReply, reasonBadReply, reasonBadSubject, reasonForeignMsgID, reasonUnavailable} {
		m.refusals[r] = refused.WithLabelValues(r)
	}
	for _, h := range droppedNamed {
		m.droppedBy[h] = dropped.WithLabelValues(h)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{forwarded, refused, dropped} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) refused(reason string) { m.refusals[reason].Inc() }

func (m *metrics) dropped(header string) {
	if c, ok := m.droppedBy[header]; ok {
		c.Inc()
		return
	}
	m.droppedRest.Inc()
}
