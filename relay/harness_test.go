package relay

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/jetbox-dev/jetbox/consumer"
	"github.com/jetbox-dev/jetbox/internal/memapi"
	"github.com/jetbox-dev/jetbox/internal/natstest"
	"github.com/jetbox-dev/jetbox/internal/testrig"
	"github.com/jetbox-dev/jetbox/relay/pgtest"
	"github.com/jetbox-dev/jetbox/streams"
)

const testToken = "relay-test-token"

// harness is SomaBrain's table in a real PostgreSQL, an embedded
// nats-server with the outbox, a worker and the development memory API.
type harness struct {
	t       *testing.T
	pg      *pgtest.Server
	pool    *pgxpool.Pool
	rig     *testrig.Rig
	ns      *natstest.Server
	streams streams.Config
	store   *memapi.Store
}

func newHarness(t *testing.T, natsOpts ...natstest.Option) *harness {
	t.Helper()
	h := &harness{t: t, pg: pgtest.Start(t)}
	h.pg.CreateOutboxTable(t)
	pool, err := pgxpool.New(context.Background(), h.pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	h.pool = pool
	cfg := testrig.Streams()
	cfg.Partitions = 4
	h.rig = testrig.Start(t, testrig.Options{NATS: natsOpts, Streams: cfg, Token: testToken})
	h.ns, h.streams, h.store = h.rig.Server, h.rig.Streams, h.rig.API.Store
	return h
}

// startWorker runs a worker against the development memory API.
func (h *harness) startWorker() {
	h.t.Helper()
	h.rig.StartWorker(func(nc *nats.Conn) (testrig.Worker, error) {
		return consumer.New(nc, consumer.Config{
			Endpoint: h.rig.API.URL, Token: testToken, Streams: h.streams, Concurrency: 32,
			RequestTimeout: 2 * time.Second, BackoffBase: 50 * time.Millisecond, BackoffMax: time.Second,
			FailureThreshold: 3, ResetInterval: time.Second, ShutdownTimeout: 2 * time.Second,
			Log: zerolog.New(zerolog.NewTestWriter(h.t)).Level(zerolog.WarnLevel),
		})
	})
}

// relayConfig is a relay tuned for tests.
func (h *harness) relayConfig() Config {
	return Config{
		PollInterval: 200 * time.Millisecond, BatchSize: 100, PublishTimeout: 2 * time.Second,
		Log: zerolog.New(zerolog.NewTestWriter(h.t)).Level(zerolog.WarnLevel),
	}
}

func (h *harness) newRelay(cfg Config) *Relay {
	h.t.Helper()
	nc, _ := h.ns.Connect(h.t, nats.MaxReconnects(-1))
	r, err := New(h.pool, nc, cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

// runRelay runs r until the test ends, or until stop is called.
func (h *harness) runRelay(r *Relay) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var err error
	stopped := false
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			err = <-done
		}
		return err
	}
	h.t.Cleanup(func() { _ = stop() })
	return stop
}

// testRow is a row as SomaBrain inserts it.
type testRow struct {
	topic     string
	payload   any // encoded as JSON
	dedupeKey string
	tenant    *string
	createdAt time.Time
}

// insert copies rows into outbox_events with every column SomaBrain's
// ORM fills (the table has no defaults).
func (h *harness) insert(rows []testRow) {
	h.t.Helper()
	src := make([][]any, len(rows))
	for i, r := range rows {
		payload, err := json.Marshal(r.payload)
		if err != nil {
			h.t.Fatal(err)
		}
		created := r.createdAt
		if created.IsZero() {
			created = time.Now()
		}
		src[i] = []any{created, r.topic, string(payload), "pending", 0, r.dedupeKey, r.tenant}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := h.pool.CopyFrom(ctx, pgx.Identifier{"outbox_events"},
		[]string{"created_at", "topic", "payload", "status", "retries", "dedupe_key", "tenant_id"}, pgx.CopyFromRows(src))
	if err != nil {
		h.t.Fatalf("insert rows: %v", err)
	}
}

// statusCounts counts rows by status.
func (h *harness) statusCounts() map[string]int {
	h.t.Helper()
	rows, err := h.pool.Query(context.Background(), "SELECT status, count(*) FROM outbox_events GROUP BY status")
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			h.t.Fatal(err)
		}
		out[s] = n
	}
	return out
}

// rowState is a row's status and last_error by dedupe key.
func (h *harness) rowState(dedupeKey string) (status, lastError string) {
	h.t.Helper()
	var le *string
	err := h.pool.QueryRow(context.Background(), "SELECT status, last_error FROM outbox_events WHERE dedupe_key = $1", dedupeKey).Scan(&status, &le)
	if err != nil {
		h.t.Fatalf("row %s: %v", dedupeKey, err)
	}
	if le != nil {
		lastError = *le
	}
	return status, lastError
}

// applied sums the memory API's applied writes over all tenants, and
// those that were a write it had applied already.
func (h *harness) applied() (applied, repeated uint64) {
	sum := h.rig.API.Totals()
	return sum.Applied, sum.Repeated
}

// waitFor is testrig.WaitFor by the name the tests use.
var waitFor = testrig.WaitFor

func ptr(s string) *string { return &s }

// coordList is a coordinate as SomaBrain's rows hold it: list(coord). No
// part is -0: jsonb stores numbers as numeric, which has no negative zero,
// so a row's -0 comes back as 0 (and 0.0 and -0.0 are two memories to the
// memory API).
func coordList(i int) []float64 {
	return []float64{float64(i) / 10, -float64(i+1) / 7, 0.5}
}

func TestMain(m *testing.M) {
	maxBackoff = time.Second // a test's outage is seconds long
	lagInterval = 200 * time.Millisecond
	os.Exit(m.Run())
}
