package ownership

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/internal/jspull"
	"github.com/jetbox-dev/jetbox/streams"
)

// Partition is one (mode, partition) consumer while this worker owns it.
//
// Every write pulled from it is held here until it is done (its run
// returned: acked, dead-lettered, moved aside) or handed back: waiting for
// its lane, for a memory API slot, or for a retry. Nothing is put back on
// the stream while the worker owns the partition, so an owner's writes can
// only come back to the next owner, and they come back in stream order:
//   - keep tells the server every held write is still in progress, all of
//     them at once in sequence order, so after a crash their ack timers run
//     out in that order;
//   - Release hands writes back with Nak in sequence order, after the
//     running ones have finished, and only then unpins the consumer.
type Partition struct {
	cfg      *Config
	p        int
	consumer jetstream.Consumer
	ctx      context.Context // ends when the partition is released
	cancel   context.CancelFunc
	workCtx  context.Context // outlives ctx by the shutdown grace period
	it       *jspull.Iterator
	pulled   chan struct{} // closed when the pull loop has ended
	released chan struct{} // closed when Release is done
	running  sync.WaitGroup
	// others is what the owner runs on the partition besides its writes
	// (Go).
	others sync.WaitGroup
	// sure is set once the previous owner has certainly let go.
	sure atomic.Bool
	// waiting counts the writes that wait for capacity (Waiting); early
	// the writes held before the partition is gathered, and missing how
	// many more were pending at the last check, which it must pull
	// whatever it holds.
	waiting atomic.Int64
	early   atomic.Int64
	missing atomic.Int64
	settled atomic.Bool // the partition has been gathered
	// shared is what the partition took from pool, the mode's room
	// beyond Config.Hold (holdBound).
	shared atomic.Int64
	pool   *atomic.Int64

	mu         sync.Mutex
	held       map[uint64]jetstream.Msg
	handedBack []handedBack
	keeper     *time.Timer // the keeper's next round (keep)
}

// handedBack is a write to give back to the stream at Release, not before
// notBefore.
type handedBack struct {
	msg       jetstream.Msg
	notBefore time.Time
}

// Take starts pulling partition p. The consumer's pinned priority group
// makes the server deliver to one worker at a time: if the previous owner
// has not let go yet, the pull waits until it does, or until its pin times
// out (streams.Config.PinnedTTL). The partition's Context ends with ctx or
// at Release; its WorkContext is workCtx.
func (ps *Partitions) Take(ctx, workCtx context.Context, p int) (*Partition, error) {
	cfg := &ps.cfg
	c, err := cfg.JS.Consumer(ctx, cfg.Streams.Stream, streams.PartitionConsumerName(cfg.Mode, p))
	if err != nil {
		return nil, err
	}
	// jspull, not nats.go's iterator: a stored write that looks like a
	// server status, or carries a pin id of its own, must reach the
	// worker as the write it is (docs/NATSGO-STATUS-HEADER.md).
	pt := &Partition{
		cfg: cfg, p: p, consumer: c, workCtx: workCtx, pool: &ps.pool,
		pulled: make(chan struct{}), released: make(chan struct{}),
		held: map[uint64]jetstream.Msg{},
	}
	opts := []jspull.Option{
		jspull.MaxMessages(cfg.Batch),
		jspull.MaxBytes(cfg.MaxBytes),
		jspull.Expiry(streams.PullExpiry),
		jspull.Heartbeat(streams.PullExpiry / 4),
		jspull.PinnedGroup(streams.OwnerGroup),
	}
	if cfg.Hold > 0 {
		opts = append(opts, jspull.Hold(pt.holdBound))
	}
	if pt.it, err = jspull.Messages(cfg.Conn, cfg.Streams.Stream, streams.PartitionConsumerName(cfg.Mode, p), opts...); err != nil {
		return nil, err
	}
	pt.ctx, pt.cancel = context.WithCancel(ctx)
	// Past the pin's time-out and an ack wait, the previous owner has let
	// go or lost everything it held, even if no write is ever acked here.
	stop := time.AfterFunc(cfg.Streams.PinnedTTL()+cfg.Streams.AckWait, pt.markSure)
	context.AfterFunc(pt.ctx, func() { stop.Stop() })
	go pt.pull()
	pt.keep()
	pt.tend()
	cfg.ownedChanged(+1)
	return pt, nil
}

// Number is the partition's number within its mode.
func (pt *Partition) Number() int { return pt.p }

// Context ends when the partition is released (or the context it was
// taken with ends): a write not running then is handed back.
func (pt *Partition) Context() context.Context { return pt.ctx }

// WorkContext is what writes already running finish on: it outlives
// Context by the shutdown grace period.
func (pt *Partition) WorkContext() context.Context { return pt.workCtx }

