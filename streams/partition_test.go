package streams_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/internal/natstest"
	"github.com/jetbox-dev/jetbox/streams"
)

// The server's partition(P,1) transform and PartitionOf agree, for every
// tenant: a worker can tell which partition holds a tenant's writes.
func TestStoredSubjectCarriesTheTenantsPartition(t *testing.T) {
	for _, partitions := range []int{16, 7} {
		t.Run(strconv.Itoa(partitions), func(t *testing.T) {
			cfg := streams.DefaultConfig()
			cfg.Partitions = partitions
			js, top, ctx := startOutbox(t, cfg)

			tenants := []string{"acme", "acme.eu", "東京", "a b", "~", "*", ">", strings.Repeat("z", 128)}
			for i := range 300 {
				tenants = append(tenants, fmt.Sprintf("tenant-%d", i))
			}
			want := map[streams.Mode][]uint64{}
			for _, m := range streams.Modes {
				want[m] = make([]uint64, partitions)
			}
			for i, tenant := range tenants {
				addr := mustAddress(t, tenant, streams.Modes[i%len(streams.Modes)], streams.Ops[i%len(streams.Ops)])
				ack, err := publishWrite(ctx, js, addr, fmt.Sprintf("w%d", i), []byte("{}"))
				if err != nil {
					t.Fatalf("publish %s: %v", addr.Subject(), err)
				}
				got, err := top.Outbox.GetMsg(ctx, ack.Sequence)
				if err != nil {
					t.Fatal(err)
				}
				p := streams.PartitionOf(addr.Token, partitions)
				if stored := streams.StoredSubject(addr, p); got.Subject != stored {
					t.Fatalf("tenant %q: stored as %q, want %q (PartitionOf = %d)", tenant, got.Subject, stored, p)
				}
				parsed, err := streams.ParseSubject(got.Subject)
				if err != nil || parsed.Partition != p || parsed.Tenant != tenant {
					t.Fatalf("ParseSubject(%q) = %+v, %v", got.Subject, parsed, err)
				}
				want[addr.Mode][p]++
			}

			// Each partition's consumer has exactly its partition's writes.
			used := 0
			for _, m := range streams.Modes {
				for p, c := range top.Consumers[m] {
					// A consumer counts newly stored writes a moment after
					// the publish is acknowledged.
					var info *jetstream.ConsumerInfo
					for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
						var err error
						if info, err = c.Info(ctx); err != nil {
							t.Fatal(err)
						}
						if info.NumPending == want[m][p] || time.Now().After(deadline) {
							break
						}
					}
					if info.NumPending != want[m][p] {
						t.Errorf("consumer %s has %d writes pending, want %d", info.Name, info.NumPending, want[m][p])
					}
					if want[m][p] > 0 {
						used++
					}
				}
			}
			if used < len(streams.Modes)*partitions*3/4 {
				t.Errorf("%d tenants used only %d of %d partitions", len(tenants), used, len(streams.Modes)*partitions)
			}
		})
	}
}

func TestProvisionRefusesBadPartitions(t *testing.T) {
	s := natstest.Start(t)
	_, js := s.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, p := range []int{0, -1, streams.MaxPartitions + 1} {
		cfg := streams.DefaultConfig()
		cfg.Partitions = p
		_, err := streams.Provision(ctx, js, cfg)
		if !errors.Is(err, streams.ErrInvalidConfig) || !strings.Contains(err.Error(), "Partitions") {
			t.Errorf("Provision with %d partitions = %v, want ErrInvalidConfig naming Partitions", p, err)
		}
	}
	if _, err := js.Stream(ctx, streams.DefaultConfig().Stream); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("a refused Provision created the stream: %v", err)
	}
	// More consumers than the server allows a stream by default (1000).
	cfg := streams.DefaultConfig()
	cfg.Partitions = 350
	cfg.Storage = jetstream.MemoryStorage
	if _, err := streams.Provision(ctx, js, cfg); err != nil {
		t.Fatalf("Provision with %d partitions: %v", cfg.Partitions, err)
	}
}

// unpartitionedOutbox makes the outbox as the previous layout did: the
// stream takes memory.*.<mode>.> without a transform, and one consumer per
// mode is named after it.
func unpartitionedOutbox(ctx context.Context, t *testing.T, js jetstream.JetStream, cfg streams.Config) jetstream.Stream {
	t.Helper()
	sc := cfg.OutboxConfig()
	sc.SubjectTransform = nil
	sc.Subjects = nil
	for _, m := range streams.Modes {
		sc.Subjects = append(sc.Subjects, "memory.*."+string(m)+".>")
	}
	stream, err := js.CreateStream(ctx, sc)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range streams.Modes {
		if _, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
			Durable: string(m), FilterSubject: "memory.*." + string(m) + ".>", AckPolicy: jetstream.AckExplicitPolicy, MaxDeliver: -1,
		}); err != nil {
			t.Fatal(err)
		}
	}
	return stream
}

