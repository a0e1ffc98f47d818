package streams_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/streams"
)

// errPerSubjectFull is the store error the server gives a discard-new
// stream's publish past its per-subject limit (server/store.go).
const errPerSubjectFull = "maximum messages per subject exceeded"

// stored is a write the outbox acknowledged.
type stored struct {
	seq  uint64
	body []byte
}

// publishN publishes n writes to addr with ids prefix0.. and fails the test
// if the outbox refuses one.
func publishN(ctx context.Context, t *testing.T, js jetstream.JetStream, addr streams.Address, prefix string, n int) []stored {
	t.Helper()
	var out []stored
	for i := range n {
		body := fmt.Appendf(nil, `{"coord":"%d,0,0","payload":{}}`, i)
		ack, err := publishWrite(ctx, js, addr, fmt.Sprint(prefix, i), body)
		if err != nil {
			t.Fatalf("%s write %d to %s: %v", prefix, i, addr.Subject(), err)
		}
		out = append(out, stored{ack.Sequence, body})
	}
	return out
}

// assertQuotaRefusal checks that err is the server's per-subject refusal.
func assertQuotaRefusal(t *testing.T, what string, err error) {
	t.Helper()
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != errCodeStreamStoreFailed || apiErr.Description != errPerSubjectFull {
		t.Fatalf("%s = %v, want the server's %q refusal (error code %d)", what, err, errPerSubjectFull, errCodeStreamStoreFailed)
	}
}

// The quota is enforced by the server, for any client: a plain JetStream
// publish past it is refused, on that tenant's subject only, and a
// producer's retry of a write already stored is still a duplicate.
func TestTenantQuotaRefusesOnlyThatTenantModeAndOp(t *testing.T) {
	cfg := streams.DefaultConfig()
	cfg.TenantMaxPending = 5
	js, top, ctx := startOutbox(t, cfg)
	if got := top.Outbox.CachedInfo().Config; got.MaxMsgsPerSubject != 5 || !got.DiscardNewPerSubject || got.Discard != jetstream.DiscardNew {
		t.Fatalf("outbox per-subject limit %d, discard new per subject %v, discard %v; want 5, true, new",
			got.MaxMsgsPerSubject, got.DiscardNewPerSubject, got.Discard)
	}
	flood := mustAddress(t, "acme", streams.ModeFastAck, streams.OpStore)
	acked := publishN(ctx, t, js, flood, "acme-", 5)

	_, err := publishWrite(ctx, js, flood, "acme-5", []byte(`{"coord":"5,0,0","payload":{}}`))
	assertQuotaRefusal(t, "6th fast_ack store of acme", err)

	// The same tenant's other modes and ops, and other tenants, are stored.
	publishN(ctx, t, js, mustAddress(t, "acme", streams.ModeFastAck, streams.OpDelete), "acme-delete-", 1)
	publishN(ctx, t, js, mustAddress(t, "acme", streams.ModeSync, streams.OpStore), "acme-sync-", 1)
	publishN(ctx, t, js, mustAddress(t, "globex", streams.ModeFastAck, streams.OpStore), "globex-", 5)

	// A retry of a stored write is answered as a duplicate, not refused.
	dup, err := publishWrite(ctx, js, flood, "acme-4", acked[4].body)
	if err != nil || !dup.Duplicate || dup.Sequence != acked[4].seq {
		t.Fatalf("retry of acme-4 = %+v, %v; want a duplicate of sequence %d", dup, err, acked[4].seq)
	}
	for _, w := range acked {
		assertStored(ctx, t, top.Outbox, w.seq, w.body)
	}

	// Once a worker has applied two, the tenant may write two more.
	done := fetchAndAck(ctx, t, top.Consumers[streams.ModeFastAck][streams.PartitionOf(flood.Token, cfg.Partitions)], 2)
	for _, seq := range done {
		assertRemoved(ctx, t, top.Outbox, seq)
	}
	publishN(ctx, t, js, flood, "acme-again-", 2)
	_, err = publishWrite(ctx, js, flood, "acme-again-2", []byte(`{"coord":"9,0,0","payload":{}}`))
	assertQuotaRefusal(t, "write past the quota after the drain", err)
}

