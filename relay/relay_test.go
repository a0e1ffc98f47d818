package relay

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetbox-dev/jetbox/producer"
)

// memoryKey names one memory: a tenant and a coord as the relay writes it.
type memoryKey struct{ tenant, coord string }

// workload is SomaBrain-shaped rows over tenants and a few memories each,
// every carried topic, with the idempotency keys each memory must see, in
// order.
type workload struct {
	rows   []testRow
	want   map[memoryKey][]string
	writes int
}

func newWorkload(nrows, ntenants int, seed uint64) *workload {
	rnd := rand.New(rand.NewPCG(seed, 1))
	w := &workload{want: map[memoryKey][]string{}}
	base := time.Now().Add(-time.Hour)
	expect := func(tenant, coord, key string) {
		k := memoryKey{tenant, coord}
		w.want[k] = append(w.want[k], key)
		w.writes++
	}
	for i := range nrows {
		var tenantID *string
		tenant := "public" // NULL tenant_id: the default tenant
		if t := i % ntenants; t != 0 {
			tenant = fmt.Sprintf("tenant-%02d", t)
			tenantID = ptr(tenant)
		}
		m := rnd.IntN(4)
		coord := producer.FormatCoord([3]float64(coordList(m)))
		next := producer.FormatCoord([3]float64(coordList(m + 1)))
		key := fmt.Sprintf("dk-%05d", i)
		rid := fmt.Sprintf("req-%05d", i)
		// Pairs of rows share created_at, so the id orders them.
		r := testRow{dedupeKey: key, tenant: tenantID, createdAt: base.Add(time.Duration(i/2) * time.Millisecond)}
		switch i % 5 {
		case 0:
			r.topic = TopicStore
			r.payload = map[string]any{"coord": coordList(m), "payload": map[string]any{"n": i, "text": "<b>&"}, "request_id": rid}
			expect(tenant, coord, key)
		case 1:
			// SomaBrain's fast-ack path: a key, the universe in the payload.
			r.topic = TopicStore
			k := fmt.Sprintf("key-%d", m)
			r.payload = map[string]any{"key": k, "payload": map[string]any{"n": i, "universe": "real", "memory_type": "semantic"}, "request_id": rid}
			expect(tenant, producer.CoordFromKey("real", k), key)
		case 2:
			r.topic = TopicBulkStore
			r.payload = map[string]any{"items": []any{
				map[string]any{"coord": coordList(m), "payload": map[string]any{"n": i, "item": 0}},
				map[string]any{"coord": coordList(m + 1), "payload": map[string]any{"n": i, "item": 1}},
			}}
			expect(tenant, coord, key+":0")
			expect(tenant, next, key+":1")
		case 3:
			r.topic = TopicDelete
			r.payload = map[string]any{"coord": coordList(m)}
			expect(tenant, coord, key)
		case 4:
			r.topic = TopicLink
			r.payload = map[string]any{"from_coord": coordList(m), "to_coord": coordList(m + 1), "link_type": "related", "strength": 0.5, "metadata": nil}
			expect(tenant, coord, key)
		}
		w.rows = append(w.rows, r)
	}
	return w
}

// check asserts that every memory saw exactly its writes, in row order.
func (w *workload) check(t *testing.T, h *harness) {
	t.Helper()
	for k, want := range w.want {
		var got []string
		for _, e := range h.store.History(k.tenant, k.coord) {
			got = append(got, e.IdempotencyKey)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("memory %s of %s: applied %v, want each once in row order %v", k.coord, k.tenant, got, want)
		}
	}
	if applied, repeated := h.applied(); applied != uint64(w.writes) || repeated != 0 {
		t.Fatalf("memory API applied %d writes (%d of them repeats), want %d applied once", applied, repeated, w.writes)
	}
}

