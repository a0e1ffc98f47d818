package consumer

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/jetbox-dev/jetbox/consumer/internal/intake/intaketest"
	"github.com/jetbox-dev/jetbox/internal/natstest"
	"github.com/jetbox-dev/jetbox/internal/ownership"
	"github.com/jetbox-dev/jetbox/streams"
)

// ackedMsg is a pulled store whose ack succeeds without a server.
type ackedMsg struct{ intaketest.Msg }

func (ackedMsg) Ack() error { return nil }

// BenchmarkDrain measures the allocations per write of the delivery
// policy as a drain runs it: writes to distinct memories of one tenant,
// held at once by 4 (as many as the memory API slots) or 64 (most wait
// for a slot), each handled from the Start hook to its ack (handle: lane,
// parking check, gate, slot, breaker, call, ack, leave) against a memory
// API that answers 200 at once. One op is one write; allocs/op counts the
// in-process server's allocations too, as BenchmarkHotpath/ok does, so the
// policy's own share is the difference with it.
//
// The writes do not come from the stream: each is handed to the group's
// Start hook as the partition's pull loop would (startAsPartition), on a
// partition this worker owns on an embedded nats-server, and its ack
// reaches no server.
func BenchmarkDrain(b *testing.B) {
	for _, held := range []int{4, 64} {
		b.Run("held="+strconv.Itoa(held), func(b *testing.B) { benchmarkDrain(b, held) })
	}
}

func benchmarkDrain(b *testing.B, held int) {
	const slots = 4
	nc, js := natstest.Start(b).Connect(b)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	scfg := streams.DefaultConfig()
	scfg.Partitions = 1
	if _, err := streams.Provision(ctx, js, scfg); err != nil {
		b.Fatal(err)
	}
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	b.Cleanup(srv.Close)
	w, err := New(nc, Config{
		Endpoint: srv.URL, Token: testToken, Streams: scfg,
		Modes: []streams.Mode{streams.ModeFastAck}, Concurrency: slots,
		Registerer: prometheus.NewRegistry(), Log: zerolog.Nop(),
	})
	if err != nil {
		b.Fatal(err)
	}
	g := w.groups[0]
	pt, err := g.partitions.Take(ctx, ctx, 0)
	if err != nil {
		b.Fatal(err)
	}
	// held writes at a time, each to its own memory; building them is
	// not part of the measure.
	msgs := make([]jetstream.Msg, held)
	for i := range msgs {
		h := nats.Header{}
		h.Set(streams.HeaderIdempotencyKey, "k"+strconv.Itoa(i))
		h.Set(streams.HeaderMsgID, "sandbox-tenant:k"+strconv.Itoa(i))
		body := `{"coord":"` + strconv.Itoa(i) + `,0,0","payload":{}}`
		msgs[i] = ackedMsg{intaketest.NewMsg("memory.fast_ack.0.sandbox-tenant.store", h, []byte(body))}
	}
	metas := make([]jetstream.MsgMetadata, b.N)
	for i := range metas {
		metas[i].NumDelivered = 1
		metas[i].Sequence.Stream = uint64(i + 1)
	}
	var wg sync.WaitGroup
	finished := func(*jetstream.MsgMetadata) { wg.Done() }
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += held {
		n := min(held, b.N-i)
		wg.Add(n)
		for j := range n {
			startAsPartition(g, pt, msgs[j], &metas[i+j], finished)
		}
		wg.Wait()
	}
	b.StopTimer()
	if got := calls.Load(); got != int64(b.N) {
		b.Fatalf("%d writes applied, want %d", got, b.N)
	}
}

// startAsPartition starts a write as ownership.Partition.start does, with
// finished for the partition's end of the hold.
func startAsPartition(g *group, pt *ownership.Partition, msg jetstream.Msg, meta *jetstream.MsgMetadata, finished func(*jetstream.MsgMetadata)) {
	run := g.start(pt, msg, meta)
	go func() {
		run()
		finished(meta)
	}()
}
