package consumer

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/internal/jspull"
	"github.com/jetbox-dev/jetbox/streams"
)

// partition is one (mode, partition) consumer while this worker owns it.
//
// Every write pulled from it is held here until it is settled (acked,
// dead-lettered) or handed back: waiting for its lane, for a memory API
// slot, or for a retry. Nothing is put back on the stream while the worker
// owns the partition, so an owner's writes can only come back to the next
// owner, and they come back in stream order:
//   - keep tells the server every held write is still in progress, all of
//     them at once in sequence order, so after a crash their ack timers run
//     out in that order;
//   - release hands writes back with Nak in sequence order, after the
//     running ones have finished, and only then unpins the consumer.
type partition struct {
	g        *group
	p        int
	consumer jetstream.Consumer
	ctx      context.Context // ends when the partition is released
	cancel   context.CancelFunc
	workCtx  context.Context // outlives ctx by the shutdown grace period
	it       *jspull.Iterator
	pulled   chan struct{} // closed when the pull loop has ended
	released chan struct{} // closed when release is done
	running  sync.WaitGroup
	// replayers are the parked tenants' replayers running for this partition.
	replayers sync.WaitGroup
	// sureCh is closed once the previous owner has certainly let go.
	sureCh   chan struct{}
	sureOnce sync.Once

	mu         sync.Mutex
	held       map[uint64]jetstream.Msg
	handedBack []delivery
}

// own starts pulling a partition. The consumer's pinned priority group
// makes the server deliver to one worker at a time: if the previous owner
// has not let go yet, the pull waits until it does, or until its pin times
// out (streams.Config.PinnedTTL).
func (g *group) own(ctx context.Context, p int, workCtx context.Context) (*partition, error) {
	c, err := g.js.Consumer(ctx, g.cfg.Streams.Stream, streams.PartitionConsumerName(g.mode, p))
	if err != nil {
		return nil, err
	}
	// jspull, not nats.go's iterator: a stored write that looks like a
	// server status, or carries a pin id of its own, must reach the
	// worker as the write it is (docs/NATSGO-STATUS-HEADER.md).
	it, err := jspull.Messages(g.nc, g.cfg.Streams.Stream, streams.PartitionConsumerName(g.mode, p),
		jspull.MaxMessages(g.batch),
		jspull.MaxBytes(g.cfg.PullMaxBytes),
		jspull.Expiry(streams.PullExpiry),
		jspull.Heartbeat(streams.PullExpiry/4),
		jspull.PinnedGroup(streams.OwnerGroup),
	)
	if err != nil {
		return nil, err
	}
	pt := &partition{
		g: g, p: p, consumer: c, it: it, workCtx: workCtx,
		pulled: make(chan struct{}), released: make(chan struct{}), sureCh: make(chan struct{}),
		held: map[uint64]jetstream.Msg{},
	}
	pt.ctx, pt.cancel = context.WithCancel(ctx)
	// Past the pin's time-out and an ack wait, the previous owner has let
	// go or lost everything it held, even if no write ever settles here.
	stop := time.AfterFunc(g.cfg.Streams.PinnedTTL()+g.cfg.Streams.AckWait, pt.markSure)
	context.AfterFunc(pt.ctx, func() { stop.Stop() })
	go pt.pull()
	go pt.keep()
	g.parking.ensureReplayers(pt)
	g.metrics.partitions.WithLabelValues(string(g.mode)).Inc()
	return pt, nil
}

