package producer

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/jetbox-dev/jetbox/internal/tracing/spanconv"
	"github.com/jetbox-dev/jetbox/streams"
)

// The publish span, `publish <subject template>` of kind PRODUCER, lasts as
// long as the write call: until the outbox stored the write (fast_ack), its
// outcome came (sync), or it was buffered (background: the publish itself
// comes later, and is not in the span). Its context travels in the write's
// traceparent and tracestate, where the workers pick it up as the parent of
// their process span. Nothing of it is made when Config.TracerProvider is
// nil: the write path then neither allocates nor calls into OpenTelemetry.

// tracerName is the instrumentation scope of the producer's spans.
const tracerName = "github.com/jetbox-dev/jetbox/producer"

// Attributes shared by every publish span.
var publishAttributes = []attribute.KeyValue{
	spanconv.MessagingSystem,
	semconv.MessagingOperationTypeSend, // "publish" in earlier conventions
	semconv.MessagingOperationName("publish"),
}

func newTracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		return nil
	}
	return tp.Tracer(tracerName, trace.WithSchemaURL(spanconv.SchemaURL))
}

// startPublish starts a write's span, nil when tracing is off. A caller's
// own trace context (WithTraceContext) is the span's parent and stays in the
// headers as given; otherwise the span is a child of ctx's, and its own
// context goes into the headers.
func (p *Producer) startPublish(ctx context.Context, o *writeOptions) trace.Span {
	if p.tracer == nil {
		return nil
	}
	given := o.traceparent != "" || o.tracestate != ""
	if given {
		ctx = spanconv.Propagator.Extract(ctx, &spanconv.Headers{Traceparent: o.traceparent, Tracestate: o.tracestate})
	}
	ctx, span := p.tracer.Start(ctx, "publish", trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(publishAttributes...))
	if !given {
		var h spanconv.Headers
		spanconv.Propagator.Inject(ctx, &h)
		o.traceparent, o.tracestate = h.Traceparent, h.Tracestate
	}
	return span
}

// describePublish names the span after the write's address, once prepare
// has found it, and records what identifies the write.
func describePublish(span trace.Span, w *outgoing, prefix string) {
	if span == nil || w.addr.Token == "" {
		return
	}
	template := prefix + streams.SubjectPrefix + ".{tenant}." + string(w.addr.Mode) + "." + string(w.addr.Op)
	span.SetName("publish " + template)
	span.SetAttributes(
		semconv.MessagingDestinationName(w.msg.Subject),
		semconv.MessagingDestinationTemplate(template),
		semconv.MessagingMessageID(w.msgID),
		semconv.MessagingMessageBodySize(len(w.body)),
		spanconv.Tenant.String(w.addr.Tenant),
		spanconv.Mode.String(string(w.addr.Mode)),
		spanconv.Op.String(string(w.addr.Op)),
	)
}

// endPublish ends the span with the write's outcome.
func endPublish(span trace.Span, res *Result, err error) {
	if span == nil {
		return
	}
	if res.Sequence > 0 {
		span.SetAttributes(spanconv.Sequence.Int64(int64(res.Sequence)))
	}
	switch {
	case errors.Is(err, ErrQueued):
		span.SetAttributes(spanconv.Outcome.String("queued"))
	case err != nil:
		span.SetAttributes(semconv.ErrorTypeKey.String(errorType(err)))
		span.SetStatus(codes.Error, err.Error())
	case res.Duplicate:
		span.SetAttributes(spanconv.Outcome.String(resultDuplicate))
	case res.Mode == streams.ModeSync:
		span.SetAttributes(spanconv.Outcome.String("applied"), semconv.HTTPResponseStatusCode(res.Status))
	case res.Mode == streams.ModeBackground:
		span.SetAttributes(spanconv.Outcome.String("buffered"))
	default:
		span.SetAttributes(spanconv.Outcome.String(resultStored))
	}
	span.End()
}

// errorType is a failed write's error.type: one of few values, named after
// the sentinel it wraps.
func errorType(err error) string {
	for _, e := range [...]struct {
		sentinel error
		name     string
	}{
		{ErrInvalidRequest, "invalid_request"}, {ErrPayloadTooLarge, "payload_too_large"}, {ErrRejected, "rejected"},
		{ErrBufferFull, "buffer_full"}, {ErrClosed, "closed"}, {ErrPublishTimeout, "publish_timeout"},
		{ErrOutboxFull, "outbox_full"}, {ErrTenantBacklogFull, "tenant_backlog_full"},
		{context.Canceled, "canceled"}, {context.DeadlineExceeded, "deadline_exceeded"},
	} {
		if errors.Is(err, e.sentinel) {
			return e.name
		}
	}
	return "_OTHER"
}
