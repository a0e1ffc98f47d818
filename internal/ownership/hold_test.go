package ownership

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetbox-dev/jetbox/internal/natstest"
	"github.com/jetbox-dev/jetbox/streams"
)

func holdEnv(t *testing.T, writes int) (jetstream.JetStream, func(hold, shared int, start startHook) *Partitions, streams.Config, context.Context) {
	t.Helper()
	nc, js := natstest.Start(t).Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	scfg := streams.DefaultConfig()
	scfg.Partitions = 1
	if _, err := streams.Provision(ctx, js, scfg); err != nil {
		t.Fatal(err)
	}
	for i := range writes {
		if _, err := js.Publish(ctx, "memory.t.fast_ack.store", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	owner := func(hold, shared int, start startHook) *Partitions {
		return NewPartitions(Config{
			Conn: nc, JS: js, Streams: scfg, Mode: streams.ModeFastAck,
			Batch: 128, MaxBytes: 1 << 20, Hold: hold, HoldShared: shared, Log: zerolog.Nop(),
			Hooks: Hooks{Start: start},
		})
	}
	return js, owner, scfg, ctx
}

func pending(t *testing.T, ctx context.Context, js jetstream.JetStream) int {
	t.Helper()
	c, err := js.Consumer(ctx, streams.DefaultConfig().Stream, streams.PartitionConsumerName(streams.ModeFastAck, 0))
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.NumAckPending
}

// A partition whose writes all wait for capacity takes no more than Hold
// of them from the stream, and HoldShared more when it is the only
// partition with writes waiting, and takes more as they go on. (One more
// may be on its way from the iterator to the Start hook, which counts
// it.)
func TestPartitionTakesNoMoreThanHoldWaitingWrites(t *testing.T) {
	for _, c := range []struct{ hold, shared int }{{8, 0}, {4, 12}} {
		t.Run(fmt.Sprintf("hold %d shared %d", c.hold, c.shared), func(t *testing.T) {
			bound := c.hold + c.shared
			if most := drainHeld(t, c.hold, c.shared); most > bound+1 || most <= bound/2 {
				t.Fatalf("up to %d writes delivered and waiting, want more than %d and at most %d", most, bound/2, bound+1)
			}
		})
	}
}

// drainHeld applies 40 writes of a partition owned with hold and shared,
// whose writes all wait for capacity until the test lets them go, a
// batch every 0.2 s; it returns the most that were delivered and waiting
// at once.
func drainHeld(t *testing.T, hold, shared int) int {
	const writes = 40
	js, owner, _, ctx := holdEnv(t, writes)
	var mu sync.Mutex
	var waiting []func()
	over := false
	p := owner(hold, shared, func(pt *Partition, msg jetstream.Msg, _ *jetstream.MsgMetadata) func(func()) {
		pt.Waiting(+1)
		return func(done func()) {
			mu.Lock()
			defer mu.Unlock()
			if over {
				pt.Waiting(-1)
				pt.HandBack(msg, time.Time{})
				done()
				return
			}
			waiting = append(waiting, func() { pt.Waiting(-1); _ = msg.Ack(); done() })
		}
	})
	pt, err := p.Take(ctx, ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		mu.Lock()
		over = true
		for _, f := range waiting {
			f()
		}
		mu.Unlock()
		pt.Release(ctx)
	}()
	most := 0
	for applied := 0; applied < writes; {
		time.Sleep(200 * time.Millisecond)
		most = max(most, pending(t, ctx, js))
		mu.Lock()
		w := waiting
		waiting = nil
		mu.Unlock()
		if len(w) == 0 {
			t.Fatalf("stalled with %d of %d writes applied", applied, writes)
		}
		for _, f := range w {
			f()
		}
		applied += len(w)
	}
	return most
}

// A new owner pulls past Hold until every write its predecessor handed
// back has reached it, and starts them all, in stream order, without
// waiting: Hold must not keep a partition from being gathered.
func TestHoldDoesNotKeepANewOwnerFromGathering(t *testing.T) {
	const writes, hold = 40, 4
	_, owner, scfg, ctx := holdEnv(t, writes)
	var firstStarted sync.WaitGroup
	firstStarted.Add(writes)
	first := owner(0, 0, func(pt *Partition, msg jetstream.Msg, _ *jetstream.MsgMetadata) func(func()) {
		firstStarted.Done()
		return func(done func()) {
			<-pt.Context().Done()
			pt.HandBack(msg, time.Time{})
			done()
		}
	})
	first0, err := first.Take(ctx, ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	firstStarted.Wait()
	first0.Release(ctx)
	released := time.Now()

	seqs, pt := startedByNextOwner(t, ctx, func(start startHook) *Partitions { return owner(hold, 0, start) }, writes)
	defer pt.Release(ctx)
	if len(seqs) < writes {
		t.Fatalf("the next owner started %d of %d handed-back writes", len(seqs), writes)
	}
	if !slices.IsSorted(seqs) {
		t.Fatalf("the next owner started %v, want stream order", seqs)
	}
	if waited := time.Since(released); waited >= scfg.PinnedTTL() {
		t.Fatalf("the next owner started the last write %s after the hand-back, want under %s", waited, scfg.PinnedTTL())
	}
}
