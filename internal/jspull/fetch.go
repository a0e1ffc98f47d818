package jspull

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// fetchGrace is how long Fetch waits past maxWait for the server's
// "408 Request Timeout" before it takes the request for lost.
const fetchGrace = time.Second

// fetchStatuses is room for what may come besides the stored messages:
// the status that ends the request, and messages that are neither.
const fetchStatuses = 16

// Fetch sends one pull request for up to n messages living maxWait, and
// returns the stored messages it delivered, whatever their headers and body.
// It returns when n have come, when the server ends the request, or when
// ctx ends (then with ctx's error and what came so far). An error the
// server answers with (consumer deleted, bad request, no responders) is a
// [*StatusError].
func Fetch(ctx context.Context, nc *nats.Conn, stream, consumer string, n int, maxWait time.Duration, opts ...Option) ([]jetstream.Msg, error) {
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	if err := errors.Join(validName("stream", stream), validName("consumer", consumer)); err != nil {
		return nil, err
	}
	if n < 1 || maxWait < time.Millisecond {
		return nil, errors.Join(ErrInvalidOption, errors.New("Fetch wants n >= 1 and maxWait >= 1ms"))
	}
	inbox := nc.NewInbox()
	// A channel for the n messages and the statuses that may come with
	// them, not a sync subscription's (64Ki entries, 512 KiB, per Fetch).
	delivered := make(chan *nats.Msg, n+fetchStatuses)
	sub, err := nc.ChanSubscribe(inbox, delivered)
	if err != nil {
		return nil, err
	}
	defer func() {
		_ = sub.Unsubscribe()
		if o.probe != nil {
			o.probe.left(len(delivered))
		}
	}()
	req := pullRequest{Expires: maxWait, Batch: n, MaxBytes: o.maxBytes, Group: o.group}
	if err := req.publish(nc, o.nextSubject(stream, consumer), inbox); err != nil {
		return nil, err
	}
	wait, cancel := context.WithTimeout(ctx, maxWait+fetchGrace)
	defer cancel()

	var msgs []jetstream.Msg
	var ended error // why the wait ended, once it has
	waiting := true
	for len(msgs) < n {
		var m *nats.Msg
		if waiting {
			select {
			case m = <-delivered:
			case <-wait.Done():
				// Delivery is stopped first, then what had come is taken,
				// not dropped with the subscription: the server has
				// delivered it, and it would come back only after its ack
				// wait, behind later writes.
				_ = sub.Unsubscribe()
				waiting = false
				ended = ctx.Err() // nil: no word from the server, the request is gone
				continue
			}
		} else {
			select {
			case m = <-delivered:
			default:
				return msgs, ended
			}
		}
		switch classify(m) {
		case stored:
			msgs = append(msgs, &Msg{msg: m, nc: nc})
			if o.probe != nil {
				o.probe.took(len(msgs))
			}
		case status:
			switch code := statusCode(m); code {
			case "100":
			case "404", "408":
				return msgs, nil
			case "409":
				description := statusDescription(m)
				if hasDescription(description, "batch completed") || hasDescription(description, "exceeds maxbytes") && len(msgs) > 0 {
					return msgs, nil
				}
				return msgs, &StatusError{Code: code, Description: description}
			default:
				return msgs, &StatusError{Code: code, Description: statusDescription(m)}
			}
		}
	}
	return msgs, nil
}
