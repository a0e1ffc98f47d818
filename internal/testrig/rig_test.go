package testrig_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/jetbox-dev/jetbox/consumer"
	"github.com/jetbox-dev/jetbox/internal/memapi"
	"github.com/jetbox-dev/jetbox/internal/testrig"
	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
)

const token = "rig-test-token"

// A write published on the rig reaches the memory API through a worker
// the rig started, and nothing is dead-lettered.
func TestRigAppliesWrites(t *testing.T) {
	cfg := testrig.Streams()
	cfg.Partitions = 2
	r := testrig.Start(t, testrig.Options{Streams: cfg, Token: token})
	w := r.StartWorker(func(nc *nats.Conn) (testrig.Worker, error) {
		return consumer.New(nc, consumer.Config{
			Endpoint: r.API.URL, Token: token, Streams: r.Streams, Concurrency: 8,
			RequestTimeout: 2 * time.Second, BackoffBase: 50 * time.Millisecond, BackoffMax: time.Second,
			FailureThreshold: 3, ResetInterval: time.Second, ShutdownTimeout: 5 * time.Second,
			Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
		})
	})
	p := r.Producer(producer.Config{Mode: streams.ModeFastAck})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const n = 20
	for i := range n {
		if _, err := p.Store(ctx, producer.StoreRequest{Tenant: "acme", Key: fmt.Sprint(i), Payload: map[string]any{"i": i}}); err != nil {
			t.Fatalf("store %d: %v", i, err)
		}
	}
	r.WaitApplied(n, 15*time.Second)
	if dl := r.DeadLetters(); len(dl) != 0 {
		t.Errorf("%d dead letters, want none", len(dl))
	}
	if err := w.Stop(); err != nil {
		t.Errorf("stop worker: %v", err)
	}
	if err := w.Stop(); err != nil {
		t.Errorf("second stop: %v", err)
	}
}

// A program's Env serves the memory API behind its wrapper, provisions the
// outbox, and Close leaves the directory to its owner.
func TestEnvServesAndCloses(t *testing.T) {
	dir := t.TempDir()
	cfg := streams.DefaultConfig()
	var seen int
	e, err := testrig.StartEnv(context.Background(), testrig.EnvOptions{Dir: dir, Streams: &cfg,
		MemoryAPI: testrig.MemoryAPIOptions{Store: memapi.Options{Token: token}, Wrap: func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen++; next.ServeHTTP(w, r) })
		}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.JS.Stream(context.Background(), cfg.Stream); err != nil {
		t.Errorf("outbox not provisioned: %v", err)
	}
	resp, err := http.Get(e.API.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || seen != 1 {
		t.Errorf("healthz: %s, wrapper saw %d requests, want 200 and 1", resp.Status, seen)
	}
	e.Close()
	if _, err := http.Get(e.API.URL + "/healthz"); err == nil {
		t.Error("memory API still serving after Close")
	}
	if _, err := os.Stat(dir + "/memapi.db"); err != nil {
		t.Errorf("store file: %v", err)
	}
}
