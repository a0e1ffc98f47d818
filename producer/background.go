package producer

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/streams"
)

// errAlreadyClosed tells Producer.Close that another Close came first.
var errAlreadyClosed = errors.New("already closed")

// background publishes background writes. Its life of a write:
//
//	enqueue -> buf -> publisher goroutine -> PublishMsgAsync (at most
//	MaxInFlight awaiting acks) -> onAck: stored
//	                            -> onError -> failed -> retry after a
//	                               backoff, or finally failed once the
//	                               write's PublishTimeout has passed
//
// Every accepted write is counted in an epoch until it is stored or finally
// failed; Flush seals the current epoch and waits for it and older ones.
type background struct {
	cfg     *Config
	metrics *metrics
	js      jetstream.JetStream

	buf     chan *outgoing
	slots   chan struct{} // one token per publish awaiting its ack
	wake    chan struct{} // failed is not empty
	closing chan struct{} // closed by Close: blocked enqueues give up
	stop    chan struct{} // closed to end the publisher goroutine
	exited  chan struct{}

	// stateMu guards the epochs and closed.
	stateMu sync.Mutex
	closed  atomic.Bool // written under stateMu, read without it on the fast path
	current *epoch
	sealed  []*epoch // flushed epochs with writes outstanding

	// flightMu guards what the ack handlers touch.
	flightMu  sync.Mutex
	inflight  map[*nats.Msg]*outgoing
	failed    []*outgoing
	hasFailed atomic.Bool
	aborted   bool // Close gave up: failures are final
}

type epoch struct {
	pending int
	sealed  bool
	done    chan struct{}
}

func newEpoch() *epoch { return &epoch{done: make(chan struct{})} }

func newBackground(cfg *Config, m *metrics) *background {
	return &background{
		cfg:      cfg,
		metrics:  m,
		buf:      make(chan *outgoing, cfg.BufferSize),
		slots:    make(chan struct{}, cfg.MaxInFlight),
		wake:     make(chan struct{}, 1),
		closing:  make(chan struct{}),
		stop:     make(chan struct{}),
		exited:   make(chan struct{}),
		current:  newEpoch(),
		inflight: make(map[*nats.Msg]*outgoing),
	}
}

func (b *background) start(js jetstream.JetStream) {
	b.js = js
	go b.run()
}

func (b *background) isClosed() bool { return b.closed.Load() }

// enqueue accepts a write into the buffer. From here the background owns w,
// whether it accepts it or not.
func (b *background) enqueue(ctx context.Context, w *outgoing) error {
	b.stateMu.Lock()
	if b.closed.Load() {
		b.stateMu.Unlock()
		putOutgoing(w)
		return ErrClosed
	}
	w.epoch = b.current
	w.epoch.pending++
	b.stateMu.Unlock()
	b.metrics.bufferedAdd(1)

	select {
	case b.buf <- w:
		return nil
	default:
	}
	if b.cfg.BufferFullError {
		b.finish(w)
		return ErrBufferFull
	}
	select {
	case b.buf <- w:
		return nil
	case <-ctx.Done():
		b.finish(w)
		return fmt.Errorf("%w until the context ended: %w", ErrBufferFull, ctx.Err())
	case <-b.closing:
		b.finish(w)
		return ErrClosed
	}
}

// finish ends a write's accounting: it is stored, or finally failed and
// reported, or refused to its caller. w goes back to the pool.
func (b *background) finish(w *outgoing) {
	b.stateMu.Lock()
	e := w.epoch
	e.pending--
	if e.pending == 0 && e.sealed {
		close(e.done)
		for i, s := range b.sealed {
			if s == e {
				b.sealed = append(b.sealed[:i], b.sealed[i+1:]...)
				break
			}
		}
	}
	b.stateMu.Unlock()
	b.metrics.bufferedAdd(-1)
	putOutgoing(w)
}

