// Package relay moves SomaBrain's database outbox (the PostgreSQL table
// outbox_events) into the jetbox outbox stream, exactly once and in order.
//
// A pending row becomes one jetbox write (a bulk store, one per item),
// published with JetStream to memory.<tenant token>.<mode>.<op> and
// acknowledged by the stream, and only then marked sent, in the same
// transaction that locked it:
//
//	BEGIN
//	SELECT pg_try_advisory_xact_lock(<relay>, hashtext(<tenant>))
//	SELECT ... WHERE status = 'pending' AND <tenant> ORDER BY created_at, id
//	    LIMIT n FOR UPDATE SKIP LOCKED
//	publish each write, wait for its PubAck
//	UPDATE ... SET status = 'sent' / 'failed'
//	COMMIT
//
// A crash before COMMIT leaves the rows pending: the next run publishes them
// again with the same Nats-Msg-Id (<tenant token>:<dedupe_key>), which the
// stream's duplicate window absorbs. The advisory lock lets one relay at a
// time work on a tenant, so several relays never reorder one memory's
// writes: with SKIP LOCKED alone, relay B could publish a tenant's later row
// while relay A still holds an earlier one.
package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/jetbox-dev/jetbox/internal/text"
	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
	"github.com/jetbox-dev/jetbox/tenancy"
)

// Defaults of Config.
const (
	DefaultMode           = streams.ModeFastAck
	DefaultPollInterval   = 5 * time.Second
	DefaultBatchSize      = 200
	DefaultConcurrency    = 4
	DefaultPublishTimeout = 5 * time.Second
	DefaultStatusBucket   = "MEMORY_RELAY"
)

// Config configures a Relay. The zero value is usable.
type Config struct {
	Mode           streams.Mode  // write mode of every relayed write; "" = fast_ack. sync sets no reply subject.
	DefaultTenant  string        // tenant of rows whose tenant_id is NULL; "" = tenancy.DefaultTenant
	Universe       string        // universe of coords derived from keys; "" = producer.DefaultUniverse
	FailUnknown    bool          // mark rows of topics jetbox does not carry failed instead of leaving them pending
	PollInterval   time.Duration // how often to look for rows without a notification; 0 = 5s
	BatchSize      int           // rows per transaction; 0 = 200
	Concurrency    int           // tenants relayed at once; 0 = 4
	PublishTimeout time.Duration // one publish, waiting for its PubAck; 0 = 5s
	StatusBucket   string        // KV bucket of the relay's lag record; "" = MEMORY_RELAY
	ID             string        // this relay's key in the status bucket; "" = relay-<random>
	// Progress receives the backfill's progress: a bar redrawn in place
	// when ProgressTerminal, else a line every few seconds. nil = none.
	Progress         io.Writer
	ProgressTerminal bool
	Log              zerolog.Logger
	Registerer       prometheus.Registerer // nil = no metrics
}

func (cfg Config) withDefaults() (Config, error) {
	if cfg.Mode == "" {
		cfg.Mode = DefaultMode
	}
	if _, err := streams.ParseMode(string(cfg.Mode)); err != nil {
		return cfg, fmt.Errorf("relay: Mode: %w", err)
	}
	if cfg.DefaultTenant == "" {
		cfg.DefaultTenant = tenancy.DefaultTenant
	}
	if err := tenancy.Validate(cfg.DefaultTenant); err != nil {
		return cfg, fmt.Errorf("relay: DefaultTenant: %w", err)
	}
	if cfg.Universe == "" {
		cfg.Universe = producer.DefaultUniverse
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = DefaultPublishTimeout
	}
	if cfg.StatusBucket == "" {
		cfg.StatusBucket = DefaultStatusBucket
	}
	if cfg.ID == "" {
		cfg.ID = fmt.Sprintf("relay-%08x", rand.Uint32())
	}
	return cfg, nil
}

