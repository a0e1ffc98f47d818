package consumer

import (
	"context"

	"go.opentelemetry.io/otel/trace"

	"github.com/jetbox-dev/jetbox/consumer/internal/memclient"
	"github.com/jetbox-dev/jetbox/consumer/internal/telemetry"
)

// enableTracing makes the worker trace with tp (telemetry.Tracer); a nil
// tp leaves it off.
func (w *Worker) enableTracing(tp trace.TracerProvider) {
	w.tracer = telemetry.NewTracer(tp)
	if w.tracer == nil {
		return
	}
	w.api.WrapSend(func(send memclient.Send) memclient.Send { return w.tracer.TraceCalls(send, memclient.TransportError) })
	w.log = w.log.Hook(telemetry.TraceIDHook{})
}

// startProcess starts d's process span and returns ctx with it; nil when
// tracing is off, which then costs nothing.
func (g *group) startProcess(ctx context.Context, d delivery, partition int) (context.Context, *telemetry.ProcessSpan) {
	if g.tracer == nil {
		return ctx, nil
	}
	w := d.w
	p := telemetry.Delivery{Mode: g.mode, Partition: partition, Msg: d.msg, Meta: d.meta, Addr: w.Addr, Traceparent: w.Traceparent, Tracestate: w.Tracestate}
	if d.err != nil {
		p.BadInput = g.loggable(d.err.Error())
	}
	return g.tracer.StartProcess(ctx, p)
}
