// Package fair shares one consumer group's memory API slots round-robin
// across tenants: a tenant's waiters are served in arrival order, and each
// turn goes to the next tenant with waiters, so a tenant with a thousand
// writes waiting delays another tenant's single write by about one slot,
// not a thousand. Across groups the priority.Semaphore the groups share
// still decides: each group takes its slots at its own level.
//
// The contract: a slot taken by Slots.Acquire is given back by exactly one
// Slots.Release; an Acquire whose context ends holds no slot.
//
// Slots has no goroutine of its own, so there is nothing to stop and
// nothing to leak. The waiters take turns at acquiring for the whole
// queue: the first to find no one acquiring becomes the dispatcher. It
// takes slots from the semaphore one at a time and hands each to the next
// waiter in turn, until the turn is its own; then it passes the
// dispatching on to the next waiter and keeps that slot. A dispatcher
// whose context ends passes the dispatching on as well.
//
// A slot released while waiters remain goes straight to the next waiter in
// turn when the semaphore would give it to this group anyway
// (priority.Semaphore.Keep): one goroutine wakes instead of two, the
// dispatcher's and then the waiter's. The dispatcher itself is never
// handed a slot this way; in its turn the slot goes back to the semaphore,
// where the dispatcher is waiting for it.
//
// A waiter from AcquireOrQueue waits as data, with no goroutine: told its
// turn, or that it is the dispatcher, it goes on in a new goroutine; given
// a slot by ReleaseTo, in the goroutine of the releasing caller, once that
// caller is done.
//
// Only tenants with waiters are remembered.
package fair

import (
	"container/list"
	"context"
	"sync"

	"github.com/jetbox-dev/jetbox/internal/priority"
)

// Slots is one group's share of the semaphore's slots, served to its
// tenants in turn.
type Slots struct {
	slots *priority.Semaphore
	level int

	mu          sync.Mutex
	tenants     map[string]*tenantQueue
	ring        list.List // of *tenantQueue with waiters, the next to serve in front
	dispatching bool      // a waiter is acquiring for the queue
	dispatcher  *waiter
}

// tenantQueue is one tenant's waiters, in arrival order.
type tenantQueue struct {
	tenant  string
	inRing  *list.Element
	waiters list.List // of *waiter
}

// waiter is an Acquire, blocked on told, or an AcquireOrQueue, waiting
// as data: then runs when it is told.
type waiter struct {
	queue   *tenantQueue
	inQueue *list.Element
	told    chan notice // at most one pending; nil for AcquireOrQueue

	ctx  context.Context
	then Then
	// stop ends the watch on ctx; answered is set, under Slots.mu, once
	// then has been called or is about to be.
	stop     func() bool
	answered bool
}

type notice int

const (
	slotGranted      notice = iota // the waiter holds a slot
	dispatchingTaken               // the waiter is the dispatcher now
)

// New returns the share of slots of the group served at level.
func New(slots *priority.Semaphore, level int) *Slots {
	return &Slots{slots: slots, level: level, tenants: map[string]*tenantQueue{}}
}

// Acquire waits for a slot at the group's level, in the tenant's turn. If
// ctx ends first it returns ctx.Err() and holds no slot.
func (f *Slots) Acquire(ctx context.Context, tenant string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	w := f.enqueue(tenant)
	w.told = make(chan notice, 1)
	dispatcher := !f.dispatching
	if dispatcher {
		f.dispatching, f.dispatcher = true, w
	}
	f.mu.Unlock()
	for !dispatcher {
		select {
		case news := <-w.told:
			if news == slotGranted {
				return nil
			}
			dispatcher = true
		case <-ctx.Done():
			f.abandon(w)
			return ctx.Err()
		}
	}
	return f.dispatch(ctx, w)
}

// Then is what a waiter queued by AcquireOrQueue does when its turn
// comes: with nil it holds a slot, with an error none. It returns the Then
// of the waiter it handed its slot to as it finished (ReleaseTo), if any,
// which its goroutine runs next (Run).
type Then func(error) Then

// Run runs then, and each Then it hands on in turn, in the calling
// goroutine.
func Run(then Then, err error) {
	for then != nil {
		then, err = then(err), nil
	}
}

// AcquireOrQueue is Acquire for a caller that need not wait in a
// goroutine. A caller who must acquire for the queue (Acquire's
// dispatcher) waits here as Acquire would, and gets true, or ctx.Err()
// holding no slot. Any other caller gets false and nil at once and waits
// as data: then runs when its turn comes, in a goroutine of its own or in
// the one that handed it its slot (ReleaseTo), with nil holding a slot,
// or with ctx.Err() holding none. Thousands of writes
// waiting for a slot are thousands of small records, not thousands of
// parked goroutines and their stacks.
func (f *Slots) AcquireOrQueue(ctx context.Context, tenant string, then Then) (held bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	f.mu.Lock()
	w := f.enqueue(tenant)
	w.ctx, w.then = ctx, then
	if !f.dispatching {
		f.dispatching, f.dispatcher = true, w
		w.answered = true
		f.mu.Unlock()
		if err := f.dispatch(ctx, w); err != nil {
			return false, err
		}
		return true, nil
	}
	w.stop = context.AfterFunc(ctx, func() { f.abandonQueued(w) })
	f.mu.Unlock()
	return false, nil
}

