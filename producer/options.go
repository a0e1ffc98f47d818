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
// is the base of the write's idempotency key (DeriveIdempotencyKey): a
// retried request, with the same write, is stored once; other writes made
// for the same request (a store and its links) keep keys of their own.
func WithRequestID(id string) WriteOption {
	return func(o *writeOptions) { o.requestID = id }
}

// WithIdempotencyKey sets the base of the write's idempotency key, which
// wins over the request id. The key the memory API sees and the outbox
// dedupe id (Nats-Msg-Id) are derived from it and the write's op, tenant
// and body (DeriveIdempotencyKey), so calls with the same key and the same
// write inside the outbox's duplicate window are stored once, and a
// different write with the same key is never taken for a repeat.
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
