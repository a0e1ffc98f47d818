package opsmetrics_test

import (
	"context"
	"errors"
	"maps"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/jetbox-dev/jetbox/internal/buildinfo"
	"github.com/jetbox-dev/jetbox/internal/natstest"
	"github.com/jetbox-dev/jetbox/internal/opsmetrics"
	"github.com/jetbox-dev/jetbox/streams"
)

// gauges gathers reg and returns every gauge as name{label=value,...} ->
// value, labels in the order Prometheus sorts them.
func gauges(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetType() != dto.MetricType_GAUGE {
			continue
		}
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for i, l := range m.GetLabel() {
				sep := ","
				if i == 0 {
					sep = "{"
				}
				key += sep + l.GetName() + "=" + l.GetValue()
			}
			if len(m.GetLabel()) > 0 {
				key += "}"
			}
			out[key] = m.GetGauge().GetValue()
		}
	}
	return out
}

func publish(ctx context.Context, t *testing.T, js jetstream.JetStream, subject string, header nats.Header) {
	t.Helper()
	if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: subject, Header: header, Data: []byte(`{}`)}); err != nil {
		t.Fatalf("publish %s: %v", subject, err)
	}
}

func address(t *testing.T, tenant string, mode streams.Mode, op streams.Op) streams.Address {
	t.Helper()
	a, err := streams.NewAddress(tenant, mode, op)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// With no worker running, the gauges show what waits: the outbox's backlog
// per group (a write a consumer delivered and nobody acked still counts),
// the dead letters, and the parked writes per group.
func TestGaugesShowBacklogDeadLettersAndParkedWrites(t *testing.T) {
	_, js := natstest.Start(t).Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := streams.DefaultConfig()
	cfg.Partitions = 4
	top, err := streams.Provision(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i, tenant := range []string{"acme", "globex", "initech", "umbrella", "acme"} {
		publish(ctx, t, js, address(t, tenant, streams.ModeFastAck, streams.OpStore).Subject(), nats.Header{"Nats-Msg-Id": []string{tenant + string(rune('0'+i))}})
	}
	publish(ctx, t, js, address(t, "acme", streams.ModeBackground, streams.OpDelete).Subject(), nil)
	// One fast_ack write delivered to a worker that has not acked it.
	acme := address(t, "acme", streams.ModeFastAck, streams.OpStore)
	held, err := top.Consumers[streams.ModeFastAck][streams.PartitionOf(acme.Token, cfg.Partitions)].Fetch(1, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for range held.Messages() {
	}
	for _, class := range []string{"permanent", "bad_input", "exhausted"} {
		publish(ctx, t, js, address(t, "acme", streams.ModeSync, streams.OpStore).DLQSubject(), nats.Header{streams.HeaderDLQClass: []string{class}})
	}
	for _, a := range []streams.Address{
		address(t, "globex", streams.ModeFastAck, streams.OpStore), address(t, "globex", streams.ModeFastAck, streams.OpStore),
		address(t, "globex", streams.ModeFastAck, streams.OpLink), address(t, "hooli", streams.ModeSync, streams.OpDelete),
	} {
		publish(ctx, t, js, streams.ParkedSubject(a), nil)
	}

	// The server updates a consumer's pending count a moment after the
	// publish is acknowledged, so the reading is polled (no cache) until
	// it settles.
	fresh := prometheus.NewRegistry()
	fresh.MustRegister(opsmetrics.New(js, cfg, time.Nanosecond))
	want := map[string]float64{
		"jetbox_outbox_pending_writes{group=sync}": 0, "jetbox_outbox_pending_writes{group=fast_ack}": 5, "jetbox_outbox_pending_writes{group=background}": 1,
		"jetbox_dead_letters":              3,
		"jetbox_parked_writes{group=sync}": 1, "jetbox_parked_writes{group=fast_ack}": 3, "jetbox_parked_writes{group=background}": 0,
	}
	var got map[string]float64
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got = gauges(t, fresh)
		if maps.Equal(got, want) || time.Now().After(deadline) {
			break
		}
	}
	if !maps.Equal(got, want) {
		t.Fatalf("gauges %v, want %v", got, want)
	}

	// Within the cache's life a scrape costs the server nothing and shows
	// the same reading.
	cached := prometheus.NewRegistry()
	cached.MustRegister(opsmetrics.New(js, cfg, time.Hour))
	if n := gauges(t, cached)["jetbox_outbox_pending_writes{group=sync}"]; n != 0 {
		t.Fatalf("sync backlog %v, want 0", n)
	}
	publish(ctx, t, js, address(t, "acme", streams.ModeSync, streams.OpStore).Subject(), nil)
	for deadline := time.Now().Add(5 * time.Second); gauges(t, fresh)["jetbox_outbox_pending_writes{group=sync}"] != 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the sync write never showed in the backlog")
		}
	}
	if n := gauges(t, cached)["jetbox_outbox_pending_writes{group=sync}"]; n != 0 {
		t.Errorf("a second scrape within the cache TTL read the streams again: sync backlog %v", n)
	}
}

