package relay

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// The backfill rate against PostgreSQL on loopback, beside the stream's
// raw rate of one-at-a-time acknowledged publishes in the same run
// (docs/BENCHMARKS.md). JETBOX_RELAY_RATE=1 runs it.
func TestBackfillRate(t *testing.T) {
	if os.Getenv("JETBOX_RELAY_RATE") == "" {
		t.Skip("JETBOX_RELAY_RATE=1 measures the backfill rate")
	}
	const n = 20000
	h := newHarness(t)
	w := newWorkload(n, 50, 9)
	h.insert(w.rows)
	cfg := h.relayConfig()
	cfg.BatchSize = DefaultBatchSize
	r := h.newRelay(cfg)
	start := time.Now()
	if err := r.Backfill(context.Background()); err != nil {
		t.Fatal(err)
	}
	relay := time.Since(start)
	nc, js := h.ns.Connect(t)
	_ = nc
	start = time.Now()
	for i := range w.writes {
		msg := nats.NewMsg("memory.raw.fast_ack.store")
		msg.Data = []byte(`{"coord":"1,2,3","payload":{}}`)
		msg.Header.Set("Nats-Msg-Id", fmt.Sprint("raw-", i))
		if _, err := js.PublishMsg(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
	raw := time.Since(start)
	t.Logf("backfill: %d rows (%d writes) in %v = %.0f rows/s, %.0f writes/s; raw acknowledged publishes: %d in %v = %.0f/s",
		n, w.writes, relay.Round(time.Millisecond), n/relay.Seconds(), float64(w.writes)/relay.Seconds(), w.writes, raw.Round(time.Millisecond), float64(w.writes)/raw.Seconds())
}
