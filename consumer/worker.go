// Package consumer is the worker side of jetbox: it pulls writes from the
// outbox stream, applies them to the memory API and decides, for each, to
// ack, retry, defer or dead-letter.
//
// Delivery policy, in one place (see handle): a write is acked only after
// the memory API applied it (2xx) or after it was stored in the dead-letter
// stream. A transient failure is retried with backoff through NakWithDelay
// until the retry budget is used; a permanent one is dead-lettered at once.
// While a tenant's breaker is open its writes are deferred without an
// attempt, and deferrals never count against the budget.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/sony/gobreaker/v2"

	"github.com/jetbox-dev/jetbox/internal/priority"
	"github.com/jetbox-dev/jetbox/streams"
)

// Worker runs the consumer groups of one jetbox process.
type Worker struct {
	cfg      Config
	nc       *nats.Conn
	js       jetstream.JetStream
	api      *memoryAPI
	slots    *priority.Semaphore
	metrics  *metrics
	log      zerolog.Logger
	groups   []*group
	attempts jetstream.KeyValue
	bound    atomic.Bool
}

// group is one write mode's consumer group inside this worker.
type group struct {
	*Worker
	mode     streams.Mode
	level    int // priority: 0 is served first
	consumer jetstream.Consumer
	breakers *breakers
	lanes    *lanes
}

// New checks the configuration and prepares a worker; Run starts it.
func New(nc *nats.Conn, cfg Config) (*Worker, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	w := &Worker{
		cfg:     cfg,
		nc:      nc,
		js:      js,
		api:     newMemoryAPI(cfg),
		slots:   priority.New(cfg.Concurrency, len(streams.Modes), cfg.Concurrency/16, time.Second),
		metrics: newMetrics(cfg.Registerer, cfg.MetricsTenants),
		log:     cfg.Log,
	}
	for level, mode := range streams.Modes {
		if !slices.Contains(cfg.Modes, mode) {
			continue
		}
		g := &group{Worker: w, mode: mode, level: level, lanes: newLanes(cfg.Streams.AckWait)}
		g.breakers = newBreakers(mode, cfg, func(tenant string, to gobreaker.State) {
			w.metrics.breakerChanged(string(mode), tenant, to)
			w.log.Warn().Str("group", string(mode)).Str("tenant", tenant).Str("breaker", to.String()).Msg("tenant breaker changed state")
		})
		w.groups = append(w.groups, g)
	}
	return w, nil
}

// Run consumes until ctx ends, then drains: it stops pulling, hands back
// writes it has not started, lets started ones finish (up to
// ShutdownTimeout) and flushes their acks. Nothing is lost either way: a
// write not acked is redelivered.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.bind(ctx); err != nil {
		return err
	}
	// Writes already started finish on workCtx, which outlives ctx by the
	// shutdown grace period.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()

	var readers, inFlight sync.WaitGroup
	for _, g := range w.groups {
		readers.Add(1)
		go func() {
			defer readers.Done()
			g.consume(ctx, workCtx, &inFlight)
		}()
	}
	go w.evictIdleBreakers(ctx)
	statusSub, err := w.serveStatus()
	if err != nil {
		return fmt.Errorf("serve status: %w", err)
	}
	defer statusSub.Unsubscribe()
	w.bound.Store(true)
	w.log.Info().Int("groups", len(w.groups)).Int("concurrency", w.cfg.Concurrency).Msg("worker consuming")

	<-ctx.Done()
	readers.Wait()
	done := make(chan struct{})
	go func() { inFlight.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(w.cfg.ShutdownTimeout):
		w.log.Warn().Dur("timeout", w.cfg.ShutdownTimeout).Msg("shutdown timeout: abandoning in-flight writes; they will be redelivered")
		cancelWork()
		<-done
	}
	w.bound.Store(false)
	if err := w.nc.FlushTimeout(5 * time.Second); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("flush acks on shutdown: %w", err)
	}
	w.log.Info().Msg("worker drained")
	return nil
}

func (w *Worker) bind(ctx context.Context) error {
	kv, err := w.js.KeyValue(ctx, w.cfg.Streams.AttemptsBucket)
	if err != nil {
		return fmt.Errorf("%w: bucket %s: %v", streams.ErrNotProvisioned, w.cfg.Streams.AttemptsBucket, err)
	}
	w.attempts = kv
	for _, g := range w.groups {
		c, err := w.js.Consumer(ctx, w.cfg.Streams.Stream, streams.ConsumerName(g.mode))
		if err != nil {
			return fmt.Errorf("%w: consumer %s: %v", streams.ErrNotProvisioned, streams.ConsumerName(g.mode), err)
		}
		g.consumer = c
	}
	return nil
}

// Ready reports whether the worker is connected and consuming.
func (w *Worker) Ready() error {
	if !w.nc.IsConnected() {
		return errors.New("not connected to NATS")
	}
	if !w.bound.Load() {
		return errors.New("consumer groups not bound")
	}
	return nil
}

