package consumer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
)

// storeN stores n fast_ack writes of tenant, to one coord when one is
// true and to n coords otherwise, and waits for the outbox to hold them.
func storeN(t *testing.T, h *harness, tenant string, n int, one bool) {
	t.Helper()
	p := h.producer(producer.Config{Mode: streams.ModeFastAck})
	for i := range n {
		coord := fmt.Sprintf("%d,0,1", i)
		if one {
			coord = "7,7,7"
		}
		if _, err := p.Store(context.Background(), producer.StoreRequest{Tenant: tenant, Coord: coord, Payload: map[string]any{"i": i}}); err != nil {
			t.Fatal(err)
		}
	}
}

// ackPending is how many writes the partition's owner holds (delivered to
// it and not yet acked).
func ackPending(t *testing.T, h *harness) int {
	t.Helper()
	c, err := h.js.Consumer(context.Background(), h.streams.Stream, streams.PartitionConsumerName(streams.ModeFastAck, 0))
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.NumAckPending
}

// slowFor makes the memory API take d over every write of tenant.
func slowFor(h *harness, tenant string, d time.Duration) {
	h.faults.set(tenant, func(int) (int, string) {
		time.Sleep(d)
		return 0, ""
	})
}

// While every memory API slot is busy, a worker takes no more of a
// partition's writes than SOMABRAIN_OUTBOX_QUEUED_PER_PARTITION waiting
// for one, and the mode's pool of as many more as it has slots; the rest
// wait in the stream, and all are applied.
func TestAWorkerTakesNoMoreWritesThanItCanSoonRun(t *testing.T) {
	h := newHarness(t, func(c *streams.Config) { c.Partitions = 1 })
	const writes, concurrency, queued = 120, 2, 8
	slowFor(h, "busy", 20*time.Millisecond)
	storeN(t, h, "busy", writes, false)
	cfg := h.workerConfig()
	cfg.Concurrency, cfg.QueuedPerPartition = concurrency, queued
	h.startWorker(cfg)

	most := 0
	for h.store.TenantStats("busy").Applied < writes/2 {
		most = max(most, ackPending(t, h))
		time.Sleep(10 * time.Millisecond)
	}
	// Running, waiting (the bound and the pool), and a write on its way
	// between the two counts.
	if limit := concurrency + queued + concurrency + 1; most > limit {
		t.Fatalf("the worker held up to %d writes with %d running at most, want at most %d", most, concurrency, limit)
	}
	h.waitTenantApplied("busy", writes, 30*time.Second)
}

// Writes waiting behind an earlier write to their memory do not count
// against SOMABRAIN_OUTBOX_QUEUED_PER_PARTITION: a burst to one memory
// does not keep the partition from taking, and applying, a neighbour's
// write stored after it.
func TestABurstToOneMemoryDoesNotHoldBackItsNeighbours(t *testing.T) {
	h := newHarness(t, func(c *streams.Config) { c.Partitions = 1 })
	const burst = 40
	slowFor(h, "burst", 25*time.Millisecond)
	storeN(t, h, "burst", burst, true)
	storeN(t, h, "neighbour", 1, false)
	cfg := h.workerConfig()
	cfg.QueuedPerPartition = 4
	h.startWorker(cfg)

	var burstApplied uint64
	waitFor(t, 10*time.Second, "the neighbour's write applied", func() bool {
		burstApplied = h.store.TenantStats("burst").Applied
		return h.store.TenantStats("neighbour").Applied == 1
	})
	if n := burstApplied; n >= burst/2 {
		t.Fatalf("the neighbour's write was applied after %d of the burst's %d writes, want it to pass the burst", n, burst)
	}
	h.waitTenantApplied("burst", burst, 30*time.Second)
}