// Sure says whether the previous owner has certainly let go: the partition
// has gathered here, or this worker has waited out the pin's time-out and
// an ack wait.
func (pt *Partition) Sure() bool { return pt.sure.Load() }

func (pt *Partition) markSure() { pt.sure.Store(true) }

// Waiting counts the partition's writes that wait for capacity (a memory
// API slot): +1 when one starts waiting, -1 when it stops. While
// Config.Hold of them wait (or more, as Config.HoldShared allows), the
// partition takes no more writes from the stream; once half of them have
// gone on, it pulls again.
func (pt *Partition) Waiting(delta int) {
	pt.waiting.Add(int64(delta))
	if delta < 0 && pt.cfg.Hold > 0 {
		pt.it.Poke()
	}
}

// holdBound is the partition's bound for jspull.Hold: Config.Hold, and
// room from the mode's shared pool (Config.HoldShared) while more than
// half of that many wait, given back once no more than half do. What
// counts against it is the writes waiting for capacity, and those held
// before the partition is gathered, less the pending writes that have
// yet to reach it. A partition busy on its own so keeps as many writes
// waiting as the worker can run; many busy partitions together hold no
// more than Hold each and the pool.
func (pt *Partition) holdBound() (limit, holding int) {
	held := pt.waiting.Load() + pt.early.Load() - pt.missing.Load()
	// Not while gathering: partitions taken together would each take
	// from the pool before any had its writes.
	if pt.settled.Load() {
		if held > int64(pt.cfg.Hold/2) {
			pt.takeShared(int64(pt.cfg.Hold))
		} else {
			pt.giveShared()
		}
	}
	return pt.cfg.Hold + int(pt.shared.Load()), int(held)
}

// takeShared takes up to n from the mode's pool for the partition.
func (pt *Partition) takeShared(n int64) {
	for {
		free := pt.pool.Load()
		take := min(n, free)
		if take <= 0 {
			return
		}
		if pt.pool.CompareAndSwap(free, free-take) {
			pt.shared.Add(take)
			return
		}
	}
}

// giveShared returns what the partition took from the mode's pool.
func (pt *Partition) giveShared() {
	if n := pt.shared.Swap(0); n > 0 {
		pt.pool.Add(n)
	}
}

// Go runs f in its own goroutine as part of the owner's work on the
// partition: Release waits for it, after the running writes and before
// handing anything back. f should end soon after Context does.
func (pt *Partition) Go(f func()) {
	pt.others.Add(1)
	go func() {
		defer pt.others.Done()
		f()
	}()
}

// tend calls the Tend hook, if any.
func (pt *Partition) tend() {
	if tend := pt.cfg.Hooks.Tend; tend != nil {
		tend(pt)
	}
}