// Relay moves pending rows into the outbox.
type Relay struct {
	pool    *pgxpool.Pool
	nc      *nats.Conn
	js      jetstream.JetStream
	cfg     Config
	mapper  mapper
	metrics *metrics
	log     zerolog.Logger

	lastSuccess atomic.Int64 // unix nanoseconds of the last relayed row
	relayed     atomic.Int64 // rows marked sent or failed by this relay

	// afterPublish, when set, runs after a batch's writes are acknowledged
	// and before its COMMIT; an error abandons the transaction. Tests use
	// it to crash a relay between the two.
	afterPublish func(ids []int64) error
}

// New makes a relay over a PostgreSQL pool and a NATS connection. The
// outbox must be provisioned (jetbox run does it).
func New(pool *pgxpool.Pool, nc *nats.Conn, cfg Config) (*Relay, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("relay: metrics: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	return &Relay{
		pool: pool, nc: nc, js: js, cfg: cfg, metrics: m, log: cfg.Log,
		mapper: mapper{mode: cfg.Mode, universe: cfg.Universe, maxPayload: nc.MaxPayload},
	}, nil
}

// Run relays every pending row (the backfill, with progress), then new
// rows as they come, until ctx ends. It returns nil when ctx ends; it
// returns early only on an error no retry can mend.
func (r *Relay) Run(ctx context.Context) error {
	lagCtx, stopLag := context.WithCancel(ctx)
	lagDone := make(chan struct{})
	go func() {
		defer close(lagDone)
		r.reportLag(lagCtx)
	}()
	defer func() {
		stopLag()
		<-lagDone
	}()

	if err := r.Backfill(ctx); err != nil {
		return ignoreEnd(ctx, err)
	}
	return ignoreEnd(ctx, r.tail(ctx))
}

// Backfill relays until no row is pending (other than rows of topics left
// alone), retrying transient failures, and returns.
func (r *Relay) Backfill(ctx context.Context) error {
	total, err := r.countPending(ctx)
	for err != nil {
		r.log.Warn().Err(err).Msg("relay: counting pending rows; retrying")
		if !sleep(ctx, time.Second) {
			return ctx.Err()
		}
		total, err = r.countPending(ctx)
	}
	r.log.Info().Int64("pending", total).Msg("relay: backfill")
	prog := newProgress(r.cfg.Progress, r.cfg.ProgressTerminal, total, &r.relayed)
	defer prog.stop()
	return r.drain(ctx)
}

// drain runs passes until one finds nothing to do, backing off after a
// pass that failed.
func (r *Relay) drain(ctx context.Context) error {
	failures := 0
	for {
		moved, err := r.pass(ctx)
		switch {
		case errors.Is(err, errAbandoned):
			return err
		case err != nil:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			failures++
			wait := backoff(failures)
			r.log.Warn().Err(err).Dur("retry_in", wait).Msg("relay: pass failed; rows stay pending")
			if !sleep(ctx, wait) {
				return ctx.Err()
			}
		case moved == 0:
			return nil
		default:
			failures = 0
		}
	}
}

// tail relays rows as they are inserted: at each notification on
// NotifyChannel, and every PollInterval in any case.
func (r *Relay) tail(ctx context.Context) error {
	wake := make(chan struct{}, 1)
	go r.listen(ctx, wake)
	timer := time.NewTimer(r.cfg.PollInterval)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		case <-timer.C:
		}
		if err := r.drain(ctx); err != nil {
			return err
		}
		timer.Reset(r.cfg.PollInterval)
	}
}

// listen holds a connection that LISTENs on NotifyChannel and signals wake
// at each notification, reconnecting after a failure. Polling goes on
// meanwhile, so a lost notification only delays rows by PollInterval.
func (r *Relay) listen(ctx context.Context, wake chan<- struct{}) {
	for failures := 0; ctx.Err() == nil; failures++ {
		err := r.listenOnce(ctx, wake)
		if ctx.Err() != nil {
			return
		}
		r.log.Warn().Err(err).Msg("relay: LISTEN connection lost; polling meanwhile")
		if !sleep(ctx, backoff(failures+1)) {
			return
		}
	}
}

