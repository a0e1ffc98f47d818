package consumer

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/jetbox-dev/jetbox/consumer/internal/memclient"
	"github.com/jetbox-dev/jetbox/internal/sfmapi"
	"github.com/jetbox-dev/jetbox/internal/tracing/spanconv"
	"github.com/jetbox-dev/jetbox/streams"
)

// A worker with a tracer provider (Config.TracerProvider) makes two kinds of
// span for a write:
//
//   - `process <subject template>`, kind CONSUMER, for one delivery: from
//     the moment the write is pulled until it is settled (applied,
//     dead-lettered, parked) or handed back, retries and their back-off
//     included; a parked write's replay is a delivery of its own. Its
//     parent is the context the write carries (traceparent,
//     tracestate: the producer's publish span), not a link: every delivery
//     processes exactly one write, so the write's trace reads from the
//     publish to the memory API as one tree, and a parent-based sampler
//     keeps or drops the whole of it.
//   - `<method> <url template>`, kind CLIENT, for each memory API call, a
//     child of the process span. The memory API receives this span's
//     traceparent instead of the producer's.
//
// Without a tracer provider the worker makes neither, allocates nothing
// for them, and forwards the write's traceparent and tracestate as given.

// tracerName is the instrumentation scope of the worker's spans.
const tracerName = "github.com/jetbox-dev/jetbox/consumer"

// What a delivery came to, the process span's jetbox.outcome.
const (
	outcomeApplied      = "applied"
	outcomeDeadLettered = "dead_lettered"
	outcomeParked       = "parked"
	outcomeHandedBack   = "handed_back" // not settled here: it will be delivered again
)

// enableTracing makes the worker trace with tp; a nil tp leaves it off.
func (w *Worker) enableTracing(tp trace.TracerProvider) {
	if tp == nil {
		return
	}
	w.tracer = tp.Tracer(tracerName, trace.WithSchemaURL(spanconv.SchemaURL))
	w.api.WrapSend(func(send memclient.Send) memclient.Send { return tracedSend(w.tracer, send) })
	w.log = w.log.Hook(traceIDHook{})
}

// processSpan is a delivery's span and what the delivery came to so far.
// A nil *processSpan (tracing off) does nothing.
type processSpan struct {
	span    trace.Span
	outcome string
}

// startProcess starts d's process span under the context d's write
// carries, and returns ctx with it; nil when tracing is off.
func (g *group) startProcess(ctx context.Context, d delivery, partition int) (context.Context, *processSpan) {
	if g.tracer == nil {
		return ctx, nil
	}
	w, subject := d.w, d.msg.Subject()
	op := string(w.Addr.Op)
	if op == "" {
		op = "{op}" // a write whose subject could not be read
	}
	template := streams.SubjectPrefix + "." + string(g.mode) + ".{partition}.{tenant}." + op
	parent := spanconv.Propagator.Extract(ctx, &spanconv.Headers{Traceparent: w.Traceparent, Tracestate: w.Tracestate})
	ctx, span := g.tracer.Start(parent, "process "+template, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(
		spanconv.MessagingSystem,
		semconv.MessagingOperationTypeProcess,
		semconv.MessagingOperationName("process"),
		semconv.MessagingDestinationName(subject),
		semconv.MessagingDestinationTemplate(template),
		semconv.MessagingConsumerGroupName(streams.PartitionConsumerName(g.mode, partition)),
		semconv.MessagingMessageBodySize(len(d.msg.Data())),
		spanconv.Tenant.String(w.Addr.Tenant),
		spanconv.Mode.String(string(g.mode)),
		spanconv.Op.String(string(w.Addr.Op)),
		spanconv.Sequence.Int64(int64(d.meta.Sequence.Stream)),
		spanconv.Deliveries.Int64(int64(d.meta.NumDelivered)),
	))
	if id := d.msg.Headers().Get(streams.HeaderMsgID); id != "" { // a parked write's replay has none
		span.SetAttributes(semconv.MessagingMessageID(id))
	}
	if d.err != nil {
		span.SetAttributes(semconv.ErrorTypeKey.String("bad_input"))
		span.SetStatus(codes.Error, g.loggable(d.err.Error()))
	}
	return ctx, &processSpan{span: span, outcome: outcomeHandedBack}
}

