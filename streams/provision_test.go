package streams_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/internal/natstest"
	"github.com/jetbox-dev/jetbox/streams"
)

// errCodeStreamStoreFailed is the JetStream API error a discard-new stream
// answers when it is full ("maximum messages exceeded", "maximum bytes
// exceeded"). nats.go has no constant for it.
const errCodeStreamStoreFailed jetstream.ErrorCode = 10077

// startOutbox runs a JetStream server and provisions cfg on it.
func startOutbox(t *testing.T, cfg streams.Config) (jetstream.JetStream, *streams.Topology, context.Context) {
	t.Helper()
	s := natstest.Start(t)
	_, js := s.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	top, err := streams.Provision(ctx, js, cfg)
	if err != nil {
		t.Fatalf("Provision: %v", err)
	}
	return js, top, ctx
}

// publishWrite publishes body the way a producer does: to the address's
// subject, with a Nats-Msg-Id.
func publishWrite(ctx context.Context, js jetstream.JetStream, addr streams.Address, msgID string, body []byte) (*jetstream.PubAck, error) {
	msg := nats.NewMsg(addr.Subject())
	msg.Header.Set(streams.HeaderMsgID, msgID)
	msg.Header.Set(streams.HeaderTenant, addr.Tenant)
	msg.Data = body
	return js.PublishMsg(ctx, msg)
}

func mustAddress(t *testing.T, tenant string, mode streams.Mode, op streams.Op) streams.Address {
	t.Helper()
	addr, err := streams.NewAddress(tenant, mode, op)
	if err != nil {
		t.Fatalf("NewAddress(%q, %s, %s): %v", tenant, mode, op, err)
	}
	return addr
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func streamMsgs(ctx context.Context, t *testing.T, st jetstream.Stream) uint64 {
	t.Helper()
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	return info.State.Msgs
}

// assertStored checks that the write acknowledged at seq is in the stream
// with its body unchanged.
func assertStored(ctx context.Context, t *testing.T, st jetstream.Stream, seq uint64, body []byte) {
	t.Helper()
	got, err := st.GetMsg(ctx, seq)
	if err != nil {
		t.Fatalf("acknowledged write at sequence %d is gone: %v", seq, err)
	}
	if !bytes.Equal(got.Data, body) {
		t.Fatalf("write at sequence %d has body %q, want %q", seq, got.Data, body)
	}
}

func assertRemoved(ctx context.Context, t *testing.T, st jetstream.Stream, seq uint64) {
	t.Helper()
	eventually(t, fmt.Sprintf("sequence %d is removed", seq), func() bool {
		_, err := st.GetMsg(ctx, seq)
		return errors.Is(err, jetstream.ErrMsgNotFound)
	})
}

// fetchAndAck takes n writes from a group and acks them, waiting for the
// server to confirm each ack.
func fetchAndAck(ctx context.Context, t *testing.T, c jetstream.Consumer, n int) []uint64 {
	t.Helper()
	batch, err := c.Fetch(n, jetstream.FetchMaxWait(3*time.Second), jetstream.FetchPriorityGroup(streams.OwnerGroup))
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	var seqs []uint64
	for msg := range batch.Messages() {
		meta, err := msg.Metadata()
		if err != nil {
			t.Fatalf("metadata: %v", err)
		}
		if err := msg.DoubleAck(ctx); err != nil {
			t.Fatalf("ack sequence %d: %v", meta.Sequence.Stream, err)
		}
		seqs = append(seqs, meta.Sequence.Stream)
	}
	if err := batch.Error(); err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if len(seqs) != n {
		t.Fatalf("fetched %d writes, want %d", len(seqs), n)
	}
	return seqs
}

func TestCheckFailsBeforeProvision(t *testing.T) {
	s := natstest.Start(t)
	_, js := s.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := streams.DefaultConfig()

	if err := streams.Check(ctx, js, cfg); !errors.Is(err, streams.ErrNotProvisioned) {
		t.Fatalf("Check on an empty server = %v, want ErrNotProvisioned", err)
	}
	// Check must not create what it finds missing.
	if _, err := js.Stream(ctx, cfg.Stream); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("after Check, stream lookup = %v, want ErrStreamNotFound", err)
	}
}

