package consumer

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
)

// tracedHarness is a harness whose worker and producer trace into an
// in-memory exporter, the worker logging at debug level into logs.
type tracedHarness struct {
	*harness
	spans *tracetest.InMemoryExporter
	tp    *sdktrace.TracerProvider
	logs  *syncBuffer
	p     *producer.Producer
}

func newTracedHarness(t *testing.T, mode streams.Mode, adjust ...func(*Config)) *tracedHarness {
	h := &tracedHarness{harness: newHarness(t), spans: tracetest.NewInMemoryExporter(), logs: &syncBuffer{}}
	h.tp = sdktrace.NewTracerProvider(sdktrace.WithSyncer(h.spans))
	t.Cleanup(func() { h.tp.Shutdown(context.Background()) })
	cfg := h.workerConfig()
	for _, a := range adjust {
		a(&cfg)
	}
	cfg.TracerProvider = h.tp
	cfg.Log = zerolog.New(h.logs).Level(zerolog.DebugLevel)
	h.startWorker(cfg)
	h.p = h.producer(producer.Config{Mode: mode, TracerProvider: h.tp})
	return h
}

// trace waits until the write's trace has its publish span, a process span
// that ended, and calls client spans, and returns them.
func (h *tracedHarness) trace(t *testing.T, msgID string, calls int) (publish, process tracetest.SpanStub, clients []tracetest.SpanStub) {
	t.Helper()
	waitFor(t, 10*time.Second, fmt.Sprintf("the spans of write %s", msgID), func() bool {
		publish, process, clients = tracetest.SpanStub{}, tracetest.SpanStub{}, nil
		var id trace.TraceID
		for _, s := range h.spans.GetSpans() {
			if s.SpanKind == trace.SpanKindProducer && attr(s, "messaging.message.id") == msgID {
				publish, id = s, s.SpanContext.TraceID()
			}
		}
		for _, s := range h.spans.GetSpans() {
			switch {
			case s.SpanContext.TraceID() != id:
			case s.SpanKind == trace.SpanKindConsumer:
				process = s
			case s.SpanKind == trace.SpanKindClient:
				clients = append(clients, s)
			}
		}
		return id.IsValid() && process.Name != "" && len(clients) == calls
	})
	return publish, process, clients
}

func attr(s tracetest.SpanStub, key string) string {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value.String()
		}
	}
	return ""
}

func wantAttrs(t *testing.T, s tracetest.SpanStub, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := attr(s, k); got != v {
			t.Errorf("span %q: %s = %q, want %q", s.Name, k, got, v)
		}
	}
}

// One sync write makes three spans in one trace: the producer's publish,
// the worker's process as its child (through the write's traceparent), and
// the memory API call as the process span's child; the memory API receives
// the call's own traceparent.
func TestTracingJoinsPublishProcessAndMemoryAPICallInOneTrace(t *testing.T) {
	h := newTracedHarness(t, streams.ModeSync)
	ctx := context.Background()
	res, err := h.p.Store(ctx, producer.StoreRequest{Tenant: "acme", Key: "tea", Payload: json.RawMessage(`{"text":"secret-7d2f"}`)})
	if err != nil {
		t.Fatal(err)
	}
	publish, process, clients := h.trace(t, res.MsgID, 1)
	client := clients[0]

	if publish.SpanKind != trace.SpanKindProducer || publish.Name != "publish memory.{tenant}.sync.store" || publish.Parent.IsValid() {
		t.Errorf("publish span: %s %q, parent %v; want a root PRODUCER span named after the subject template", publish.SpanKind, publish.Name, publish.Parent)
	}
	wantAttrs(t, publish, map[string]string{
		"messaging.system": "nats", "messaging.operation.type": "send", "messaging.operation.name": "publish",
		"messaging.destination.name": res.Subject, "messaging.destination.template": "memory.{tenant}.sync.store",
		"messaging.message.id": res.MsgID, "jetbox.tenant": "acme", "jetbox.write.mode": "sync", "jetbox.op": "store",
		"jetbox.stream.sequence": fmt.Sprint(res.Sequence), "jetbox.outcome": "applied",
	})

	if process.SpanKind != trace.SpanKindConsumer || process.Name != "process memory.sync.{partition}.{tenant}.store" {
		t.Errorf("process span: %s %q", process.SpanKind, process.Name)
	}
	if process.Parent.SpanID() != publish.SpanContext.SpanID() || !process.Parent.IsRemote() {
		t.Errorf("process span's parent %v, want the publish span %v, carried in the write", process.Parent, publish.SpanContext)
	}
	wantAttrs(t, process, map[string]string{
		"messaging.system": "nats", "messaging.operation.type": "process", "messaging.message.id": res.MsgID,
		"jetbox.tenant": "acme", "jetbox.write.mode": "sync", "jetbox.op": "store",
		"jetbox.stream.sequence": fmt.Sprint(res.Sequence), "jetbox.deliveries": "1", "jetbox.outcome": "applied",
	})
	if !strings.HasPrefix(attr(process, "messaging.destination.name"), "memory.sync.") || !strings.HasPrefix(attr(process, "messaging.consumer.group.name"), "sync-") {
		t.Errorf("process span: destination %q, consumer group %q", attr(process, "messaging.destination.name"), attr(process, "messaging.consumer.group.name"))
	}

	if client.SpanKind != trace.SpanKindClient || client.Name != "POST /memories" || client.Parent.SpanID() != process.SpanContext.SpanID() {
		t.Errorf("memory API span: %s %q, parent %v; want a CLIENT child of the process span %v", client.SpanKind, client.Name, client.Parent, process.SpanContext)
	}
	wantAttrs(t, client, map[string]string{"http.request.method": "POST", "http.response.status_code": "200", "url.template": "/memories"})

	reqs := h.faults.forTenant("acme")
	want := fmt.Sprintf("00-%s-%s-01", client.SpanContext.TraceID(), client.SpanContext.SpanID())
	if len(reqs) != 1 || reqs[0].Header.Get("Traceparent") != want {
		t.Fatalf("the memory API got traceparent %q, want the call's own %q", reqs[0].Header.Get("Traceparent"), want)
	}
	for _, s := range h.spans.GetSpans() {
		for _, kv := range s.Attributes {
			if strings.Contains(kv.Value.String(), "secret-7d2f") {
				t.Errorf("span %q carries the payload in %s", s.Name, kv.Key)
			}
		}
	}
}