// consume pulls one group's writes and starts each as a slot frees up.
func (g *group) consume(ctx, workCtx context.Context, inFlight *sync.WaitGroup) {
	batch := min(g.cfg.Concurrency, 256)
	it, err := g.consumer.Messages(jetstream.PullMaxMessages(batch))
	if err != nil {
		g.log.Error().Err(err).Str("group", string(g.mode)).Msg("cannot pull from consumer")
		return
	}
	stop := context.AfterFunc(ctx, it.Drain)
	defer stop()
	defer it.Stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			g.log.Warn().Err(err).Str("group", string(g.mode)).Msg("pull")
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if ctx.Err() != nil {
			// Shutting down: give buffered writes back at once.
			_ = msg.Nak()
			continue
		}
		// Decoded here, in delivery order, so the lanes learn of every write
		// before any of them starts: the goroutines below start in any order.
		d := g.prepare(msg)
		if err := g.acquireSlot(ctx, msg); err != nil {
			g.lanes.leave(d.lane, d.seq(), 0, time.Now())
			_ = msg.Nak()
			continue
		}
		inFlight.Add(1)
		go func() {
			defer inFlight.Done()
			defer g.releaseSlot()
			g.handle(workCtx, d)
		}()
	}
}

// acquireSlot waits for a memory API slot at the group's priority. A write
// waiting longer than a third of the ack wait tells the server it is still
// held, so it is not redelivered to another worker meanwhile.
func (g *group) acquireSlot(ctx context.Context, msg jetstream.Msg) error {
	for {
		waitCtx, cancel := context.WithTimeout(ctx, g.cfg.Streams.AckWait/3)
		err := g.slots.Acquire(waitCtx, g.level)
		cancel()
		if err == nil {
			g.metrics.inFlight.Inc()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		_ = msg.InProgress()
	}
}

func (g *group) releaseSlot() {
	g.metrics.inFlight.Dec()
	g.slots.Release(g.level)
}

// handle is the delivery policy for one write.
// delivery is a pulled write, decoded.
type delivery struct {
	msg  jetstream.Msg
	meta *jetstream.MsgMetadata
	w    *write
	err  error   // why it cannot be applied
	lane laneKey // the memory it writes, when decoded
}

func (d delivery) seq() uint64 {
	if d.meta == nil {
		return 0
	}
	return d.meta.Sequence.Stream
}

// prepare decodes a write and tells the lanes it is coming.
func (g *group) prepare(msg jetstream.Msg) delivery {
	meta, err := msg.Metadata()
	if err != nil {
		return delivery{msg: msg, err: err}
	}
	w, err := decodeWrite(msg, meta.Sequence.Stream, g.cfg.ReplyPrefixes)
	d := delivery{msg: msg, meta: meta, w: w, err: err}
	if err == nil {
		d.lane = laneKey{w.addr.Tenant, w.coord}
		g.lanes.expect(d.lane, meta.Sequence.Stream, time.Now())
	}
	return d
}

func (g *group) handle(ctx context.Context, d delivery) {
	msg, meta, w := d.msg, d.meta, d.w
	if meta == nil {
		g.log.Error().Err(d.err).Msg("message without JetStream metadata")
		return
	}
	seq := meta.Sequence.Stream
	if d.err != nil {
		g.deadLetter(ctx, msg, meta, w, failure{class: streams.ClassBadInput, reason: d.err.Error()}, streams.OutcomeDead)
		return
	}
	tenant := g.metrics.tenants.label(w.addr.Tenant)
	if meta.NumDelivered == 1 {
		g.metrics.received.WithLabelValues(string(g.mode), tenant).Inc()
	}
	key := d.lane
	if behind := g.lanes.enter(key, seq, time.Now()); behind > 0 {
		// An earlier write to this memory is in flight or waiting for a
		// retry: this one goes back too, to come after it. Not an attempt,
		// no budget used.
		_ = msg.NakWithDelay(behind)
		g.metrics.deferred.WithLabelValues(string(g.mode), tenant).Inc()
		return
	}
	retryIn := g.apply(ctx, msg, meta, w, tenant)
	g.lanes.leave(key, seq, retryIn, time.Now())
}

// apply makes one attempt through the tenant's breaker and settles the
// write: acked after a 2xx, dead-lettered, or put back. It returns how long
// until a put-back write is due again, 0 when it was settled.
func (g *group) apply(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata, w *write, tenant string) (retryIn time.Duration) {
	seq := meta.Sequence.Stream
	now := time.Now()
	tb := g.breakers.get(w.addr.Tenant, now)
	a, attempted := tb.attempt(func() answer { return g.api.apply(ctx, w) })
	if !attempted {
		delay := max(tb.reopensIn(g.cfg.ResetInterval, now)+jitter(g.cfg.ResetInterval/10), 50*time.Millisecond)
		_ = msg.NakWithDelay(delay)
		g.metrics.deferred.WithLabelValues(string(g.mode), tenant).Inc()
		return delay
	}
	switch a.class {
	case classApplied:
		if err := msg.Ack(); err != nil {
			g.log.Warn().Err(err).Uint64("seq", seq).Msg("ack after apply failed; the redelivery will be suppressed by the idempotency key")
		}
		if meta.NumDelivered > 1 {
			g.forgetAttempts(ctx, seq)
		}
		g.metrics.applied.WithLabelValues(string(g.mode), tenant).Inc()
		g.metrics.latency.WithLabelValues(string(g.mode)).Observe(time.Since(meta.Timestamp).Seconds())
		g.reply(w, seq, streams.OutcomeApplied, a.status, a.body, "")
		return 0
	case classPermanent:
		return g.deadLetter(ctx, msg, meta, w, failure{class: streams.ClassPermanent, reason: a.err.Error(), status: a.status, answer: a.body}, streams.OutcomeRejected)
	}
	if ctx.Err() != nil {
		// Abandoned on shutdown: not the write's fault.
		_ = msg.Nak()
		return 0
	}
	n, err := g.countAttempt(ctx, seq)
	if err != nil {
		g.log.Warn().Err(err).Uint64("seq", seq).Msg("cannot count attempt; retrying without using the budget")
	}
	if n >= g.cfg.MaxAttempts {
		return g.deadLetter(ctx, msg, meta, w, failure{class: streams.ClassExhausted, reason: fmt.Sprintf("%d attempts, last: %v", n, a.err), status: a.status, answer: a.body}, streams.OutcomeDead)
	}
	delay := g.backoff(n, a.retryAfter)
	_ = msg.NakWithDelay(delay)
	g.metrics.retried.WithLabelValues(string(g.mode), tenant).Inc()
	g.withPayloads(g.log.Debug(), msg, a.body).Str("group", string(g.mode)).Str("tenant", w.addr.Tenant).Uint64("seq", seq).Int("attempt", n).Err(a.err).Msg("transient failure, will retry")
	return delay
}

// withPayloads adds the write's body and the memory API's answer to a log
// event, only when SOMABRAIN_OUTBOX_LOG_PAYLOADS asks for it: payloads are
// the users' data and stay out of logs by default.
func (g *group) withPayloads(e *zerolog.Event, msg jetstream.Msg, answer []byte) *zerolog.Event {
	if !g.cfg.LogPayloads {
		return e
	}
	return e.Str("body", headerSafe(string(msg.Data()), 4096)).Str("answer", headerSafe(string(answer), 4096))
}

// backoff is exponential with equal jitter: the n-th retry waits between
// half and all of base*2^(n-1), capped at BackoffMax, and at least the
// memory API's Retry-After (capped at MaxRetryAfter).
func (g *group) backoff(attempt int, retryAfter time.Duration) time.Duration {
	d := g.cfg.BackoffBase
	for i := 1; i < attempt && d < g.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, g.cfg.BackoffMax)
	d = d/2 + jitter(d/2)
	if retryAfter > 0 {
		d = max(d, min(retryAfter, g.cfg.MaxRetryAfter))
	}
	return d
}

