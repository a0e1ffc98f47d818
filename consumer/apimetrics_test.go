package consumer

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/jetbox-dev/jetbox/internal/opsmetrics"
	"github.com/jetbox-dev/jetbox/internal/sfmapi"
	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
)

// sample is the value of the series name{labels} in g: a counter's or a
// gauge's value, a histogram's count of observations; -1 when absent.
func sample(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue series
				}
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				return m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return -1
}

// A worker times every memory API call by op and by what it came to, and a
// write the memory API refuses shows as a dead letter of its class, in the
// worker's counter and in the dead-letter stream's gauge.
func TestMemoryAPICallsAreTimedAndDeadLettersCounted(t *testing.T) {
	h := newHarness(t, func(c *streams.Config) { c.Partitions = 1 })
	h.faults.set("refused", func(int) (int, string) { return http.StatusUnprocessableEntity, "" })
	reg := prometheus.NewRegistry()
	cfg := h.workerConfig()
	cfg.Registerer = reg
	h.startWorker(cfg)
	ops := opsmetrics.New(h.js, h.streams, time.Millisecond)
	reg.MustRegister(ops)

	p := h.producer(producer.Config{Mode: streams.ModeFastAck})
	ctx := context.Background()
	for i, tenant := range []string{"fine", "fine", "fine", "refused"} {
		if _, err := p.Store(ctx, producer.StoreRequest{Tenant: tenant, Key: tenant + string(rune('a'+i)), Payload: map[string]any{"i": i}}); err != nil {
			t.Fatal(err)
		}
	}
	h.waitTenantApplied("fine", 3, 10*time.Second)
	waitFor(t, 10*time.Second, "one dead letter", func() bool { return len(h.deadLetters()) == 1 })

	for class, want := range map[string]float64{"2xx": 3, "4xx": 1, "5xx": 0, "error": 0} {
		if got := sample(t, reg, "jetbox_memory_api_request_duration_seconds", map[string]string{"op": "store", "status_class": class}); got != want {
			t.Errorf("store calls answered %s: %v, want %v", class, got, want)
		}
	}
	if got := sample(t, reg, "jetbox_worker_dead_lettered_total", map[string]string{"tenant": "refused", "class": "permanent"}); got != 1 {
		t.Errorf("jetbox_worker_dead_lettered_total{class=permanent} = %v, want 1", got)
	}
	waitFor(t, 5*time.Second, "jetbox_dead_letters 1 and an empty outbox", func() bool {
		return sample(t, reg, "jetbox_dead_letters", nil) == 1 &&
			sample(t, reg, "jetbox_outbox_pending_writes", map[string]string{"group": "fast_ack"}) == 0
	})
}

// A call that gets no answer is timed under status_class "error".
func TestMemoryAPICallWithoutAnAnswerIsTimedAsError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close() // nothing listens there any more
	reg := prometheus.NewRegistry()
	m := newMemoryAPI(Config{Endpoint: srv.URL, Concurrency: 1, RequestTimeout: 2 * time.Second, Registerer: reg})
	if a := m.Apply(context.Background(), storeWrite(t)); a.Class != sfmapi.Transient {
		t.Fatalf("a call to a closed port: %+v, want a transient failure", a)
	}
	if got := sample(t, reg, "jetbox_memory_api_request_duration_seconds", map[string]string{"op": "store", "status_class": "error"}); got != 1 {
		t.Errorf("calls without an answer: %v, want 1", got)
	}
	if got := sample(t, reg, "jetbox_memory_api_request_duration_seconds", map[string]string{"op": "store", "status_class": "2xx"}); got != 0 {
		t.Errorf("calls answered 2xx: %v, want 0", got)
	}
}
