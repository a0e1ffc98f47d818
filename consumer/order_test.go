package consumer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jetbox-dev/jetbox/internal/memapi"
	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
)

// Writes to one memory are applied in the order the stream stored them,
// even when a worker has many writes in flight and some of them fail and
// are retried.
func TestWritesToOneMemoryKeepStreamOrderThroughRetries(t *testing.T) {
	h := newHarness(t)
	cfg := h.workerConfig()
	cfg.Concurrency = 32
	cfg.FailureThreshold = 1000
	cfg.BackoffBase = 20 * time.Millisecond
	cfg.BackoffMax = 200 * time.Millisecond
	h.startWorker(cfg)
	// Every fifth request of each tenant fails once, so some writes go back
	// for a retry while later writes to the same memory are already pulled.
	for i := 0; i < 4; i++ {
		h.faults.set(fmt.Sprintf("t%d", i), func(n int) (int, string) {
			if n%5 == 2 {
				return 503, ""
			}
			return 0, ""
		})
	}
	p := h.producer(producer.Config{Mode: streams.ModeFastAck})
	ctx := context.Background()
	const coords, rounds = 10, 6
	for r := 0; r < rounds; r++ {
		for c := 0; c < coords; c++ {
			tenant := fmt.Sprintf("t%d", c%4)
			coord := fmt.Sprintf("%d,0,0", c)
			var err error
			if r%2 == 0 {
				_, err = p.Store(ctx, producer.StoreRequest{Tenant: tenant, Coord: coord, Payload: map[string]any{"r": r}}, producer.WithRequestID(fmt.Sprintf("%d-%d", c, r)))
			} else {
				_, err = p.Delete(ctx, producer.DeleteRequest{Tenant: tenant, Coord: coord}, producer.WithRequestID(fmt.Sprintf("%d-%d", c, r)))
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	h.waitApplied(coords*rounds, 30*time.Second)
	for c := 0; c < coords; c++ {
		tenant, coord := fmt.Sprintf("t%d", c%4), fmt.Sprintf("%d,0,0", c)
		hist := h.store.History(tenant, coord)
		if len(hist) != rounds {
			t.Fatalf("%s %s: %d writes applied, want %d", tenant, coord, len(hist), rounds)
		}
		for r, e := range hist {
			if e.RequestID != fmt.Sprintf("%d-%d", c, r) {
				t.Fatalf("%s %s: write %d applied was %s; order %v", tenant, coord, r, e.RequestID, requestIDs(hist))
			}
		}
	}
}

func requestIDs(hist []memapi.HistoryEntry) []string {
	ids := make([]string, len(hist))
	for i, e := range hist {
		ids[i] = e.RequestID
	}
	return ids
}
