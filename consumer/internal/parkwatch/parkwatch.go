// Package parkwatch keeps a worker's view of the parking bucket: which
// tenants each group has parked, as whichever worker parked them recorded
// it, and how far that view has read. A worker taking a partition over
// waits, with CatchUp, until it has seen every change made before it took
// over, so that it neither applies a parked tenant's write past its parked
// ones nor leaves a tenant parked that the previous owner unparked.
package parkwatch

import (
	"context"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/streams"
	"github.com/jetbox-dev/jetbox/tenancy"
)

// Learned is told each change of the bucket: tenant is parked in mode, or
// no longer.
type Learned func(mode streams.Mode, tenant string, parked bool)

// Watch follows the parking bucket until its context ends.
type Watch struct {
	kv jetstream.KeyValue

	mu      sync.Mutex
	cond    *sync.Cond
	rev     uint64 // the latest revision applied
	initial bool   // the bucket's state has been delivered
}

// Start watches kv, telling learned of every entry, the existing ones
// first, until ctx ends.
func Start(ctx context.Context, kv jetstream.KeyValue, learned Learned) (*Watch, error) {
	watcher, err := kv.WatchAll(ctx)
	if err != nil {
		return nil, err
	}
	w := &Watch{kv: kv}
	w.cond = sync.NewCond(&w.mu)
	go func() {
		defer watcher.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-watcher.Updates():
				if !ok {
					return
				}
				if e == nil {
					w.caughtUp()
					continue
				}
				mode, token, found := streams.ParseParkingKey(e.Key())
				tenant, err := tenancy.Decode(token)
				if found && err == nil {
					learned(mode, tenant, e.Operation() == jetstream.KeyValuePut)
				}
				w.saw(e.Revision())
			}
		}
	}()
	return w, nil
}

func (w *Watch) saw(rev uint64) {
	w.mu.Lock()
	w.rev = max(w.rev, rev)
	w.mu.Unlock()
	w.cond.Broadcast()
}

func (w *Watch) caughtUp() {
	w.mu.Lock()
	w.initial = true
	w.mu.Unlock()
	w.cond.Broadcast()
}

// CatchUp waits until the watch has applied every change made to the
// bucket so far, by anybody, or ctx ends.
func (w *Watch) CatchUp(ctx context.Context) error {
	status, err := w.kv.Status(ctx)
	if err != nil {
		return err
	}
	last := uint64(0)
	if s, ok := status.(*jetstream.KeyValueBucketStatus); ok {
		last = s.StreamInfo().State.LastSeq
	}
	stop := context.AfterFunc(ctx, w.cond.Broadcast)
	defer stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	for !(w.initial && w.rev >= last) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		w.cond.Wait()
	}
	return nil
}