// tell gives a waiter its news: on its channel, or by running its then in
// a goroutine of its own. f.mu is held.
func (f *Slots) tell(w *waiter, news notice) {
	if w.then == nil {
		w.told <- news
		return
	}
	w.answered = true
	w.stop()
	if news == slotGranted {
		go Run(w.then, nil)
		return
	}
	go func() { Run(w.then, f.dispatch(w.ctx, w)) }()
}

// abandonQueued takes an AcquireOrQueue waiter whose context ended out of the
// queue, unless it was told first.
func (f *Slots) abandonQueued(w *waiter) {
	f.mu.Lock()
	if w.answered {
		f.mu.Unlock()
		return
	}
	w.answered = true
	f.remove(w)
	f.mu.Unlock()
	Run(w.then, w.ctx.Err())
}

// Release returns a slot taken by Acquire, or hands it to the next waiter
// in turn.
func (f *Slots) Release() {
	if then := f.ReleaseTo(); then != nil {
		go Run(then, nil)
	}
}

// ReleaseTo is Release for a caller about to finish: when the slot goes
// straight to a waiter queued as data, it returns that waiter's Then, for
// the caller to run (with nil: the slot is held) once it is done, in its
// own goroutine, whose stack has already grown for the work a slot is for.
func (f *Slots) ReleaseTo() Then {
	f.mu.Lock()
	if front := f.ring.Front(); front != nil {
		next := front.Value.(*tenantQueue).waiters.Front().Value.(*waiter)
		if next != f.dispatcher && f.slots.Keep(f.level) {
			f.nextInTurn()
			if next.then == nil {
				next.told <- slotGranted
				f.mu.Unlock()
				return nil
			}
			next.answered = true
			next.stop()
			f.mu.Unlock()
			return next.then
		}
	}
	f.mu.Unlock()
	f.slots.Release(f.level)
	return nil
}

// dispatch takes slots for the queue and grants them in turn until self's
// turn comes.
func (f *Slots) dispatch(ctx context.Context, self *waiter) error {
	for {
		if err := f.slots.Acquire(ctx, f.level); err != nil {
			f.mu.Lock()
			f.remove(self)
			f.passDispatching()
			f.mu.Unlock()
			return err
		}
		f.mu.Lock()
		// Self is still queued: only the dispatcher takes waiters out for
		// their turn, and the others only take themselves out.
		next := f.nextInTurn()
		if next == self {
			f.passDispatching()
			f.mu.Unlock()
			return nil
		}
		f.tell(next, slotGranted)
		f.mu.Unlock()
	}
}

// abandon takes a waiter whose context ended out of the queue, giving back
// what it was handed meanwhile.
func (f *Slots) abandon(w *waiter) {
	f.mu.Lock()
	select {
	case news := <-w.told:
		if news == slotGranted {
			// Granted as ctx ended: already out of the queue.
			f.mu.Unlock()
			f.slots.Release(f.level)
			return
		}
		f.remove(w)
		f.passDispatching()
	default:
		f.remove(w)
	}
	f.mu.Unlock()
}

// enqueue puts a waiter at the back of its tenant's queue, and a tenant
// that had none at the back of the ring. f.mu is held.
func (f *Slots) enqueue(tenant string) *waiter {
	q := f.tenants[tenant]
	if q == nil {
		q = &tenantQueue{tenant: tenant}
		q.inRing = f.ring.PushBack(q)
		f.tenants[tenant] = q
	}
	w := &waiter{queue: q}
	w.inQueue = q.waiters.PushBack(w)
	return w
}

// nextInTurn takes out the first waiter of the tenant in front of the ring
// and moves that tenant to the back. f.mu is held; the ring is not empty.
func (f *Slots) nextInTurn() *waiter {
	q := f.ring.Front().Value.(*tenantQueue)
	w := q.waiters.Front().Value.(*waiter)
	f.remove(w)
	if q.waiters.Len() > 0 {
		f.ring.MoveToBack(q.inRing)
	}
	return w
}

// remove takes a waiter out of its queue, and its tenant out of the ring
// and the map when it was the last. f.mu is held.
func (f *Slots) remove(w *waiter) {
	q := w.queue
	q.waiters.Remove(w.inQueue)
	if q.waiters.Len() == 0 {
		f.ring.Remove(q.inRing)
		delete(f.tenants, q.tenant)
	}
}

// passDispatching makes the next waiter in turn the dispatcher, if any
// waits. It is called by the dispatcher giving up the role, so no other
// exists and the next waiter has no news pending. f.mu is held.
func (f *Slots) passDispatching() {
	front := f.ring.Front()
	if front == nil {
		f.dispatching, f.dispatcher = false, nil
		return
	}
	q := front.Value.(*tenantQueue)
	f.dispatcher = q.waiters.Front().Value.(*waiter)
	f.tell(f.dispatcher, dispatchingTaken)
}
