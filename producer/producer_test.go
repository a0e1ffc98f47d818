package producer

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/jetbox-dev/jetbox/internal/natstest"
	"github.com/jetbox-dev/jetbox/streams"
	"github.com/jetbox-dev/jetbox/tenancy"
)

// env is one test's server, connection, outbox and producer.
type env struct {
	srv *natstest.Server
	nc  *nats.Conn
	js  jetstream.JetStream
	top *streams.Topology
	p   *Producer
}

func newEnv(t testing.TB, cfg Config, opts ...natstest.Option) *env {
	t.Helper()
	scfg := streams.DefaultConfig()
	scfg.Partitions = 4 // what a producer does does not depend on it; fewer consumers start faster
	return newEnvWith(t, scfg, cfg, opts...)
}

func newEnvWith(t testing.TB, scfg streams.Config, cfg Config, opts ...natstest.Option) *env {
	t.Helper()
	e := &env{srv: natstest.Start(t, opts...)}
	e.nc, e.js = e.srv.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	top, err := streams.Provision(ctx, e.js, scfg)
	if err != nil {
		t.Fatalf("provision: %v", err)
	}
	e.top = top
	e.p = newProducer(t, e.nc, cfg)
	return e
}

func newProducer(t testing.TB, nc *nats.Conn, cfg Config) *Producer {
	t.Helper()
	p, err := New(nc, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p
}

// stored reads every message in the outbox.
func (e *env) stored(t testing.TB) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := e.top.Outbox.Info(ctx)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	var msgs []*jetstream.RawStreamMsg
	if info.State.Msgs == 0 {
		return nil
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := e.top.Outbox.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("get msg %d: %v", seq, err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

func (e *env) count(t testing.TB) uint64 {
	t.Helper()
	info, err := e.top.Outbox.Info(context.Background())
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	return info.State.Msgs
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestFastAckStoresContractMessage(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, Config{Mode: streams.ModeFastAck, Registerer: reg})
	res, err := e.p.Store(ctxT(t), StoreRequest{
		Tenant:    "acme corp",
		Namespace: "memory:acme corp",
		Coord:     "0.1,-0.2,0.3",
		Payload:   map[string]any{"text": "hello"},
	}, WithRequestID("req-1"), WithTraceContext("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "k=v"))
	if err != nil {
		t.Fatalf("Store: %v", err)
	}
	if res.Sequence == 0 || res.Duplicate || res.Mode != streams.ModeFastAck {
		t.Fatalf("result %+v", res)
	}
	wantSubject := "memory.acme~20corp.fast_ack.store"
	wantKey := DeriveIdempotencyKey(streams.OpStore, "acme corp", "req-1", []byte(`{"coord":"0.1,-0.2,0.3","payload":{"text":"hello"},"memory_type":"episodic"}`))
	if res.Subject != wantSubject || res.MsgID != "acme~20corp:"+wantKey || res.IdempotencyKey != wantKey || res.Coord != "0.1,-0.2,0.3" {
		t.Fatalf("result %+v", res)
	}
	msgs := e.stored(t)
	if len(msgs) != 1 {
		t.Fatalf("%d messages in the outbox, want 1", len(msgs))
	}
	m := msgs[0]
	if m.Sequence != res.Sequence || streams.PublishSubject(m.Subject) != wantSubject {
		t.Fatalf("stored seq %d subject %q, result %+v", m.Sequence, m.Subject, res)
	}
	wantHeaders := map[string]string{
		"Nats-Msg-Id":          "acme~20corp:" + wantKey,
		"Soma-Idempotency-Key": wantKey,
		"Soma-Tenant":          "acme corp",
		"Soma-Namespace":       "memory:acme corp",
		"X-Request-ID":         "req-1",
		"traceparent":          "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"tracestate":           "k=v",
	}
	for k, v := range wantHeaders {
		if got := m.Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	for k := range m.Header {
		switch k {
		case "Nats-Stream", "Nats-Sequence", "Nats-Subject", "Nats-Time-Stamp": // added by direct get
			continue
		}
		if _, ok := wantHeaders[k]; !ok {
			t.Errorf("unexpected header %s", k)
		}
	}
	if want := `{"coord":"0.1,-0.2,0.3","payload":{"text":"hello"},"memory_type":"episodic"}`; string(m.Data) != want {
		t.Errorf("body %s, want %s", m.Data, want)
	}
	if got := metricValue(t, reg, "jetbox_producer_writes_total", "fast_ack", "stored"); got != 1 {
		t.Errorf("writes_total{fast_ack,stored} = %v, want 1", got)
	}
	if got := metricValue(t, reg, "jetbox_producer_publish_seconds", "fast_ack"); got != 1 {
		t.Errorf("publish_seconds{fast_ack} count = %v, want 1", got)
	}
}

func TestFastAckDedupe(t *testing.T) {
	e := newEnv(t, Config{Mode: streams.ModeFastAck})
	ctx := ctxT(t)
	req := StoreRequest{Tenant: "t1", Key: "user:42", Payload: json.RawMessage(`{"n":1}`)}
	first, err := e.p.Store(ctx, req, WithIdempotencyKey("k-1"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.p.Store(ctx, req, WithIdempotencyKey("k-1"))
	if err != nil {
		t.Fatal(err)
	}
	if first.Duplicate || !again.Duplicate || again.Sequence != first.Sequence || again.MsgID != first.MsgID {
		t.Fatalf("first %+v, again %+v", first, again)
	}
	if n := e.count(t); n != 1 {
		t.Fatalf("%d messages, want 1", n)
	}

	// The same request id in two tenants is two writes.
	a, err := e.p.Store(ctx, StoreRequest{Tenant: "a", Key: "k", Payload: json.RawMessage(`{}`)}, WithRequestID("same"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.p.Store(ctx, StoreRequest{Tenant: "b", Key: "k", Payload: json.RawMessage(`{}`)}, WithRequestID("same"))
	if err != nil {
		t.Fatal(err)
	}
	if a.Duplicate || b.Duplicate || a.MsgID == b.MsgID {
		t.Fatalf("a %+v, b %+v", a, b)
	}
	if n := e.count(t); n != 3 {
		t.Fatalf("%d messages, want 3", n)
	}
}

// Without a request id or key, every call is a write of its own: the same
// delete twice is stored twice, with keys nobody could have guessed.
func TestDefaultIdempotencyKeyIsFreshPerCall(t *testing.T) {
	e := newEnv(t, Config{Mode: streams.ModeFastAck})
	res, err := e.p.Delete(ctxT(t), DeleteRequest{Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.p.Delete(ctxT(t), DeleteRequest{Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.IdempotencyKey) != 32 || res.MsgID != "public:"+res.IdempotencyKey || again.IdempotencyKey == res.IdempotencyKey || again.Duplicate {
		t.Fatalf("first %+v, second %+v", res, again)
	}
	if res.Subject != "memory.public.fast_ack.delete" {
		t.Fatalf("subject %q", res.Subject)
	}
}

func TestTenancy(t *testing.T) {
	e := newEnv(t, Config{Mode: streams.ModeFastAck})
	ctx := ctxT(t)
	for name, tenant := range map[string]string{"too long": strings.Repeat("x", 200), "control": "bad\x01tenant"} {
		_, err := e.p.Store(ctx, StoreRequest{Tenant: tenant, Key: "k", Payload: json.RawMessage(`{}`)})
		if !errors.Is(err, tenancy.ErrInvalidTenant) {
			t.Errorf("%s: err %v, want ErrInvalidTenant", name, err)
		}
	}
	if n := e.count(t); n != 0 {
		t.Fatalf("%d messages, want 0", n)
	}
	res, err := e.p.Store(ctx, StoreRequest{Namespace: "memory:sandbox-tenant", Key: "k", Payload: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Subject != "memory.sandbox-tenant.fast_ack.store" {
		t.Fatalf("subject %q", res.Subject)
	}
	m := e.stored(t)[0]
	if m.Header.Get("Soma-Tenant") != "sandbox-tenant" || m.Header.Get("Soma-Namespace") != "memory:sandbox-tenant" {
		t.Fatalf("headers %v", m.Header)
	}

	// The configured default tenant.
	p := newProducer(t, e.nc, Config{Mode: streams.ModeFastAck, DefaultTenant: "fallback"})
	res, err = p.Store(ctx, StoreRequest{Key: "k", Payload: json.RawMessage(`{}`)})
	if err != nil || res.Subject != "memory.fallback.fast_ack.store" {
		t.Fatalf("default tenant: %+v, %v", res, err)
	}
}

func TestPayloadTooLarge(t *testing.T) {
	e := newEnv(t, Config{Mode: streams.ModeFastAck}, natstest.WithMaxPayload(4096))
	big := map[string]string{"text": strings.Repeat("a", 10*1024)}
	for _, mode := range streams.Modes {
		_, err := e.p.Store(ctxT(t), StoreRequest{Key: "k", Payload: big}, WithMode(mode))
		var tooLarge *PayloadTooLargeError
		if !errors.As(err, &tooLarge) || !errors.Is(err, ErrPayloadTooLarge) {
			t.Fatalf("%s: err %v, want PayloadTooLargeError", mode, err)
		}
		if tooLarge.Max != 4096 || tooLarge.Size <= 10*1024 {
			t.Fatalf("%s: %+v", mode, tooLarge)
		}
		if strings.Contains(err.Error(), "aaaa") {
			t.Fatalf("error quotes the payload: %v", err)
		}
	}
	if err := e.p.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if n := e.count(t); n != 0 {
		t.Fatalf("%d messages, want 0", n)
	}
}

func TestOutboxFull(t *testing.T) {
	scfg := streams.DefaultConfig()
	scfg.MaxMsgs = 5
	e := newEnvWith(t, scfg, Config{Mode: streams.ModeFastAck})
	ctx := ctxT(t)
	for i := range 5 {
		if _, err := e.p.Store(ctx, StoreRequest{Key: "k", Payload: json.RawMessage(`{}`)}); err != nil {
			t.Fatalf("write %d: %v", i+1, err)
		}
	}
	start := time.Now()
	_, err := e.p.Store(ctx, StoreRequest{Key: "k", Payload: json.RawMessage(`{}`)})
	if !errors.Is(err, ErrOutboxFull) {
		t.Fatalf("6th write: %v, want ErrOutboxFull", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("6th write took %v: a full outbox is not retried", d)
	}
	if n := e.count(t); n != 5 {
		t.Fatalf("%d messages, want 5", n)
	}
}

func TestPublishTimeout(t *testing.T) {
	e := newEnv(t, Config{Mode: streams.ModeFastAck, PublishTimeout: 500 * time.Millisecond})
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
	start := time.Now()
	_, err := e.p.Store(ctxT(t), StoreRequest{Key: "k", Payload: json.RawMessage(`{}`)})
	took := time.Since(start)
	if !errors.Is(err, ErrPublishTimeout) {
		t.Fatalf("err %v, want ErrPublishTimeout", err)
	}
	if took < 400*time.Millisecond || took > 1500*time.Millisecond {
		t.Fatalf("returned after %v, want about 500ms", took)
	}

	// The caller's context bounds the publish too.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = e.p.Store(ctx, StoreRequest{Key: "k", Payload: json.RawMessage(`{}`)})
	if !errors.Is(err, ErrPublishTimeout) || time.Since(start) > 400*time.Millisecond {
		t.Fatalf("err %v after %v", err, time.Since(start))
	}
}

func TestPublishRetryReusesMsgID(t *testing.T) {
	// A server that comes back within the publish timeout: the retried
	// write is stored once.
	dir := t.TempDir()
	srv := natstest.Start(t, natstest.WithStoreDir(dir))
	addr := srv.Addr().String()
	nc, js := srv.Connect(t)
	if _, err := streams.Provision(ctxT(t), js, streams.DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	p := newProducer(t, nc, Config{Mode: streams.ModeFastAck, PublishTimeout: 4 * time.Second})
	srv.Shutdown()
	srv.WaitForShutdown()
	done := make(chan error, 1)
	go func() {
		_, err := p.Store(ctxT(t), StoreRequest{Key: "k", Payload: json.RawMessage(`{}`)}, WithIdempotencyKey("once"))
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	srv2 := natstest.Start(t, natstest.WithStoreDir(dir), natstest.WithListen(addr))
	if err := <-done; err != nil {
		t.Fatalf("Store across a restart: %v", err)
	}

	nc2, js2 := srv2.Connect(t)
	_ = nc2
	s, err := js2.Stream(ctxT(t), "MEMORY")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("%d messages, want 1", info.State.Msgs)
	}

}

func TestClose(t *testing.T) {
	e := newEnv(t, Config{Mode: streams.ModeFastAck})
	if err := e.p.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	for _, mode := range streams.Modes {
		if _, err := e.p.Store(ctxT(t), StoreRequest{Key: "k", Payload: json.RawMessage(`{}`)}, WithMode(mode)); !errors.Is(err, ErrClosed) {
			t.Fatalf("%s after Close: %v, want ErrClosed", mode, err)
		}
	}
	if err := e.p.Close(ctxT(t)); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if !e.nc.IsConnected() {
		t.Fatal("Close closed the connection")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	e := newEnv(t, Config{})
	for name, cfg := range map[string]Config{
		"mode":    {Mode: "eventually"},
		"tenant":  {DefaultTenant: "a\nb"},
		"timeout": {PublishTimeout: -time.Second},
		"buffer":  {BufferSize: -1},
	} {
		if _, err := New(e.nc, cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
	if _, err := New(nil, Config{}); err == nil {
		t.Error("New accepted a nil connection")
	}
	// Two producers may share a registry.
	reg := prometheus.NewRegistry()
	newProducer(t, e.nc, Config{Registerer: reg})
	newProducer(t, e.nc, Config{Registerer: reg})
}

// metricValue reads a counter or gauge value, or a histogram's count, from
// reg; labels are matched by value in order.
func metricValue(t testing.TB, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for i, l := range m.GetLabel() {
				if i >= len(labels) || l.GetValue() != labels[i] {
					continue metrics
				}
			}
			return value(m)
		}
	}
	return 0
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

func TestDeleteAndLinkBodies(t *testing.T) {
	e := newEnv(t, Config{Mode: streams.ModeFastAck, Universe: "sandbox"})
	ctx := ctxT(t)
	del, err := e.p.Delete(ctx, DeleteRequest{Tenant: "t", Key: "user:42"})
	if err != nil {
		t.Fatal(err)
	}
	link, err := e.p.Link(ctx, LinkRequest{Tenant: "t", FromKey: "user:42", ToCoord: "1,2,3", LinkType: "causes", Strength: ptr(0.5)})
	if err != nil {
		t.Fatal(err)
	}
	coord := CoordFromKey("sandbox", "user:42")
	if del.Coord != coord || link.Coord != coord || del.Subject != "memory.t.fast_ack.delete" || link.Subject != "memory.t.fast_ack.link" {
		t.Fatalf("delete %+v link %+v", del, link)
	}
	msgs := e.stored(t)
	if len(msgs) != 2 {
		t.Fatalf("%d messages", len(msgs))
	}
	if want := `{"coord":"` + coord + `"}`; string(msgs[0].Data) != want {
		t.Errorf("delete body %s, want %s", msgs[0].Data, want)
	}
	if want := `{"from_coord":"` + coord + `","to_coord":"1,2,3","link_type":"causes","strength":0.5}`; string(msgs[1].Data) != want {
		t.Errorf("link body %s, want %s", msgs[1].Data, want)
	}
}

// One request id for several writes (a store, its links): each write has
// a key of its own and all are stored; a retry of one of them, with the
// same request id, is a duplicate of it alone.
func TestOneRequestIDManyWrites(t *testing.T) {
	e := newEnv(t, Config{Mode: streams.ModeFastAck})
	ctx := ctxT(t)
	keys := map[string]bool{}
	for _, coord := range []string{"1,2,3", "4,5,6", "7,8,9"} {
		res, err := e.p.Store(ctx, StoreRequest{Tenant: "acme", Coord: coord, Payload: json.RawMessage(`{}`)}, WithRequestID("req-1"))
		if err != nil || res.Duplicate {
			t.Fatalf("store %s: %+v, %v", coord, res, err)
		}
		keys[res.IdempotencyKey] = true
	}
	link, err := e.p.Link(ctx, LinkRequest{Tenant: "acme", FromCoord: "1,2,3", ToCoord: "4,5,6"}, WithRequestID("req-1"))
	if err != nil || link.Duplicate {
		t.Fatalf("link: %+v, %v", link, err)
	}
	keys[link.IdempotencyKey] = true
	retry, err := e.p.Store(ctx, StoreRequest{Tenant: "acme", Coord: "4,5,6", Payload: json.RawMessage(`{}`)}, WithRequestID("req-1"))
	if err != nil || !retry.Duplicate || !keys[retry.IdempotencyKey] {
		t.Fatalf("retry: %+v, %v; want a duplicate of the second store", retry, err)
	}
	if len(keys) != 4 || e.count(t) != 4 {
		t.Fatalf("%d distinct keys, %d stored; want 4 and 4", len(keys), e.count(t))
	}
}

// The derivation is the contract's: fixed inputs give the key that
// docs/CONTRACT.md shows, so producers in other languages can check theirs.
func TestDeriveIdempotencyKeyMatchesTheContract(t *testing.T) {
	got := DeriveIdempotencyKey(streams.OpStore, "acme", "req-1", []byte(`{"coord":"1,2,3","payload":{},"memory_type":"episodic"}`))
	if got != contractKeyExample {
		t.Fatalf("key %s, docs/CONTRACT.md says %s", got, contractKeyExample)
	}
}

// A namespace that names another tenant is refused before publishing: a
// worker would dead-letter it.
func TestNamespaceOfAnotherTenantRefused(t *testing.T) {
	e := newEnv(t, Config{Mode: streams.ModeFastAck})
	_, err := e.p.Store(ctxT(t), StoreRequest{Tenant: "acme", Namespace: "memory:victim", Coord: "1,2,3", Payload: json.RawMessage(`{}`)})
	var invalid *InvalidRequestError
	if !errors.As(err, &invalid) || invalid.Field != "namespace" || e.count(t) != 0 {
		t.Fatalf("err %v, want an invalid namespace and nothing stored", err)
	}
}

// contractKeyExample is the worked example of docs/CONTRACT.md
// ("Idempotency keys"), computed there with Python's hashlib as well.
const contractKeyExample = "9f31918991514795a09f6369e54ec53a"
