package jspull

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Acknowledgement bodies, as nats.go sends them.
const (
	ackAck      = "+ACK"
	ackNak      = "-NAK"
	ackProgress = "+WPI"
	ackTerm     = "+TERM"
)

// doubleAckTimeout bounds DoubleAck when its context has no deadline, as
// nats.go's default JetStream timeout does.
const doubleAckTimeout = 5 * time.Second

// Msg is a stored message delivered by a pull. It is a [jetstream.Msg]
// whose acknowledgements go on the wire exactly as nats.go's do.
type Msg struct {
	msg *nats.Msg
	nc  *nats.Conn

	mu    sync.Mutex
	acked bool
	// settled, if set, is called once the message is acked, naked or
	// terminated, to release its bytes from the iterator's bound.
	settled func()
}

var _ jetstream.Msg = (*Msg)(nil)

// Metadata parses the ack reply subject, in its 9-token form
// ($JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>) or
// its 11- or 12-token form with the domain and account hash after "$JS.ACK".
func (m *Msg) Metadata() (*jetstream.MsgMetadata, error) { return parseMetadata(m.msg.Reply) }

// Data returns the message body.
func (m *Msg) Data() []byte { return m.msg.Data }

// Headers returns the stored headers, with the server's pin header when
// pulled by the pinned member of a priority group.
func (m *Msg) Headers() nats.Header { return m.msg.Header }

// Subject returns the subject the message was stored under.
func (m *Msg) Subject() string { return m.msg.Subject }

// Reply returns the ack reply subject.
func (m *Msg) Reply() string { return m.msg.Reply }

// Ack tells the server the message is done with.
func (m *Msg) Ack() error { return m.ack(context.Background(), ackAck, false) }

// DoubleAck acks and waits for the server to confirm it.
func (m *Msg) DoubleAck(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, doubleAckTimeout)
		defer cancel()
	}
	return m.ack(ctx, ackAck, true)
}

// Nak asks the server to redeliver the message now.
func (m *Msg) Nak() error { return m.ack(context.Background(), ackNak, false) }

// NakWithDelay asks the server to redeliver the message after delay.
func (m *Msg) NakWithDelay(delay time.Duration) error {
	body := ackNak
	if delay > 0 {
		body = fmt.Sprintf(`%s {"delay": %d}`, ackNak, delay.Nanoseconds())
	}
	return m.ack(context.Background(), body, false)
}

// InProgress resets the message's ack timer; it may be sent many times.
func (m *Msg) InProgress() error { return m.ack(context.Background(), ackProgress, false) }

// Term tells the server never to redeliver the message.
func (m *Msg) Term() error { return m.ack(context.Background(), ackTerm, false) }

// TermWithReason terminates the message; the server puts reason in its
// advisory.
func (m *Msg) TermWithReason(reason string) error {
	body := ackTerm
	if reason != "" {
		body = ackTerm + " " + reason
	}
	return m.ack(context.Background(), body, false)
}

// ack sends an acknowledgement. Every kind but +WPI is terminal: once one
// has gone out, the message refuses any other with
// jetstream.ErrMsgAlreadyAckd.
func (m *Msg) ack(ctx context.Context, body string, confirm bool) error {
	if m.msg.Reply == "" {
		return jetstream.ErrMsgNoReply
	}
	terminal := body != ackProgress
	m.mu.Lock()
	if m.acked {
		m.mu.Unlock()
		return jetstream.ErrMsgAlreadyAckd
	}
	m.acked = terminal // claimed now, so that two racing acks cannot both go out
	m.mu.Unlock()

	var err error
	if confirm {
		_, err = m.nc.RequestWithContext(ctx, m.msg.Reply, []byte(body))
	} else {
		err = m.nc.Publish(m.msg.Reply, []byte(body))
	}
	if !terminal {
		return err
	}
	if err != nil {
		m.mu.Lock()
		m.acked = false
		m.mu.Unlock()
		return err
	}
	if m.settled != nil {
		m.settled()
	}
	return nil
}

// parseMetadata reads an ack reply subject, refusing anything malformed.
func parseMetadata(reply string) (*jetstream.MsgMetadata, error) {
	tokens := strings.Split(reply, ".")
	if len(tokens) < 2 || tokens[0] != "$JS" || tokens[1] != "ACK" {
		return nil, ErrBadAckSubject
	}
	tokens = tokens[2:]
	var domain string
	switch len(tokens) {
	case 7:
	case 9, 10: // domain, account hash, the 7 fields, and an optional random token
		domain, tokens = tokens[0], tokens[2:9]
		if domain == "_" {
			domain = ""
		}
	default:
		return nil, ErrBadAckSubject
	}
	if tokens[0] == "" || tokens[1] == "" {
		return nil, ErrBadAckSubject
	}
	var nums [5]uint64
	for i, tok := range tokens[2:] {
		n, err := strconv.ParseUint(tok, 10, 64)
		if err != nil {
			return nil, ErrBadAckSubject
		}
		nums[i] = n
	}
	if nums[3] > math.MaxInt64 {
		return nil, ErrBadAckSubject
	}
	meta := &jetstream.MsgMetadata{
		Stream:       tokens[0],
		Consumer:     tokens[1],
		NumDelivered: nums[0],
		Sequence:     jetstream.SequencePair{Stream: nums[1], Consumer: nums[2]},
		NumPending:   nums[4],
		Domain:       domain,
	}
	meta.Timestamp = time.Unix(0, int64(nums[3]))
	return meta, nil
}
