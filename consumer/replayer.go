package consumer

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/consumer/internal/lanes"
	"github.com/jetbox-dev/jetbox/dlq"
	"github.com/jetbox-dev/jetbox/internal/jspull"
	"github.com/jetbox-dev/jetbox/internal/ownership"
	"github.com/jetbox-dev/jetbox/streams"
)

// replayer applies one parked tenant's writes of one mode: different
// memories at once, each memory's writes one at a time in the order they
// were parked (lanes, as for the outbox).
//
// The parked consumer lets up to streams.ParkedMaxAckPending writes out at
// once, so the order across replayers (an owner handing over to the next,
// a replayer that died) follows the outbox's rules (internal/ownership):
//   - a replayer reads nothing before the previous one has stopped: at
//     once when that one marked the parked consumer released as it ended
//     (having handed back all it held), otherwise once its partition is
//     Sure, by when the previous owner's replayer has stopped reading or
//     lost what it held;
//   - it gathers first: it starts nothing until every write pending on the
//     parked consumer has been delivered to it, counting distinct
//     sequences, then starts them in stream order. What the previous
//     replayer still ran is acked or comes back, handed back or when its
//     ack wait runs out, before any later write of its memory starts here;
//   - it holds every write it was delivered until the write is settled,
//     telling the server they are in progress, and hands back only when it
//     ends, in sequence order, once its running writes have finished.
//
// It probes gently: while the tenant's breaker is not closed it holds one
// write at a time, and each write settled with the breaker closed lets
// one more out, up to streams.ParkedMaxAckPending.
type replayer struct {
	pk            *parking
	tenant, token string
	pt            *ownership.Partition
	done          chan struct{}

	lanes   *lanes.Lanes
	running sync.WaitGroup
	room    chan struct{} // signalled when a held write is settled

	mu    sync.Mutex
	held  map[uint64]heldParked // by parking-stream sequence
	width int                   // writes held at most
}

// heldParked is a parked write the replayer holds: delivered, not settled.
type heldParked struct {
	msg jetstream.Msg
	// notBefore is when a handed-back write may come back
	// (retryState.notBefore).
	notBefore time.Time
	// memory is the memory a handed-back write touches ("" if it could
	// not be decoded).
	memory string
}

// startReplayer runs a tenant's replayer for as long as the partition is
// owned; the tenant's lock is held.
func (pk *parking) startReplayer(tenant, token string, pt *ownership.Partition) *replayer {
	r := &replayer{
		pk: pk, tenant: tenant, token: token, pt: pt, done: make(chan struct{}),
		lanes: lanes.New(), room: make(chan struct{}, 1), held: map[uint64]heldParked{}, width: 1,
	}
	pt.Go(func() {
		defer close(r.done)
		r.run()
	})
	return r
}

func (r *replayer) ended() bool { return isClosed(r.done) }

// isClosed says whether a signal channel has been closed, without waiting.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// gatherCheck is how long a gathering replayer's pull waits for writes
// before it counts again what is pending.
const gatherCheck = 100 * time.Millisecond

// run replays until the parking lot is empty (and the tenant unparked) or
// the partition is released.
func (r *replayer) run() {
	g, pt := r.pk.g, r.pt
	ctx := pt.Context()
	for !pt.Sure() && !r.previousReleased(ctx) {
		if !sleep(ctx, gatherCheck) {
			return
		}
	}
	// Setting the configuration takes the released mark off: from here on
	// this replayer may read.
	c, err := g.js.CreateOrUpdateConsumer(ctx, g.cfg.Streams.ParkingStream, g.cfg.Streams.ParkedConsumerConfig(g.mode, r.token))
	if err != nil {
		if ctx.Err() == nil {
			g.log.Error().Err(err).Str("group", string(g.mode)).Str("tenant", r.tenant).Msg("cannot read parked writes; retried when the partition is owned again")
		}
		return
	}
	stopKeeping := make(chan struct{})
	go r.keep(stopKeeping)
	unparked := false
	defer func() {
		r.running.Wait()
		r.handBackAll()
		close(stopKeeping)
		if !unparked {
			r.release()
		}
	}()
	if !r.gather(ctx, c) {
		return
	}
	for ctx.Err() == nil {
		free, held := r.free()
		// Writes are let out in batches of a quarter of the width at
		// least, not one pull per settled write.
		if free <= 0 || (held > 0 && free < (free+held)/4) {
			select {
			case <-r.room:
			case <-ctx.Done():
			}
			continue
		}
		// While writes run, a short pull: more are let out as they settle.
		wait := streams.PullExpiry
		if held > 0 {
			wait = gatherCheck
		}
		// jspull, as for the outbox: parked writes keep their original
		// headers, a forged Status among them.
		batch, err := jspull.Fetch(ctx, g.nc, g.cfg.Streams.ParkingStream, c.CachedInfo().Name, free, wait)
		for _, msg := range batch {
			if r.hold(msg) {
				r.start(msg)
			}
		}
		if err != nil {
			// The consumer may have been deleted by the replayer of an
			// earlier parking of this tenant, unparked just before.
			if !sleep(ctx, time.Second) {
				return
			}
			if again, err := g.js.CreateOrUpdateConsumer(ctx, g.cfg.Streams.ParkingStream, g.cfg.Streams.ParkedConsumerConfig(g.mode, r.token)); err == nil {
				c = again
			}
			continue
		}
		if len(batch) > 0 || held > 0 {
			continue
		}
		done, err := r.pk.unpark(ctx, r.tenant, r.token)
		if err != nil && ctx.Err() == nil {
			g.log.Warn().Err(err).Str("tenant", r.tenant).Msg("cannot unpark yet")
		}
		if done {
			unparked = true
			delCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = g.js.DeleteConsumer(delCtx, g.cfg.Streams.ParkingStream, c.CachedInfo().Name)
			cancel()
			return
		}
	}
}

