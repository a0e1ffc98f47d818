// Package spanconv is what the producer's and the workers' spans share:
// jetbox's own attribute keys and the carrier of a write's W3C trace
// context. It depends on the OpenTelemetry API only, never the SDK, so that
// a program using the producer links no exporter through it.
package spanconv

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/jetbox-dev/jetbox/streams"
)

// SchemaURL is the semantic conventions' version the spans follow.
const SchemaURL = semconv.SchemaURL

// MessagingSystem is messaging.system of every span: the conventions name no
// value for NATS, so it is the system's name.
var MessagingSystem = semconv.MessagingSystemKey.String("nats")

// Attribute keys of jetbox's own. Tenant ids are bounded identifiers, fit
// for span attributes; payloads and memory API answers never go into a span.
const (
	Tenant     = attribute.Key("jetbox.tenant")
	Mode       = attribute.Key("jetbox.write.mode")
	Op         = attribute.Key("jetbox.op")
	Sequence   = attribute.Key("jetbox.stream.sequence")
	Deliveries = attribute.Key("jetbox.deliveries")
	Outcome    = attribute.Key("jetbox.outcome")
	Attempt    = attribute.Key("jetbox.attempt")
	RetryDelay = attribute.Key("jetbox.retry.delay_ms")
)

// Propagator reads and writes the contract's traceparent and tracestate
// headers, which are W3C trace context whatever the process's global
// propagator is.
var Propagator propagation.TraceContext

// Headers carries a write's traceparent and tracestate to and from the
// Propagator without a map.
type Headers struct{ Traceparent, Tracestate string }

// Get implements propagation.TextMapCarrier.
func (h *Headers) Get(key string) string {
	switch key {
	case streams.HeaderTraceparent:
		return h.Traceparent
	case streams.HeaderTracestate:
		return h.Tracestate
	}
	return ""
}

// Set implements propagation.TextMapCarrier.
func (h *Headers) Set(key, value string) {
	switch key {
	case streams.HeaderTraceparent:
		h.Traceparent = value
	case streams.HeaderTracestate:
		h.Tracestate = value
	}
}

// Keys implements propagation.TextMapCarrier.
func (h *Headers) Keys() []string {
	return []string{streams.HeaderTraceparent, streams.HeaderTracestate}
}
