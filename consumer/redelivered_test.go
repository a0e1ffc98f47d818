package consumer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jetbox-dev/jetbox/internal/jspull"
	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
)

// A partition's previous owner can hand a write back after the server has
// already redelivered it to the new owner (its ack timer ran out while the
// previous owner was still finishing): the new owner is then delivered the
// same write twice. It must neither count the copy as another pending
// write, and start before an older write the previous owner handed back
// with a delay has arrived, nor apply the write twice.
func TestAWriteDeliveredTwiceToTheNewOwnerKeepsTheOrder(t *testing.T) {
	h := newHarness(t, func(c *streams.Config) { c.Partitions = 1 })
	p := h.producer(producer.Config{Mode: streams.ModeFastAck})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const writes = 3
	for i := range writes {
		if _, err := p.Store(ctx, producer.StoreRequest{Tenant: "t", Coord: "1,2,3", Payload: map[string]any{"i": i}}, producer.WithRequestID(fmt.Sprint("w", i))); err != nil {
			t.Fatal(err)
		}
	}

	// The previous owner: pinned, holding all three.
	old, err := jspull.Fetch(ctx, h.nc, h.streams.Stream, streams.PartitionConsumerName(streams.ModeFastAck, 0), writes, 2*time.Second, jspull.PinnedGroup(streams.OwnerGroup))
	if err != nil || len(old) != writes {
		t.Fatalf("previous owner fetched %d writes: %v", len(old), err)
	}
	w := h.startWorker(h.workerConfig())
	waitFor(t, 10*time.Second, "the new owner pulls partition 0", func() bool { return len(ownedBy(w, streams.ModeFastAck)) == 1 })

	// It hands the first write back with a delay (its last attempt got no
	// answer), the others at once, and lets go of the pin.
	if err := old[0].NakWithDelay(1500 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	for _, m := range old[1:] {
		if err := m.Nak(); err != nil {
			t.Fatal(err)
		}
	}
	s, err := h.js.Stream(ctx, h.streams.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.UnpinConsumer(ctx, streams.PartitionConsumerName(streams.ModeFastAck, 0), streams.OwnerGroup); err != nil {
		t.Fatal(err)
	}
	// The new owner has the later two; they reach it a second time.
	time.Sleep(300 * time.Millisecond)
	// (A client library refuses to settle a message twice; the server
	// takes the second Nak.)
	for _, m := range old[1:] {
		if err := h.nc.Publish(m.Reply(), []byte("-NAK")); err != nil {
			t.Fatal(err)
		}
	}

	c, err := h.js.Consumer(ctx, h.streams.Stream, streams.PartitionConsumerName(streams.ModeFastAck, 0))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "every write settled", func() bool {
		info, err := c.Info(ctx)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	})
	var got []string
	for _, e := range h.store.History("t", "1,2,3") {
		got = append(got, e.RequestID)
	}
	if fmt.Sprint(got) != "[w0 w1 w2]" {
		t.Fatalf("applied %v, want [w0 w1 w2]: each once, in stream order", got)
	}
}