// pull reads the partition's writes and starts each in its own goroutine.
// It never blocks on anything but the server, so the owner's pull requests
// keep its pin alive however busy it is; the consumer's MaxAckPending
// bounds how many writes it holds, and Config.Hold how many of them wait
// for capacity.
//
// A new owner first gathers the partition: it starts nothing until
// every write pending on the consumer has been delivered to it. The
// previous owner's hand-back (Nak) and unpin travel separately inside the
// server, so the pin can reach the new owner, with a newer write, before
// an older handed-back write is queued for redelivery; once everything
// pending is here, the new owner starts the writes in stream order.
func (pt *Partition) pull() {
	defer close(pt.pulled)
	var early []jetstream.Msg // delivered before the partition was gathered
	var checked time.Time
	var acked AckedCheck
	// A write the server delivered while the connection was down is lost
	// on the way, and comes back only after its ack wait: after a
	// reconnect the partition gathers again, starting nothing new until
	// every write pending on it is here (or running here).
	reconnects, regathering := pt.reconnects(), false
	for gathered := false; ; {
		var msg jetstream.Msg
		var err error
		if gathered || len(early) == 0 {
			// Nothing to check until a write comes: an idle partition
			// sleeps until one does, or until it is released.
			msg, err = pt.it.Next(context.Background())
		} else {
			wait, cancel := context.WithTimeout(context.Background(), gatherCheck)
			msg, err = pt.it.Next(wait)
			cancel()
		}
		switch {
		case errors.Is(err, jspull.ErrIteratorClosed):
			// Released before it was gathered: what came early goes back as it
			// came, in stream order.
			slices.SortFunc(early, func(a, b jetstream.Msg) int { return cmp.Compare(msgSeq(a), msgSeq(b)) })
			for _, m := range early {
				pt.HandBack(m, time.Time{})
			}
			pt.early.Store(0)
			return
		case err != nil && !(errors.Is(err, context.DeadlineExceeded) && !gathered):
			pt.cfg.Log.Debug().Err(err).Str("group", string(pt.cfg.Mode)).Int("partition", pt.p).Msg("pull")
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if gathered && msg != nil {
			if r := pt.reconnects(); r != reconnects {
				reconnects, gathered, regathering = r, false, true
				acked.Failed()
			}
		}
		if msg != nil && !gathered {
			if _, again := pt.hold(msg); !again {
				early = append(early, msg)
				pt.early.Store(int64(len(early)))
			}
		}
		if !gathered {
			if len(early) == 0 || time.Since(checked) < gatherCheck/2 {
				continue
			}
			if checked = time.Now(); !pt.allPendingHere(pt.heldCount()) {
				acked.Failed()
				continue
			}
			// A write delivered here again may since have been acked by
			// the worker it was first delivered to: counted here, it
			// would stand in for a write still pending there.
			kept, gone, done := acked.Passed(pt.ctx, pt.cfg.Conn, pt.cfg.Streams.Stream, early)
			for _, m := range gone {
				if meta, err := m.Metadata(); err == nil {
					pt.done(meta)
				}
			}
			early = kept
			pt.early.Store(int64(len(early)))
			if !done {
				continue
			}
			gathered = true
			if !regathering {
				pt.settled.Store(true)
				pt.gathered()
			}
			slices.SortFunc(early, func(a, b jetstream.Msg) int { return cmp.Compare(msgSeq(a), msgSeq(b)) })
			if e := pt.cfg.Log.Debug(); e.Enabled() {
				e.Str("group", string(pt.cfg.Mode)).Int("partition", pt.p).Int("writes", len(early)).Bool("after_reconnect", regathering).
					Uint64("first_seq", msgSeq(early[0])).Uint64("last_seq", msgSeq(early[len(early)-1])).Msg("gathered partition")
			}
			for _, m := range early {
				meta, _ := m.Metadata()
				pt.start(m, meta)
			}
			early = nil
			pt.early.Store(0)
			pt.missing.Store(0)
			continue
		}
		if meta, again := pt.hold(msg); !again {
			pt.start(msg, meta)
		}
	}
}

// gatherCheck is how often a new owner checks whether every write pending
// on the partition has reached it.
const gatherCheck = 50 * time.Millisecond

// reconnects is how many times the partition's connection has
// reconnected; nats.go counts a reconnect before it subscribes again.
func (pt *Partition) reconnects() uint64 { return pt.cfg.Conn.Stats().Reconnects }

// heldCount is how many writes the partition holds: delivered here, not
// yet acked or handed back.
func (pt *Partition) heldCount() int {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return len(pt.held)
}

// allPendingHere reports whether every write pending on the consumer has
// been delivered to this worker: delivered is how many it holds.
func (pt *Partition) allPendingHere(delivered int) bool {
	ctx, cancel := context.WithTimeout(pt.ctx, 2*time.Second)
	defer cancel()
	info, err := pt.consumer.Info(ctx)
	if err != nil {
		return false
	}
	// Writes pending elsewhere are pulled past Hold until they are here;
	// those already on their way here are not missing.
	missing := int64(max(0, info.NumAckPending-delivered-pt.it.Coming()))
	if pt.missing.Swap(missing) < missing {
		pt.it.Poke()
	}
	return info.NumAckPending <= delivered
}

// gathered runs once the previous owner has let go entirely, before any
// write starts.
func (pt *Partition) gathered() {
	if gathered := pt.cfg.Hooks.Gathered; gathered != nil {
		gathered(pt)
	}
	pt.markSure()
	pt.tend()
}

// hold records a delivered write for the keeper, and reads its metadata
// (nil when the reply subject is not JetStream's). again says the write is
// held already: the server delivered it a second time, because its ack
// timer ran out while the previous owner was still finishing, or because
// the previous owner handed it back after that. The copy is the same
// pending write, not another one: counted again, it would let a new owner
// gather the partition before an older write reached it, and started again, it would be
// applied twice, maybe after a later write to its memory. The held copy
// acks it (the server acks by stream sequence).
func (pt *Partition) hold(msg jetstream.Msg) (meta *jetstream.MsgMetadata, again bool) {
	meta, err := msg.Metadata()
	if err != nil {
		return nil, false
	}
	pt.mu.Lock()
	_, again = pt.held[meta.Sequence.Stream]
	if !again {
		pt.held[meta.Sequence.Stream] = msg
	}
	pt.mu.Unlock()
	return meta, again
}

// start hands a held write to the Start hook, on the pull loop, and runs
// what it returns in its own goroutine; the write is held until that says
// it is done.
func (pt *Partition) start(msg jetstream.Msg, meta *jetstream.MsgMetadata) {
	run := pt.cfg.Hooks.Start(pt, msg, meta)
	pt.running.Add(1)
	go run(func() {
		pt.done(meta)
		pt.running.Done()
	})
}

// done stops holding a write: it was acked (applied, dead-lettered or
// parked), or handed back.
func (pt *Partition) done(meta *jetstream.MsgMetadata) {
	if meta != nil {
		pt.mu.Lock()
		delete(pt.held, meta.Sequence.Stream)
		pt.mu.Unlock()
	}
}

func msgSeq(m jetstream.Msg) uint64 {
	meta, err := m.Metadata()
	if err != nil {
		return 0
	}
	return meta.Sequence.Stream
}

// HandBack records a write to give back to the stream when the partition
// is released: with Nak, or with NakWithDelay while notBefore (when its
// last attempt could still be applied late) is ahead.
func (pt *Partition) HandBack(msg jetstream.Msg, notBefore time.Time) {
	pt.mu.Lock()
	pt.handedBack = append(pt.handedBack, handedBack{msg, notBefore})
	pt.mu.Unlock()
}

// keep sends InProgress for every held write every third of the ack wait,
// lowest sequence first, until the partition is released: a timer between
// rounds, not a goroutine per partition.
func (pt *Partition) keep() {
	pt.mu.Lock()
	pt.keeper = time.AfterFunc(pt.cfg.Streams.AckWait/3, pt.keepRound)
	pt.mu.Unlock()
}

func (pt *Partition) keepRound() {
	pt.mu.Lock()
	if pt.isReleased() {
		pt.mu.Unlock()
		return
	}
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
	pt.tend()
	pt.mu.Lock()
	if !pt.isReleased() {
		pt.keeper.Reset(pt.cfg.Streams.AckWait / 3)
	}
	pt.mu.Unlock()
}

func (pt *Partition) isReleased() bool {
	select {
	case <-pt.released:
		return true
	default:
		return false
	}
}

// Release lets go of the partition without reordering anything: it stops
// pulling and takes in what was already on its way, lets running writes
// finish (until WorkContext ends) and what runs under Go end, hands every
// other write back in sequence order, and unpins the consumer so the next
// owner starts at once.
func (pt *Partition) Release(ctx context.Context) {
	cfg := pt.cfg
	defer func() {
		close(pt.released)
		pt.mu.Lock()
		pt.keeper.Stop()
		pt.mu.Unlock()
		pt.giveShared()
	}()
	pt.it.Drain()
	<-pt.pulled
	pt.cancel()
	pt.running.Wait()
	pt.others.Wait()
	slices.SortFunc(pt.handedBack, func(a, b handedBack) int { return cmp.Compare(msgSeq(a.msg), msgSeq(b.msg)) })
	for _, h := range pt.handedBack {
		// A write whose last attempt got no answer comes back to the next
		// owner only once that attempt can no longer be applied late.
		if wait := time.Until(h.notBefore); wait > 0 {
			_ = h.msg.NakWithDelay(wait)
			continue
		}
		_ = h.msg.Nak()
	}
	if err := cfg.Conn.Flush(); err != nil {
		cfg.Log.Warn().Err(err).Str("group", string(cfg.Mode)).Int("partition", pt.p).Msg("flush hand-back")
	}
	unpinCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := pt.unpin(unpinCtx); err != nil {
		cfg.Log.Warn().Err(err).Str("group", string(cfg.Mode)).Int("partition", pt.p).Msg("cannot unpin; the next owner waits for the pin to time out")
	}
	cfg.ownedChanged(-1)
	if e := cfg.Log.Debug(); e.Enabled() {
		seqs := make([]uint64, len(pt.handedBack))
		for i, h := range pt.handedBack {
			seqs[i] = msgSeq(h.msg)
		}
		e.Str("group", string(cfg.Mode)).Int("partition", pt.p).Int("handed_back", len(pt.handedBack)).Uints64("seqs", seqs).Msg("released partition")
	}
}

// unpin lets the next owner be pinned at once, if the pin is this worker's.
// A worker that was never delivered a write was never pinned (the server
// pins a client when it delivers to it), and must not unpin: the pin would
// be the previous owner's, still handing back its writes.
func (pt *Partition) unpin(ctx context.Context) error {
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
			s, err := pt.cfg.JS.Stream(ctx, pt.cfg.Streams.Stream)
			if err != nil {
				return err
			}
			return s.UnpinConsumer(ctx, streams.PartitionConsumerName(pt.cfg.Mode, pt.p), streams.OwnerGroup)
		}
	}
	return nil
}