// settle records what the delivery came to.
func (p *processSpan) settle(outcome string) {
	if p != nil {
		p.outcome = outcome
	}
}

// stepped records what an attempt (apply) led to: a retry after delay, a
// deferral while the tenant's breaker is open, or the write settled, which
// is a dead letter unless apply recorded it applied.
func (p *processSpan) stepped(next step, attempts int, delay time.Duration) {
	if p == nil {
		return
	}
	switch next {
	case again:
		p.span.AddEvent("retry", trace.WithAttributes(spanconv.Attempt.Int(attempts), spanconv.RetryDelay.Int64(delay.Milliseconds())))
	case deferred:
		p.span.AddEvent("breaker open")
	case settled:
		if p.outcome != outcomeApplied {
			p.outcome = outcomeDeadLettered
		}
	}
}

// end ends the span with the delivery's outcome.
func (p *processSpan) end() {
	if p == nil {
		return
	}
	p.span.SetAttributes(spanconv.Outcome.String(p.outcome))
	if p.outcome == outcomeDeadLettered {
		p.span.SetStatus(codes.Error, "dead-lettered")
	}
	p.span.End()
}

// tracedSend wraps a memory API call in a CLIENT span and sends the
// memory API that span's trace context.
func tracedSend(tracer trace.Tracer, send func(*http.Request) (*http.Response, error)) func(*http.Request) (*http.Response, error) {
	return func(req *http.Request) (*http.Response, error) {
		template := urlTemplate(req.URL.Path)
		ctx, span := tracer.Start(req.Context(), req.Method+" "+template, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
			semconv.HTTPRequestMethodKey.String(req.Method),
			semconv.ServerAddress(req.URL.Hostname()),
			semconv.ServerPort(port(req.URL)),
			semconv.URLFull(withoutUserinfo(req.URL)),
			semconv.URLTemplate(template),
		))
		defer span.End()
		if span.SpanContext().IsValid() {
			// The write's tracestate belongs with its traceparent, which
			// this call's replaces.
			delete(req.Header, sfmapi.HeaderTracestate)
			spanconv.Propagator.Inject(ctx, propagation.HeaderCarrier(req.Header))
		}
		resp, err := send(req)
		switch {
		case err != nil:
			kind := "_OTHER"
			if errors.Is(err, context.DeadlineExceeded) {
				kind = "timeout"
			}
			span.SetAttributes(semconv.ErrorTypeKey.String(kind))
			span.SetStatus(codes.Error, memclient.TransportError(err).Error())
		case resp.StatusCode >= 400:
			span.SetAttributes(semconv.HTTPResponseStatusCode(resp.StatusCode), semconv.ErrorTypeKey.String(strconv.Itoa(resp.StatusCode)))
			span.SetStatus(codes.Error, "")
		default:
			span.SetAttributes(semconv.HTTPResponseStatusCode(resp.StatusCode))
		}
		return resp, err
	}
}

// urlTemplate is a memory API path with the coord, the only part that
// varies, left out.
func urlTemplate(path string) string {
	if strings.HasPrefix(path, sfmapi.PathMemoryPrefix) {
		return sfmapi.PatternMemory
	}
	return path
}

func port(u *url.URL) int {
	if p, err := strconv.Atoi(u.Port()); err == nil {
		return p
	}
	if u.Scheme == "https" {
		return 443
	}
	return 80
}

// withoutUserinfo is u without credentials, which a span must not carry.
func withoutUserinfo(u *url.URL) string {
	if u.User == nil {
		return u.String()
	}
	c := *u
	c.User = nil
	return c.String()
}

// traceIDHook adds the trace and span ids of a log event's context
// (zerolog's Event.Ctx) to the event.
type traceIDHook struct{}

func (traceIDHook) Run(e *zerolog.Event, _ zerolog.Level, _ string) {
	if sc := trace.SpanContextFromContext(e.GetCtx()); sc.IsValid() {
		e.Str("trace_id", sc.TraceID().String()).Str("span_id", sc.SpanID().String())
	}
}
