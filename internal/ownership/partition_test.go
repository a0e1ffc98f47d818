package ownership

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetbox-dev/jetbox/internal/natstest"
	"github.com/jetbox-dev/jetbox/streams"
)

// Writes an owner gives up on, in whatever order, reach the next owner,
// which starts them in stream order; and the owner letting go unpins the
// consumer, so the next one starts at once rather than when the pin times
// out.
func TestTheNextOwnerStartsHandedBackWritesInOrderAtOnce(t *testing.T) {
	nc, js := natstest.Start(t).Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	scfg := streams.DefaultConfig()
	scfg.Partitions = 1
	if _, err := streams.Provision(ctx, js, scfg); err != nil {
		t.Fatal(err)
	}
	const writes = 5
	for i := range writes {
		if _, err := js.Publish(ctx, "memory.t.fast_ack.store", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	owner := func(start func(pt *Partition, msg jetstream.Msg, meta *jetstream.MsgMetadata) func(done func())) *Partitions {
		return NewPartitions(Config{
			Conn: nc, JS: js, Streams: scfg, Mode: streams.ModeFastAck,
			Batch: writes, MaxBytes: 1 << 20, Log: zerolog.Nop(),
			Hooks: Hooks{Start: start},
		})
	}

	// The first owner starts every write, and each gives up when the
	// partition is released, the latest first.
	started := make(chan uint64, writes)
	gaveUp := make([]chan struct{}, writes+1)
	for i := range gaveUp {
		gaveUp[i] = make(chan struct{})
	}
	close(gaveUp[writes])
	n := 0
	first := owner(func(pt *Partition, msg jetstream.Msg, meta *jetstream.MsgMetadata) func(func()) {
		started <- meta.Sequence.Stream
		i := n
		n++
		return func(done func()) {
			defer done()
			<-pt.Context().Done()
			<-gaveUp[i+1]
			pt.HandBack(msg, time.Time{})
			close(gaveUp[i])
		}
	})
	pt, err := first.Take(ctx, ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for range writes {
		select {
		case seq := <-started:
			seqs = append(seqs, seq)
		case <-ctx.Done():
			t.Fatalf("the first owner started %v", seqs)
		}
	}
	if !slices.IsSorted(seqs) {
		t.Fatalf("the first owner started %v, want stream order", seqs)
	}
	pt.Release(ctx)
	released := time.Now()

	again, pt := startedByNextOwner(t, ctx, owner, writes)
	defer pt.Release(ctx)
	if !slices.Equal(again, seqs) {
		t.Fatalf("the next owner started %v, want %v", again, seqs)
	}
	if waited := time.Since(released); waited >= scfg.PinnedTTL() {
		t.Fatalf("the next owner started after %s, the pin's time-out (%s): the first owner did not unpin", waited, scfg.PinnedTTL())
	}
	if !pt.Sure() {
		t.Fatal("the next owner started writes before it was sure the first had let go")
	}
}

type startHook = func(pt *Partition, msg jetstream.Msg, meta *jetstream.MsgMetadata) func(done func())

// startedByNextOwner takes partition 0 with an owner newOwner makes, whose
// writes are acked as they start, and returns the stream sequences of the
// first n it starts, in the order it started them: fewer if ctx ends
// first. The caller releases the partition.
func startedByNextOwner(t *testing.T, ctx context.Context, newOwner func(startHook) *Partitions, n int) ([]uint64, *Partition) {
	t.Helper()
	next := make(chan uint64, n)
	pt, err := newOwner(func(_ *Partition, msg jetstream.Msg, meta *jetstream.MsgMetadata) func(func()) {
		next <- meta.Sequence.Stream
		return func(done func()) { _ = msg.Ack(); done() }
	}).Take(ctx, ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for range n {
		select {
		case seq := <-next:
			seqs = append(seqs, seq)
		case <-ctx.Done():
			return seqs, pt
		}
	}
	return seqs, pt
}