func jitter(upTo time.Duration) time.Duration {
	if upTo <= 0 {
		return 0
	}
	return rand.N(upTo)
}

func (g *group) reply(w *write, seq uint64, outcome streams.Outcome, status int, body []byte, errText string) {
	if w.replyTo == "" {
		return
	}
	out := nats.NewMsg(w.replyTo)
	out.Header.Set(streams.HeaderOutcome, string(outcome))
	out.Header.Set(streams.HeaderHTTPStatus, fmt.Sprint(status))
	out.Header.Set(streams.HeaderStreamSeq, fmt.Sprint(seq))
	if errText != "" {
		out.Header.Set(streams.HeaderError, headerSafe(errText, 512))
	}
	out.Data = body
	if err := g.nc.PublishMsg(out); err != nil {
		g.log.Warn().Err(err).Uint64("seq", seq).Msg("cannot publish sync outcome; the caller will see queued")
	}
}

// massEviction is how many breakers evicted at once make the worker return
// freed memory to the OS straight away.
const massEviction = 1000

func (w *Worker) evictIdleBreakers(ctx context.Context) {
	every := min(w.cfg.BreakerIdleTTL/2, time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			total := 0
			for _, g := range w.groups {
				g.lanes.sweep(now)
				evicted := g.breakers.evictIdle(now)
				for _, tenant := range evicted {
					w.metrics.breakerState.DeleteLabelValues(string(g.mode), w.metrics.tenants.label(tenant))
				}
				total += len(evicted)
				w.metrics.breakers.WithLabelValues(string(g.mode)).Set(float64(g.breakers.len()))
			}
			if total >= massEviction {
				// A wave of tenants went idle: hand their memory back to the
				// OS now rather than whenever the next GC cycle happens.
				debug.FreeOSMemory()
			}
		}
	}
}
