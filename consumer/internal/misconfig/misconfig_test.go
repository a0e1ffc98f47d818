package misconfig

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"
)

// Refused, the gate holds writes but lets one through per probe interval;
// accepted again, it lets every write go, the held ones included. Its error
// names the setting to check and never the endpoint's credentials.
func TestGateHoldsWritesWhileRefusedAndLetsOneProbeThrough(t *testing.T) {
	refused := prometheus.NewGauge(prometheus.GaugeOpts{Name: "refused"})
	refusals := prometheus.NewCounter(prometheus.CounterOpts{Name: "refusals"})
	const probe = 200 * time.Millisecond
	g := New(Settings{Endpoint: "http://jetbox:secret@127.0.0.1:9595", Probe: probe, Log: zerolog.Nop(), Refused: refused, Refusals: refusals})

	if !mayGo(g, time.Second) || g.Err() != nil {
		t.Fatal("a new gate holds writes")
	}
	g.Observe(0) // no answer says nothing of the configuration
	g.Observe(200)
	if g.Err() != nil || value(t, refused) != 0 {
		t.Fatal("the gate closed without a refusal")
	}

	g.Observe(401)
	err := g.Err()
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "SOMABRAIN_MEMORY_HTTP_TOKEN") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("refused with 401: %v, want ErrRefused naming the token and not the password", err)
	}
	if value(t, refused) != 1 || value(t, refusals) != 1 {
		t.Fatalf("gauge %v, refusals %v after one refusal, want 1 and 1", value(t, refused), value(t, refusals))
	}
	if mayGo(g, probe/10) {
		t.Fatal("a write went through right after the refusal")
	}
	if !mayGo(g, 5*probe) {
		t.Fatal("no probe let through after the probe interval")
	}
	if mayGo(g, probe/10) {
		t.Fatal("two probes in one interval")
	}

	held := make(chan bool, 1)
	go func() { held <- mayGo(g, time.Minute) }()
	g.Observe(200)
	if !<-held || g.Err() != nil || value(t, refused) != 0 {
		t.Fatal("the gate still holds writes once the memory API accepts the worker")
	}
	if !mayGo(g, time.Second) {
		t.Fatal("a write held after the memory API accepted the worker again")
	}
}

// mayGo says whether the gate lets a write go within d.
func mayGo(g *Gate, d time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return g.Wait(ctx)
}

func value(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.Gauge != nil {
		return m.GetGauge().GetValue()
	}
	return m.GetCounter().GetValue()
}
