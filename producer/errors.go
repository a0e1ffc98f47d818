package producer

import (
	"errors"
	"fmt"

	"github.com/jetbox-dev/jetbox/internal/text"
	"github.com/jetbox-dev/jetbox/streams"
)

// Sentinel errors. Every error a write returns wraps at most a few of them;
// test with errors.Is. The typed errors below carry the details (errors.As).
var (
	// ErrInvalidRequest: the request cannot be encoded (no coord, payload not
	// a JSON object, a bad coord or header value). Nothing was published.
	ErrInvalidRequest = errors.New("invalid write request")
	// ErrPayloadTooLarge: the encoded write exceeds the server's max payload
	// or the outbox's max message size. Nothing was stored.
	ErrPayloadTooLarge = errors.New("write too large")
	// ErrRejected: a sync write was refused by the memory API (or could not
	// be applied at all) and went to the dead-letter stream.
	ErrRejected = errors.New("write rejected")
	// ErrQueued: a sync write is durable in the outbox but was not applied
	// within the sync timeout; the workers will apply it later.
	ErrQueued = errors.New("write queued, not yet applied")
	// ErrBufferFull: the background buffer is full and Config.BufferFullError
	// is set. The write was not accepted.
	ErrBufferFull = errors.New("background buffer full")
	// ErrClosed: the producer is closed (or closing) and refuses new writes;
	// also reported for background writes abandoned by an expired Close.
	ErrClosed = errors.New("producer closed")
	// ErrPublishTimeout: the outbox did not acknowledge the write within the
	// publish timeout, retries included. The write may or may not be stored;
	// retrying with the same idempotency key is safe.
	ErrPublishTimeout = errors.New("publish timeout")
	// ErrOutboxFull: the outbox stream refused the write because it reached
	// its message or byte limit (or the account's or server's JetStream
	// limits). It is not retried: workers must drain the outbox first.
	ErrOutboxFull = errors.New("outbox full")
	// ErrTenantBacklogFull: the outbox refused the write because its tenant
	// already has its quota of writes of this mode and op waiting (the
	// outbox's per-subject limit). Other tenants' writes are still stored.
	// Like ErrOutboxFull it is not retried by fast_ack and sync writes:
	// workers must apply some of the tenant's writes first.
	ErrTenantBacklogFull = errors.New("tenant backlog full")
)

// InvalidRequestError says which part of a request is unusable. It never
// quotes the payload.
type InvalidRequestError struct {
	Field  string // "payload", "coord", "from_coord", "strength", "metadata", "namespace", "idempotency key", ...
	Reason string
}

func (e *InvalidRequestError) Error() string {
	return fmt.Sprintf("invalid write request: %s: %s", e.Field, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidRequest) true.
func (e *InvalidRequestError) Is(target error) bool { return target == ErrInvalidRequest }

func invalid(field, reason string) error { return &InvalidRequestError{Field: field, Reason: reason} }

// PayloadTooLargeError says how large the encoded write was and what the
// limit is. Max is 0 when the outbox refused the write without saying its
// limit (its MaxMsgSize is below the server's max payload).
type PayloadTooLargeError struct {
	Size int64 // encoded write in bytes (body plus headers), approximate
	Max  int64 // the limit, 0 if unknown
	Err  error // the server's refusal, if the server refused it
}

func (e *PayloadTooLargeError) Error() string {
	if e.Max == 0 {
		return fmt.Sprintf("write of about %d bytes is too large for the outbox: %v", e.Size, e.Err)
	}
	return fmt.Sprintf("write of about %d bytes exceeds the max payload of %d bytes", e.Size, e.Max)
}

// Is makes errors.Is(err, ErrPayloadTooLarge) true.
func (e *PayloadTooLargeError) Is(target error) bool { return target == ErrPayloadTooLarge }

// Unwrap returns the server's refusal, if any.
func (e *PayloadTooLargeError) Unwrap() error { return e.Err }

// TenantBacklogFullError names the tenant, mode and op whose backlog is
// full.
type TenantBacklogFullError struct {
	Tenant string // raw tenant id
	Mode   streams.Mode
	Op     streams.Op
	Err    error // the server's refusal
}

func (e *TenantBacklogFullError) Error() string {
	return fmt.Sprintf("tenant backlog full: tenant %q has as many %s %s writes waiting in the outbox as its quota allows", e.Tenant, e.Mode, e.Op)
}

// Is makes errors.Is(err, ErrTenantBacklogFull) true.
func (e *TenantBacklogFullError) Is(target error) bool { return target == ErrTenantBacklogFull }

// Unwrap returns the server's refusal.
func (e *TenantBacklogFullError) Unwrap() error { return e.Err }

// RejectedError is a sync write that the workers dead-lettered: the memory
// API refused it (Outcome rejected, Status its 4xx) or it could not be
// applied at all (Outcome dead).
type RejectedError struct {
	Outcome streams.Outcome
	Status  int    // the memory API's HTTP status, 0 if it never answered
	Body    []byte // the memory API's answer
	Reason  string // the worker's summary (Soma-Error)
}

func (e *RejectedError) Error() string {
	msg := fmt.Sprintf("write %s", e.Outcome)
	if e.Status != 0 {
		msg += fmt.Sprintf(" with HTTP status %d", e.Status)
	}
	if e.Reason != "" {
		msg += ": " + text.Clip(e.Reason, 200)
	}
	return msg
}

// Is makes errors.Is(err, ErrRejected) true.
func (e *RejectedError) Is(target error) bool { return target == ErrRejected }

// QueuedError is a sync write that is durable in the outbox (at Sequence) but
// whose outcome did not arrive in time. Err is the caller's context error
// when the context ended first, else nil.
type QueuedError struct {
	Sequence  uint64
	Duplicate bool // the outbox already held this write; its outcome went to the first caller
	Err       error
}

func (e *QueuedError) Error() string {
	msg := fmt.Sprintf("write queued at outbox sequence %d, not yet applied", e.Sequence)
	if e.Duplicate {
		msg += " (duplicate of an earlier write; its outcome is not reported again)"
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Is makes errors.Is(err, ErrQueued) true.
func (e *QueuedError) Is(target error) bool { return target == ErrQueued }

// Unwrap returns the context error, if any.
func (e *QueuedError) Unwrap() error { return e.Err }