// An outbox made without a quota gets it in place, keeping its writes.
func TestProvisionSetsTheQuotaOnAnExistingOutbox(t *testing.T) {
	cfg := streams.DefaultConfig()
	cfg.TenantMaxPending = -1
	js, _, ctx := startOutbox(t, cfg)
	acme := mustAddress(t, "acme", streams.ModeSync, streams.OpStore)
	waiting := append(publishN(ctx, t, js, acme, "before-", 2),
		publishN(ctx, t, js, mustAddress(t, "globex", streams.ModeBackground, streams.OpLink), "globex-", 2)...)

	cfg.TenantMaxPending = 5
	top, err := streams.Provision(ctx, js, cfg)
	if err != nil {
		t.Fatalf("Provision with a quota: %v", err)
	}
	info, err := top.Outbox.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Config; got.MaxMsgsPerSubject != 5 || !got.DiscardNewPerSubject {
		t.Fatalf("outbox per-subject limit %d, discard new per subject %v; want 5, true", got.MaxMsgsPerSubject, got.DiscardNewPerSubject)
	}
	if info.State.Msgs != uint64(len(waiting)) {
		t.Fatalf("outbox holds %d writes after the update, want %d", info.State.Msgs, len(waiting))
	}
	for _, w := range waiting {
		assertStored(ctx, t, top.Outbox, w.seq, w.body)
	}
	publishN(ctx, t, js, acme, "after-", 3)
	_, err = publishWrite(ctx, js, acme, "after-3", []byte(`{}`))
	assertQuotaRefusal(t, "6th waiting write of acme", err)

	// Raising the quota is applied in place as well.
	cfg.TenantMaxPending = 8
	if top, err = streams.Provision(ctx, js, cfg); err != nil {
		t.Fatalf("Provision with a higher quota: %v", err)
	}
	if got := top.Outbox.CachedInfo().Config.MaxMsgsPerSubject; got != 8 {
		t.Fatalf("per-subject limit %d after raising the quota, want 8", got)
	}
	publishN(ctx, t, js, acme, "raised-", 3)
	for _, w := range waiting {
		assertStored(ctx, t, top.Outbox, w.seq, w.body)
	}

	// Removing it too.
	cfg.TenantMaxPending = -1
	if top, err = streams.Provision(ctx, js, cfg); err != nil {
		t.Fatalf("Provision without a quota: %v", err)
	}
	if got := top.Outbox.CachedInfo().Config; got.MaxMsgsPerSubject > 0 || got.DiscardNewPerSubject {
		t.Fatalf("per-subject limit %d, discard new per subject %v after removing the quota", got.MaxMsgsPerSubject, got.DiscardNewPerSubject)
	}
	publishN(ctx, t, js, acme, "unlimited-", 3)
}

// The server makes room for a new per-subject limit by deleting the
// oldest writes above it, so Provision refuses a quota a tenant's backlog
// does not leave room for, and changes nothing.
func TestProvisionRefusesAQuotaBelowABacklog(t *testing.T) {
	cfg := streams.DefaultConfig()
	cfg.TenantMaxPending = 20
	js, _, ctx := startOutbox(t, cfg)
	acme := mustAddress(t, "acme", streams.ModeFastAck, streams.OpStore)
	waiting := publishN(ctx, t, js, acme, "w", 8)

	for _, quota := range []int64{5, 15} {
		cfg.TenantMaxPending = quota
		if _, err := streams.Provision(ctx, js, cfg); !errors.Is(err, streams.ErrNotDrained) {
			t.Fatalf("Provision with a quota of %d over a backlog of 8 = %v, want ErrNotDrained", quota, err)
		}
	}
	outbox, err := js.Stream(ctx, cfg.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if got := outbox.CachedInfo().Config.MaxMsgsPerSubject; got != 20 {
		t.Fatalf("per-subject limit %d after the refusals, want 20 unchanged", got)
	}
	for _, w := range waiting {
		assertStored(ctx, t, outbox, w.seq, w.body)
	}

	// Twice the backlog leaves room enough.
	cfg.TenantMaxPending = 16
	top, err := streams.Provision(ctx, js, cfg)
	if err != nil {
		t.Fatalf("Provision with a quota of 16 over a backlog of 8: %v", err)
	}
	if got := top.Outbox.CachedInfo().Config.MaxMsgsPerSubject; got != 16 {
		t.Fatalf("per-subject limit %d, want 16", got)
	}
	for _, w := range waiting {
		assertStored(ctx, t, top.Outbox, w.seq, w.body)
	}
}

func TestProvisionRefusesAQuotaOfZero(t *testing.T) {
	cfg := streams.DefaultConfig()
	for _, quota := range []int64{0, -2} {
		cfg.TenantMaxPending = quota
		if _, err := streams.Provision(context.Background(), nil, cfg); !errors.Is(err, streams.ErrInvalidConfig) {
			t.Errorf("TenantMaxPending %d: %v, want ErrInvalidConfig", quota, err)
		}
	}
}
