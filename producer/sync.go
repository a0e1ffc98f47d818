package producer

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetbox-dev/jetbox/streams"
)

// syncWrite publishes like fast_ack with a Soma-Reply-To header, then waits
// for the worker's outcome until SyncTimeout after the publish started.
func (p *Producer) syncWrite(ctx context.Context, w *outgoing, res *Result) error {
	// Registered before publishing, so that no outcome can come too early.
	outcomes := p.replies.wait(w.reply)
	defer p.replies.forget(w.reply)

	published := time.Now()
	syncCtx, cancel := context.WithDeadline(ctx, published.Add(p.cfg.SyncTimeout))
	defer cancel()
	ack, err := p.publishDurable(syncCtx, w)
	if err != nil {
		return err
	}
	p.metrics.published(streams.ModeSync, published)
	res.Sequence, res.Duplicate = ack.Sequence, ack.Duplicate
	if ack.Duplicate && !w.resent {
		// Another call stored this write: the stored message carries its
		// reply subject, and no outcome will come here.
		return &QueuedError{Sequence: ack.Sequence, Duplicate: true}
	}
	// A duplicate after a retry is most likely this call's own first
	// attempt, stored with this reply subject though its ack was lost:
	// its outcome comes here. If another call stored it, none comes and
	// the wait ends at SyncTimeout.
	for {
		select {
		case m, ok := <-outcomes:
			if !ok {
				return &QueuedError{Sequence: ack.Sequence, Err: ErrClosed}
			}
			if final, err := applyOutcome(m, res); final {
				return err
			}
		case <-syncCtx.Done():
			return &QueuedError{Sequence: ack.Sequence, Duplicate: ack.Duplicate, Err: ctx.Err()}
		}
	}
}

// applyOutcome reads a worker's outcome message. It reports final false for
// an outcome it does not know, which is ignored.
func applyOutcome(m *nats.Msg, res *Result) (final bool, err error) {
	status, _ := strconv.Atoi(m.Header.Get(streams.HeaderHTTPStatus))
	switch outcome := streams.Outcome(m.Header.Get(streams.HeaderOutcome)); outcome {
	case streams.OutcomeApplied:
		res.Status, res.Body = status, m.Data
		return true, nil
	case streams.OutcomeRejected, streams.OutcomeDead:
		return true, &RejectedError{Outcome: outcome, Status: status, Body: m.Data, Reason: m.Header.Get(streams.HeaderError)}
	}
	return false, nil
}

// replyMux routes sync outcomes to the writes waiting for them: one wildcard
// subscription per producer, made on the first sync write, and one reply
// subject per write under it.
type replyMux struct {
	nc *nats.Conn

	mu      sync.Mutex
	sub     *nats.Subscription
	prefix  string // "<inbox>."
	next    uint64
	closed  bool
	waiters map[string]chan *nats.Msg
}

func newReplyMux(nc *nats.Conn) *replyMux {
	return &replyMux{nc: nc, waiters: map[string]chan *nats.Msg{}}
}

// newSubject returns a reply subject no other write uses.
func (m *replyMux) newSubject() (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return "", ErrClosed
	}
	if m.sub == nil {
		prefix := m.nc.NewInbox() + "."
		sub, err := m.nc.Subscribe(prefix+"*", m.deliver)
		if err != nil {
			return "", fmt.Errorf("subscribe for sync outcomes: %w", err)
		}
		m.sub, m.prefix = sub, prefix
	}
	m.next++
	return m.prefix + strconv.FormatUint(m.next, 36), nil
}

// wait registers a waiter for subject. The channel is closed when the
// producer closes.
func (m *replyMux) wait(subject string) <-chan *nats.Msg {
	ch := make(chan *nats.Msg, 1)
	m.mu.Lock()
	if m.closed {
		close(ch)
	} else {
		m.waiters[subject] = ch
	}
	m.mu.Unlock()
	return ch
}

func (m *replyMux) forget(subject string) {
	m.mu.Lock()
	delete(m.waiters, subject)
	m.mu.Unlock()
}

// deliver hands an outcome to its waiter. Outcomes for unknown subjects
// (late, or for a write that gave up) are dropped, as is a second outcome
// while the first is still unread.
func (m *replyMux) deliver(msg *nats.Msg) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ch, ok := m.waiters[msg.Subject]; ok {
		select {
		case ch <- msg:
		default:
		}
	}
}

// close unsubscribes and wakes every waiter.
func (m *replyMux) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	m.closed = true
	if m.sub != nil {
		_ = m.sub.Unsubscribe() // fails only when the connection is closed, which ends the subscription too
	}
	for subject, ch := range m.waiters {
		close(ch)
		delete(m.waiters, subject)
	}
}