// A retried write's process span shows each attempt and the retry between
// them, and the worker's log lines about a write carry its trace id; a
// write the memory API refuses ends dead-lettered.
func TestTracingRecordsRetriesDeadLettersAndTraceIDsInLogs(t *testing.T) {
	h := newTracedHarness(t, streams.ModeFastAck)
	h.faults.set("flaky", func(n int) (int, string) {
		if n == 0 {
			return http.StatusServiceUnavailable, ""
		}
		return 0, ""
	})
	h.faults.set("refused", func(int) (int, string) { return http.StatusUnprocessableEntity, "" })
	ctx := context.Background()
	flaky, err := h.p.Store(ctx, producer.StoreRequest{Tenant: "flaky", Key: "a", Payload: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	refused, err := h.p.Store(ctx, producer.StoreRequest{Tenant: "refused", Key: "b", Payload: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}

	_, process, clients := h.trace(t, flaky.MsgID, 2)
	wantAttrs(t, process, map[string]string{"jetbox.outcome": "applied"})
	if len(process.Events) != 1 || process.Events[0].Name != "retry" {
		t.Errorf("process span events %v, want one retry", process.Events)
	}
	statuses := map[string]bool{}
	for _, c := range clients {
		statuses[attr(c, "http.response.status_code")] = true
		if c.Parent.SpanID() != process.SpanContext.SpanID() {
			t.Errorf("memory API span %q is not the process span's child", c.Name)
		}
	}
	if !statuses["503"] || !statuses["200"] {
		t.Errorf("memory API calls answered %v, want a 503 then a 200", statuses)
	}
	wantLogged(t, h.logs, "transient failure, will retry", process.SpanContext)

	_, process, clients = h.trace(t, refused.MsgID, 1)
	wantAttrs(t, process, map[string]string{"jetbox.outcome": "dead_lettered"})
	wantAttrs(t, clients[0], map[string]string{"http.response.status_code": "422", "error.type": "422"})
	if process.Status.Code != codes.Error || clients[0].Status.Code != codes.Error {
		t.Errorf("statuses: process %v, memory API call %v; want both errors", process.Status, clients[0].Status)
	}
	wantLogged(t, h.logs, "dead-lettered", process.SpanContext)
}

// wantLogged checks that a line with message msg names the span's trace.
func wantLogged(t *testing.T, logs *syncBuffer, msg string, sc trace.SpanContext) {
	t.Helper()
	waitFor(t, 5*time.Second, fmt.Sprintf("log line %q of trace %s", msg, sc.TraceID()), func() bool {
		lines := bufio.NewScanner(strings.NewReader(logs.String()))
		for lines.Scan() {
			var line struct{ Message, TraceID, SpanID string }
			if err := json.Unmarshal(lines.Bytes(), &struct {
				Message *string `json:"message"`
				TraceID *string `json:"trace_id"`
				SpanID  *string `json:"span_id"`
			}{&line.Message, &line.TraceID, &line.SpanID}); err != nil {
				t.Fatalf("log line %q: %v", lines.Text(), err)
			}
			if line.Message == msg && line.TraceID == sc.TraceID().String() && line.SpanID == sc.SpanID().String() {
				return true
			}
		}
		return false
	})
}

// A write parked while its tenant's breaker is open keeps its trace: the
// delivery that parked it and the replay that applied it are two process
// spans under the same publish span.
func TestTracingFollowsAParkedWriteToItsReplay(t *testing.T) {
	h := newTracedHarness(t, streams.ModeFastAck, func(c *Config) {
		c.FailureThreshold = 1
		c.ResetInterval = 500 * time.Millisecond
	})
	h.faults.set("P", func(n int) (int, string) {
		if n == 0 {
			return http.StatusServiceUnavailable, ""
		}
		return 0, ""
	})
	res, err := h.p.Store(context.Background(), producer.StoreRequest{Tenant: "P", Key: "k", Payload: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	h.waitTenantApplied("P", 1, 20*time.Second)
	var publish tracetest.SpanStub
	outcomes := map[string]trace.SpanID{}
	waitFor(t, 5*time.Second, "the parked and the replayed process spans", func() bool {
		for _, s := range h.spans.GetSpans() {
			switch {
			case s.SpanKind == trace.SpanKindProducer && attr(s, "messaging.message.id") == res.MsgID:
				publish = s
			case s.SpanKind == trace.SpanKindConsumer && attr(s, "jetbox.tenant") == "P":
				outcomes[attr(s, "jetbox.outcome")] = s.SpanContext.SpanID()
				if s.Parent.SpanID() != publish.SpanContext.SpanID() && publish.Name != "" {
					t.Fatalf("process span %s is not the publish span's child", attr(s, "jetbox.outcome"))
				}
			}
		}
		_, parked := outcomes["parked"]
		_, applied := outcomes["applied"]
		return publish.Name != "" && parked && applied
	})
	reqs := h.faults.forTenant("P")
	last := reqs[len(reqs)-1].Header.Get("Traceparent")
	if !strings.HasPrefix(last, "00-"+publish.SpanContext.TraceID().String()+"-") {
		t.Fatalf("the replayed call's traceparent %q is not in the write's trace %s", last, publish.SpanContext.TraceID())
	}
	for _, s := range h.spans.GetSpans() {
		if s.SpanKind == trace.SpanKindClient && s.Parent.SpanID() == outcomes["applied"] && attr(s, "http.response.status_code") == "200" {
			return
		}
	}
	t.Fatal("no memory API call answered 200 under the replay's process span")
}

// A caller's own trace context (WithTraceContext) stays in the write as
// given and is the parent of both the publish and the process spans.
func TestTracingKeepsTheCallersTraceContext(t *testing.T) {
	h := newTracedHarness(t, streams.ModeSync)
	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	res, err := h.p.Store(context.Background(), producer.StoreRequest{Tenant: "acme", Key: "k", Payload: json.RawMessage(`{}`)},
		producer.WithTraceContext(traceparent, "vendor=1"))
	if err != nil {
		t.Fatal(err)
	}
	publish, process, clients := h.trace(t, res.MsgID, 1)
	for _, s := range []tracetest.SpanStub{publish, process} {
		if s.Parent.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || s.Parent.SpanID().String() != "00f067aa0ba902b7" {
			t.Errorf("span %q's parent %v, want the caller's", s.Name, s.Parent)
		}
	}
	if ts := process.Parent.TraceState().String(); ts != "vendor=1" {
		t.Errorf("process span's parent tracestate %q, want the caller's", ts)
	}
	got := h.faults.forTenant("acme")[0].Header
	want := fmt.Sprintf("00-4bf92f3577b34da6a3ce929d0e0e4736-%s-01", clients[0].SpanContext.SpanID())
	if got.Get("Traceparent") != want || got.Get("Tracestate") != "vendor=1" {
		t.Fatalf("the memory API got traceparent %q, tracestate %q; want %q, vendor=1", got.Get("Traceparent"), got.Get("Tracestate"), want)
	}
}

// Without a tracer provider the worker makes no span and forwards the
// write's trace context as given.
func TestTracingOffForwardsTheWritesTraceContext(t *testing.T) {
	h := newHarness(t)
	h.startWorker(h.workerConfig())
	p := h.producer(producer.Config{Mode: streams.ModeSync})
	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if _, err := p.Store(context.Background(), producer.StoreRequest{Tenant: "acme", Key: "k", Payload: json.RawMessage(`{}`)},
		producer.WithTraceContext(traceparent, "vendor=1")); err != nil {
		t.Fatal(err)
	}
	got := h.faults.forTenant("acme")[0].Header
	if got.Get("Traceparent") != traceparent || got.Get("Tracestate") != "vendor=1" {
		t.Fatalf("the memory API got traceparent %q, tracestate %q; want the write's", got.Get("Traceparent"), got.Get("Tracestate"))
	}
}