// flush waits for every write accepted before the call.
func (b *background) flush(ctx context.Context) error {
	b.stateMu.Lock()
	e := b.current
	b.current = newEpoch()
	e.sealed = true
	if e.pending == 0 {
		close(e.done)
	} else {
		b.sealed = append(b.sealed, e)
	}
	waitFor := append([]*epoch(nil), b.sealed...)
	b.stateMu.Unlock()
	for _, e := range waitFor {
		select {
		case <-e.done:
		case <-ctx.Done():
			return fmt.Errorf("flush background writes: %w", ctx.Err())
		}
	}
	return nil
}

// close refuses new writes, flushes, and stops the publisher; if ctx ends
// before the flush, it gives up the writes left and reports them.
func (b *background) close(ctx context.Context) error {
	b.stateMu.Lock()
	if b.closed.Load() {
		b.stateMu.Unlock()
		return errAlreadyClosed
	}
	b.closed.Store(true)
	b.stateMu.Unlock()
	close(b.closing)

	err := b.flush(ctx)
	if err != nil {
		b.flightMu.Lock()
		b.aborted = true
		b.flightMu.Unlock()
	}
	close(b.stop)
	<-b.exited
	if err != nil {
		// Fails every publish still awaiting its ack, through onError.
		b.js.CleanupPublisher()
		// An enqueue racing with Close may still land in buf after the
		// publisher's last look; wait for the accounting to reach zero.
		for !b.idle() {
			b.abandonBuffered()
			time.Sleep(time.Millisecond)
		}
	}
	return err
}

func (b *background) idle() bool {
	b.stateMu.Lock()
	defer b.stateMu.Unlock()
	return len(b.sealed) == 0 && b.current.pending == 0
}

// run is the publisher goroutine. Failed attempts are sorted first, then due
// retries go out before new writes, as they are older.
func (b *background) run() {
	defer close(b.exited)
	var retries retryQueue
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		if b.hasFailed.Load() {
			b.sortFailed(&retries)
		}
		var retryC <-chan time.Time
		if len(retries) > 0 {
			now := time.Now()
			for len(retries) > 0 && !retries[0].due.After(now) {
				if !b.send(heap.Pop(&retries).(*outgoing), &retries) {
					b.abandon(&retries)
					return
				}
			}
			if len(retries) > 0 {
				timer.Reset(retries[0].due.Sub(now))
				retryC = timer.C
			}
		}
		select {
		case w := <-b.buf:
			if !b.send(w, &retries) {
				b.abandon(&retries)
				return
			}
		case <-b.wake:
		case <-retryC:
		case <-b.stop:
			b.abandon(&retries)
			return
		}
		if retryC != nil {
			timer.Stop()
		}
	}
}

// send publishes one attempt of w once a slot is free. It reports false
// when the producer stops while it waits; w is then given up.
func (b *background) send(w *outgoing, retries *retryQueue) bool {
	select {
	case b.slots <- struct{}{}:
	case <-b.stop:
		b.fail(w, b.abandonErr(w))
		return false
	}
	if w.attempts == 0 {
		w.first = time.Now()
		w.deadline = w.first.Add(b.cfg.PublishTimeout)
	}
	w.attempts++
	b.flightMu.Lock()
	b.inflight[&w.msg] = w
	b.flightMu.Unlock()
	if _, err := b.js.PublishMsgAsync(&w.msg, noLibraryRetry...); err != nil {
		// Not sent: no handler will run for it.
		b.flightMu.Lock()
		delete(b.inflight, &w.msg)
		b.flightMu.Unlock()
		<-b.slots
		b.retryOrFail(w, err, retries)
	}
	return true
}

// onAck is the JetStream async ack handler: the write is stored.
func (b *background) onAck(_ jetstream.JetStream, msg *nats.Msg, ack *jetstream.PubAck) {
	b.flightMu.Lock()
	w := b.inflight[msg]
	delete(b.inflight, msg)
	b.flightMu.Unlock()
	if w == nil {
		return
	}
	<-b.slots
	b.metrics.published(streams.ModeBackground, w.first)
	if ack.Duplicate {
		b.metrics.write(streams.ModeBackground, resultDuplicate)
	} else {
		b.metrics.write(streams.ModeBackground, resultStored)
	}
	b.finish(w)
}