func TestProvisionIsIdempotent(t *testing.T) {
	cfg := streams.DefaultConfig()
	js, first, ctx := startOutbox(t, cfg)

	if err := streams.Check(ctx, js, cfg); err != nil {
		t.Fatalf("Check after Provision: %v", err)
	}
	addr := mustAddress(t, "acme", streams.ModeFastAck, streams.OpStore)
	body := []byte(`{"coord":"1,2,3"}`)
	ack, err := publishWrite(ctx, js, addr, "w1", body)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}

	second, err := streams.Provision(ctx, js, cfg)
	if err != nil {
		t.Fatalf("second Provision: %v", err)
	}
	if a, b := first.Outbox.CachedInfo().Config, second.Outbox.CachedInfo().Config; !reflect.DeepEqual(a, b) {
		t.Errorf("outbox config changed on re-provision:\n first  %+v\n second %+v", a, b)
	}
	if a, b := first.DLQ.CachedInfo().Config, second.DLQ.CachedInfo().Config; !reflect.DeepEqual(a, b) {
		t.Errorf("DLQ config changed on re-provision:\n first  %+v\n second %+v", a, b)
	}
	for _, m := range streams.Modes {
		if len(first.Consumers[m]) != cfg.Partitions || len(second.Consumers[m]) != cfg.Partitions {
			t.Fatalf("%s has %d then %d consumers, want %d", m, len(first.Consumers[m]), len(second.Consumers[m]), cfg.Partitions)
		}
		for p := range cfg.Partitions {
			a, b := first.Consumers[m][p].CachedInfo(), second.Consumers[m][p].CachedInfo()
			if a.Name != streams.PartitionConsumerName(m, p) {
				t.Errorf("Consumers[%s][%d] is %s", m, p, a.Name)
			}
			if !reflect.DeepEqual(a.Config, b.Config) {
				t.Errorf("consumer %s config changed on re-provision:\n first  %+v\n second %+v", a.Name, a.Config, b.Config)
			}
			if !a.Created.Equal(b.Created) {
				t.Errorf("consumer %s was recreated (created %v, then %v)", a.Name, a.Created, b.Created)
			}
		}
	}
	got := second.Consumers[streams.ModeFastAck][7].CachedInfo().Config
	if got.FilterSubject != "memory.fast_ack.7.*.*" || got.PriorityPolicy != jetstream.PriorityPolicyPinned ||
		!reflect.DeepEqual(got.PriorityGroups, []string{streams.OwnerGroup}) || got.PinnedTTL != 3*streams.PullExpiry ||
		got.MaxAckPending != cfg.MaxAckPending || got.AckWait != cfg.AckWait || got.MaxDeliver != -1 {
		t.Errorf("consumer fast_ack-007: %+v", got)
	}
	members, err := second.Members.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if members.Bucket() != cfg.MembersBucket || members.TTL() != cfg.MemberTTL || members.History() != 1 {
		t.Errorf("members bucket %s, TTL %v, history %d; want %s, %v, 1", members.Bucket(), members.TTL(), members.History(), cfg.MembersBucket, cfg.MemberTTL)
	}
	if got := second.Outbox.CachedInfo().Config; got.Retention != jetstream.WorkQueuePolicy || got.Discard != jetstream.DiscardNew {
		t.Errorf("outbox retention %v discard %v, want work-queue and discard-new", got.Retention, got.Discard)
	}
	// Re-provisioning keeps the writes already waiting.
	assertStored(ctx, t, second.Outbox, ack.Sequence, body)
	if err := streams.Check(ctx, js, cfg); err != nil {
		t.Fatalf("Check after second Provision: %v", err)
	}
}

func TestCheckFailsWhenAConsumerOrBucketIsMissing(t *testing.T) {
	cfg := streams.DefaultConfig()
	js, _, ctx := startOutbox(t, cfg)
	name := streams.PartitionConsumerName(streams.ModeBackground, cfg.Partitions-1)
	if err := js.DeleteConsumer(ctx, cfg.Stream, name); err != nil {
		t.Fatalf("delete consumer: %v", err)
	}
	if err := streams.Check(ctx, js, cfg); !errors.Is(err, streams.ErrNotProvisioned) {
		t.Fatalf("Check without consumer %s = %v, want ErrNotProvisioned", name, err)
	}
	if _, err := streams.Provision(ctx, js, cfg); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	if err := streams.Check(ctx, js, cfg); err != nil {
		t.Fatalf("Check after Provision put %s back: %v", name, err)
	}
	if err := js.DeleteKeyValue(ctx, cfg.MembersBucket); err != nil {
		t.Fatalf("delete members bucket: %v", err)
	}
	if err := streams.Check(ctx, js, cfg); !errors.Is(err, streams.ErrNotProvisioned) {
		t.Fatalf("Check without the members bucket = %v, want ErrNotProvisioned", err)
	}
}

