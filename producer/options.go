package producer

import "github.com/jetbox-dev/jetbox/streams"

// WriteOption adjusts one write.
type WriteOption func(*writeOptions)

type writeOptions struct {
	mode           streams.Mode
	requestID      string
	idempotencyKey string
	traceparent    string
	tracestate     string
}

// WithMode overrides Config.Mode for this write.
func WithMode(mode streams.Mode) WriteOption {
	return func(o *writeOptions) { o.mode = mode }
}

// WithRequestID sets X-Request-ID. Without WithIdempotencyKey the request id
// is also the idempotency key, so a retried request is stored once.
func WithRequestID(id string) WriteOption {
	return func(o *writeOptions) { o.requestID = id }
}

// WithIdempotencyKey sets the key the memory API dedupes on, and from which
// the outbox dedupe id (Nats-Msg-Id) is made. Calls with the same tenant and
// key inside the outbox's duplicate window are stored once.
func WithIdempotencyKey(key string) WriteOption {
	return func(o *writeOptions) { o.idempotencyKey = key }
}

// WithTraceContext forwards a W3C trace context (traceparent, tracestate);
// empty values are left out.
func WithTraceContext(traceparent, tracestate string) WriteOption {
	return func(o *writeOptions) {
		o.traceparent = traceparent
		o.tracestate = tracestate
	}
}
