package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
)

// A tenant that floods the outbox while nobody applies its writes is
// refused past its quota; another tenant's writes are stored and, once a
// worker runs, applied, and so are the flooding tenant's first five.
func TestTenantQuotaHoldsBackOnlyTheFloodingTenant(t *testing.T) {
	h := newHarness(t, func(c *streams.Config) { c.TenantMaxPending = 5 })
	p := h.producer(producer.Config{Mode: streams.ModeFastAck})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	write := func(tenant string, i int) error {
		_, err := p.Store(ctx, producer.StoreRequest{Tenant: tenant, Key: fmt.Sprint("k", i), Payload: json.RawMessage(`{"n":1}`)})
		return err
	}
	for i := range 5 {
		if err := write("acme", i); err != nil {
			t.Fatalf("acme write %d: %v", i+1, err)
		}
	}
	err := write("acme", 5)
	var full *producer.TenantBacklogFullError
	if !errors.As(err, &full) || full.Tenant != "acme" {
		t.Fatalf("acme's 6th write: %v, want a full backlog for acme", err)
	}
	for i := range 5 {
		if err := write("globex", i); err != nil {
			t.Fatalf("globex write %d while acme's backlog is full: %v", i+1, err)
		}
	}

	h.startWorker(h.workerConfig())
	h.waitTenantApplied("globex", 5, 10*time.Second)
	h.waitTenantApplied("acme", 5, 10*time.Second)
	// Drained, acme may write again.
	if err := write("acme", 5); err != nil {
		t.Fatalf("acme write after its backlog was applied: %v", err)
	}
	h.waitTenantApplied("acme", 6, 10*time.Second)
}
