package consumer

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

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

// A replayer that dies holding a few of a parked tenant's writes, fewer
// than its parked consumer lets out, leaves later writes of the same
// memories in the parking lot. The next owner's replayer is delivered
// those at once, and the dead one's only when their ack wait runs out: it
// must start none before it has them all, or a memory's later writes are
// applied before its earlier ones.
func TestAReplayerTakingOverStartsNothingBeforeTheDeadOnesWritesComeBack(t *testing.T) {
	h := newHarness(t, func(c *streams.Config) {
		c.Partitions = 1
		c.MemberTTL = time.Second
		// Long enough for the next owner to take the partition (the dead
		// owner's pin times out first) and replay everything still in the
		// lot before the dead replayer's writes come back.
		c.AckWait = 15 * time.Second
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

	h.faults.set("A", func(int) (int, string) { return 503, "" })
	p := h.producer(producer.Config{Mode: streams.ModeFastAck})
	ctx := context.Background()
	const coords, rounds = 4, 12
	for r := range rounds {
		for c := range coords {
			_, err := p.Store(ctx, producer.StoreRequest{Tenant: "A", Coord: fmt.Sprintf("%d,0,0", c), Payload: map[string]any{"r": r}}, producer.WithRequestID(fmt.Sprintf("%d-%d", c, r)))
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	const total = coords * rounds
	waitFor(t, 20*time.Second, "A's writes parked", func() bool { return h.parked(t, "A") && h.parkedWrites(t) == total })

	// The memory API comes back for a few writes, enough for the replayer
	// to let several memories' writes out at once, then hangs: each memory
	// has a write stuck in it when the owner dies.
	const answered = 3 * coords
	var calls, stuck atomic.Int64
	release := make(chan struct{})
	h.faults.set("A", func(int) (int, string) {
		if calls.Add(1) <= answered {
			time.Sleep(20 * time.Millisecond)
			return 0, ""
		}
		stuck.Add(1)
		<-release
		return 503, "" // not applied: the dead owner's attempt leaves no trace
	})
	waitFor(t, 20*time.Second, "a write of every memory stuck in the memory API", func() bool { return stuck.Load() >= coords })
	owner.nc.Close() // dies without leaving, its replayer's writes pending
	h.faults.set("A", nil)
	close(release)
	// A write of another tenant gathers the partition at the next owner
	// as soon as the pin is its own, and makes it Sure: without one it
	// would be Sure only an ack wait later, once the dead replayer's writes
	// are back anyway.
	if _, err := p.Store(ctx, producer.StoreRequest{Tenant: "B", Coord: "0,0,0", Payload: map[string]any{}}); err != nil {
		t.Fatal(err)
	}

	parked := parkedConsumer(t, h, "A")
	if parked.NumAckPending >= streams.ParkedMaxAckPending || parked.NumAckPending < coords || parked.NumPending == 0 {
		t.Fatalf("the dead replayer holds %d writes and %d are still in the lot; want from %d to %d held and some in the lot",
			parked.NumAckPending, parked.NumPending, coords, streams.ParkedMaxAckPending-1)
	}
	t.Logf("the dead replayer holds %d writes, %d are still in the lot", parked.NumAckPending, parked.NumPending)

	waitFor(t, 60*time.Second, "A's writes applied", func() bool { return h.store.TenantStats("A").Distinct() == total })
	if got := ownedBy(other, streams.ModeFastAck); len(got) != 1 {
		t.Fatalf("the other worker owns %v", got)
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
	waitFor(t, 20*time.Second, "A unparked", func() bool { return !h.parked(t, "A") && h.parkedWrites(t) == 0 })
	if n := len(h.deadLetters()); n != 0 {
		t.Fatalf("%d dead letters", n)
	}
}

// parkedConsumer is the state of the consumer a tenant's fast_ack writes
// are replayed through.
func parkedConsumer(t *testing.T, h *harness, tenant string) *jetstream.ConsumerInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	addr, err := streams.NewAddress(tenant, streams.ModeFastAck, streams.OpStore)
	if err != nil {
		t.Fatal(err)
	}
	c, err := h.js.Consumer(ctx, h.streams.ParkingStream, h.streams.ParkedConsumerConfig(streams.ModeFastAck, addr.Token).Durable)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// A replayer whose partition is handed over cleanly marks its parked
// consumer released as it ends, having handed back what it held. The next
// owner's replayer then starts at once, although nothing in the quiet
// outbox tells the new owner that the previous one has let go: without
// the mark it would wait until its partition is Sure, the pin's time-out
// and an ack wait after taking it.
func TestAReplayerTakingOverAfterACleanReleaseStartsAtOnce(t *testing.T) {
	h := newHarness(t, func(c *streams.Config) {
		c.Partitions = 1
		c.MemberTTL = time.Second
		c.AckWait = 10 * time.Second
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

	var calls atomic.Int64
	h.faults.set("A", func(int) (int, string) { calls.Add(1); return 503, "" })
	p := h.producer(producer.Config{Mode: streams.ModeFastAck})
	ctx := context.Background()
	const coords, rounds = 4, 4
	for r := range rounds {
		for c := range coords {
			_, err := p.Store(ctx, producer.StoreRequest{Tenant: "A", Coord: fmt.Sprintf("%d,0,0", c), Payload: map[string]any{"r": r}}, producer.WithRequestID(fmt.Sprintf("%d-%d", c, r)))
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	const total = coords * rounds
	waitFor(t, 20*time.Second, "A's writes parked", func() bool { return h.parked(t, "A") && h.parkedWrites(t) == total })
	// The owner's replayer probes the memory API, holding a write.
	before := calls.Load()
	waitFor(t, 10*time.Second, "the owner's replayer probing", func() bool { return calls.Load() > before })

	owner.stop(t) // releases the partition: its replayer hands its write back
	released := time.Now()
	h.faults.set("A", nil)
	waitFor(t, 10*time.Second, "the other worker owning the partition", func() bool {
		return len(ownedBy(other, streams.ModeFastAck)) == 1
	})
	sure := h.streams.PinnedTTL() + h.streams.AckWait
	waitFor(t, sure, "a write of A replayed", func() bool { return h.store.TenantStats("A").Applied > 0 })
	if took, limit := time.Since(released), sure/4; took > limit {
		t.Fatalf("the next owner started replaying %v after the clean release, want within %v (its partition is Sure after %v)", took.Round(time.Millisecond), limit, sure)
	}
	t.Logf("replaying again %v after the clean release", time.Since(released).Round(time.Millisecond))
	// Setting the parked consumer's configuration, as every replayer does
	// before it reads, an older worker's among them, takes the mark off.
	if streams.ParkedReleased(parkedConsumer(t, h, "A").Config) {
		t.Fatal("the parked consumer is still marked released while the next owner replays")
	}

	waitFor(t, 30*time.Second, "A's writes applied", func() bool { return h.store.TenantStats("A").Distinct() == total })
	for c := range coords {
		hist := withoutAdjacentRepeats(h.store.History("A", fmt.Sprintf("%d,0,0", c)))
		for r, e := range hist {
			if len(hist) != rounds || e.RequestID != fmt.Sprintf("%d-%d", c, r) {
				t.Fatalf("memory %d: applied in the order %v", c, requestIDs(hist))
			}
		}
	}
	waitFor(t, 20*time.Second, "A unparked", func() bool { return !h.parked(t, "A") && h.parkedWrites(t) == 0 })
}
