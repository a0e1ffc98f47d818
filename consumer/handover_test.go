package consumer

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetbox-dev/jetbox/internal/memapi"
	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
)

// Workers share the partitions out, and writes to one memory are applied in
// the order the stream stored them while workers join, one dies without a
// word and another leaves: each partition's writes go to one owner at a
// time, and a dead owner's writes come back before any later one.
func TestOrderHoldsWhileWorkersJoinDieAndLeave(t *testing.T) {
	h := newHarness(t, func(c *streams.Config) {
		c.Partitions = 4
		c.MaxAckPending = 32
		// The others see a dead worker gone after 1s, well before its
		// writes' ack wait runs out: only the pin keeps them from taking
		// its partitions while those writes are still outstanding.
		c.MemberTTL = time.Second
		c.AckWait = 3 * time.Second
	})
	cfg := h.workerConfig()
	cfg.RequestTimeout = time.Second
	cfg.FailureThreshold = 1000
	cfg.MaxAttempts = 1000
	cfg.BackoffBase = 50 * time.Millisecond
	cfg.BackoffMax = 200 * time.Millisecond
	// Every other request fails, so at any moment a worker holds writes
	// waiting for a retry, with later writes to the same memories behind
	// them: those are the writes a dying worker must not let anyone
	// overtake.
	const tenants, coords, rounds = 8, 5, 9
	for i := range tenants {
		h.faults.set(fmt.Sprintf("t%d", i), func(n int) (int, string) {
			if n%2 == 0 {
				return 503, ""
			}
			return 0, ""
		})
	}
	// Each worker names itself to the memory API, so a failure can say who
	// applied what when.
	named := func(name string) Config {
		c := cfg
		c.HTTPClient = &http.Client{Transport: namedTransport{name}}
		return c
	}
	doomed := h.startWorker(named("doomed"))
	leaving := h.startWorker(named("leaving"))
	// The first worker up owns all four for a moment, until the second
	// joins and it lets two go.
	waitFor(t, 10*time.Second, "the workers own 2 partitions each", func() bool {
		a, b := ownedBy(doomed, streams.ModeFastAck), ownedBy(leaving, streams.ModeFastAck)
		return len(a) == 2 && len(b) == 2 && !slices.ContainsFunc(a, func(p int) bool { return slices.Contains(b, p) })
	})

	// Each memory's writes are published one after the other (fast_ack
	// returns once the stream stored the write), memories in parallel.
	p := h.producer(producer.Config{Mode: streams.ModeFastAck})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, tenants*coords)
	for i := range tenants * coords {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tenant, coord := fmt.Sprintf("t%d", i%tenants), fmt.Sprintf("%d,1,1", i)
			for r := range rounds {
				time.Sleep(120 * time.Millisecond)
				id := fmt.Sprintf("%d-%d", i, r)
				var err error
				if r%2 == 1 {
					_, err = p.Delete(ctx, producer.DeleteRequest{Tenant: tenant, Coord: coord}, producer.WithRequestID(id))
				} else {
					_, err = p.Store(ctx, producer.StoreRequest{Tenant: tenant, Coord: coord, Payload: map[string]any{"r": r}}, producer.WithRequestID(id))
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}

	time.Sleep(300 * time.Millisecond)
	t.Logf("%s crash; doomed owned %v, leaving %v", time.Now().Format("15:04:05.000"), ownedBy(doomed, streams.ModeFastAck), ownedBy(leaving, streams.ModeFastAck))
	doomed.nc.Close() // dies without leaving: its share moves once its heartbeat and pins expire
	newcomer := h.startWorker(named("newcomer"))
	time.Sleep(300 * time.Millisecond)
	t.Logf("%s leave; newcomer owns %v, leaving %v", time.Now().Format("15:04:05.000"), ownedBy(newcomer, streams.ModeFastAck), ownedBy(leaving, streams.ModeFastAck))
	leaving.stop(t) // leaves: hands its partitions over at once
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	const total = tenants * coords * rounds
	h.waitApplied(total, 60*time.Second)
	if got := ownedBy(newcomer, streams.ModeFastAck); len(got) != 4 {
		t.Fatalf("the last worker standing owns partitions %v, want all 4", got)
	}
	for i := range tenants * coords {
		tenant, coord := fmt.Sprintf("t%d", i%tenants), fmt.Sprintf("%d,1,1", i)
		// A write a crashed worker had applied but not acked is applied
		// again by the next owner, right after itself: the memory API
		// reads no idempotency key, and the repeat changes nothing.
		hist := withoutAdjacentRepeats(h.store.History(tenant, coord))
		if len(hist) != rounds {
			t.Fatalf("%s %s: %d writes applied, want %d: %v", tenant, coord, len(hist), rounds, requestIDs(hist))
		}
		for r, e := range hist {
			if e.RequestID != fmt.Sprintf("%d-%d", i, r) {
				for _, rec := range h.faults.forTenant(tenant) {
					if id := rec.Header.Get("X-Request-ID"); strings.HasPrefix(id, fmt.Sprint(i, "-")) {
						t.Logf("%s %s %d from %s", rec.At.Format("15:04:05.000"), id, rec.Status, rec.Header.Get("X-Test-Worker"))
					}
				}
				t.Fatalf("%s %s: applied in the order %v", tenant, coord, requestIDs(hist))
			}
		}
	}
	if got := h.totals(); got.Applied-got.Repeated != total {
		t.Fatalf("memory API counted %+v, want %d distinct writes applied", got, total)
	}
}

// withoutAdjacentRepeats drops an entry that repeats the one before it.
func withoutAdjacentRepeats(hist []memapi.HistoryEntry) []memapi.HistoryEntry {
	var out []memapi.HistoryEntry
	for _, e := range hist {
		if n := len(out); n > 0 && out[n-1].IdempotencyKey == e.IdempotencyKey {
			continue
		}
		out = append(out, e)
	}
	return out
}

// ownedBy lists the partitions of a mode a worker owns.
func ownedBy(w *runningWorker, mode streams.Mode) []int {
	for _, g := range w.Status().Groups {
		if g.Group == string(mode) {
			return g.Partitions
		}
	}
	return nil
}

type namedTransport struct{ name string }

func (n namedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r.Header.Set("X-Test-Worker", n.name)
	return http.DefaultTransport.RoundTrip(r)
}
