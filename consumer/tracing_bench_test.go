package consumer

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/jetbox-dev/jetbox/consumer/internal/intake"
	"github.com/jetbox-dev/jetbox/consumer/internal/intake/intaketest"
	"github.com/jetbox-dev/jetbox/consumer/internal/telemetry"
	"github.com/jetbox-dev/jetbox/internal/sfmapi"
	"github.com/jetbox-dev/jetbox/streams"
)

// BenchmarkTracedHotpath is BenchmarkHotpath's ok case with the tracing
// hooks handle and apply run around it: decode, start the process span,
// one memory API call, settle, end. off is the worker without a tracer
// provider, whose allocations per write must equal BenchmarkHotpath/ok's;
// on samples every write and exports through a batcher that drops the
// spans, which prices the spans themselves.
func BenchmarkTracedHotpath(b *testing.B) {
	for _, bc := range []struct {
		name string
		tp   func() trace.TracerProvider
	}{
		{"off", func() trace.TracerProvider { return nil }},
		{"on", func() trace.TracerProvider {
			tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
			b.Cleanup(func() { tp.Shutdown(context.Background()) })
			return tp
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
			b.Cleanup(srv.Close)
			cfg := Config{Endpoint: srv.URL, Token: testToken, Concurrency: 4, RequestTimeout: 5 * time.Second}
			w := &Worker{cfg: cfg, api: newMemoryAPI(cfg), log: zerolog.Nop()}
			w.enableTracing(bc.tp())
			g := &group{mode: streams.ModeFastAck, cfg: cfg, api: w.api, log: w.log, tracer: w.tracer}
			// In a worker both come with the pulled message.
			var msg jetstream.Msg = intaketest.StoreMsg("k")
			meta := &jetstream.MsgMetadata{NumDelivered: 1}
			prefixes := []string{"_INBOX."}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				wr, err := intake.Decode(msg, uint64(i), prefixes)
				if err != nil {
					b.Fatal(err)
				}
				meta.Sequence.Stream = uint64(i)
				d := delivery{msg: msg, meta: meta, w: wr}
				callCtx, span := g.startProcess(ctx, d, 3)
				d.span = span
				if a := g.api.Apply(callCtx, wr); a.Class != sfmapi.Applied {
					b.Fatalf("answer %d: %v", a.Status, a.Err)
				}
				d.span.SetOutcome(telemetry.OutcomeApplied)
				d.span.Stepped(settled, 0, 0)
				d.span.End()
			}
		})
	}
}
