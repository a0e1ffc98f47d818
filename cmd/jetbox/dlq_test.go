package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jetbox-dev/jetbox/internal/memapi"
	"github.com/jetbox-dev/jetbox/internal/natstest"
	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
)

// Writes that used up their retry budget while the memory API was failing
// are listed by 'jetbox dlq list' and applied once by 'jetbox dlq replay'.
func TestDLQListAndReplayFromTheShell(t *testing.T) {
	srv := natstest.Start(t)
	nc, js := srv.Connect(t)
	store, err := memapi.Open(memapi.Options{Path: filepath.Join(t.TempDir(), "m.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var failing atomic.Bool
	failing.Store(true)
	handler := store.Handler()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() && r.Header.Get("X-Soma-Tenant") == "unlucky" {
			http.Error(w, `{"error":"overloaded"}`, http.StatusServiceUnavailable)
			return
		}
		handler.ServeHTTP(w, r)
	}))
	defer api.Close()
	ctx := context.Background()
	if _, err := streams.Provision(ctx, js, streams.DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"NATS_URL=" + srv.ClientURL(), "SOMABRAIN_MEMORY_HTTP_ENDPOINT=" + api.URL, "SOMABRAIN_OUTBOX_HTTP_LISTEN=off",
		"SOMABRAIN_OUTBOX_MAX_ATTEMPTS=2", "SOMABRAIN_OUTBOX_BACKOFF_BASE=50ms", "SOMABRAIN_MEMORY_FAILURE_THRESHOLD=100",
	}
	worker := startRun(t, env)
	prod, err := producer.New(nc, producer.Config{Mode: streams.ModeFastAck})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close(ctx)
	for i := 0; i < 4; i++ {
		tenant := "unlucky"
		if i == 3 {
			tenant = "lucky"
		}
		if _, err := prod.Store(ctx, producer.StoreRequest{Tenant: tenant, Key: strconv.Itoa(i), Payload: map[string]any{"i": i}}); err != nil {
			t.Fatal(err)
		}
	}
	var out string
	waitUntil(t, 20*time.Second, "3 dead letters listed", func() bool {
		out, _ = jetbox(t, env, "dlq", "list", "--tenant", "unlucky")
		return strings.Contains(out, "3 dead letters")
	})
	if !strings.Contains(out, "exhausted") || !strings.Contains(out, "503") || !strings.Contains(out, "memory.unlucky.fast_ack.store") {
		t.Fatalf("dlq list lacks class, status or subject:\n%s", out)
	}
	if out, _ := jetbox(t, env, "dlq", "list", "--tenant", "lucky"); !strings.Contains(out, "0 dead letters") {
		t.Fatalf("the lucky tenant has dead letters:\n%s", out)
	}

	failing.Store(false)
	out, err = jetbox(t, env, "dlq", "replay", "--tenant", "unlucky", "--since", "1h", "--progress", "2")
	if err != nil || !strings.Contains(out, "replayed 3 dead letters (0 failed)") ||
		!strings.Contains(out, "replaying: 2 replayed, 0 failed, 0 left in place\n") || strings.Contains(out, "replaying: 3") {
		t.Fatalf("dlq replay: %v\n%s", err, out)
	}
	waitUntil(t, 20*time.Second, "replayed writes applied", func() bool { return store.TenantStats("unlucky").Applied == 3 })
	if out, _ := jetbox(t, env, "dlq", "list"); !strings.Contains(out, "0 dead letters") {
		t.Fatalf("dead letters left after replay:\n%s", out)
	}
	// A second replay finds nothing to do.
	if out, _ := jetbox(t, env, "dlq", "replay", "--tenant", "unlucky"); !strings.Contains(out, "replayed 0") {
		t.Fatalf("second replay: %s", out)
	}
	time.Sleep(200 * time.Millisecond)
	if s := store.TenantStats("unlucky"); s.Applied != 3 || s.Repeated != 0 {
		t.Fatalf("unlucky: %+v, want 3 applied once each", s)
	}
	if err := worker.stop(t, syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatalf("worker exit: %v", err)
	}
}