func TestUnroutableSubjectsAreNeverStored(t *testing.T) {
	cfg := streams.DefaultConfig()
	js, top, ctx := startOutbox(t, cfg)

	for _, subject := range []string{
		"memory.t.bogus.store", // unknown mode
		"memory.t.SYNC.store",  // mode in the wrong case
		"memory.t.sync",        // no op
		"memory.sync.store",    // no tenant
		"memories.t.sync.store",
		"memory.sync.0.t.store",   // a stored subject, with a partition of the client's choosing
		"memory.t.sync.store.0",   // the earlier layout's stored subject
		"memory.t.sync.store.x",   // extra token
		"memory.t.sync.store.0.0", // extra tokens
	} {
		_, err := js.Publish(ctx, subject, []byte("{}"), jetstream.WithRetryAttempts(0))
		if !errors.Is(err, jetstream.ErrNoStreamResponse) {
			t.Errorf("publish to %q = %v, want ErrNoStreamResponse (no stream takes it)", subject, err)
		}
	}
	if n := streamMsgs(ctx, t, top.Outbox); n != 0 {
		t.Fatalf("outbox holds %d messages after unroutable publishes, want 0", n)
	}
	// The outbox itself works: a well-formed write is the first it stores.
	ack, err := publishWrite(ctx, js, mustAddress(t, "t", streams.ModeSync, streams.OpStore), "ok", []byte("{}"))
	if err != nil {
		t.Fatalf("publish a valid write: %v", err)
	}
	if ack.Stream != cfg.Stream || ack.Sequence != 1 {
		t.Fatalf("valid write acked as %s #%d, want %s #1", ack.Stream, ack.Sequence, cfg.Stream)
	}
}

// TestFullOutboxRefusesNewWrites checks discard-new: a full outbox refuses the
// write that does not fit, never drops an acknowledged one to make room, and
// takes writes again once workers ack some.
func TestFullOutboxRefusesNewWrites(t *testing.T) {
	tests := []struct {
		name     string
		maxMsgs  int64
		maxBytes int64
	}{
		{"MaxMsgs", 10, -1},
		{"MaxBytes", -1, 2048},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := streams.DefaultConfig()
			cfg.MaxMsgs = tt.maxMsgs
			cfg.MaxBytes = tt.maxBytes
			js, top, ctx := startOutbox(t, cfg)
			addr := mustAddress(t, "acme", streams.ModeSync, streams.OpStore)

			type write struct {
				seq  uint64
				body []byte
			}
			var acked []write
			var refused error
			for i := 0; i < 100; i++ {
				body := fmt.Appendf(nil, `{"coord":"%d,0,0","payload":{"text":"%0100d"}}`, i, i)
				ack, err := publishWrite(ctx, js, addr, fmt.Sprintf("w%d", i), body)
				if err != nil {
					refused = err
					break
				}
				acked = append(acked, write{ack.Sequence, body})
			}
			if refused == nil {
				t.Fatalf("100 writes accepted, want the full outbox to refuse one")
			}
			var apiErr *jetstream.APIError
			if !errors.As(refused, &apiErr) || apiErr.ErrorCode != errCodeStreamStoreFailed {
				t.Fatalf("full outbox refused with %v, want a JetStream store-failed error", refused)
			}
			if tt.maxMsgs > 0 && int64(len(acked)) != tt.maxMsgs {
				t.Fatalf("%d writes accepted before the refusal, want %d", len(acked), tt.maxMsgs)
			}
			t.Logf("%d writes accepted, then refused: %v", len(acked), refused)
			if len(acked) < 3 {
				t.Fatalf("only %d writes accepted before the refusal; the limit is too small to test", len(acked))
			}

			// Every acknowledged write is still there, unchanged.
			info, err := top.Outbox.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.State.Msgs != uint64(len(acked)) {
				t.Fatalf("outbox holds %d writes, %d were acknowledged", info.State.Msgs, len(acked))
			}
			if tt.maxBytes > 0 && info.State.Bytes > uint64(tt.maxBytes) {
				t.Fatalf("outbox holds %d bytes, limit %d", info.State.Bytes, tt.maxBytes)
			}
			for _, w := range acked {
				assertStored(ctx, t, top.Outbox, w.seq, w.body)
			}

			// A producer retrying an acknowledged write while the outbox is
			// full is told it is a duplicate, not refused.
			last := acked[len(acked)-1]
			dup, err := publishWrite(ctx, js, addr, fmt.Sprintf("w%d", len(acked)-1), last.body)
			if err != nil {
				t.Fatalf("retry of an acknowledged write on a full outbox: %v", err)
			}
			if !dup.Duplicate || dup.Sequence != last.seq {
				t.Fatalf("retry acked as %+v, want a duplicate of sequence %d", dup, last.seq)
			}

			// Workers apply and ack two writes; the outbox has room again.
			done := fetchAndAck(ctx, t, top.Consumers[streams.ModeSync][streams.PartitionOf(addr.Token, cfg.Partitions)], 2)
			for _, seq := range done {
				assertRemoved(ctx, t, top.Outbox, seq)
			}
			body := []byte(`{"coord":"9,9,9"}`)
			ack, err := publishWrite(ctx, js, addr, "after-drain", body)
			if err != nil {
				t.Fatalf("write after workers acked some: %v", err)
			}
			assertStored(ctx, t, top.Outbox, ack.Sequence, body)
			for _, w := range acked[2:] {
				assertStored(ctx, t, top.Outbox, w.seq, w.body)
			}
		})
	}
}

