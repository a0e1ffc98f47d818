package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
)

// A memory API that refuses the worker itself (a wrong token: 401 or 403;
// a wrong base URL: 404 to a write) holds every write in the outbox: none
// is dead-lettered, the worker is not ready and says why, and once the
// memory API accepts again every write is applied, once.
func TestMisconfigurationHoldsWritesInsteadOfDeadLetteringThem(t *testing.T) {
	for _, status := range []int{401, 403, 404} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			h := newHarness(t)
			cfg := h.workerConfig()
			cfg.MisconfiguredProbe = 200 * time.Millisecond
			rw := h.startWorker(cfg)
			var refusing atomic.Bool
			refusing.Store(true)
			tenants := []string{"a", "b", "c", "d"}
			for _, tenant := range tenants {
				h.faults.set(tenant, func(int) (int, string) {
					if refusing.Load() {
						return status, ""
					}
					return 0, ""
				})
			}
			p := h.producer(producer.Config{Mode: streams.ModeFastAck})
			ctx := context.Background()
			for i := range 20 {
				if _, err := p.Store(ctx, producer.StoreRequest{Tenant: tenants[i%4], Coord: fmt.Sprintf("%d,0,0", i), Payload: map[string]any{"i": i}}); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, 10*time.Second, "the worker to say the memory API refuses it", func() bool {
				return errors.Is(rw.Ready(), ErrMemoryAPIMisconfigured)
			})
			time.Sleep(2 * time.Second)
			// One probe per interval, not every write retrying: the writes
			// in flight when the refusal came, then about ten probes.
			if refused := len(h.faults.log()); refused > 30 {
				t.Errorf("%d requests while refused: want about one probe per interval", refused)
			}
			if n := len(h.deadLetters()); n != 0 {
				t.Fatalf("%d writes dead-lettered for the worker's misconfiguration", n)
			}
			refusing.Store(false)
			waitFor(t, 15*time.Second, "all 20 applied", func() bool { return h.totals().Applied == 20 })
			if n := len(h.deadLetters()); n != 0 {
				t.Fatalf("%d dead letters after recovery", n)
			}
			waitFor(t, 5*time.Second, "the worker ready again", func() bool { return rw.Ready() == nil })
		})
	}
}
