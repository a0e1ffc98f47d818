package consumer

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
)

// A parked tenant's writes to different memories are replayed at once,
// each memory's in the order they were written, while the worker replaying
// them dies without a word and the next one hands the partition over to a
// third: each write is applied once, or again right after itself when a
// worker died between the memory API's answer and its ack.
func TestParkedWritesAreReplayedInParallelInOrderThroughACrashAndAHandOver(t *testing.T) {
	h := newHarness(t, func(c *streams.Config) {
		c.Partitions = 1
		c.MemberTTL = time.Second
		c.AckWait = 3 * time.Second
	})
	cfg := h.workerConfig()
	cfg.ResetInterval = 300 * time.Millisecond
	cfg.FailureThreshold = 2
	cfg.MaxAttempts = 1000
	first, second := h.startWorker(cfg), h.startWorker(cfg)
	var owner, other *runningWorker
	waitFor(t, 10*time.Second, "one worker owns the partition", func() bool {
		switch {
		case len(ownedBy(first, streams.ModeFastAck)) == 1:
			owner, other = first, second
		case len(ownedBy(second, streams.ModeFastAck)) == 1:
			owner, other = second, first
		}
		return owner != nil
	})

	down := func(int) (int, string) { return 503, "" }
	h.faults.set("A", down)
	p := h.producer(producer.Config{Mode: streams.ModeFastAck})
	ctx := context.Background()
	const coords, rounds = 12, 16
	for r := range rounds {
		for c := range coords {
			coord, id := fmt.Sprintf("%d,0,0", c), fmt.Sprintf("%d-%d", c, r)
			var err error
			if r%2 == 1 {
				_, err = p.Delete(ctx, producer.DeleteRequest{Tenant: "A", Coord: coord}, producer.WithRequestID(id))
			} else {
				_, err = p.Store(ctx, producer.StoreRequest{Tenant: "A", Coord: coord, Payload: map[string]any{"r": r}}, producer.WithRequestID(id))
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	const total = coords * rounds
	waitFor(t, 20*time.Second, "A's writes parked", func() bool { return h.parked(t, "A") && h.parkedWrites(t) == total })

	// The memory API comes back, slowly: a memory's writes take a while, and
	// the replayer has several memories' writes in flight at once.
	var inFlight, most atomic.Int64
	h.faults.set("A", func(int) (int, string) {
		n := inFlight.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(100 * time.Millisecond)
		inFlight.Add(-1)
		return 0, ""
	})
	applied := func() uint64 { return h.store.TenantStats("A").Applied }
	waitFor(t, 20*time.Second, "a quarter of A's writes replayed", func() bool { return applied() >= total/4 })
	owner.nc.Close() // dies without leaving, its replayer's writes pending
	waitFor(t, 30*time.Second, "the other worker replaying", func() bool {
		return len(ownedBy(other, streams.ModeFastAck)) == 1 && applied() >= total/2
	})
	newcomer := h.startWorker(cfg)
	time.Sleep(500 * time.Millisecond)
	other.stop(t) // hands the partition, and A's replay, over
	waitFor(t, 60*time.Second, "A's writes applied", func() bool { return h.store.TenantStats("A").Distinct() == total })
	if got := ownedBy(newcomer, streams.ModeFastAck); len(got) != 1 {
		t.Fatalf("the newcomer owns %v", got)
	}
	for c := range coords {
		hist := withoutAdjacentRepeats(h.store.History("A", fmt.Sprintf("%d,0,0", c)))
		if len(hist) != rounds {
			t.Fatalf("memory %d: %d writes applied, want %d: %v", c, len(hist), rounds, requestIDs(hist))
		}
		for r, e := range hist {
			if e.RequestID != fmt.Sprintf("%d-%d", c, r) {
				t.Fatalf("memory %d: applied in the order %v", c, requestIDs(hist))
			}
		}
	}
	if most.Load() < 2 {
		t.Fatalf("at most %d of A's writes were replayed at once", most.Load())
	}
	waitFor(t, 20*time.Second, "A unparked", func() bool { return !h.parked(t, "A") && h.parkedWrites(t) == 0 })
	if n := len(h.deadLetters()); n != 0 {
		t.Fatalf("%d dead letters", n)
	}
	t.Logf("at most %d writes at once; %+v", most.Load(), h.store.TenantStats("A"))
}
