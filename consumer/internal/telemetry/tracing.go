package telemetry

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

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

// Outcome is what a delivery came to, the process span's jetbox.outcome.
type Outcome string

const (
	OutcomeApplied      Outcome = "applied"
	OutcomeDeadLettered Outcome = "dead_lettered"
	OutcomeParked       Outcome = "parked"
	OutcomeHandedBack   Outcome = "handed_back" // not settled here: it will be delivered again
)

// Step is what happens to a write after an attempt: the delivery policy
// decides it, the process span records it (Stepped).
type Step int

const (
	Settled   Step = iota // acked: applied, dead-lettered or parked
	Again                 // to be attempted again after a delay
	Deferred              // not attempted: the tenant's breaker is open
	Abandoned             // not the write's fault (shutdown): hand it back
)

// Tracer makes a worker's spans. A nil *Tracer (tracing off) makes none.
type Tracer struct {
	tracer trace.Tracer
}

// NewTracer is a tracer whose spans go to tp; nil when tp is nil.
func NewTracer(tp trace.TracerProvider) *Tracer {
	if tp == nil {
		return nil
	}
	return &Tracer{tracer: tp.Tracer(tracerName, trace.WithSchemaURL(spanconv.SchemaURL))}
}

// Delivery is what a process span tells of one delivery of a write.
type Delivery struct {
	Mode      streams.Mode
	Partition int
	Msg       jetstream.Msg
	Meta      *jetstream.MsgMetadata
	// Addr, Traceparent and Tracestate are the write's, as far as they
	// could be read.
	Addr                    streams.Address
	Traceparent, Tracestate string
	// BadInput is why the write cannot be applied, fit for a log line;
	// empty when it can.
	BadInput string
}

// ProcessSpan is a delivery's span and what the delivery came to so far.
// A nil *ProcessSpan (tracing off) does nothing.
type ProcessSpan struct {
	span    trace.Span
	outcome Outcome
}

// StartProcess starts d's process span under the context d's write
// carries, and returns ctx with it; nil when tracing is off.
func (t *Tracer) StartProcess(ctx context.Context, d Delivery) (context.Context, *ProcessSpan) {
	if t == nil {
		return ctx, nil
	}
	subject := d.Msg.Subject()
	op := string(d.Addr.Op)
	if op == "" {
		op = "{op}" // a write whose subject could not be read
	}
	template := streams.SubjectPrefix + "." + string(d.Mode) + ".{partition}.{tenant}." + op
	parent := spanconv.Propagator.Extract(ctx, &spanconv.Headers{Traceparent: d.Traceparent, Tracestate: d.Tracestate})
	ctx, span := t.tracer.Start(parent, "process "+template, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(
		spanconv.MessagingSystem,
		semconv.MessagingOperationTypeProcess,
		semconv.MessagingOperationName("process"),
		semconv.MessagingDestinationName(subject),
		semconv.MessagingDestinationTemplate(template),
		semconv.MessagingConsumerGroupName(streams.PartitionConsumerName(d.Mode, d.Partition)),
		semconv.MessagingMessageBodySize(len(d.Msg.Data())),
		spanconv.Tenant.String(d.Addr.Tenant),
		spanconv.Mode.String(string(d.Mode)),
		spanconv.Op.String(string(d.Addr.Op)),
		spanconv.Sequence.Int64(int64(d.Meta.Sequence.Stream)),
		spanconv.Deliveries.Int64(int64(d.Meta.NumDelivered)),
	))
	if id := d.Msg.Headers().Get(streams.HeaderMsgID); id != "" { // a parked write's replay has none
		span.SetAttributes(semconv.MessagingMessageID(id))
	}
	if d.BadInput != "" {
		span.SetAttributes(semconv.ErrorTypeKey.String("bad_input"))
		span.SetStatus(codes.Error, d.BadInput)
	}
	return ctx, &ProcessSpan{span: span, outcome: OutcomeHandedBack}
}

// SetOutcome records what the delivery came to.
func (p *ProcessSpan) SetOutcome(outcome Outcome) {
	if p != nil {
		p.outcome = outcome
	}
}

// Stepped records what an attempt led to: a retry after delay, a
// deferral while the tenant's breaker is open, or the write settled, which
// is a dead letter unless SetOutcome recorded it applied.
func (p *ProcessSpan) Stepped(next Step, attempts int, delay time.Duration) {
	if p == nil {
		return
	}
	switch next {
	case Again:
		p.span.AddEvent("retry", trace.WithAttributes(spanconv.Attempt.Int(attempts), spanconv.RetryDelay.Int64(delay.Milliseconds())))
	case Deferred:
		p.span.AddEvent("breaker open")
	case Settled:
		if p.outcome != OutcomeApplied {
			p.outcome = OutcomeDeadLettered
		}
	}
}

// End ends the span with the delivery's outcome.
func (p *ProcessSpan) End() {
	if p == nil {
		return
	}
	p.span.SetAttributes(spanconv.Outcome.String(string(p.outcome)))
	if p.outcome == OutcomeDeadLettered {
		p.span.SetStatus(codes.Error, "dead-lettered")
	}
	p.span.End()
}

// TraceCalls wraps each memory API call send makes in a CLIENT span, a
// child of the call's context's span, and sends the memory API that span's
// trace context. describe is what the memory API client makes of a
// transport error (it strips what a span must not carry); the span's status
// says it. A nil t leaves send as it is.
func (t *Tracer) TraceCalls(send func(*http.Request) (*http.Response, error), describe func(error) error) func(*http.Request) (*http.Response, error) {
	if t == nil {
		return send
	}
	return func(req *http.Request) (*http.Response, error) {
		template := urlTemplate(req.URL.Path)
		ctx, span := t.tracer.Start(req.Context(), req.Method+" "+template, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
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
			span.SetStatus(codes.Error, describe(err).Error())
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

// TraceIDHook adds the trace and span ids of a log event's context
// (zerolog's Event.Ctx) to the event.
type TraceIDHook struct{}

func (TraceIDHook) Run(e *zerolog.Event, _ zerolog.Level, _ string) {
	if sc := trace.SpanContextFromContext(e.GetCtx()); sc.IsValid() {
		e.Str("trace_id", sc.TraceID().String()).Str("span_id", sc.SpanID().String())
	}
}
