package producer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/streams"
)

// outgoing is one encoded write on its way to the outbox. It is pooled with
// its header map and body buffer: a write that is done (stored, failed or
// refused) goes back to the pool, so that the hot path allocates little.
// Nothing may use it after putOutgoing: the background's JetStream client is
// done with a message once its ack or error handler has run, the ack
// publisher of fast_ack and sync never reads a message after sending it (see
// publishOnce), and the producer passes noLibraryRetry so that no library
// timer can send it again later.
type outgoing struct {
	msg      nats.Msg
	vals     [8]string // backing array of the header values
	nvals    int
	hdrBytes int64
	body     []byte
	coord    string
	key      string          // idempotency key
	msgID    string          // Nats-Msg-Id
	reply    string          // sync: where the outcome will come
	addr     streams.Address // tenant, mode and op
	opts     writeOptions    // the write's options, pooled with it
	// resent says the publish that was acked was not the first attempt:
	// an earlier one may have stored the write, so a duplicate ack may be
	// this write's own (fast_ack, sync).
	resent bool

	// Background bookkeeping.
	epoch    *epoch
	attempts int
	first    time.Time // first publish attempt
	deadline time.Time // first + PublishTimeout
	due      time.Time // when to retry
	err      error     // why the last attempt failed
}

var outgoingPool = sync.Pool{New: func() any {
	return &outgoing{msg: nats.Msg{Header: make(nats.Header, len(outgoing{}.vals))}}
}}

// maxPooledBody keeps unusually large bodies out of the pool.
const maxPooledBody = 64 << 10

func getOutgoing() *outgoing { return outgoingPool.Get().(*outgoing) }

func putOutgoing(w *outgoing) {
	h, body := w.msg.Header, w.body[:0]
	clear(h)
	if cap(body) > maxPooledBody {
		body = nil
	}
	*w = outgoing{msg: nats.Msg{Header: h}, body: body}
	outgoingPool.Put(w)
}

// setBody keeps an encoded body (the arguments are encode's results).
func (w *outgoing) setBody(coord string, body []byte, err error) error {
	if err == nil {
		w.coord, w.body = coord, body
	}
	return err
}

// setHeader adds key: value, leaving empty values out.
func (w *outgoing) setHeader(key, value string) {
	if value == "" {
		return
	}
	i := w.nvals
	w.vals[i] = value
	w.nvals++
	w.msg.Header[key] = w.vals[i : i+1 : i+1]
	w.hdrBytes += int64(len(key) + len(": \r\n") + len(value))
}

// size is the body plus the header block as NATS encodes it
// ("NATS/1.0\r\n", the headers, "\r\n"), which the server's max payload
// bounds.
func (w *outgoing) size() int64 {
	return int64(len(w.body)) + int64(len("NATS/1.0\r\n")) + w.hdrBytes + 2
}

// checkHeaderValue applies the worker's rule for forwarded header values
// here, so a write the worker would refuse is never published.
func checkHeaderValue(field, value string) error {
	if err := streams.CheckHeaderValue(value); err != nil {
		return invalid(field, err.Error())
	}
	return nil
}

// Error codes of the outbox's refusals, from nats-server's
// server/errors.json. The jetstream package exports only some of them.
const (
	errCodeAccountResources      jetstream.ErrorCode = 10002 // JSAccountResourcesExceededErr
	errCodeInsufficientResources jetstream.ErrorCode = 10023 // JSInsufficientResourcesErr: the server's JetStream limits
	errCodeStoreFailed           jetstream.ErrorCode = 10077 // JSStreamStoreFailedF: description is the store error
	errCodeMsgIDInProcess        jetstream.ErrorCode = 10158 // JSStreamDuplicateMessageConflict: "duplicate message id is in process"
)

// Store errors a stream with discard-new reports under errCodeStoreFailed
// when it is full (nats-server server/store.go).
var storeFullReasons = []string{
	"maximum messages exceeded",
	"maximum bytes exceeded",
}

