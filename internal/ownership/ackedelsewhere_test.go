package ownership

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetbox-dev/jetbox/internal/jspull"
	"github.com/jetbox-dev/jetbox/internal/natstest"
	"github.com/jetbox-dev/jetbox/streams"
)

// A previous owner cut off long enough for its pin and its writes' ack
// timers to run out may still ack a write after the server delivered it
// again to the next owner. Counted as gathered, that write would stand in
// for one the previous owner still holds, and the next owner would start
// later writes of the memory before it. The next owner starts nothing
// until the held write is back, and never starts the write the previous
// owner acked.
func TestAWriteAckedByThePreviousOwnerIsNotCountedAsGathered(t *testing.T) {
	nc, js := natstest.Start(t).Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel) // after the partition is released
	scfg := streams.DefaultConfig()
	scfg.Partitions = 1
	scfg.AckWait = time.Second
	if _, err := streams.Provision(ctx, js, scfg); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"W", "X", "Y"} { // one memory's writes, in order
		if _, err := js.Publish(ctx, "memory.t.fast_ack.store", []byte(w)); err != nil {
			t.Fatal(err)
		}
	}
	consumer := streams.PartitionConsumerName(streams.ModeFastAck, 0)

	// The previous owner takes W and X, is pinned, hands X back to come
	// again in 10 s (its last attempt may still be applied late), and then
	// goes silent: no pull requests, no InProgress.
	prev, err := jspull.Fetch(ctx, nc, scfg.Stream, consumer, 2, time.Second, jspull.PinnedGroup(streams.OwnerGroup))
	if err != nil || len(prev) != 2 {
		t.Fatalf("previous owner: %d writes, %v", len(prev), err)
	}
	if err := prev[1].NakWithDelay(10 * time.Second); err != nil {
		t.Fatal(err)
	}

	// The next owner waits for the pin, then is delivered W again (its ack
	// timer ran out) and Y.
	pt, started := takeRecording(t, ctx, nc, js, scfg)
	for pt.early.Load() < 2 {
		select {
		case w := <-started:
			t.Fatalf("the next owner started %s while X was pending", w)
		case <-ctx.Done():
			t.Fatal("the next owner was never delivered W and Y")
		case <-time.After(20 * time.Millisecond):
		}
	}
	// Now the previous owner, back, finishes W and acks it.
	if err := prev[0].Ack(); err != nil {
		t.Fatal(err)
	}

	var order []string
	for len(order) < 2 {
		select {
		case w := <-started:
			order = append(order, w)
		case <-ctx.Done():
			t.Fatalf("the next owner started %v", order)
		}
	}
	if fmt.Sprint(order) != "[X Y]" {
		t.Fatalf("the next owner started %v, want [X Y]: X before the memory's later write, W (acked) not again", order)
	}
}

// dropAcked asks the stream only about writes delivered more than once,
// and reports those no longer stored (acked) as gone.
func TestDropAckedFindsTheWritesAckedElsewhere(t *testing.T) {
	nc, js := natstest.Start(t).Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	scfg := streams.DefaultConfig()
	scfg.Partitions = 1
	scfg.AckWait = 500 * time.Millisecond
	if _, err := streams.Provision(ctx, js, scfg); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"A", "B", "C"} {
		if _, err := js.Publish(ctx, "memory.t.fast_ack.store", []byte(w)); err != nil {
			t.Fatal(err)
		}
	}
	consumer := streams.PartitionConsumerName(streams.ModeFastAck, 0)
	first, err := jspull.Fetch(ctx, nc, scfg.Stream, consumer, 3, time.Second, jspull.PinnedGroup(streams.OwnerGroup))
	if err != nil || len(first) != 3 {
		t.Fatalf("first delivery: %d writes, %v", len(first), err)
	}
	kept, gone, err := dropAcked(ctx, nc, scfg.Stream, first)
	if err != nil || len(kept) != 3 || len(gone) != 0 {
		t.Fatalf("delivered once: kept %d, gone %d, %v; want all kept", len(kept), len(gone), err)
	}
	time.Sleep(scfg.AckWait + 200*time.Millisecond) // the ack timers run out
	s, err := js.Stream(ctx, scfg.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.UnpinConsumer(ctx, consumer, streams.OwnerGroup); err != nil { // as a pin time-out would
		t.Fatal(err)
	}
	again, err := jspull.Fetch(ctx, nc, scfg.Stream, consumer, 3, time.Second, jspull.PinnedGroup(streams.OwnerGroup))
	if err != nil || len(again) != 3 {
		t.Fatalf("second delivery: %d writes, %v", len(again), err)
	}
	if err := first[1].Ack(); err != nil { // B, by its first delivery
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	kept, gone, err = dropAcked(ctx, nc, scfg.Stream, again)
	if err != nil || len(gone) != 1 || string(gone[0].Data()) != "B" || len(kept) != 2 {
		t.Fatalf("after B was acked by its first delivery: kept %d, gone %d, %v; want B gone", len(kept), len(gone), err)
	}
}

// takeRecording takes partition 0 of fast_ack for an owner that acks each
// write as it starts it and sends its body on started; the partition is
// released at the end of the test.
func takeRecording(t *testing.T, ctx context.Context, nc *nats.Conn, js jetstream.JetStream, scfg streams.Config) (*Partition, <-chan string) {
	t.Helper()
	started := make(chan string, 8)
	owner := NewPartitions(Config{
		Conn: nc, JS: js, Streams: scfg, Mode: streams.ModeFastAck,
		Batch: 16, MaxBytes: 1 << 20, Log: zerolog.Nop(),
		Hooks: Hooks{Start: func(_ *Partition, msg jetstream.Msg, _ *jetstream.MsgMetadata) func(func()) {
			started <- string(msg.Data())
			return func(done func()) { _ = msg.Ack(); done() }
		}},
	})
	pt, err := owner.Take(ctx, ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pt.Release(context.Background()) })
	return pt, started
}