// pull reads the partition's writes and starts each in its own goroutine.
// It never blocks on anything but the server, so the owner's pull requests
// keep its pin alive however busy it is; the consumer's MaxAckPending
// bounds how many writes it holds.
//
// A new owner first lets the partition settle: it starts nothing until
// every write pending on the consumer has been delivered to it. The
// previous owner's hand-back (Nak) and unpin travel separately inside the
// server, so the pin can reach the new owner, with a newer write, before
// an older handed-back write is queued for redelivery; once everything
// pending is here, the new owner starts the writes in stream order.
func (pt *partition) pull() {
	defer close(pt.pulled)
	g := pt.g
	var early []jetstream.Msg // delivered before the partition settled
	var checked time.Time
	for settled := false; ; {
		var msg jetstream.Msg
		var err error
		if settled {
			msg, err = pt.it.Next(context.Background())
		} else {
			wait, cancel := context.WithTimeout(context.Background(), settleCheck)
			msg, err = pt.it.Next(wait)
			cancel()
		}
		switch {
		case errors.Is(err, jspull.ErrIteratorClosed):
			// Released before it settled: what came early goes back as it
			// came, in stream order.
			slices.SortFunc(early, func(a, b jetstream.Msg) int { return cmpSeq(msgSeq(a), msgSeq(b)) })
			for _, m := range early {
				pt.handBack(delivery{msg: m})
			}
			return
		case err != nil && !(errors.Is(err, context.DeadlineExceeded) && !settled):
			g.log.Debug().Err(err).Str("group", string(g.mode)).Int("partition", pt.p).Msg("pull")
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if msg != nil && !settled {
			if _, again := pt.hold(msg); !again {
				early = append(early, msg)
			}
		}
		if !settled {
			if len(early) == 0 || time.Since(checked) < settleCheck/2 {
				continue
			}
			if checked = time.Now(); !pt.allPendingHere(len(early)) {
				continue
			}
			settled = true
			pt.settle()
			slices.SortFunc(early, func(a, b jetstream.Msg) int { return cmpSeq(msgSeq(a), msgSeq(b)) })
			for _, m := range early {
				meta, _ := m.Metadata()
				pt.start(delivered{m, meta})
			}
			early = nil
			continue
		}
		if dm, again := pt.hold(msg); !again {
			pt.start(dm)
		}
	}
}

// settleCheck is how often a new owner checks whether the partition has
// settled.
const settleCheck = 50 * time.Millisecond

// allPendingHere reports whether every write pending on the consumer has
// been delivered to this worker.
func (pt *partition) allPendingHere(delivered int) bool {
	ctx, cancel := context.WithTimeout(pt.ctx, 2*time.Second)
	defer cancel()
	info, err := pt.consumer.Info(ctx)
	return err == nil && info.NumAckPending <= delivered
}

// settle runs once the previous owner has let go entirely: whatever it
// parked or unparked before that is read before any write is handled.
func (pt *partition) settle() {
	g := pt.g
	for err := g.catchUp(pt.ctx); err != nil && pt.ctx.Err() == nil; err = g.catchUp(pt.ctx) {
		g.log.Warn().Err(err).Msg("cannot read the parking bucket; retrying")
		time.Sleep(time.Second)
	}
	pt.markSure()
	g.parking.ensureReplayers(pt)
}

// delivered is a pulled write with its metadata, read once (reading it
// parses the reply subject and allocates).
type delivered struct {
	msg  jetstream.Msg
	meta *jetstream.MsgMetadata // nil when the reply subject is not JetStream's
}

// hold records a delivered write for the keeper. again says the write is
// held already: the server delivered it a second time, because its ack
// timer ran out while the previous owner was still finishing, or because
// the previous owner handed it back after that. The copy is the same
// pending write, not another one: counted again, it would let a new owner
// settle before an older write reached it, and started again, it would be
// applied twice, maybe after a later write to its memory. The held copy
// settles it (the server acks by stream sequence).
func (pt *partition) hold(msg jetstream.Msg) (dm delivered, again bool) {
	meta, err := msg.Metadata()
	if err != nil {
		return delivered{msg, nil}, false
	}
	pt.mu.Lock()
	_, again = pt.held[meta.Sequence.Stream]
	if !again {
		pt.held[meta.Sequence.Stream] = msg
	}
	pt.mu.Unlock()
	return delivered{msg, meta}, again
}

// start decodes a held write, places it in its lane and handles it in its
// own goroutine.
func (pt *partition) start(dm delivered) {
	d := pt.g.prepare(dm.msg, dm.meta)
	pt.running.Add(1)
	go func() {
		defer pt.running.Done()
		defer pt.settled(d)
		pt.g.handle(pt.ctx, pt.workCtx, d, pt)
	}()
}

func msgSeq(m jetstream.Msg) uint64 {
	meta, err := m.Metadata()
	if err != nil {
		return 0
	}
	return meta.Sequence.Stream
}

func (pt *partition) markSure() { pt.sureOnce.Do(func() { close(pt.sureCh) }) }

// sure says whether the previous owner has certainly let go: the partition
// has settled here, or this worker has waited out the pin's time-out.
func (pt *partition) sure() bool { return isClosed(pt.sureCh) }

func (pt *partition) settled(d delivery) {
	if d.meta != nil {
		pt.mu.Lock()
		delete(pt.held, d.meta.Sequence.Stream)
		pt.mu.Unlock()
	}
}

// handBack records a write to give back to the stream when the partition
// is released.
func (pt *partition) handBack(d delivery) {
	pt.mu.Lock()
	pt.handedBack = append(pt.handedBack, d)
	pt.mu.Unlock()
}

// keep sends InProgress for every held write every third of the ack wait,
// lowest sequence first, until the partition is released.
func (pt *partition) keep() {
	t := time.NewTicker(pt.g.cfg.Streams.AckWait / 3)
	defer t.Stop()
	for {
		select {
		case <-pt.released:
			return
		case <-t.C:
		}
		pt.mu.Lock()
		seqs := make([]uint64, 0, len(pt.held))
		for s := range pt.held {
			seqs = append(seqs, s)
		}
		slices.Sort(seqs)
		msgs := make([]jetstream.Msg, len(seqs))
		for i, s := range seqs {
			msgs[i] = pt.held[s]
		}
		pt.mu.Unlock()
		for _, m := range msgs {
			_ = m.InProgress()
		}
		pt.g.parking.ensureReplayers(pt)
	}
}

// release lets go of the partition without reordering anything: it stops
// pulling and takes in what was already on its way, lets running writes
// finish (until workCtx ends), hands every other write back in sequence
// order, and unpins the consumer so the next owner starts at once.
func (pt *partition) release(ctx context.Context) {
	g := pt.g
	defer close(pt.released)
	pt.it.Drain()
	<-pt.pulled
	pt.cancel()
	pt.running.Wait()
	pt.replayers.Wait()
	slices.SortFunc(pt.handedBack, func(a, b delivery) int { return cmpSeq(msgSeq(a.msg), msgSeq(b.msg)) })
	for _, d := range pt.handedBack {
		// A write whose last attempt got no answer comes back to the next
		// owner only once that attempt can no longer be applied late.
		if d.w != nil {
			if wait := time.Until(d.w.notBefore); wait > 0 {
				_ = d.msg.NakWithDelay(wait)
				continue
			}
		}
		_ = d.msg.Nak()
	}
	if err := g.nc.Flush(); err != nil {
		g.log.Warn().Err(err).Str("group", string(g.mode)).Int("partition", pt.p).Msg("flush hand-back")
	}
	unpinCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := pt.unpin(unpinCtx); err != nil {
		g.log.Warn().Err(err).Str("group", string(g.mode)).Int("partition", pt.p).Msg("cannot unpin; the next owner waits for the pin to time out")
	}
	g.metrics.partitions.WithLabelValues(string(g.mode)).Dec()
	g.log.Debug().Str("group", string(g.mode)).Int("partition", pt.p).Int("handed_back", len(pt.handedBack)).Msg("released partition")
}

// unpin lets the next owner be pinned at once, if the pin is this worker's.
// A worker that was never delivered a write was never pinned (the server
// pins a client when it delivers to it), and must not unpin: the pin would
// be the previous owner's, still handing back its writes.
func (pt *partition) unpin(ctx context.Context) error {
	id := pt.it.PinID()
	if id == "" {
		return nil
	}
	info, err := pt.consumer.Info(ctx)
	if err != nil {
		return err
	}
	for _, pg := range info.PriorityGroups {
		if pg.Group == streams.OwnerGroup && pg.PinnedClientID == id {
			s, err := pt.g.js.Stream(ctx, pt.g.cfg.Streams.Stream)
			if err != nil {
				return err
			}
			return s.UnpinConsumer(ctx, streams.PartitionConsumerName(pt.g.mode, pt.p), streams.OwnerGroup)
		}
	}
	return nil
}

func cmpSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