// previousReleased says whether the parked consumer's last replayer let
// go of it cleanly (streams.ParkedReleased), so that it reads nothing
// more. A replayer that died, or is still running in an owner that has not
// yet released the partition, leaves no mark: the next one waits until
// its partition is Sure.
func (r *replayer) previousReleased(ctx context.Context) bool {
	g := r.pk.g
	c, err := g.js.Consumer(ctx, g.cfg.Streams.ParkingStream, g.cfg.Streams.ParkedConsumerConfig(g.mode, r.token).Durable)
	return err == nil && streams.ParkedReleased(c.CachedInfo().Config)
}

// release marks the parked consumer as let go, once the replayer has
// handed back everything it held and reads nothing more, so that the
// partition's next owner starts replaying without waiting for it. Update,
// not create: a consumer deleted meanwhile stays deleted.
func (r *replayer) release() {
	g := r.pk.g
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.pt.Context()), 5*time.Second)
	defer cancel()
	_, _ = g.js.UpdateConsumer(ctx, g.cfg.Streams.ParkingStream, g.cfg.Streams.ReleasedParkedConsumerConfig(g.mode, r.token))
}

// gather takes in every write pending on the parked consumer, then starts
// them in stream order. It returns false when the partition was released
// first; what it took in is then handed back.
func (r *replayer) gather(ctx context.Context, c jetstream.Consumer) bool {
	g := r.pk.g
	var early []jetstream.Msg
	var acked ownership.AckedCheck // as for a partition's new owner
	for {
		info, err := c.Info(ctx)
		if err == nil && info.NumAckPending <= r.heldCount() {
			kept, gone, done := acked.Passed(ctx, g.nc, g.cfg.Streams.ParkingStream, early)
			early = kept
			r.forget(gone)
			if done {
				break
			}
		} else {
			acked.Failed()
		}
		if ctx.Err() != nil {
			return false
		}
		batch, err := jspull.Fetch(ctx, g.nc, g.cfg.Streams.ParkingStream, c.CachedInfo().Name, streams.ParkedMaxAckPending, gatherCheck)
		for _, msg := range batch {
			if r.hold(msg) {
				early = append(early, msg)
			}
		}
		if err != nil && !sleep(ctx, gatherCheck) {
			return false
		}
	}
	slices.SortFunc(early, func(a, b jetstream.Msg) int { return cmp.Compare(parkingSeq(a), parkingSeq(b)) })
	// Told in progress in sequence order, the gathered writes' ack timers
	// run out in that order too, should this replayer die before its
	// keeper's first round: a successor that does not gather (an older
	// worker's) is delivered them again in order.
	for _, msg := range early {
		_ = msg.InProgress()
	}
	for _, msg := range early {
		r.start(msg)
	}
	return true
}

// free is how many more writes the replayer may take, and how many it
// holds: one in all while the tenant's breaker is not closed.
func (r *replayer) free() (free, held int) {
	closed := r.pk.g.breakers.Get(r.tenant, time.Now()).Closed()
	r.mu.Lock()
	defer r.mu.Unlock()
	if !closed {
		r.width = 1
	}
	return r.width - len(r.held), len(r.held)
}

// hold records a delivered write; false when it is held already (the
// server delivered it again, its ack timer having run out): the held copy
// settles it.
func (r *replayer) hold(msg jetstream.Msg) bool {
	seq := parkingSeq(msg)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, again := r.held[seq]; again {
		return false
	}
	r.held[seq] = heldParked{msg: msg}
	return true
}

// forget stops holding writes acked elsewhere.
func (r *replayer) forget(msgs []jetstream.Msg) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range msgs {
		delete(r.held, parkingSeq(m))
	}
}

func (r *replayer) heldCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.held)
}

// settled stops holding a write, and lets one more out if the tenant's
// breaker is closed.
func (r *replayer) settled(msg jetstream.Msg) {
	closed := r.pk.g.breakers.Get(r.tenant, time.Now()).Closed()
	r.mu.Lock()
	delete(r.held, parkingSeq(msg))
	if closed {
		r.width = min(r.width+1, streams.ParkedMaxAckPending)
	}
	r.mu.Unlock()
	select {
	case r.room <- struct{}{}:
	default:
	}
}