// storeSubjectFullReason is server/store.go's ErrMaxMsgsPerSubject: the
// outbox's per-subject limit, the tenant quota, is reached.
const storeSubjectFullReason = "maximum messages per subject exceeded"

// storeTooLargeReason is server/store.go's ErrMsgTooLarge.
const storeTooLargeReason = "message too large"

// publishAttempt bounds one publish attempt (fast_ack and sync) and one async
// ack wait (background). A request or ack lost in a reconnect or a leader
// change is only noticed when this runs out, so it is a quarter of the publish
// timeout, between 100ms and 2s: several attempts fit in the publish timeout,
// and a healthy outbox acks well within it.
func publishAttempt(publishTimeout time.Duration) time.Duration {
	return min(max(publishTimeout/4, 100*time.Millisecond), 2*time.Second, publishTimeout)
}

// backoff is the pause after the attempt-th failed attempt (0-based):
// 10ms doubling up to 500ms, with jitter so that producers that failed
// together do not retry together.
func backoff(attempt int) time.Duration {
	d := 500 * time.Millisecond
	if attempt < 6 {
		d = 10 * time.Millisecond << attempt
	}
	return d/2 + rand.N(d/2)
}

// noLibraryRetry turns off nats.go's own no-responders retry: the producer
// retries every transient failure itself, with one policy, and a library
// retry timer could otherwise send a message after its outgoing was reused.
// It is a slice so that passing it allocates nothing.
var noLibraryRetry = []jetstream.PublishOpt{jetstream.WithRetryAttempts(0)}

// publishDurable stores msg in the outbox and returns the PubAck. Timeouts,
// no responders and connection trouble are retried with the same msg (so the
// same Nats-Msg-Id) until the publish timeout or ctx ends; a refusal by the
// outbox is returned at once.
//
// Each attempt is an async publish on the producer's ack publisher, waited
// for on its PubAckFuture: concurrent callers share one reply subscription
// and the connection's write buffer instead of a request each, and the
// attempt timeout is the publisher's ack timeout, so the path that succeeds
// at once makes no context and no timer of its own.
func (p *Producer) publishDurable(ctx context.Context, w *outgoing) (*jetstream.PubAck, error) {
	deadline := time.Now().Add(p.cfg.PublishTimeout)
	var lastErr error
	for attempt := 0; ; attempt++ {
		ack, cut, err := p.publishOnce(ctx, deadline, w)
		if err == nil {
			w.resent = attempt > 0
			return ack, nil
		}
		if refusal := refused(err, w.size(), w.addr); refusal != nil {
			return nil, refusal
		}
		if errors.Is(err, jetstream.ErrAsyncPublishTimeout) {
			err = fmt.Errorf("no ack (connection %v)", p.nc.Status())
		}
		if !cut || lastErr == nil {
			lastErr = err // not the error of an attempt cut short by the end
		}
		if cut {
			return nil, publishGaveUp(ctx.Err(), attempt+1, lastErr)
		}
		timer := time.NewTimer(min(backoff(attempt), time.Until(deadline)))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, publishGaveUp(ctx.Err(), attempt+1, lastErr)
		case <-timer.C:
		}
		if !time.Now().Before(deadline) {
			return nil, publishGaveUp(ctx.Err(), attempt+1, lastErr)
		}
	}
}

