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

func holdEnv(t *testing.T, writes int) (jetstream.JetStream, func(hold int, start func(*Partition, jetstream.Msg, *jetstream.MsgMetadata) func(func())) *Partitions, streams.Config, context.Context) {
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
	owner := func(hold int, start func(*Partition, jetstream.Msg, *jetstream.MsgMetadata) func(func())) *Partitions {
		return NewPartitions(Config{
			Conn: nc, JS: js, Streams: scfg, Mode: streams.ModeFastAck,
			Batch: 128, MaxBytes: 1 << 20, Hold: hold, Log: zerolog.Nop(),
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
// of them from the stream, and takes more as they go on.
func TestPartitionTakesNoMoreThanHoldWaitingWrites(t *testing.T) {
	const writes, hold = 40, 8
	js, owner, _, ctx := holdEnv(t, writes)
	var mu sync.Mutex
	var waiting []func()
	over := false
	p := owner(hold, func(pt *Partition, msg jetstream.Msg, _ *jetstream.MsgMetadata) func(func()) {
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
	for applied := 0; applied < writes; {
		time.Sleep(200 * time.Millisecond)
		if n := pending(t, ctx, js); n > hold {
			t.Fatalf("%d writes delivered and waiting, over Hold %d", n, hold)
		}
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
}

// A new owner pulls past Hold until every write its predecessor handed
// back has reached it, and starts them all, in stream order, without
// waiting: Hold must not keep a partition from being gathered.
func TestHoldDoesNotKeepANewOwnerFromGathering(t *testing.T) {
	const writes, hold = 40, 4
	_, owner, scfg, ctx := holdEnv(t, writes)
	var firstStarted sync.WaitGroup
	firstStarted.Add(writes)
	first := owner(0, func(pt *Partition, msg jetstream.Msg, _ *jetstream.MsgMetadata) func(func()) {
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

	seqs, pt := startedByNextOwner(t, ctx, func(start startHook) *Partitions { return owner(hold, start) }, writes)
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