func (r *Relay) listenOnce(ctx context.Context, wake chan<- struct{}) error {
	conn, err := pgx.ConnectConfig(ctx, r.pool.Config().ConnConfig.Copy())
	if err != nil {
		return redactErr(err, r.pool.Config().ConnConfig)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{NotifyChannel}.Sanitize()); err != nil {
		return err
	}
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		select {
		case wake <- struct{}{}:
		default:
		}
	}
}

// errAbandoned is returned when the afterPublish hook abandons a batch.
var errAbandoned = errors.New("relay: batch abandoned before commit")

// pass offers every tenant with pending rows to the relay's workers once,
// and returns how many rows were marked sent or failed.
func (r *Relay) pass(ctx context.Context) (int, error) {
	tenants, err := r.pendingTenants(ctx)
	if err != nil {
		return 0, err
	}
	queue := make(chan string)
	var (
		wg       sync.WaitGroup
		moved    atomic.Int64
		errMu    sync.Mutex
		firstErr error
	)
	for range min(r.cfg.Concurrency, max(len(tenants), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for tenant := range queue {
				n, err := r.relayTenant(ctx, tenant)
				moved.Add(int64(n))
				if err != nil {
					errMu.Lock()
					if firstErr == nil || errors.Is(err, errAbandoned) {
						firstErr = err
					}
					errMu.Unlock()
				}
			}
		}()
	}
	for _, t := range tenants {
		select {
		case queue <- t:
		case <-ctx.Done():
		}
	}
	close(queue)
	wg.Wait()
	return int(moved.Load()), firstErr
}

// relayTenant moves the tenant's pending rows batch by batch, until none is
// left, another relay holds the tenant, or a publish fails.
func (r *Relay) relayTenant(ctx context.Context, tenant string) (int, error) {
	total := 0
	for ctx.Err() == nil {
		n, more, err := r.relayBatch(ctx, tenant)
		total += n
		if err != nil || !more {
			return total, err
		}
	}
	return total, ctx.Err()
}

// Lock class of the relay's advisory locks: the tenant's hash is the
// second key, so the relay's locks cannot meet another application's
// one-key locks.
const lockClass = 0x6a62_7278 // "jbrx"

const selectBatch = `SELECT id, topic, payload, dedupe_key
FROM outbox_events
WHERE status = 'pending'
  AND (tenant_id = $1 OR ($2 AND tenant_id IS NULL))
  AND ($3 OR topic = ANY($4))
ORDER BY created_at, id
LIMIT $5
FOR UPDATE SKIP LOCKED`

