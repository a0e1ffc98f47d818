package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/jetbox-dev/jetbox/consumer"
	"github.com/jetbox-dev/jetbox/internal/memapi"
	"github.com/jetbox-dev/jetbox/internal/natstest"
	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/relay/pgtest"
	"github.com/jetbox-dev/jetbox/streams"
)

// 'jetbox relay' processes killed with SIGKILL during the backfill lose
// nothing and apply nothing twice: every row ends sent, and the memory API
// applies each write once, each memory's in row order. The quick variant
// (1,000 rows, 10 tenants, one kill) runs with the tests; JETBOX_RELAY_SOAK
// runs 10,000 rows over 50 tenants with two kills (make relay-soak).
func TestRelaySurvivesSIGKILL(t *testing.T) {
	nrows, ntenants, kills := 1000, 10, 1
	if os.Getenv("JETBOX_RELAY_SOAK") != "" {
		nrows, ntenants, kills = 10000, 50, 2
	}
	pg := pgtest.Start(t)
	pg.CreateOutboxTable(t)
	ns := natstest.Start(t)
	_, js := ns.Connect(t)
	scfg := streams.DefaultConfig()
	scfg.Partitions = 4
	scfg.MemberTTL = 2 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := streams.Provision(ctx, js, scfg); err != nil {
		t.Fatal(err)
	}
	store, err := memapi.Open(memapi.Options{Path: t.TempDir() + "/memapi.db", Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	api := httptest.NewServer(store.Handler())
	t.Cleanup(api.Close)
	nc, _ := ns.Connect(t)
	w, err := consumer.New(nc, consumer.Config{Endpoint: api.URL, Token: "t", Streams: scfg, Concurrency: 32,
		RequestTimeout: 2 * time.Second, BackoffBase: 50 * time.Millisecond, BackoffMax: time.Second,
		FailureThreshold: 3, ResetInterval: time.Second, ShutdownTimeout: 2 * time.Second, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stopWorker := context.WithCancel(context.Background())
	workerDone := make(chan error, 1)
	go func() { workerDone <- w.Run(wctx) }()
	t.Cleanup(func() { stopWorker(); <-workerDone })

	// Rows: stores of a few memories per tenant, in order.
	type memKey struct{ tenant, coord string }
	want := map[memKey][]string{}
	src := make([][]any, nrows)
	base := time.Now().Add(-time.Hour)
	for i := range nrows {
		tenant := fmt.Sprintf("t%02d", i%ntenants)
		xyz := [3]float64{float64(i%7) / 8, 0.5, -0.25}
		key := fmt.Sprintf("dk-%05d", i)
		payload, _ := json.Marshal(map[string]any{"coord": xyz[:], "payload": map[string]any{"i": i}, "request_id": key})
		src[i] = []any{base.Add(time.Duration(i) * time.Millisecond), "memory.store", string(payload), "pending", 0, key, tenant}
		k := memKey{tenant, producer.FormatCoord(xyz)}
		want[k] = append(want[k], key)
	}
	conn := pg.Connect(t)
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"outbox_events"},
		[]string{"created_at", "topic", "payload", "status", "retries", "dedupe_key", "tenant_id"}, pgx.CopyFromRows(src)); err != nil {
		t.Fatal(err)
	}
	sent := func() int {
		var n int
		if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM outbox_events WHERE status = 'sent'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	bin := filepath.Join(t.TempDir(), "jetbox")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build jetbox: %v\n%s", err, out)
	}
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "relay")
		cmd.Env = append(os.Environ(), "NATS_URL="+ns.ClientURL(), "SOMABRAIN_POSTGRES_DSN="+pg.DSN,
			"SOMABRAIN_RELAY_HTTP_LISTEN=off", "SOMABRAIN_RELAY_BATCH_SIZE=50", "SOMABRAIN_RELAY_POLL_INTERVAL=200ms",
			"SOMABRAIN_OUTBOX_LOG_LEVEL=warn")
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	// In the soak, two relays drain the table at once, and each kill takes
	// one of them down while the other goes on; a new one takes its place.
	relays := 1
	if os.Getenv("JETBOX_RELAY_SOAK") != "" {
		relays = 2
	}
	began := time.Now()
	var running []*exec.Cmd
	for range relays {
		running = append(running, start())
	}
	for k := 1; k <= kills; k++ {
		threshold := nrows * k / (kills + 1)
		waitUntil(t, 120*time.Second, fmt.Sprintf("%d rows sent before kill %d", threshold, k), func() bool { return sent() >= threshold })
		victim := running[0]
		if err := victim.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = victim.Wait()
		t.Logf("kill %d at %d rows sent, %d relays running", k, sent(), relays)
		running = append(running[1:], start())
	}
	t.Cleanup(func() {
		for _, cmd := range running {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		}
	})
	waitUntil(t, 300*time.Second, "every row sent", func() bool { return sent() == nrows })
	t.Logf("%d rows relayed by %d relays at once in %v with %d SIGKILLs", nrows, relays, time.Since(began).Round(time.Millisecond), kills)
	waitUntil(t, 120*time.Second, "every write applied", func() bool {
		var applied uint64
		for _, s := range store.Stats().Tenants {
			applied += s.Applied
		}
		return applied >= uint64(nrows)
	})
	time.Sleep(time.Second) // a stored duplicate would be applied by now
	var applied, repeated uint64
	for _, s := range store.Stats().Tenants {
		applied += s.Applied
		repeated += s.Repeated
	}
	if applied != uint64(nrows) || repeated != 0 {
		t.Fatalf("memory API applied %d writes, %d of them repeats; want %d applied once", applied, repeated, nrows)
	}
	for k, keys := range want {
		var got []string
		for _, e := range store.History(k.tenant, k.coord) {
			got = append(got, e.IdempotencyKey)
		}
		if !slices.Equal(got, keys) {
			t.Fatalf("memory %s of %s: applied %v, want %v", k.coord, k.tenant, got, keys)
		}
	}
}