// Once the cache is older than its TTL a scrape reads the streams again;
// a stream that cannot be read leaves its gauges out and is counted.
func TestGaugesFollowTheStreamsAndCountFailedReadings(t *testing.T) {
	_, js := natstest.Start(t).Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := streams.DefaultConfig()
	cfg.Partitions = 2
	if _, err := streams.Provision(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(opsmetrics.New(js, cfg, 50*time.Millisecond))
	if n := gauges(t, reg)["jetbox_outbox_pending_writes{group=sync}"]; n != 0 {
		t.Fatalf("sync backlog of an empty outbox: %v", n)
	}
	publish(ctx, t, js, address(t, "acme", streams.ModeSync, streams.OpStore).Subject(), nil)
	for deadline := time.Now().Add(5 * time.Second); gauges(t, reg)["jetbox_outbox_pending_writes{group=sync}"] != 1; time.Sleep(60 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the sync backlog never reached 1 once the cache expired")
		}
	}

	if err := js.DeleteStream(ctx, cfg.DLQStream); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	got := gauges(t, reg)
	if _, ok := got["jetbox_dead_letters"]; ok {
		t.Errorf("jetbox_dead_letters reported without a dead-letter stream")
	}
	if got["jetbox_outbox_pending_writes{group=sync}"] != 1 {
		t.Errorf("the outbox's backlog went missing with the dead-letter stream: %v", got)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var failed float64
	for _, f := range families {
		if f.GetName() == "jetbox_stream_info_errors_total" {
			for _, m := range f.GetMetric() {
				if m.GetLabel()[0].GetValue() == cfg.DLQStream {
					failed = m.GetCounter().GetValue()
				}
			}
		}
	}
	if failed < 1 {
		t.Errorf("jetbox_stream_info_errors_total{stream=%s} = %v, want at least 1", cfg.DLQStream, failed)
	}
}

func TestBuildInfoIsOneWithTheVersionsAsLabels(t *testing.T) {
	reg := prometheus.NewRegistry()
	info := buildinfo.Info{Version: "v1.4.0", Revision: "97c29c4", GoVersion: "go1.26.8", NATSGo: "v1.55.0", NATSServer: "v2.15.2"}
	reg.MustRegister(opsmetrics.BuildInfo(info))
	want := "jetbox_build_info{go_version=go1.26.8,nats_go=v1.55.0,nats_server=v2.15.2,revision=97c29c4,version=v1.4.0}"
	if got := gauges(t, reg); got[want] != 1 || len(got) != 1 {
		t.Errorf("gauges %v, want %s = 1", got, want)
	}
}

func TestReadyFollowsTheCheck(t *testing.T) {
	var failing atomic.Bool
	reg := prometheus.NewRegistry()
	reg.MustRegister(opsmetrics.Ready(func(context.Context) error {
		if failing.Load() {
			return errors.New("not consuming")
		}
		return nil
	}, 20*time.Millisecond))
	if got := gauges(t, reg)["jetbox_worker_ready"]; got != 1 {
		t.Errorf("jetbox_worker_ready of a ready worker = %v, want 1", got)
	}
	failing.Store(true)
	time.Sleep(40 * time.Millisecond)
	if got := gauges(t, reg)["jetbox_worker_ready"]; got != 0 {
		t.Errorf("jetbox_worker_ready of a worker that is not ready = %v, want 0", got)
	}
}
