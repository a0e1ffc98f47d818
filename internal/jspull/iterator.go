package jspull

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// maxQueuedErrors bounds the errors waiting for Next; older ones are
// dropped, a caller that does not read them learns of the latest.
const maxQueuedErrors = 16

// Iterator pulls a consumer continuously, like nats.go's MessagesContext.
// Next is meant for one goroutine; the messages it hands out may be acked
// from any.
//
// It keeps pulling whatever happens to its requests: it pulls again when
// fewer than half of MaxMessages are buffered or on their way, when a
// request ends (timeout, batch completed, wrong pin id), when nothing,
// not even a heartbeat, was heard for twice the heartbeat, after a
// reconnect, and shortly after a leadership change or server shutdown.
// Errors the caller must see (consumer deleted, request refused, heartbeats
// lost) come out of Next, and pulling goes on.
type Iterator struct {
	nc      *nats.Conn
	opts    options
	subject string
	inbox   string
	sub     *nats.Subscription

	mu      sync.Mutex
	state   iteratorState
	subDone bool          // the inbox subscription is closed: nothing more will arrive
	wake    chan struct{} // closed and replaced whenever Next has something new
	buf     []*Msg
	errs    []error
	held    int // bytes buffered or handed out and not yet settled
	wantN   int // messages the open requests may still deliver
	wantB   int // bytes the open requests may still deliver
	tooBig  int // a request for this many bytes or fewer was refused: the next write is larger
	pinID   string
	waiting bool // a retry is scheduled; no pulling until it fires
	hbTimer *time.Timer
	retry   *time.Timer
	// keepAlive sends a pin-keeping request while Hold holds pulling back;
	// lastRequest is when the last request went out.
	keepAlive   *time.Timer
	lastRequest time.Time
	heldBack    atomic.Bool // the last look at pulling found Hold's bound reached

	ignored   atomic.Uint64
	hbMissed  atomic.Uint64
	requested atomic.Uint64
}

type iteratorState int

const (
	open     iteratorState = iota
	draining               // no more pulling; what is buffered or in flight is delivered
	stopped                // no more messages at all
)

// Stats counts what an iterator has seen.
type Stats struct {
	Requests       uint64 // pull requests sent
	Ignored        uint64 // messages on the inbox that were neither stored nor a status
	HeartbeatsLost uint64 // times nothing was heard for twice the heartbeat
}

// Messages starts pulling the consumer. Stop or Drain it when done.
func Messages(nc *nats.Conn, stream, consumer string, opts ...Option) (*Iterator, error) {
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	if err := validName("stream", stream); err != nil {
		return nil, err
	}
	if err := validName("consumer", consumer); err != nil {
		return nil, err
	}
	it := &Iterator{
		nc: nc, opts: o, subject: o.nextSubject(stream, consumer), inbox: nc.NewInbox(),
		wake: make(chan struct{}),
	}
	it.hbTimer = stoppedTimer(it.heartbeatLost)
	it.retry = stoppedTimer(it.retryNow)
	it.keepAlive = stoppedTimer(it.pullNow)
	it.mu.Lock()
	defer it.mu.Unlock()
	it.sub, err = nc.Subscribe(it.inbox, it.receive)
	if err != nil {
		return nil, err
	}
	it.sub.SetClosedHandler(func(string) { it.subscriptionClosed() })
	watchReconnects(it)
	it.pull()
	return it, nil
}