func TestWorkQueueRemovesOnlyAckedWrites(t *testing.T) {
	cfg := streams.DefaultConfig()
	cfg.AckWait = 300 * time.Millisecond
	js, top, ctx := startOutbox(t, cfg)

	syncAddr := mustAddress(t, "acme", streams.ModeSync, streams.OpStore)
	fastAddr := mustAddress(t, "acme", streams.ModeFastAck, streams.OpStore)
	ackedBody, unackedBody, otherBody := []byte(`{"n":1}`), []byte(`{"n":2}`), []byte(`{"n":3}`)
	var seqs []uint64
	for i, w := range []struct {
		addr streams.Address
		body []byte
	}{{syncAddr, ackedBody}, {syncAddr, unackedBody}, {fastAddr, otherBody}} {
		ack, err := publishWrite(ctx, js, w.addr, fmt.Sprintf("w%d", i), w.body)
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		seqs = append(seqs, ack.Sequence)
	}

	// A fetch shorter than AckWait returns what is waiting now, before a
	// redelivery can come into the same batch.
	partition := top.Consumers[streams.ModeSync][streams.PartitionOf(syncAddr.Token, cfg.Partitions)]
	batch, err := partition.Fetch(10, jetstream.FetchMaxWait(100*time.Millisecond), jetstream.FetchPriorityGroup(streams.OwnerGroup))
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	var got []jetstream.Msg
	for msg := range batch.Messages() {
		got = append(got, msg)
	}
	if len(got) != 2 || !bytes.Equal(got[0].Data(), ackedBody) || !bytes.Equal(got[1].Data(), unackedBody) {
		t.Fatalf("sync group got %d writes, want its 2 in order (and not the fast_ack one)", len(got))
	}
	if err := got[0].DoubleAck(ctx); err != nil {
		t.Fatalf("ack: %v", err)
	}
	// got[1] is held and never acked.

	assertRemoved(ctx, t, top.Outbox, seqs[0])
	// Wait past AckWait: the un-acked write is redelivered, not removed.
	redelivered, err := partition.Fetch(1, jetstream.FetchMaxWait(3*time.Second), jetstream.FetchPriorityGroup(streams.OwnerGroup))
	if err != nil {
		t.Fatalf("fetch redelivery: %v", err)
	}
	var again []jetstream.Msg
	for msg := range redelivered.Messages() {
		again = append(again, msg)
	}
	if len(again) != 1 || !bytes.Equal(again[0].Data(), unackedBody) {
		t.Fatalf("after AckWait got %d redeliveries, want the un-acked write once", len(again))
	}
	assertStored(ctx, t, top.Outbox, seqs[1], unackedBody)
	assertStored(ctx, t, top.Outbox, seqs[2], otherBody)
	if n := streamMsgs(ctx, t, top.Outbox); n != 2 {
		t.Fatalf("outbox holds %d writes, want 2 (un-acked sync and fast_ack)", n)
	}
}
