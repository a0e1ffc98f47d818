package producer

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jetbox-dev/jetbox/streams"
)

// newQuotaEnv is an outbox with a tenant quota of 5 and a producer on it.
func newQuotaEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	scfg := streams.DefaultConfig()
	scfg.Partitions = 4
	scfg.TenantMaxPending = 5
	return newEnvWith(t, scfg, cfg)
}

func storeFor(tenant string) StoreRequest {
	return StoreRequest{Tenant: tenant, Key: "k", Payload: json.RawMessage(`{}`)}
}

// assertBacklogFull checks that err is the tenant's full backlog, and not
// a full outbox.
func assertBacklogFull(t *testing.T, err error, tenant string, mode streams.Mode) {
	t.Helper()
	var full *TenantBacklogFullError
	if !errors.Is(err, ErrTenantBacklogFull) || !errors.As(err, &full) || errors.Is(err, ErrOutboxFull) {
		t.Fatalf("err = %v, want ErrTenantBacklogFull", err)
	}
	if full.Tenant != tenant || full.Mode != mode || full.Op != streams.OpStore {
		t.Fatalf("backlog full for %q %s %s, want %q %s store", full.Tenant, full.Mode, full.Op, tenant, mode)
	}
}

// A fast_ack or sync write past its tenant's quota is refused at once,
// naming the tenant; another tenant's writes are stored meanwhile.
func TestTenantBacklogFullFastAckAndSync(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newQuotaEnv(t, Config{Mode: streams.ModeFastAck, SyncTimeout: 200 * time.Millisecond, Registerer: reg})
	ctx := ctxT(t)
	for i := range 5 {
		if _, err := e.p.Store(ctx, storeFor("acme")); err != nil {
			t.Fatalf("acme write %d: %v", i+1, err)
		}
	}
	start := time.Now()
	_, err := e.p.Store(ctx, storeFor("acme"))
	assertBacklogFull(t, err, "acme", streams.ModeFastAck)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("6th write took %v: a full tenant backlog is not retried", d)
	}
	t.Logf("6th write: %v", err)
	for i := range 5 {
		if _, err := e.p.Store(ctx, storeFor("globex")); err != nil {
			t.Fatalf("globex write %d while acme's backlog is full: %v", i+1, err)
		}
	}

	// Sync writes have a backlog of their own (another subject); nobody
	// applies them here, so each returns queued.
	for i := range 5 {
		if _, err := e.p.Store(ctx, storeFor("acme"), WithMode(streams.ModeSync)); !errors.Is(err, ErrQueued) {
			t.Fatalf("acme sync write %d: %v, want queued", i+1, err)
		}
	}
	start = time.Now()
	_, err = e.p.Store(ctx, storeFor("acme"), WithMode(streams.ModeSync))
	assertBacklogFull(t, err, "acme", streams.ModeSync)
	if d := time.Since(start); d > 150*time.Millisecond {
		t.Fatalf("6th sync write took %v: a full tenant backlog is returned at once", d)
	}

	if n := e.count(t); n != 15 {
		t.Fatalf("outbox holds %d writes, want 15 (acme 5 fast_ack and 5 sync, globex 5)", n)
	}
	for mode, want := range map[string]float64{"fast_ack": 1, "sync": 1} {
		if got := metricValue(t, reg, "jetbox_producer_writes_total", mode, "tenant_backlog_full"); got != want {
			t.Errorf("writes_total{%s,tenant_backlog_full} = %v, want %v", mode, got, want)
		}
		if got := metricValue(t, reg, "jetbox_producer_writes_total", mode, "error"); got != 0 {
			t.Errorf("writes_total{%s,error} = %v, want 0", mode, got)
		}
	}
}

// A background write past the quota is retried until its publish timeout,
// since the backlog may drain, then reported.
func TestTenantBacklogFullBackgroundReportedAfterPublishTimeout(t *testing.T) {
	reg := prometheus.NewRegistry()
	var failed failures
	const publishTimeout = 500 * time.Millisecond
	e := newQuotaEnv(t, Config{Mode: streams.ModeBackground, PublishTimeout: publishTimeout, Registerer: reg, OnBackgroundError: failed.record})
	ctx := ctxT(t)
	for range 6 {
		if _, err := e.p.Store(ctx, storeFor("acme")); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	if err := e.p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	f := failed.all()
	if len(f) != 1 {
		t.Fatalf("%d failures reported, want 1", len(f))
	}
	assertBacklogFull(t, f[0].Err, "acme", streams.ModeBackground)
	// It gives up when its next retry would come after the publish
	// timeout: with these backoffs never before a third of it.
	if !errors.Is(f[0].Err, ErrPublishTimeout) || took < publishTimeout/3 {
		t.Fatalf("reported after %v as %v; want it retried for about the publish timeout (%v)", took, f[0].Err, publishTimeout)
	}
	t.Logf("reported after %v: %v", took, f[0].Err)
	if n := e.count(t); n != 5 {
		t.Fatalf("outbox holds %d writes, want 5", n)
	}
	if got := metricValue(t, reg, "jetbox_producer_writes_total", "background", "tenant_backlog_full"); got != 1 {
		t.Errorf("writes_total{background,tenant_backlog_full} = %v, want 1", got)
	}
	if got := metricValue(t, reg, "jetbox_producer_background_failures_total"); got != 1 {
		t.Errorf("background_failures_total = %v, want 1", got)
	}
}

// A background write waiting on a full backlog is stored once a worker
// has applied one of the tenant's writes.
func TestTenantBacklogFullBackgroundStoredOnceItDrains(t *testing.T) {
	var failed failures
	e := newQuotaEnv(t, Config{Mode: streams.ModeBackground, PublishTimeout: 10 * time.Second, OnBackgroundError: failed.record})
	ctx := ctxT(t)
	for range 6 {
		if _, err := e.p.Store(ctx, storeFor("acme")); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond) // the 6th is being refused and retried
	if n := e.count(t); n != 5 {
		t.Fatalf("outbox holds %d writes, want 5", n)
	}
	addr, err := streams.NewAddress("acme", streams.ModeBackground, streams.OpStore)
	if err != nil {
		t.Fatal(err)
	}
	c := e.top.Consumers[streams.ModeBackground][streams.PartitionOf(addr.Token, 4)]
	batch, err := c.Fetch(1, jetstream.FetchMaxWait(3*time.Second), jetstream.FetchPriorityGroup(streams.OwnerGroup))
	if err != nil {
		t.Fatal(err)
	}
	for msg := range batch.Messages() {
		if err := msg.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if f := failed.all(); len(f) != 0 {
		t.Fatalf("failures reported: %v", f[0].Err)
	}
	if n := e.count(t); n != 5 {
		t.Fatalf("outbox holds %d writes after one was applied and the 6th stored, want 5", n)
	}
}
