package producer

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestRefused(t *testing.T) {
	api := func(code int, errCode jetstream.ErrorCode, desc string) error {
		return fmt.Errorf("nats: %w", &jetstream.APIError{Code: code, ErrorCode: errCode, Description: desc})
	}
	for name, c := range map[string]struct {
		err  error
		want error // nil: transient, retried
	}{
		"max msgs":           {api(503, 10077, "maximum messages exceeded"), ErrOutboxFull},
		"max bytes":          {api(503, 10077, "maximum bytes exceeded"), ErrOutboxFull},
		"max per subject":    {api(503, 10077, "maximum messages per subject exceeded"), ErrOutboxFull},
		"account limits":     {api(400, 10002, "resource limits exceeded for account"), ErrOutboxFull},
		"server limits":      {api(503, 10023, "insufficient resources"), ErrOutboxFull},
		"stream max size":    {api(400, 10054, "message size exceeds maximum allowed"), ErrPayloadTooLarge},
		"store too large":    {api(503, 10077, "message too large"), ErrPayloadTooLarge},
		"client max payload": {nats.ErrMaxPayload, ErrPayloadTooLarge},
		"unavailable":        {api(503, 10008, "JetStream system temporarily unavailable"), nil},
		"store io error":     {api(503, 10077, "write error"), nil},
		"timeout":            {nats.ErrTimeout, nil},
		"deadline":           {context.DeadlineExceeded, nil},
		"no responders":      {jetstream.ErrNoStreamResponse, nil},
		"reconnecting":       {nats.ErrReconnectBufExceeded, nil},
		"ack timeout":        {jetstream.ErrAsyncPublishTimeout, nil},
		"disconnected":       {nats.ErrDisconnected, nil},
	} {
		got := refused(c.err, 100)
		if (got == nil) != (c.want == nil) || c.want != nil && !errors.Is(got, c.want) {
			t.Errorf("%s: refused = %v, want %v", name, got, c.want)
		}
	}
	for name, err := range map[string]error{
		"sealed":            api(400, 10109, "invalid operation on sealed stream"),
		"wrong last seq":    api(400, 10071, "wrong last sequence: 3"),
		"connection closed": nats.ErrConnectionClosed,
	} {
		got := refused(err, 100)
		if got == nil || errors.Is(got, ErrOutboxFull) || !errors.Is(got, err) {
			t.Errorf("%s: refused = %v, want a permanent error wrapping the cause", name, got)
		}
	}
}

func TestPublishAttempt(t *testing.T) {
	for timeout, want := range map[time.Duration]time.Duration{
		5 * time.Second:        1250 * time.Millisecond,
		500 * time.Millisecond: 125 * time.Millisecond,
		time.Minute:            2 * time.Second,
		200 * time.Millisecond: 100 * time.Millisecond,
		50 * time.Millisecond:  50 * time.Millisecond,
	} {
		if got := publishAttempt(timeout); got != want {
			t.Errorf("publishAttempt(%v) = %v, want %v", timeout, got, want)
		}
	}
	for attempt := range 10 {
		d := backoff(attempt)
		if d < 5*time.Millisecond || d > 500*time.Millisecond {
			t.Errorf("backoff(%d) = %v", attempt, d)
		}
	}
}
