package ingest_test

import (
	"context"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetbox-dev/jetbox/consumer"
	"github.com/jetbox-dev/jetbox/ingest"
	"github.com/jetbox-dev/jetbox/internal/memapi"
	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
)

func (e *env) producer(t testing.TB, cfg producer.Config) *producer.Producer {
	t.Helper()
	nc, _ := e.client(t)
	p, err := producer.New(nc, cfg)
	if err != nil {
		t.Fatalf("new producer: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p.Close(ctx)
	})
	return p
}

// TestProducerThroughTheGateway: the Go producer with SubjectPrefix
// "ingest." stores its writes in every mode through the gateway, and a
// sync write gets the memory API's answer from a worker.
func TestProducerThroughTheGateway(t *testing.T) {
	e := newEnv(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// A worker for the sync group only, so that the other writes stay in
	// the outbox to be looked at.
	store, err := memapi.Open(memapi.Options{Path: t.TempDir() + "/memapi.db", Token: "t0k"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	api := httptest.NewServer(store.Handler())
	t.Cleanup(api.Close)
	workerNC, _ := e.client(t)
	w, err := consumer.New(workerNC, consumer.Config{
		Endpoint: api.URL, Token: "t0k", Streams: e.cfg, Modes: []streams.Mode{streams.ModeSync},
		Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stopWorker := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	t.Cleanup(func() {
		stopWorker()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
	})
	waitFor(t, "worker ready", func() bool { return w.Ready() == nil })

	p := e.producer(t, producer.Config{SubjectPrefix: ingest.SubjectPrefix, SyncTimeout: 20 * time.Second})
	const tenant = "acme.eu"
	for _, mode := range []streams.Mode{streams.ModeFastAck, streams.ModeBackground} {
		t.Run(string(mode), func(t *testing.T) {
			const n = 20
			for i := range n {
				res, err := p.Store(ctx, producer.StoreRequest{Tenant: tenant, Key: string(mode) + strconv.Itoa(i), Payload: map[string]any{"i": i}}, producer.WithMode(mode))
				if err != nil {
					t.Fatalf("store %d: %v", i, err)
				}
				if want := ingest.SubjectPrefix + "memory.acme~2Eeu." + string(mode) + ".store"; res.Subject != want {
					t.Fatalf("Result.Subject %q; want %q", res.Subject, want)
				}
			}
			if err := p.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			addr, _ := streams.NewAddress(tenant, mode, streams.OpStore)
			if got := e.count(t, streams.StoredSubject(addr, streams.PartitionOf(addr.Token, e.cfg.Partitions))); got != n {
				t.Fatalf("outbox holds %d %s writes; want %d", got, mode, n)
			}
		})
	}

	t.Run("sync", func(t *testing.T) {
		res, err := p.Store(ctx, producer.StoreRequest{Tenant: tenant, Key: "sync-1", Payload: map[string]any{"text": "applied"}}, producer.WithMode(streams.ModeSync))
		if err != nil {
			t.Fatalf("sync store: %v", err)
		}
		if res.Status != 200 || res.Sequence == 0 {
			t.Fatalf("sync result %+v; want the memory API's 200 and a stream sequence", res)
		}
		if got := store.TenantStats(tenant).Applied; got != 1 {
			t.Fatalf("memory API applied %d writes; want 1", got)
		}
	})
}

// TestWritesAfterTheirPubAckKeepTheirOrder: with two gateways sharing the
// writes, each fast_ack call made after the previous one returned is
// stored after it.
func TestWritesAfterTheirPubAckKeepTheirOrder(t *testing.T) {
	e := newEnv(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := e.producer(t, producer.Config{SubjectPrefix: ingest.SubjectPrefix, Mode: streams.ModeFastAck})
	var last uint64
	for i := range 200 {
		res, err := p.Store(ctx, producer.StoreRequest{Tenant: "acme", Coord: "1,2,3", Payload: map[string]any{"i": i}})
		if err != nil {
			t.Fatalf("store %d: %v", i, err)
		}
		if res.Sequence <= last {
			t.Fatalf("write %d stored at %d, before the previous one (%d)", i, res.Sequence, last)
		}
		last = res.Sequence
	}
}

// TestProducerRefusesASubjectPrefixThatIsNoPrefix: the prefix is put
// before memory.…, so it must end with a dot and hold no wildcard.
func TestProducerRefusesASubjectPrefixThatIsNoPrefix(t *testing.T) {
	e := newEnv(t, 0)
	nc, _ := e.client(t)
	for _, prefix := range []string{"ingest", ".ingest.", "in..gest.", "ingest.*.", "in gest."} {
		if p, err := producer.New(nc, producer.Config{SubjectPrefix: prefix}); err == nil {
			p.Close(context.Background())
			t.Errorf("SubjectPrefix %q accepted", prefix)
		}
	}
}