// handedBack keeps holding a write the replayer gives up on, to give it
// back when the replayer ends.
func (r *replayer) handedBack(msg jetstream.Msg, memory string, notBefore time.Time) {
	r.mu.Lock()
	r.held[parkingSeq(msg)] = heldParked{msg: msg, notBefore: notBefore, memory: memory}
	r.mu.Unlock()
}

// handBackAll gives every write still held back to the stream, in
// sequence order, each once its last attempt can no longer be applied
// late, and none before an earlier write of its memory; the running
// writes have finished.
//
// The server delivers handed-back writes again in the order they come
// back, and a replayer that does not gather (an older worker's, which
// takes one write at a time) starts them in that order: a write handed
// back at once must not overtake an earlier write of its memory that is
// held back for its notBefore. Every delay counts from one instant, so
// writes given the same time come back in the order they were handed
// back.
func (r *replayer) handBackAll() {
	r.mu.Lock()
	held := slices.Collect(maps.Values(r.held))
	r.held = map[uint64]heldParked{}
	r.mu.Unlock()
	slices.SortFunc(held, byParkingSeq)
	now := time.Now()
	latest := map[string]time.Time{} // by memory
	for _, h := range held {
		at := h.notBefore
		if earlier := latest[h.memory]; earlier.After(at) {
			at = earlier
		}
		latest[h.memory] = at
		if wait := at.Sub(now); wait > 0 {
			_ = h.msg.NakWithDelay(wait)
			continue
		}
		_ = h.msg.Nak()
	}
}

// keep tells the server every held write is in progress, lowest sequence
// first, every third of the ack wait, until stop is closed.
func (r *replayer) keep(stop <-chan struct{}) {
	t := time.NewTicker(r.pk.g.cfg.Streams.AckWait / 3)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		r.mu.Lock()
		held := slices.Collect(maps.Values(r.held))
		r.mu.Unlock()
		slices.SortFunc(held, byParkingSeq)
		for _, h := range held {
			_ = h.msg.InProgress()
		}
	}
}

// start places a held write in its memory's lane, in stream order, and
// replays it in its own goroutine.
func (r *replayer) start(msg jetstream.Msg) {
	d := parkedDelivery(msg, r.pk.g.cfg.ReplyPrefixes)
	var memory string
	if d.err == nil {
		memory = d.w.Memory
		d.turn = r.lanes.Expect(d.w.Addr.Tenant, memory, parkingSeq(msg))
	}
	r.running.Add(1)
	go func() {
		defer r.running.Done()
		if r.replay(d) {
			r.settled(msg)
		} else {
			r.handedBack(msg, memory, d.notBefore())
		}
	}()
}

// replay applies one parked write after the earlier writes to its memory,
// waiting through retries and an open breaker with the write held. It
// returns false when the partition was released before the write was
// settled.
func (r *replayer) replay(d delivery) bool {
	g, pt := r.pk.g, r.pt
	ctx := pt.Context()
	if d.err != nil {
		if d.meta == nil {
			_ = d.msg.Term()
			return true
		}
		for g.deadLetter(pt.WorkContext(), d.msg, d.meta, d.w, d.retry.attempts, dlq.Failure{Class: streams.ClassBadInput, Reason: d.err.Error()}, streams.OutcomeDead) > 0 {
			if !sleep(ctx, g.backoff(1, 0)) {
				return false
			}
		}
		return true
	}
	defer r.lanes.Leave(d.turn)
	if r.lanes.Wait(ctx, d.turn) != nil {
		return false
	}
	var workCtx context.Context
	workCtx, d.span = g.startProcess(pt.WorkContext(), d, pt.Number())
	defer d.span.End()
	tenant := g.metrics.TenantLabel(r.tenant)
	for {
		// A write handed back lets the next write of its memory go: that
		// one must not start either.
		// Cut off from NATS, the replayer starts nothing: the partition
		// may be another worker's by the time it could ack.
		for ctx.Err() == nil && !g.nc.IsConnected() {
			sleep(ctx, 100*time.Millisecond)
		}
		if ctx.Err() != nil {
			return false
		}
		if wait := time.Until(d.notBefore()); wait > 0 && !sleep(ctx, wait) {
			return false
		}
		if !g.misconfig.Wait(ctx) || g.fair.Acquire(ctx, r.tenant) != nil {
			return false
		}
		next, after := g.apply(workCtx, &d, tenant)
		g.fair.Release()
		d.span.Stepped(next, d.retry.attempts, after)
		switch next {
		case settled:
			g.metrics.Replayed.WithLabelValues(string(g.mode), tenant).Inc()
			return true
		case abandoned:
			return false
		}
		if !sleep(ctx, after) {
			return false
		}
	}
}

// byParkingSeq orders held writes by their sequence in the parking stream.
func byParkingSeq(a, b heldParked) int { return cmp.Compare(parkingSeq(a.msg), parkingSeq(b.msg)) }

// parkingSeq is a parked write's sequence in the parking stream (0
// without metadata).
func parkingSeq(m jetstream.Msg) uint64 {
	meta, err := m.Metadata()
	if err != nil {
		return 0
	}
	return meta.Sequence.Stream
}