func (h *harness) waitAllSent(n int, within time.Duration) {
	h.t.Helper()
	waitFor(h.t, within, fmt.Sprintf("%d rows sent", n), func() bool { return h.statusCounts()["sent"] == n })
}

func (h *harness) waitApplied(n int, within time.Duration) {
	h.t.Helper()
	waitFor(h.t, within, fmt.Sprintf("%d writes applied", n), func() bool {
		applied, _ := h.applied()
		return applied >= uint64(n)
	})
}

// Thousands of rows across tenants and all four carried topics reach the
// memory API each exactly once, each memory's writes in row order; a row
// inserted once the backfill is done arrives by notification.
func TestBackfillAndTailDeliverEveryWriteOnceInOrder(t *testing.T) {
	h := newHarness(t)
	h.startWorker()
	if err := InstallTrigger(context.Background(), h.pool); err != nil {
		t.Fatal(err)
	}
	w := newWorkload(3000, 12, 1)
	h.insert(w.rows)
	cfg := h.relayConfig()
	cfg.PollInterval = time.Hour // only a notification can wake the tail
	progress := &syncWriter{}
	cfg.Progress = progress
	r := h.newRelay(cfg)
	h.runRelay(r)
	h.waitAllSent(len(w.rows), 90*time.Second)
	h.waitApplied(w.writes, 90*time.Second)
	w.check(t, h)

	h.insert([]testRow{{topic: TopicStore, dedupeKey: "late", tenant: ptr("tenant-01"),
		payload: map[string]any{"coord": coordList(9), "payload": map[string]any{"late": true}}}})
	h.waitAllSent(len(w.rows)+1, 10*time.Second)
	late := producer.FormatCoord([3]float64(coordList(9)))
	waitFor(t, 10*time.Second, "the late row applied", func() bool { return len(h.store.History("tenant-01", late)) == 1 })
	if !strings.Contains(progress.String(), "relay backfill: 3000/3000 rows") {
		t.Errorf("progress lines do not end at 3000/3000:\n%s", progress.String())
	}
}

// A relay that dies after the outbox acknowledged a batch but before its
// COMMIT leaves the rows pending; the next relay publishes them again and
// the outbox stores them once.
func TestCrashBetweenPublishAndCommitStoresOnce(t *testing.T) {
	h := newHarness(t)
	h.startWorker()
	w := newWorkload(300, 3, 2)
	h.insert(w.rows)
	crashed := make(chan struct{})
	first := h.newRelay(h.relayConfig())
	first.afterPublish = func(ids []int64) error {
		select {
		case <-crashed:
		default:
			close(crashed)
		}
		return errors.New("injected crash")
	}
	err := first.Run(context.Background())
	if !errors.Is(err, errAbandoned) {
		t.Fatalf("first relay: %v, want the abandoned batch", err)
	}
	if n := h.statusCounts()["sent"]; n != 0 {
		t.Fatalf("%d rows marked sent by a relay that never committed", n)
	}
	second := h.newRelay(h.relayConfig())
	h.runRelay(second)
	h.waitAllSent(len(w.rows), 60*time.Second)
	h.waitApplied(w.writes, 60*time.Second)
	time.Sleep(500 * time.Millisecond) // a duplicate, if stored, would be applied by now
	w.check(t, h)
}

// Two relays on one table never reorder a memory's writes, and between
// them move every row once.
func TestTwoRelaysKeepEachMemorysOrder(t *testing.T) {
	h := newHarness(t)
	h.startWorker()
	w := newWorkload(2000, 8, 3)
	h.insert(w.rows)
	for range 2 {
		cfg := h.relayConfig()
		cfg.BatchSize = 20 // many transactions, so the relays meet often
		h.runRelay(h.newRelay(cfg))
	}
	h.waitAllSent(len(w.rows), 90*time.Second)
	h.waitApplied(w.writes, 90*time.Second)
	w.check(t, h)
}

// syncWriter is a strings.Builder safe for the progress goroutine.
type syncWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
