package producer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/jetbox-dev/jetbox/streams"
)

func tracedEnv(t testing.TB, cfg Config) (*env, *tracetest.InMemoryExporter) {
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	cfg.TracerProvider = tp
	return newEnv(t, cfg), spans
}

func spanAttr(s tracetest.SpanStub, key string) string {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value.String()
		}
	}
	return ""
}

// The write carries its publish span's context, as a child of the caller's
// span, and the span ends when the call returns: here, once the write is
// buffered.
func TestPublishSpanIsCarriedInTheWrite(t *testing.T) {
	e, spans := tracedEnv(t, Config{Mode: streams.ModeBackground})
	ctx, caller := sdktrace.NewTracerProvider().Tracer("test").Start(context.Background(), "caller")
	res, err := e.p.Store(ctx, StoreRequest{Tenant: "acme", Key: "k", Payload: json.RawMessage(`{}`)})
	caller.End()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := spans.GetSpans()
	if len(got) != 1 {
		t.Fatalf("%d spans, want 1", len(got))
	}
	s := got[0]
	if s.SpanKind != trace.SpanKindProducer || s.Name != "publish memory.{tenant}.background.store" || s.Parent.SpanID() != caller.SpanContext().SpanID() {
		t.Fatalf("span %s %q, parent %v; want a PRODUCER child of the caller's span", s.SpanKind, s.Name, s.Parent)
	}
	if spanAttr(s, "jetbox.outcome") != "buffered" || spanAttr(s, "messaging.message.id") != res.MsgID {
		t.Errorf("outcome %q, message id %q", spanAttr(s, "jetbox.outcome"), spanAttr(s, "messaging.message.id"))
	}
	msgs := e.stored(t)
	want := fmt.Sprintf("00-%s-%s-01", s.SpanContext.TraceID(), s.SpanContext.SpanID())
	if len(msgs) != 1 || msgs[0].Header.Get(streams.HeaderTraceparent) != want {
		t.Fatalf("stored traceparent %q, want the publish span's %q", msgs[0].Header.Get(streams.HeaderTraceparent), want)
	}
}

// A write the outbox can never take ends its span with an error, named by
// the sentinel it wraps.
func TestPublishSpanOfARefusedWrite(t *testing.T) {
	e, spans := tracedEnv(t, Config{Mode: streams.ModeFastAck})
	big := json.RawMessage(`{"text":"` + strings.Repeat("x", int(e.nc.MaxPayload())) + `"}`)
	_, err := e.p.Store(context.Background(), StoreRequest{Tenant: "acme", Key: "k", Payload: big})
	if !errors.Is(err, ErrPayloadTooLarge) {
		t.Fatalf("err %v, want ErrPayloadTooLarge", err)
	}
	got := spans.GetSpans()
	if len(got) != 1 || got[0].Status.Code != codes.Error || spanAttr(got[0], "error.type") != "payload_too_large" {
		t.Fatalf("spans %+v, want one with error.type payload_too_large", got)
	}
}

// BenchmarkTracedFastAckStore is BenchmarkFastAckStore without a tracer
// provider (off: the allocations per write must equal
// BenchmarkFastAckStore's) and with one that samples every write (on).
func BenchmarkTracedFastAckStore(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(map[bool]string{false: "off", true: "on"}[on], func(b *testing.B) {
			cfg := Config{Mode: streams.ModeFastAck}
			if on {
				tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
				b.Cleanup(func() { tp.Shutdown(context.Background()) })
				cfg.TracerProvider = tp
			}
			e := newEnv(b, cfg)
			ctx := context.Background()
			b.ReportAllocs()
			cpu := cpuTime(b)
			for b.Loop() {
				if _, err := e.p.Store(ctx, StoreRequest{Tenant: "bench", Coord: "0.1,0.2,0.3", Payload: benchPayload}); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu)
		})
	}
}
