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

// WithIdempotencyKey sets the key the memory API dedupes on
// (X-Idempotency-Key), as given: the caller states that writes with this
// key are one write. It also wins over the request id as the base of the
// outbox dedupe id (Nats-Msg-Id), which is derived from it and the write's
// op, tenant and body (DeriveIdempotencyKey): a retry of the same write is
// stored once, a different write with the same key is stored too, and
// nobody can compute the id in advance to claim it first.
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