// An outbox of the unpartitioned layout is partitioned once it is drained:
// until then Provision refuses and changes nothing, so the previous
// version's workers can finish.
func TestProvisionPartitionsADrainedUnpartitionedOutbox(t *testing.T) {
	s := natstest.Start(t)
	_, js := s.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := streams.DefaultConfig()
	stream := unpartitionedOutbox(ctx, t, js, cfg)

	old := mustAddress(t, "acme", streams.ModeFastAck, streams.OpStore)
	if _, err := publishWrite(ctx, js, old, "old", []byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	_, err := streams.Provision(ctx, js, cfg)
	if !errors.Is(err, streams.ErrNotDrained) || !strings.Contains(err.Error(), "1 writes") {
		t.Fatalf("Provision over an undrained unpartitioned outbox = %v, want ErrNotDrained counting 1 write", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.SubjectTransform != nil || info.Config.Subjects[0] != "memory.*.sync.>" {
		t.Fatalf("a refused Provision changed the stream: %+v", info.Config)
	}
	legacy, err := js.Consumer(ctx, cfg.Stream, string(streams.ModeFastAck))
	if err != nil {
		t.Fatalf("a refused Provision removed the legacy consumer: %v", err)
	}

	// The previous version's worker applies the write.
	batch, err := legacy.Fetch(1, jetstream.FetchMaxWait(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for msg := range batch.Messages() {
		if err := msg.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the old write is acked", func() bool { return streamMsgs(ctx, t, stream) == 0 })

	top, err := streams.Provision(ctx, js, cfg)
	if err != nil {
		t.Fatalf("Provision over a drained unpartitioned outbox: %v", err)
	}
	for _, m := range streams.Modes {
		if _, err := js.Consumer(ctx, cfg.Stream, string(m)); !errors.Is(err, jetstream.ErrConsumerNotFound) {
			t.Errorf("legacy consumer %s: %v, want it deleted", m, err)
		}
	}
	if err := streams.Check(ctx, js, cfg); err != nil {
		t.Fatalf("Check: %v", err)
	}
	ack, err := publishWrite(ctx, js, old, "new", []byte(`{"n":2}`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := top.Outbox.GetMsg(ctx, ack.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	p := streams.PartitionOf(old.Token, cfg.Partitions)
	if want := streams.StoredSubject(old, p); got.Subject != want {
		t.Fatalf("write stored as %q, want %q", got.Subject, want)
	}
	fetchAndAck(ctx, t, top.Consumers[streams.ModeFastAck][p], 1)
}

// Fewer partitions: the consumers of the partitions beyond the new count
// are deleted once they hold nothing, never before.
func TestProvisionRemovesSurplusPartitionsOnlyWhenDrained(t *testing.T) {
	cfg := streams.DefaultConfig()
	cfg.Partitions = 4
	js, top, ctx := startOutbox(t, cfg)

	addr := storeOneFor(ctx, t, js, streams.ModeBackground, streams.OpDelete, func(token string) bool {
		return streams.PartitionOf(token, 4) == 3
	})

	smaller := cfg
	smaller.Partitions = 2
	_, err := streams.Provision(ctx, js, smaller)
	if !errors.Is(err, streams.ErrNotDrained) || !strings.Contains(err.Error(), "background-003") {
		t.Fatalf("Provision to 2 partitions with a write in partition 3 = %v, want ErrNotDrained naming background-003", err)
	}
	info, err := top.Outbox.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Config.SubjectTransform.Destination; !strings.Contains(got, "partition(4,1)") {
		t.Fatalf("a refused Provision changed the transform to %q", got)
	}
	if err := streams.Check(ctx, js, cfg); err != nil {
		t.Fatalf("a refused Provision removed consumers: %v", err)
	}

	// Its owner applies it; now the partition may go.
	fetchAndAck(ctx, t, top.Consumers[streams.ModeBackground][3], 1)
	shrunk, err := streams.Provision(ctx, js, smaller)
	if err != nil {
		t.Fatalf("Provision to 2 partitions once drained: %v", err)
	}
	for _, m := range streams.Modes {
		if len(shrunk.Consumers[m]) != 2 {
			t.Errorf("%s has %d consumers, want 2", m, len(shrunk.Consumers[m]))
		}
		for p := 2; p < 4; p++ {
			name := streams.PartitionConsumerName(m, p)
			if _, err := js.Consumer(ctx, cfg.Stream, name); !errors.Is(err, jetstream.ErrConsumerNotFound) {
				t.Errorf("surplus consumer %s: %v, want it deleted", name, err)
			}
		}
	}
	if err := streams.Check(ctx, js, smaller); err != nil {
		t.Fatalf("Check: %v", err)
	}
	ack, err := publishWrite(ctx, js, addr, "w2", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := shrunk.Outbox.GetMsg(ctx, ack.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	if want := streams.StoredSubject(addr, streams.PartitionOf(addr.Token, 2)); got.Subject != want {
		t.Fatalf("write stored as %q, want %q", got.Subject, want)
	}

	// Growing moves the tenant to another partition: refused while its
	// write waits in the old one, which would otherwise be applied
	// alongside, or after, the tenant's next writes.
	if from, to := streams.PartitionOf(addr.Token, 2), streams.PartitionOf(addr.Token, 4); from == to {
		t.Fatalf("tenant %s stays in partition %d; the test needs one that moves", addr.Token, from)
	}
	_, err = streams.Provision(ctx, js, cfg)
	if !errors.Is(err, streams.ErrNotDrained) || !strings.Contains(err.Error(), "1 writes partitioned over 2") {
		t.Fatalf("Provision back to 4 partitions with a write stored = %v, want ErrNotDrained counting 1 write over 2 partitions", err)
	}
	info, err = shrunk.Outbox.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Config.SubjectTransform.Destination; !strings.Contains(got, "partition(2,1)") {
		t.Fatalf("a refused Provision changed the transform to %q", got)
	}
	fetchAndAck(ctx, t, shrunk.Consumers[streams.ModeBackground][streams.PartitionOf(addr.Token, 2)], 1)
	if _, err := streams.Provision(ctx, js, cfg); err != nil {
		t.Fatalf("Provision back to 4 partitions once drained: %v", err)
	}
}

// Shrinking to a count that does not divide the old one moves tenants
// between the partitions that remain, so even with the surplus partition
// empty Provision refuses while any write is stored.
func TestProvisionRefusesARehashingShrinkUntilDrained(t *testing.T) {
	cfg := streams.DefaultConfig()
	cfg.Partitions = 4
	js, top, ctx := startOutbox(t, cfg)

	addr := storeOneFor(ctx, t, js, streams.ModeSync, streams.OpStore, func(token string) bool {
		p := streams.PartitionOf(token, 4)
		return p < 3 && p != streams.PartitionOf(token, 3)
	})
	three := cfg
	three.Partitions = 3
	_, err := streams.Provision(ctx, js, three)
	if !errors.Is(err, streams.ErrNotDrained) || !strings.Contains(err.Error(), "going to 3 partitions") {
		t.Fatalf("Provision to 3 partitions with a write stored = %v, want ErrNotDrained", err)
	}
	if err := streams.Check(ctx, js, cfg); err != nil {
		t.Fatalf("a refused Provision removed consumers: %v", err)
	}
	fetchAndAck(ctx, t, top.Consumers[streams.ModeSync][streams.PartitionOf(addr.Token, 4)], 1)
	if _, err := streams.Provision(ctx, js, three); err != nil {
		t.Fatalf("Provision to 3 partitions once drained: %v", err)
	}
}

// An outbox an earlier jetbox made stores writes with the partition last
// (memory.<token>.<mode>.<op>.<p>), where no consumer of this layout would
// ever deliver them: Provision refuses, changing nothing, until those
// writes are gone, then moves the stream and the earlier consumers to
// this layout.
func TestProvisionRefusesWritesStoredInTheEarlierLayoutAndMovesADrainedOne(t *testing.T) {
	s := natstest.Start(t)
	_, js := s.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := streams.DefaultConfig()

	sc := cfg.OutboxConfig()
	earlier := fmt.Sprintf("memory.{{wildcard(1)}}.{{wildcard(2)}}.{{wildcard(3)}}.{{partition(%d,1)}}", cfg.Partitions)
	sc.SubjectTransform.Destination = earlier
	stream, err := js.CreateStream(ctx, sc)
	if err != nil {
		t.Fatal(err)
	}
	addr := mustAddress(t, "acme", streams.ModeSync, streams.OpStore)
	ack, err := publishWrite(ctx, js, addr, "old", []byte(`{"n":1}`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := stream.GetMsg(ctx, ack.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	if want := addr.Subject() + "." + strconv.Itoa(streams.PartitionOf(addr.Token, cfg.Partitions)); got.Subject != want {
		t.Fatalf("the earlier layout stored the write as %q, want %q", got.Subject, want)
	}

	_, err = streams.Provision(ctx, js, cfg)
	if !errors.Is(err, streams.ErrNotDrained) {
		t.Fatalf("Provision over a write stored in the earlier layout = %v, want ErrNotDrained", err)
	}
	if msg := err.Error(); !strings.Contains(msg, " 1 ") || !strings.Contains(msg, string(streams.ModeSync)) {
		t.Fatalf("Provision error %q does not name the count (1) and the mode (%s)", msg, streams.ModeSync)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Config.SubjectTransform.Destination; got != earlier {
		t.Fatalf("a refused Provision changed the transform to %q", got)
	}
	if info.State.Consumers != 0 {
		t.Fatalf("a refused Provision created %d consumers", info.State.Consumers)
	}
	assertStored(ctx, t, stream, ack.Sequence, []byte(`{"n":1}`))

	// The earlier version's consumers exist, filtered on its layout; its
	// workers apply the write (here: it is purged).
	for _, m := range streams.Modes {
		for p := range cfg.Partitions {
			cc := cfg.ConsumerConfig(m, p)
			cc.FilterSubject = fmt.Sprintf("memory.*.%s.*.%d", m, p)
			if _, err := stream.CreateConsumer(ctx, cc); err != nil {
				t.Fatalf("earlier consumer %s: %v", cc.Durable, err)
			}
		}
	}
	if _, err := stream.CreateConsumer(ctx, cfg.StrayConsumerConfig()); err != nil {
		t.Fatal(err)
	}
	if err := stream.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	top, err := streams.Provision(ctx, js, cfg)
	if err != nil {
		t.Fatalf("Provision once the earlier writes are gone: %v", err)
	}
	info, err = top.Outbox.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Config.SubjectTransform.Destination; !strings.Contains(got, "{{wildcard(2)}}.{{partition(") {
		t.Fatalf("transform destination %q, want this layout (memory.<mode>.<partition>.<token>.<op>)", got)
	}
	if err := streams.Check(ctx, js, cfg); err != nil {
		t.Fatalf("Check: %v", err)
	}
	// Every consumer of the earlier version now has this layout's filter.
	for _, m := range streams.Modes {
		for p, c := range top.Consumers[m] {
			ci, err := c.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := streams.PartitionFilter(m, p); ci.Config.FilterSubject != want {
				t.Fatalf("consumer %s filters on %q, want %q", ci.Name, ci.Config.FilterSubject, want)
			}
		}
	}
	ack, err = publishWrite(ctx, js, addr, "new", []byte(`{"n":2}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, err = top.Outbox.GetMsg(ctx, ack.Sequence); err != nil {
		t.Fatal(err)
	}
	p := streams.PartitionOf(addr.Token, cfg.Partitions)
	if want := streams.StoredSubject(addr, p); got.Subject != want {
		t.Fatalf("write stored as %q, want %q", got.Subject, want)
	}
	fetchAndAck(ctx, t, top.Consumers[streams.ModeSync][p], 1)
}

// StoredTenantFilter counts one tenant's stored writes, in every mode and
// partition, and nobody else's: a tenant whose token is another's prefix,
// or a token equal to a mode or a partition number, included.
func TestStoredTenantFilterCountsOneTenantsBacklog(t *testing.T) {
	js, top, ctx := startOutbox(t, streams.DefaultConfig())
	tenants := []string{"acme", "acme2", "sync", "7", "acme.eu"}
	for i, tenant := range tenants {
		for _, m := range streams.Modes {
			for k := 0; k <= i; k++ { // tenant i has i+1 writes per mode
				addr := mustAddress(t, tenant, m, streams.OpStore)
				if _, err := publishWrite(ctx, js, addr, fmt.Sprintf("%s-%s-%d", tenant, m, k), []byte(`{"coord":"1,2,3"}`)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for i, tenant := range tenants {
		token := mustAddress(t, tenant, streams.ModeSync, streams.OpStore).Token
		n, err := streams.CountStored(ctx, top.Outbox, streams.StoredTenantFilter(token))
		if err != nil {
			t.Fatal(err)
		}
		if want := uint64(len(streams.Modes) * (i + 1)); n != want {
			t.Errorf("tenant %q: %d writes counted, want %d", tenant, n, want)
		}
	}
}

// storeOneFor stores one write, in mode and op, for the first tenant t0,
// t1, ... whose token matches, and returns its address.
func storeOneFor(ctx context.Context, t *testing.T, js jetstream.JetStream, mode streams.Mode, op streams.Op, match func(token string) bool) streams.Address {
	t.Helper()
	for i := 0; ; i++ {
		addr := mustAddress(t, fmt.Sprintf("t%d", i), mode, op)
		if !match(addr.Token) {
			continue
		}
		if _, err := publishWrite(ctx, js, addr, "w", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		return addr
	}
}