// relayBatch relays one batch of the tenant's rows in one transaction.
// more reports that the batch was full, so more rows may wait.
func (r *Relay) relayBatch(ctx context.Context, tenant string) (n int, more bool, err error) {
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return 0, false, redactErr(err, r.pool.Config().ConnConfig)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var locked bool
	if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock($1, hashtext($2))", lockClass, tenant).Scan(&locked); err != nil {
		return 0, false, err
	}
	if !locked {
		return 0, false, nil // another relay is on this tenant
	}
	rows, err := tx.Query(ctx, selectBatch, tenant, tenant == r.cfg.DefaultTenant, r.cfg.FailUnknown, CarriedTopics, r.cfg.BatchSize)
	if err != nil {
		return 0, false, err
	}
	var batch []row
	for rows.Next() {
		rw := row{tenant: tenant}
		if err := rows.Scan(&rw.id, &rw.topic, &rw.payload, &rw.dedupeKey); err != nil {
			rows.Close()
			return 0, false, err
		}
		batch = append(batch, rw)
	}
	if err := rows.Err(); err != nil {
		return 0, false, err
	}
	if len(batch) == 0 {
		return 0, false, nil
	}

	var sent, done []int64
	type failure struct {
		id     int64
		reason string
	}
	var failed []failure
	var publishErr error
	for _, rw := range batch {
		writes, err := r.mapper.mapRow(rw)
		if err == nil {
			err = r.publish(ctx, writes)
		}
		switch {
		case err == nil:
			sent = append(sent, rw.id)
		case errors.Is(err, ErrUnknownTopic), errors.Is(err, ErrUnmappable), errors.Is(err, ErrTooLarge):
			failed = append(failed, failure{rw.id, err.Error()})
			r.metrics.failed.WithLabelValues(failReason(err)).Inc()
			// The row's columns are the writing service's: bounded in the log.
			r.log.Warn().Int64("id", rw.id).Str("topic", text.Clip(rw.topic, 64)).Str("tenant", text.Clip(tenant, 128)).Str("reason", text.Clip(err.Error(), 256)).Msg("relay: row marked failed")
		default:
			// The stream is unavailable: this row and the tenant's later
			// ones wait for the next pass, in order.
			publishErr = fmt.Errorf("row %d: %w", rw.id, err)
		}
		if publishErr != nil {
			break
		}
		done = append(done, rw.id)
	}
	if len(done) == 0 {
		return 0, false, publishErr
	}
	if r.afterPublish != nil {
		if err := r.afterPublish(done); err != nil {
			return 0, false, fmt.Errorf("%w: %w", errAbandoned, err)
		}
	}
	if len(sent) > 0 {
		if _, err := tx.Exec(ctx, "UPDATE outbox_events SET status = 'sent' WHERE id = ANY($1)", sent); err != nil {
			return 0, false, err
		}
	}
	for _, f := range failed {
		// As SomaBrain's mark_event_failed: the reason, at most 1000
		// characters, and one more retry counted.
		if _, err := tx.Exec(ctx, "UPDATE outbox_events SET status = 'failed', last_error = left($2, 1000), retries = retries + 1 WHERE id = $1", f.id, f.reason); err != nil {
			return 0, false, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, false, err
	}
	r.metrics.relayed.Add(float64(len(sent)))
	r.relayed.Add(int64(len(done)))
	r.lastSuccess.Store(time.Now().UnixNano())
	return len(done), publishErr == nil && len(batch) == r.cfg.BatchSize, publishErr
}

// pendingTenants lists the tenants with rows to relay.
func (r *Relay) pendingTenants(ctx context.Context) ([]string, error) {
	rows, err := r.pool.Query(ctx, `SELECT DISTINCT coalesce(tenant_id, $1) FROM outbox_events
WHERE status = 'pending' AND ($2 OR topic = ANY($3))`, r.cfg.DefaultTenant, r.cfg.FailUnknown, CarriedTopics)
	if err != nil {
		return nil, redactErr(err, r.pool.Config().ConnConfig)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func (r *Relay) countPending(ctx context.Context) (int64, error) {
	var n int64
	err := r.pool.QueryRow(ctx, `SELECT count(*) FROM outbox_events WHERE status = 'pending' AND ($1 OR topic = ANY($2))`,
		r.cfg.FailUnknown, CarriedTopics).Scan(&n)
	return n, redactErr(err, r.pool.Config().ConnConfig)
}

// maxBackoff bounds the wait after failed passes.
var maxBackoff = 30 * time.Second

// backoff is the wait after the failures-th failed pass in a row: 1s
// doubling up to maxBackoff, with jitter.
func backoff(failures int) time.Duration {
	d := min(time.Second<<min(failures-1, 5), maxBackoff)
	return d/2 + rand.N(d/2)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// ignoreEnd turns the error of a run ended by its context into nil; an
// abandoned batch is still reported.
func ignoreEnd(ctx context.Context, err error) error {
	if ctx.Err() != nil && !errors.Is(err, errAbandoned) {
		return nil
	}
	return err
}
