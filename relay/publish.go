package relay

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Error codes of the outbox's size refusals, from nats-server's
// server/errors.json.
const (
	errCodeStoreFailed  jetstream.ErrorCode = 10077 // JSStreamStoreFailedF; "message too large" when over MaxMsgSize
	storeTooLargeReason                     = "message too large"
)

// publish stores a row's writes in order, each acknowledged before the
// next is sent: a write published while an earlier one of the same row
// awaits its ack could be stored first if that ack were lost and the
// earlier write sent again. A write refused as too large returns an error
// wrapping ErrTooLarge; any other error is transient and leaves the row
// pending.
func (r *Relay) publish(ctx context.Context, writes []write) error {
	for _, w := range writes {
		pctx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
		_, err := r.js.PublishMsg(pctx, w.msg)
		cancel()
		if err != nil {
			return classify(err)
		}
		r.metrics.published.Inc()
	}
	return nil
}

// classify returns a size refusal wrapped in ErrTooLarge and every other
// error as it is (transient: the row stays pending and is tried again).
func classify(err error) error {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		return fmt.Errorf("%w: %w", ErrTooLarge, err)
	case errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum ||
		apiErr.ErrorCode == errCodeStoreFailed && apiErr.Description == storeTooLargeReason):
		return fmt.Errorf("%w: %w", ErrTooLarge, err)
	}
	return fmt.Errorf("publish: %w", err)
}