// Next returns the next stored message, or an error the caller must know
// about (a [*StatusError], jetstream.ErrNoHeartbeat) after which pulling
// goes on, or [ErrIteratorClosed] once stopped or drained, or ctx's error.
func (it *Iterator) Next(ctx context.Context) (jetstream.Msg, error) {
	for {
		it.mu.Lock()
		if it.state == stopped || it.state == draining && it.subDone && len(it.buf) == 0 {
			it.mu.Unlock()
			return nil, it.closedError()
		}
		if len(it.errs) > 0 {
			err := it.errs[0]
			it.errs = it.errs[1:]
			it.mu.Unlock()
			return nil, err
		}
		if len(it.buf) > 0 {
			m := it.buf[0]
			it.buf[0] = nil
			it.buf = it.buf[1:]
			it.pull()
			it.mu.Unlock()
			return m, nil
		}
		wake := it.wake
		it.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (it *Iterator) closedError() error {
	if it.nc.IsClosed() {
		return fmt.Errorf("%w: %w", ErrIteratorClosed, nats.ErrConnectionClosed)
	}
	return ErrIteratorClosed
}

// Stop ends the iterator at once: what is buffered is dropped (the server
// redelivers it after its ack wait) and Next returns ErrIteratorClosed.
func (it *Iterator) Stop() {
	it.mu.Lock()
	if it.state == stopped {
		it.mu.Unlock()
		return
	}
	it.state = stopped
	it.buf = nil
	it.stopTimers()
	it.notify()
	it.mu.Unlock()
	it.sub.Unsubscribe()
	unwatchReconnects(it)
}

// Drain stops pulling; Next still returns what is buffered or already on its
// way, then ErrIteratorClosed.
func (it *Iterator) Drain() {
	it.mu.Lock()
	if it.state != open {
		it.mu.Unlock()
		return
	}
	it.state = draining
	it.stopTimers()
	it.mu.Unlock()
	if err := it.sub.Drain(); err != nil {
		// The connection is closing: the subscription closes with it.
		it.subscriptionClosed()
	}
}

// Poke makes the iterator look again at whether to pull: the caller's
// count for [Hold] has fallen.
func (it *Iterator) Poke() {
	if it.heldBack.Load() {
		it.pullNow()
	}
}

// Coming is how many messages are buffered for Next or asked for and
// not yet here.
func (it *Iterator) Coming() int {
	it.mu.Lock()
	defer it.mu.Unlock()
	return len(it.buf) + it.wantN
}

func (it *Iterator) pullNow() {
	it.mu.Lock()
	defer it.mu.Unlock()
	it.pull()
}

// PinID is the pin id the server gave this iterator, "" if none.
func (it *Iterator) PinID() string {
	it.mu.Lock()
	defer it.mu.Unlock()
	return it.pinID
}

// Stats returns what the iterator has counted so far.
func (it *Iterator) Stats() Stats {
	return Stats{Requests: it.requested.Load(), Ignored: it.ignored.Load(), HeartbeatsLost: it.hbMissed.Load()}
}

// receive handles every message on the pull inbox.
func (it *Iterator) receive(m *nats.Msg) {
	it.mu.Lock()
	defer it.mu.Unlock()
	if it.state == stopped {
		return
	}
	switch classify(m) {
	case stored:
		it.store(m)
	case status:
		it.handleStatus(m)
	default:
		it.ignored.Add(1)
	}
	it.heard()
}

// store buffers a stored message for Next.
func (it *Iterator) store(m *nats.Msg) {
	size := storedSize(m, it.opts.pinned)
	if it.opts.pinned {
		if id := pinID(m); id != "" {
			it.pinID = id
		}
	}
	it.wantN = max(it.wantN-1, 0)
	it.wantB = max(it.wantB-size, 0)
	it.tooBig = 0
	msg := &Msg{msg: m, nc: it.nc}
	if it.opts.maxBytes > 0 {
		it.held += size
		msg.settled = func() { it.settle(size) }
	}
	it.buf = append(it.buf, msg)
	it.notify()
}

// settle releases a message's bytes once it is acked, naked or terminated.
func (it *Iterator) settle(size int) {
	it.mu.Lock()
	defer it.mu.Unlock()
	it.held -= size
	it.pull()
}

// handleStatus acts on what the server says about the iterator's requests.
func (it *Iterator) handleStatus(m *nats.Msg) {
	code, description := statusCode(m), statusDescription(m)
	switch {
	case code == "100": // idle heartbeat
	case code == "408" || code == "404":
		it.requestEnded(m)
	case code == "409" && hasDescription(description, "batch completed"):
		it.requestEnded(m)
	case code == "409" && hasDescription(description, "exceeds maxbytes"):
		// The next write is larger than the room the request had: wait
		// for the caller to settle some, unless it holds nothing and the
		// write can never fit.
		_, left, _ := requestLeft(m)
		it.tooBig = left
		if it.held == 0 {
			it.report(&StatusError{Code: code, Description: description})
			it.retryLater()
		}
		it.requestEnded(m)
	case code == "409" && (hasDescription(description, "leadership change") || hasDescription(description, "server shutdown")):
		it.resetRequests()
		it.retryLater()
	case code == "423": // wrong pin id: the pin moved on, ask for a new one
		it.pinID = ""
		it.requestEnded(m)
	default: // consumer deleted, bad request, no responders, limits exceeded
		it.report(&StatusError{Code: code, Description: description})
		it.resetRequests()
		it.retryLater()
	}
}

// requestEnded accounts for a request the server has ended, and pulls again.
func (it *Iterator) requestEnded(m *nats.Msg) {
	if n, b, ok := requestLeft(m); ok {
		it.wantN = max(it.wantN-n, 0)
		it.wantB = max(it.wantB-b, 0)
	} else {
		it.resetRequests()
	}
	it.pull()
}

// resetRequests takes every open request for gone.
func (it *Iterator) resetRequests() { it.wantN, it.wantB = 0, 0 }

// pull sends a request when fewer than half of MaxMessages are buffered or
// on their way, and the byte bound and Hold's bound leave room; held back
// by Hold, it keeps the pin (keepPin).
func (it *Iterator) pull() {
	o := it.opts
	if it.state != open || it.waiting || !it.nc.IsConnected() {
		return
	}
	coming := len(it.buf) + it.wantN
	if it.wantN > 0 && coming > o.maxMessages/2 {
		return
	}
	req := pullRequest{Expires: o.expiry, Batch: o.maxMessages - coming, Heartbeat: o.heartbeat, Group: o.group}
	if req.Batch <= 0 {
		return
	}
	if o.hold != nil {
		limit, holding := o.hold()
		free := limit - holding - coming
		held := free < (limit+1)/2
		it.heldBack.Store(held)
		if held {
			if !it.keepPin() {
				return
			}
			free = 1
		}
		req.Batch = min(req.Batch, free)
	}
	if o.maxBytes > 0 {
		req.MaxBytes = o.maxBytes - it.held - it.wantB
		if req.MaxBytes <= it.tooBig || it.wantN > 0 && req.MaxBytes < o.maxBytes/2 {
			return
		}
	}
	if o.pinned {
		req.PinID = it.pinID
	}
	if err := req.publish(it.nc, it.subject, it.inbox); err != nil {
		it.report(err)
		it.retryLater()
		return
	}
	it.requested.Add(1)
	it.lastRequest = time.Now()
	it.wantN += req.Batch
	it.wantB += req.MaxBytes
	it.heard()
}

// keepPin says whether to send a one-message request, held back by Hold,
// so that the server keeps the pin: when the group is pinned, no request
// is open, and the last went out an Expiry ago. Otherwise it makes sure
// pulling is looked at again by then.
func (it *Iterator) keepPin() bool {
	if !it.opts.pinned || it.wantN > 0 {
		return false
	}
	if wait := it.opts.expiry - time.Since(it.lastRequest); wait > 0 {
		it.keepAlive.Reset(wait)
		return false
	}
	return true
}

// heard rearms the heartbeat watch while requests are open.
func (it *Iterator) heard() {
	if it.state == open && it.wantN > 0 {
		it.hbTimer.Reset(2 * it.opts.heartbeat)
	} else {
		it.hbTimer.Stop()
	}
}

// heartbeatLost fires when nothing was heard for twice the heartbeat while
// requests were open: they are gone (a server restart, a lost
// connection), so pull again, and tell the caller, who would otherwise
// wait in silence if the requests keep getting lost.
func (it *Iterator) heartbeatLost() {
	it.mu.Lock()
	defer it.mu.Unlock()
	if it.state != open || it.wantN == 0 {
		return
	}
	if !it.nc.IsConnected() {
		it.heard() // the reconnect pulls; look again later
		return
	}
	it.hbMissed.Add(1)
	it.report(jetstream.ErrNoHeartbeat)
	it.resetRequests()
	it.pull()
}

// retryLater holds pulling back for retryWait.
func (it *Iterator) retryLater() {
	if it.state != open || it.waiting {
		return
	}
	it.waiting = true
	it.retry.Reset(retryWait)
}

func (it *Iterator) retryNow() {
	it.mu.Lock()
	defer it.mu.Unlock()
	it.waiting = false
	it.tooBig = 0
	it.pull()
}

// subscriptionClosed runs when the inbox subscription ends: drained, stopped
// or closed with the connection.
func (it *Iterator) subscriptionClosed() {
	it.mu.Lock()
	it.subDone = true
	if it.state == open {
		it.state = stopped
		it.buf = nil
	}
	it.stopTimers()
	it.notify()
	it.mu.Unlock()
	unwatchReconnects(it)
}

func stoppedTimer(f func()) *time.Timer {
	t := time.AfterFunc(time.Hour, f)
	t.Stop()
	return t
}

func (it *Iterator) stopTimers() {
	it.hbTimer.Stop()
	it.retry.Stop()
	it.keepAlive.Stop()
	it.waiting = false
}

// report queues an error for Next.
func (it *Iterator) report(err error) {
	if len(it.errs) == maxQueuedErrors {
		it.errs = it.errs[1:]
	}
	it.errs = append(it.errs, err)
	it.notify()
}

func (it *Iterator) notify() {
	close(it.wake)
	it.wake = make(chan struct{})
}
