package consumer

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
)

// A tenant whose memory API fails is parked: its backlog moves out of the
// partition it shares with everybody, so the others' writes flow at once,
// and when its memory API recovers its writes are applied, each memory's in
// the order they were written, and the tenant is unparked.
func TestFailingTenantIsParkedOutOfItsNeighboursWayThenReplayedInOrder(t *testing.T) {
	// One partition, and room for only 16 writes held in it: without
	// parking, A's backlog alone would fill it and B would wait for A.
	h := newHarness(t, func(c *streams.Config) { c.Partitions = 1; c.MaxAckPending = 16 })
	cfg := h.workerConfig()
	cfg.ResetInterval = 500 * time.Millisecond
	cfg.FailureThreshold = 2
	w := h.startWorker(cfg)
	h.faults.set("A", func(int) (int, string) { return 503, "" })
	p := h.producer(producer.Config{Mode: streams.ModeFastAck})
	ctx := context.Background()

	// A's backlog first: store, delete, store on each of 20 memories.
	const coords, rounds = 20, 3
	for r := range rounds {
		for c := range coords {
			coord, id := fmt.Sprintf("%d,0,0", c), fmt.Sprintf("A-%d-%d", c, r)
			var err error
			if r == 1 {
				_, err = p.Delete(ctx, producer.DeleteRequest{Tenant: "A", Coord: coord}, producer.WithRequestID(id))
			} else {
				_, err = p.Store(ctx, producer.StoreRequest{Tenant: "A", Coord: coord, Payload: map[string]any{"r": r}}, producer.WithRequestID(id))
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, 10*time.Second, "A parked", func() bool { return h.parked(t, "A") })
	// B's writes come after A's 60 in the one partition's stream order.
	for i := range 50 {
		if _, err := p.Store(ctx, producer.StoreRequest{Tenant: "B", Key: fmt.Sprint(i), Payload: map[string]any{}}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "B applied while A is down", func() bool { return h.store.TenantStats("B").Applied == 50 })
	waitFor(t, 10*time.Second, "A's backlog moved aside", func() bool { return h.parkedWrites(t) == coords*rounds })
	if got := h.store.TenantStats("A").Applied; got != 0 {
		t.Fatalf("%d of A's writes applied while its memory API fails", got)
	}
	// While parked, A's memory API sees about one probe per reset interval.
	before := len(h.faults.forTenant("A"))
	time.Sleep(2 * time.Second)
	if probes := len(h.faults.forTenant("A")) - before; probes > 2*int(2*time.Second/cfg.ResetInterval)+1 {
		t.Fatalf("%d attempts at A's failing memory API in 2s while parked", probes)
	}
	if s := breakerState(w.Status(), "fast_ack", "A"); s == "closed" || s == "" {
		t.Fatalf("A's breaker is %q while its memory API fails", s)
	}

	h.faults.set("A", nil)
	waitFor(t, 30*time.Second, "A's writes applied after recovery", func() bool { return h.store.TenantStats("A").Applied == coords*rounds })
	for c := range coords {
		hist := h.store.History("A", fmt.Sprintf("%d,0,0", c))
		for r, e := range hist {
			if want := fmt.Sprintf("A-%d-%d", c, r); e.RequestID != want || len(hist) != rounds {
				t.Fatalf("memory %d: applied %v, want A-%d-0, A-%d-1, A-%d-2", c, requestIDs(hist), c, c, c)
			}
		}
	}
	waitFor(t, 10*time.Second, "A unparked", func() bool { return !h.parked(t, "A") && h.parkedWrites(t) == 0 })
	// Unparked, A's next write goes straight to the memory API.
	if _, err := p.Store(ctx, producer.StoreRequest{Tenant: "A", Coord: "0,0,0", Payload: map[string]any{"after": true}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "A's new write applied", func() bool { return h.store.TenantStats("A").Applied == coords*rounds+1 })
	if got := h.totals(); got.Repeated != 0 || len(h.deadLetters()) != 0 {
		t.Fatalf("after recovery: %+v, %d dead letters", got, len(h.deadLetters()))
	}
}

// parked reports whether the parking bucket lists the tenant in fast_ack.
func (h *harness) parked(t *testing.T, tenant string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	kv, err := h.js.KeyValue(ctx, h.streams.ParkingBucket)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := streams.NewAddress(tenant, streams.ModeFastAck, streams.OpStore)
	if err != nil {
		t.Fatal(err)
	}
	_, err = kv.Get(ctx, string(streams.ModeFastAck)+"."+addr.Token)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

// parkedWrites is the number of writes waiting in the parking stream.
func (h *harness) parkedWrites(t *testing.T) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := h.js.Stream(ctx, h.streams.ParkingStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}