// publishOnce makes one attempt. cut reports that ctx or the publish
// deadline ended the wait, not the outbox or the ack timeout.
//
// The JetStream client keeps &w.msg in the attempt's future until its ack or
// its ack timeout, even after publishOnce returned and w went back to the
// pool. That is safe because the ack publisher has no handlers to pass the
// message to and noLibraryRetry leaves it no retry to send: after
// PublishMsgAsync returns, the client never reads the message again.
func (p *Producer) publishOnce(ctx context.Context, deadline time.Time, w *outgoing) (ack *jetstream.PubAck, cut bool, err error) {
	fut, err := p.ackJS.PublishMsgAsync(&w.msg, noLibraryRetry...)
	if p.ackClosed.Load() {
		// An attempt racing with Close's clean-up may have subscribed again.
		p.ackJS.CleanupPublisher()
	}
	if err != nil {
		return nil, false, err
	}
	// The publisher's ack timeout ends the attempt, unless the publish
	// timeout comes first: only then is a timer needed here.
	var expired <-chan time.Time
	if left := time.Until(deadline); left < p.attemptTimeout {
		timer := time.NewTimer(left)
		defer timer.Stop()
		expired = timer.C
	}
	select {
	case ack := <-fut.Ok():
		return ack, false, nil
	case err := <-fut.Err():
		return nil, false, err
	case <-ctx.Done():
		return nil, true, ctx.Err()
	case <-expired:
		return nil, true, context.DeadlineExceeded
	}
}

// publishGaveUp is the error of a publish whose time ran out: the publish
// timeout, or the caller's context (callerErr).
func publishGaveUp(callerErr error, attempts int, lastErr error) error {
	switch {
	case errors.Is(callerErr, context.Canceled):
		return fmt.Errorf("publish canceled after %d attempts: %w (last error: %w)", attempts, callerErr, lastErr)
	case callerErr != nil:
		return fmt.Errorf("%w: %w after %d attempts: %w", ErrPublishTimeout, callerErr, attempts, lastErr)
	}
	return fmt.Errorf("%w: no ack from the outbox after %d attempts: %w", ErrPublishTimeout, attempts, lastErr)
}

// refused returns the error to report when err means the write of size
// bytes to addr can never be stored by retrying it right away, or nil when
// err is transient.
func refused(err error, size int64, addr streams.Address) error {
	var apiErr *jetstream.APIError
	switch {
	case errors.As(err, &apiErr):
		switch {
		case apiErr.ErrorCode == errCodeStoreFailed && apiErr.Description == storeSubjectFullReason:
			return &TenantBacklogFullError{Tenant: addr.Tenant, Mode: addr.Mode, Op: addr.Op, Err: apiErr}
		case outboxFull(apiErr):
			return fmt.Errorf("%w: %w", ErrOutboxFull, apiErr)
		case apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum,
			apiErr.ErrorCode == errCodeStoreFailed && apiErr.Description == storeTooLargeReason:
			return &PayloadTooLargeError{Size: size, Err: apiErr}
		case apiErr.Code == 503:
			return nil // JetStream temporarily unavailable, store failure during a leader change, ...
		case apiErr.ErrorCode == errCodeMsgIDInProcess:
			// An earlier attempt with this id is still being stored (a new
			// stream leader replicating it): the next attempt is answered
			// as its duplicate, or stores it if it was lost.
			return nil
		}
		return fmt.Errorf("outbox refused the write: %w", apiErr)
	case errors.Is(err, jetstream.ErrJetStreamPublisherClosed):
		// Close cleaned the publisher up while the write awaited its ack.
		return fmt.Errorf("%w before the outbox acknowledged the write (it may be stored): %w", ErrClosed, err)
	case errors.Is(err, nats.ErrMaxPayload):
		return &PayloadTooLargeError{Size: size, Err: err}
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrBadSubject),
		errors.Is(err, nats.ErrBadHeaderMsg), errors.Is(err, nats.ErrInvalidMsg):
		return fmt.Errorf("publish to the outbox: %w", err)
	}
	return nil
}

func outboxFull(apiErr *jetstream.APIError) bool {
	switch apiErr.ErrorCode {
	case errCodeAccountResources, errCodeInsufficientResources:
		return true
	case errCodeStoreFailed:
		for _, reason := range storeFullReasons {
			if apiErr.Description == reason {
				return true
			}
		}
	}
	return false
}