// onError is the JetStream async error handler. It may run with the
// JetStream publisher's lock held (ack timeouts), so it only hands the write
// to the publisher goroutine.
func (b *background) onError(_ jetstream.JetStream, msg *nats.Msg, err error) {
	b.flightMu.Lock()
	w := b.inflight[msg]
	delete(b.inflight, msg)
	aborted := b.aborted
	if w != nil {
		w.err = err
		if !aborted {
			b.failed = append(b.failed, w)
			b.hasFailed.Store(true)
		}
	}
	b.flightMu.Unlock()
	if w == nil {
		return
	}
	<-b.slots
	if aborted {
		b.fail(w, b.abandonErr(w))
		return
	}
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// sortFailed moves the failed attempts to the retry queue or fails them.
func (b *background) sortFailed(retries *retryQueue) {
	b.flightMu.Lock()
	failed := b.failed
	b.failed = nil
	b.hasFailed.Store(false)
	b.flightMu.Unlock()
	for _, w := range failed {
		b.retryOrFail(w, w.err, retries)
	}
}

// retryOrFail queues w for another attempt after a backoff, unless the
// outbox refused it for good or its publish timeout has passed.
func (b *background) retryOrFail(w *outgoing, err error, retries *retryQueue) {
	w.err = err
	cause := refused(err, w.size(), w.addr)
	if cause != nil && !errors.Is(cause, ErrOutboxFull) && !errors.Is(cause, ErrTenantBacklogFull) {
		b.fail(w, cause) // a full outbox or tenant backlog may drain: retried like a timeout
		return
	}
	if cause == nil {
		cause = err
	}
	now := time.Now()
	wait := backoff(w.attempts - 1)
	if now.Add(wait).After(w.deadline) {
		b.fail(w, fmt.Errorf("%w: not stored after %d attempts in %v: %w", ErrPublishTimeout, w.attempts, now.Sub(w.first).Round(time.Millisecond), cause))
		return
	}
	w.due = now.Add(wait)
	heap.Push(retries, w)
}

// fail reports a write that is finally given up.
func (b *background) fail(w *outgoing, err error) {
	b.metrics.backgroundFailed(err)
	if cb := b.cfg.OnBackgroundError; cb != nil {
		cb(BackgroundFailure{Subject: w.msg.Subject, MsgID: w.msgID, IdempotencyKey: w.key, Err: err})
	}
	b.finish(w)
}

func (b *background) abandonErr(w *outgoing) error {
	if w.err != nil {
		return fmt.Errorf("%w before the write was stored (last error: %w)", ErrClosed, w.err)
	}
	return fmt.Errorf("%w before the write was published", ErrClosed)
}

// abandon gives up every write the publisher holds; it runs when the
// publisher stops, which before everything was stored happens only when
// Close's context ended.
func (b *background) abandon(retries *retryQueue) {
	b.flightMu.Lock()
	failed := b.failed
	b.failed = nil
	b.flightMu.Unlock()
	for _, w := range failed {
		b.fail(w, b.abandonErr(w))
	}
	for _, w := range *retries {
		b.fail(w, b.abandonErr(w))
	}
	*retries = nil
	b.abandonBuffered()
}

func (b *background) abandonBuffered() {
	for {
		select {
		case w := <-b.buf:
			b.fail(w, b.abandonErr(w))
		default:
			return
		}
	}
}

// retryQueue is a min-heap of writes by due time.
type retryQueue []*outgoing

func (q retryQueue) Len() int           { return len(q) }
func (q retryQueue) Less(i, j int) bool { return q[i].due.Before(q[j].due) }
func (q retryQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *retryQueue) Push(x any)        { *q = append(*q, x.(*outgoing)) }
func (q *retryQueue) Pop() any {
	old := *q
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return w
}
