package consumer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/sony/gobreaker/v2"

	"github.com/jetbox-dev/jetbox/consumer/internal/breakers"
	"github.com/jetbox-dev/jetbox/consumer/internal/fair"
	"github.com/jetbox-dev/jetbox/consumer/internal/intake"
	"github.com/jetbox-dev/jetbox/consumer/internal/lanes"
	"github.com/jetbox-dev/jetbox/consumer/internal/memclient"
	"github.com/jetbox-dev/jetbox/consumer/internal/misconfig"
	"github.com/jetbox-dev/jetbox/consumer/internal/parkwatch"
	"github.com/jetbox-dev/jetbox/consumer/internal/telemetry"
	"github.com/jetbox-dev/jetbox/dlq"
	"github.com/jetbox-dev/jetbox/internal/ownership"
	"github.com/jetbox-dev/jetbox/internal/priority"
	"github.com/jetbox-dev/jetbox/internal/sfmapi"
	"github.com/jetbox-dev/jetbox/internal/text"
	"github.com/jetbox-dev/jetbox/streams"
)

// Worker runs the consumer groups of one jetbox process.
type Worker struct {
	cfg Config
	id  string // member id in the members bucket
	nc  *nats.Conn
	js  jetstream.JetStream
	api *memclient.Client
	// misconfig holds every write while the memory API refuses the worker.
	misconfig *misconfig.Gate
	slots     *priority.Semaphore
	metrics   *telemetry.Metrics
	log       zerolog.Logger
	groups    []*group
	buckets   *buckets
	stray     jetstream.Consumer // writes stored without a partition
	members   *ownership.Members
	// partitions is every group's partitions, for rebalancing.
	partitions []*ownership.Partitions
	bound      atomic.Bool
	tracer     *telemetry.Tracer // nil: tracing off
}

// buckets are the KV buckets the groups share, bound when the worker runs.
type buckets struct {
	attempts jetstream.KeyValue // attempts per write, across workers
	parked   jetstream.KeyValue // parked tenants per group
	// parking keeps every group's parked set in step with parked.
	parking *parkwatch.Watch
}

// group is one write mode's consumer group inside this worker. What it
// shares with the worker's other groups it is given when it is made.
type group struct {
	mode  streams.Mode
	level int // priority: 0 is served first

	cfg       Config
	workerID  string
	nc        *nats.Conn
	js        jetstream.JetStream
	api       *memclient.Client
	misconfig *misconfig.Gate
	metrics   *telemetry.Metrics
	log       zerolog.Logger
	tracer    *telemetry.Tracer // nil: tracing off
	buckets   *buckets

	breakers *breakers.Set[memclient.Answer]
	lanes    *lanes.Lanes
	fair     *fair.Slots
	parking  *parking
	// partitions is the group's partitions this worker owns.
	partitions *ownership.Partitions
}

// New checks the configuration and prepares a worker; Run starts it.
func New(nc *nats.Conn, cfg Config) (*Worker, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.PullMaxBytes = max(cfg.PullMaxBytes, int(nc.MaxPayload()))
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	w := &Worker{
		cfg:     cfg,
		id:      id.String(),
		nc:      nc,
		js:      js,
		api:     newMemoryAPI(cfg),
		slots:   priority.New(cfg.Concurrency, len(streams.Modes), cfg.Concurrency/16, time.Second),
		metrics: telemetry.NewMetrics(cfg.Registerer, cfg.MetricsTenants),
		log:     cfg.Log,
		buckets: &buckets{},
	}
	w.enableTracing(cfg.TracerProvider)
	w.misconfig = misconfig.New(misconfig.Settings{
		Endpoint: cfg.Endpoint, Probe: cfg.MisconfiguredProbe, Log: cfg.Log,
		Refused: w.metrics.Misconfigured, Refusals: w.metrics.MisconfigRefusals,
	})
	for level, mode := range streams.Modes {
		if !slices.Contains(cfg.Modes, mode) {
			continue
		}
		g := &group{
			mode: mode, level: level,
			cfg: cfg, workerID: w.id, nc: nc, js: js, api: w.api, misconfig: w.misconfig,
			metrics: w.metrics, log: w.log, tracer: w.tracer, buckets: w.buckets,
			lanes: lanes.New(), fair: fair.New(w.slots, level),
		}
		g.parking = newParking(g)
		g.partitions = ownership.NewPartitions(ownership.Config{
			Conn: nc, JS: js, Streams: cfg.Streams, Mode: mode,
			Batch: max(1, min(cfg.Streams.MaxAckPending, 128)), MaxBytes: cfg.PullMaxBytes,
			Hold: cfg.QueuedPerPartition, HoldShared: cfg.Concurrency,
			OwnedChanged: func(delta int) { w.metrics.Partitions.WithLabelValues(string(mode)).Add(float64(delta)) },
			Log:          w.log,
			Hooks:        ownership.Hooks{Start: g.start, Gathered: g.catchUpParking, Tend: g.parking.ensureReplayers},
		})
		w.partitions = append(w.partitions, g.partitions)
		g.breakers = breakers.New(breakers.Settings[memclient.Answer]{
			Threshold: cfg.FailureThreshold, ResetInterval: cfg.ResetInterval, IdleTTL: cfg.BreakerIdleTTL,
			// A 4xx says the write is wrong, not that the tenant's memory
			// API is unwell: only transient failures count.
			Failed: func(a memclient.Answer) bool { return a.Class == sfmapi.Transient },
			OnChange: func(tenant string, to gobreaker.State) {
				w.metrics.BreakerChanged(string(mode), tenant, to)
				w.log.Warn().Str("group", string(mode)).Str("tenant", tenant).Str("breaker", to.String()).Msg("tenant breaker changed state")
			},
		})
		w.groups = append(w.groups, g)
	}
	return w, nil
}

// ID is the worker's member id.
func (w *Worker) ID() string { return w.id }

// Run joins the workers' membership and consumes the partitions assigned to
// this worker until ctx ends. Then it leaves, so the others take over at
// once, and releases every partition: it stops pulling, hands back writes
// it has not started, lets started ones finish (up to ShutdownTimeout) and
// flushes their acks. Nothing is lost either way: a write not acked is
// redelivered.
func (w *Worker) Run(ctx context.Context) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	if err := w.bind(ctx); err != nil {
		return err
	}
	if err := w.members.Join(ctx); err != nil {
		return fmt.Errorf("join members bucket %s: %w", w.cfg.Streams.MembersBucket, err)
	}
	// Writes already started finish on workCtx, which outlives ctx by the
	// shutdown grace period.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()

	views := make(chan []streams.MemberRecord, 1)
	membersDone := make(chan struct{})
	go func() {
		defer close(membersDone)
		w.members.Watch(ctx, func(members []streams.MemberRecord) {
			select { // only the latest view matters
			case <-views:
			default:
			}
			views <- members
		})
	}()
	go w.evictIdleBreakers(ctx)
	go w.deadLetterStrays(ctx, w.stray)
	statusSub, err := w.serveStatus()
	if err != nil {
		return fmt.Errorf("serve status: %w", err)
	}
	defer statusSub.Unsubscribe()
	w.bound.Store(true)
	w.log.Info().Str("worker", w.id).Int("groups", len(w.groups)).Int("concurrency", w.cfg.Concurrency).Msg("worker consuming")

	// A partition that could not be taken is tried again on the next tick.
	retry := time.NewTicker(w.cfg.Streams.MemberTTL)
	defer retry.Stop()
	// nats.go reconnects by itself for as long as it may, but closes the
	// connection for good on some server errors. A worker left without one
	// would run on, consuming nothing: it stops instead, with an error, so
	// that its supervisor starts it again.
	closed := w.nc.StatusChanged(nats.CLOSED)
	if w.nc.IsClosed() {
		closed <- nats.CLOSED
	}
	var lost error
	var members []streams.MemberRecord
	for done := false; !done; {
		select {
		case members = <-views:
			ownership.Rebalance(ctx, workCtx, w.id, members, w.partitions)
		case <-retry.C:
			if members != nil {
				ownership.Rebalance(ctx, workCtx, w.id, members, w.partitions)
			}
		case <-closed:
			// Closed without an error, the connection was closed by its
			// owner, who stops the worker next.
			if err := w.nc.LastError(); err != nil {
				lost = fmt.Errorf("%w: %v", ErrConnectionClosed, err)
				w.log.Error().Err(lost).Msg("NATS closed the connection for good; stopping so that the worker can be restarted")
				stop()
				done = true
			}
			closed = nil
		case <-ctx.Done():
			done = true
		}
	}
	<-membersDone
	leaveCtx, cancelLeave := context.WithTimeout(workCtx, 5*time.Second)
	if err := w.members.Leave(leaveCtx); err != nil {
		w.log.Warn().Err(err).Msg("cannot leave the members bucket; the others take over when the heartbeat expires")
	}
	cancelLeave()

	released := make(chan struct{})
	go func() { ownership.ReleaseAll(ctx, w.partitions); close(released) }()
	select {
	case <-released:
	case <-time.After(w.cfg.ShutdownTimeout):
		w.log.Warn().Dur("timeout", w.cfg.ShutdownTimeout).Msg("shutdown timeout: abandoning in-flight writes; they will be redelivered")
		cancelWork()
		<-released
	}
	w.bound.Store(false)
	if err := w.nc.FlushTimeout(5 * time.Second); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("flush acks on shutdown: %w", err)
	}
	if lost != nil {
		return lost
	}
	w.log.Info().Msg("worker drained")
	return nil
}

// ErrConnectionClosed says the worker stopped because its NATS connection
// was closed for good.
var ErrConnectionClosed = errors.New("NATS connection closed")

func (w *Worker) bind(ctx context.Context) error {
	kv, err := w.js.KeyValue(ctx, w.cfg.Streams.AttemptsBucket)
	if err != nil {
		return fmt.Errorf("%w: bucket %s: %v", streams.ErrNotProvisioned, w.cfg.Streams.AttemptsBucket, err)
	}
	w.buckets.attempts = kv
	if w.buckets.parked, err = w.js.KeyValue(ctx, w.cfg.Streams.ParkingBucket); err != nil {
		return fmt.Errorf("%w: bucket %s: %v", streams.ErrNotProvisioned, w.cfg.Streams.ParkingBucket, err)
	}
	// Every group's parked set follows the bucket.
	learned := func(mode streams.Mode, tenant string, parked bool) {
		for _, g := range w.groups {
			if g.mode == mode {
				g.parking.learned(tenant, parked)
			}
		}
	}
	if w.buckets.parking, err = parkwatch.Start(ctx, w.buckets.parked, learned); err != nil {
		return fmt.Errorf("watch bucket %s: %w", w.cfg.Streams.ParkingBucket, err)
	}
	members, err := w.js.KeyValue(ctx, w.cfg.Streams.MembersBucket)
	if err != nil {
		return fmt.Errorf("%w: bucket %s: %v", streams.ErrNotProvisioned, w.cfg.Streams.MembersBucket, err)
	}
	if w.stray, err = w.js.Consumer(ctx, w.cfg.Streams.Stream, streams.StrayConsumer); err != nil {
		return fmt.Errorf("%w: consumer %s: %v", streams.ErrNotProvisioned, streams.StrayConsumer, err)
	}
	host, _ := os.Hostname()
	w.members = ownership.NewMembers(members, streams.MemberRecord{ID: w.id, Host: host, PID: os.Getpid(), Modes: w.cfg.Modes, Started: time.Now().UTC()}, w.cfg.Streams.MemberTTL, w.log)
	for _, g := range w.groups {
		for p := range w.cfg.Streams.Partitions {
			name := streams.PartitionConsumerName(g.mode, p)
			if _, err := w.js.Consumer(ctx, w.cfg.Streams.Stream, name); err != nil {
				return fmt.Errorf("%w: consumer %s: %v", streams.ErrNotProvisioned, name, err)
			}
		}
	}
	return nil
}

// ErrMemoryAPIMisconfigured says the memory API refuses the worker itself.
var ErrMemoryAPIMisconfigured = misconfig.ErrRefused

// Ready reports whether the worker is connected and consuming.
func (w *Worker) Ready() error {
	if !w.nc.IsConnected() {
		return errors.New("not connected to NATS")
	}
	if !w.bound.Load() {
		return errors.New("consumer groups not bound")
	}
	return w.misconfig.Err()
}

// delivery is a pulled write, decoded, and what attempting it taught.
type delivery struct {
	msg  jetstream.Msg
	meta *jetstream.MsgMetadata
	w    *intake.Write
	err  error       // why it cannot be applied
	turn *lanes.Turn // its place in its memory's lane, when decoded
	// span is its process span (tracing.go); nil when tracing is off.
	span *telemetry.ProcessSpan
	// wants says it is counted among its partition's writes waiting for a
	// memory API slot (ownership.Partition.Waiting).
	wants bool

	retry retryState
}

// retryState is what the delivery policy learned of a write by attempting
// it. A parked write carries it along (Soma-Parked-Attempts,
// Soma-Parked-Not-Before).
type retryState struct {
	attempts int // failed attempts counted so far, 0 if none here
	// notBefore is when the write may next be sent: an attempt that got
	// no answer may still be applied by the memory API until then.
	notBefore time.Time
}

// prepare decodes a write and places it in its lane. meta is the write's
// metadata, nil when it has none.
func (g *group) prepare(msg jetstream.Msg, meta *jetstream.MsgMetadata) delivery {
	if meta == nil {
		_, err := msg.Metadata()
		return delivery{msg: msg, err: err}
	}
	w, err := intake.Decode(msg, meta.Sequence.Stream, g.cfg.ReplyPrefixes)
	d := delivery{msg: msg, meta: meta, w: w, err: err}
	if err == nil {
		d.turn = g.lanes.Expect(w.Addr.Tenant, w.Memory, meta.Sequence.Stream)
	}
	return d
}

// wantSlot counts the write among its partition's writes waiting for a
// memory API slot, or stops counting it. Only a write that could take a
// slot at once is counted: not one waiting for its lane, a retry delay or
// its tenant's breaker, so that a failing tenant's writes do not hold
// back its partition's other tenants.
func (d *delivery) wantSlot(pt *ownership.Partition, want bool) {
	if d.wants == want {
		return
	}
	d.wants = want
	if want {
		pt.Waiting(+1)
	} else {
		pt.Waiting(-1)
	}
}

// notBefore is when a handed-back write may come back to the next owner.
func (d delivery) notBefore() time.Time {
	return d.retry.notBefore
}

// start is the partitions' Start hook: it decodes a write and places it in
// its lane, in stream order, and returns its handling.
func (g *group) start(pt *ownership.Partition, msg jetstream.Msg, meta *jetstream.MsgMetadata) func(done func()) {
	d := g.prepare(msg, meta)
	if d.err == nil && d.turn != nil && d.turn.Told() {
		// Counted at once, on the pull loop, so that the partition does
		// not pull again before the write is counted in its goroutine.
		d.wantSlot(pt, true)
	}
	return func(done func()) { g.handle(pt.Context(), pt.WorkContext(), d, pt, done) }
}

// step is what happens to a write after an attempt; its process span
// records it.
type step = telemetry.Step

const (
	settled   = telemetry.Settled   // acked: applied, dead-lettered or parked
	again     = telemetry.Again     // to be attempted again after a delay
	deferred  = telemetry.Deferred  // not attempted: the tenant's breaker is open
	abandoned = telemetry.Abandoned // not the write's fault (shutdown): hand it back
)

// handle is the delivery policy for one write, from the moment it is
// pulled until it is settled or handed back, when it calls done. A write
// waits for the earlier writes to its memory, then for a slot (tenants
// take turns), then is attempted; a transient failure or an open breaker
// makes it wait, still held, and try again. ctx ends when the partition
// is released: a write not running then is handed back.
func (g *group) handle(ctx, workCtx context.Context, d delivery, pt *ownership.Partition, done func()) {
	msg, meta, w := d.msg, d.meta, d.w
	if meta == nil {
		g.log.Error().Err(d.err).Msg("message without JetStream metadata")
		done()
		return
	}
	workCtx, d.span = g.startProcess(workCtx, d, pt.Number())
	if d.err != nil {
		defer done()
		defer d.span.End()
		g.noteForeignMsgID(d)
		for g.deadLetter(workCtx, msg, meta, w, 0, dlq.Failure{Class: streams.ClassBadInput, Reason: d.err.Error()}, streams.OutcomeDead) > 0 {
			if !sleep(ctx, g.backoff(1, 0)) {
				pt.HandBack(msg, d.notBefore())
				return
			}
		}
		d.span.SetOutcome(telemetry.OutcomeDeadLettered)
		return
	}
	end := func() {
		g.lanes.Leave(d.turn)
		d.span.End()
		done()
	}
	tenant := g.metrics.TenantLabel(w.Addr.Tenant)
	if meta.NumDelivered == 1 {
		g.metrics.Received.WithLabelValues(string(g.mode), tenant).Inc()
	} else {
		g.log.Debug().Str("group", string(g.mode)).Int("partition", pt.Number()).Str("tenant", w.Addr.Tenant).Uint64("seq", meta.Sequence.Stream).Uint64("delivered", meta.NumDelivered).Msg("write delivered again")
	}
	if !d.turn.Told() {
		g.metrics.Waiting.WithLabelValues(string(g.mode)).Inc()
		err := g.lanes.Wait(ctx, d.turn)
		g.metrics.Waiting.WithLabelValues(string(g.mode)).Dec()
		if err != nil {
			pt.HandBack(msg, d.notBefore())
			end()
			return
		}
	}
	fair.Run(g.attempts(ctx, workCtx, &d, pt, tenant, end), nil)
}

// attempts attempts a write, at the head of its lane, until it is settled
// or handed back, and then calls end. A write waiting for a slot waits as
// data (fair.Slots.AcquireOrQueue), not in a goroutine, and goes on when
// its turn comes, in the goroutine of the write that handed it its slot
// as it finished, or in one of its own. attempts returns the next write's
// turn, when this one finished and handed it its slot, for the caller to
// run (fair.Run).
func (g *group) attempts(ctx, workCtx context.Context, d *delivery, pt *ownership.Partition, tenant string, end func()) fair.Then {
	handBack := func() {
		d.wantSlot(pt, false)
		pt.HandBack(d.msg, d.notBefore())
		end()
	}
	for {
		// Cut off from NATS, the worker starts nothing: the partition may be
		// another worker's by the time it could ack.
		for ctx.Err() == nil && !g.nc.IsConnected() {
			d.wantSlot(pt, false)
			sleep(ctx, 100*time.Millisecond)
		}
		if ctx.Err() != nil {
			handBack()
			return nil
		}
		if wait := time.Until(d.notBefore()); wait > 0 {
			d.wantSlot(pt, false)
			if !sleep(ctx, wait) {
				handBack()
				return nil
			}
		}
		moved, err := g.parking.divert(ctx, *d)
		if moved && err == nil {
			d.wantSlot(pt, false)
			d.span.SetOutcome(telemetry.OutcomeParked)
			end()
			return nil
		}
		if err != nil {
			d.wantSlot(pt, false)
			g.log.Warn().Err(err).Str("group", string(g.mode)).Uint64("seq", d.meta.Sequence.Stream).Msg("cannot move a parked tenant's write aside; retrying")
			if !sleep(ctx, g.backoff(1, 0)) {
				handBack()
				return nil
			}
			continue
		}
		if !g.misconfig.Wait(ctx) {
			handBack()
			return nil
		}
		// Counted until it has a slot or gives up, whether it waits as
		// data (then runs) or as the dispatcher.
		d.wantSlot(pt, true)
		held, err := g.fair.AcquireOrQueue(ctx, d.w.Addr.Tenant, func(err error) fair.Then {
			d.wantSlot(pt, false)
			if err != nil {
				handBack()
				return nil
			}
			if next, again := g.attempt(ctx, workCtx, d, pt, tenant, end); !again {
				return next
			}
			return g.attempts(ctx, workCtx, d, pt, tenant, end)
		})
		if held || err != nil {
			d.wantSlot(pt, false)
		}
		if err != nil {
			handBack()
			return nil
		}
		if !held {
			return nil
		}
		if next, again := g.attempt(ctx, workCtx, d, pt, tenant, end); !again {
			return next
		}
	}
}

// attempt makes one attempt with a slot held, and gives the slot back. It
// reports whether the write is to be attempted again; if not, it has
// called end, and next is the turn of the write it handed its slot to, if
// any, for the caller to run. A write that goes on waiting hands its slot
// on to a goroutine of its own.
func (g *group) attempt(ctx, workCtx context.Context, d *delivery, pt *ownership.Partition, tenant string, end func()) (next fair.Then, again bool) {
	g.metrics.InFlight.Inc()
	result, after := g.apply(workCtx, d, tenant)
	g.metrics.InFlight.Dec()
	next = g.fair.ReleaseTo()
	d.span.Stepped(result, d.retry.attempts, after)
	switch result {
	case settled:
		end()
		return next, false
	case abandoned:
		pt.HandBack(d.msg, d.notBefore())
		end()
		return next, false
	}
	if next != nil {
		go fair.Run(next, nil)
	}
	if result == deferred && ctx.Err() == nil {
		// The tenant's memory API is failing: move its writes aside so
		// that they hold nothing its partition neighbours need.
		err := g.parking.park(ctx, *d, pt, "breaker open")
		if err == nil {
			d.span.SetOutcome(telemetry.OutcomeParked)
			end()
			return nil, false
		}
		if errors.Is(err, errUnparked) {
			return nil, true
		}
		g.log.Warn().Err(err).Str("group", string(g.mode)).Uint64("seq", d.meta.Sequence.Stream).Msg("cannot park the write; holding it")
	}
	if !sleep(ctx, after) {
		pt.HandBack(d.msg, d.notBefore())
		end()
		return nil, false
	}
	return nil, true
}

// sleep waits d, or returns false when ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// apply makes one attempt through the tenant's breaker and settles the
// write: acked after a 2xx, dead-lettered, or to be tried again after the
// returned delay.
func (g *group) apply(ctx context.Context, d *delivery, tenant string) (step, time.Duration) {
	msg, meta, w := d.msg, d.meta, d.w
	seq := meta.Sequence.Stream
	now := time.Now()
	tb := g.breakers.Get(w.Addr.Tenant, now)
	a, attempted := tb.Attempt(func() memclient.Answer { return g.api.Apply(ctx, w) })
	if !attempted {
		// Not an attempt, no budget used.
		g.metrics.Deferred.WithLabelValues(string(g.mode), tenant).Inc()
		return deferred, max(tb.ReopensIn(g.cfg.ResetInterval, now)+jitter(g.cfg.ResetInterval/10), 50*time.Millisecond)
	}
	g.misconfig.Observe(a.Status)
	if sfmapi.IsMisconfiguration(a.Status) {
		// The worker's fault, not the write's: held, no budget used, tried
		// again when the memory API accepts the worker (misconfigured).
		return again, 0
	}
	switch a.Class {
	case sfmapi.Applied:
		// The caller of a sync write waits for nothing but the answer, so
		// it goes out first, and yielding once lets the connection's
		// flusher write it on its own: the server routes it before it
		// starts on the ack (a work-queue removal). The ack follows on
		// the same connection before the write leaves its lane, so acks
		// keep the order of the writes to a memory.
		if w.ReplyTo != "" {
			g.reply(w, seq, streams.OutcomeApplied, a.Status, a.Body, "")
			runtime.Gosched()
		}
		if err := msg.Ack(); err != nil {
			g.log.Warn().Err(err).Uint64("seq", seq).Msg("ack after apply failed; the write will be delivered and applied again (the memory API reads no idempotency key)")
		}
		if meta.NumDelivered > 1 || d.retry.attempts > 0 {
			g.forgetAttempts(ctx, seq)
		}
		g.metrics.Applied.WithLabelValues(string(g.mode), tenant).Inc()
		g.metrics.Latency.WithLabelValues(string(g.mode)).Observe(time.Since(meta.Timestamp).Seconds())
		d.span.SetOutcome(telemetry.OutcomeApplied)
		return settled, 0
	case sfmapi.Permanent:
		return g.afterDeadLetter(g.deadLetter(ctx, msg, meta, w, d.retry.attempts, dlq.Failure{Class: streams.ClassPermanent, Reason: a.Err.Error(), Status: a.Status, Answer: a.Body}, streams.OutcomeRejected))
	}
	if ctx.Err() != nil {
		return abandoned, 0
	}
	n, err := g.countAttempt(ctx, seq)
	if err != nil {
		g.log.Warn().Err(err).Uint64("seq", seq).Msg("cannot count attempt; retrying without using the budget")
	}
	d.retry.attempts = n
	if n >= g.cfg.MaxAttempts {
		return g.afterDeadLetter(g.deadLetter(ctx, msg, meta, w, d.retry.attempts, dlq.Failure{Class: streams.ClassExhausted, Reason: fmt.Sprintf("%d attempts, last: %v", n, a.Err), Status: a.Status, Answer: a.Body}, streams.OutcomeDead))
	}
	delay := g.backoff(n, a.RetryAfter)
	if a.Status == 0 {
		// No answer (a time-out, a cut connection): the memory API may
		// still be applying the attempt. It reads no idempotency key, so
		// an attempt it applies after this write's next attempt and the
		// memory's next write would put the memory back. Nothing of this
		// write is sent for a request timeout, here, parked or handed
		// over, so that such a late attempt lands first.
		d.retry.notBefore = time.Now().Add(g.cfg.RequestTimeout)
		delay = max(delay, g.cfg.RequestTimeout)
	}
	g.metrics.Retried.WithLabelValues(string(g.mode), tenant).Inc()
	g.withPayloads(g.log.Debug().Ctx(ctx), msg, a.Body).Str("group", string(g.mode)).Str("tenant", w.Addr.Tenant).Uint64("seq", seq).Int("attempt", n).Err(a.Err).Msg("transient failure, will retry")
	return again, delay
}

// afterDeadLetter turns deadLetter's answer into a step: a dead letter
// that could not be stored is tried again.
func (g *group) afterDeadLetter(retryIn time.Duration) (step, time.Duration) {
	if retryIn > 0 {
		return again, retryIn
	}
	return settled, 0
}

// withPayloads adds the write's body and the memory API's answer to a log
// event, only when SOMABRAIN_OUTBOX_LOG_PAYLOADS asks for it: payloads are
// the users' data and stay out of logs by default.
func (g *group) withPayloads(e *zerolog.Event, msg jetstream.Msg, answer []byte) *zerolog.Event {
	if !g.cfg.LogPayloads {
		return e
	}
	return e.Str("body", text.HeaderSafe(string(msg.Data()), 4096)).Str("answer", text.HeaderSafe(string(answer), 4096))
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

func (g *group) reply(w *intake.Write, seq uint64, outcome streams.Outcome, status int, body []byte, errText string) {
	if w.ReplyTo == "" {
		return
	}
	out := nats.NewMsg(w.ReplyTo)
	out.Header.Set(streams.HeaderOutcome, string(outcome))
	out.Header.Set(streams.HeaderHTTPStatus, fmt.Sprint(status))
	out.Header.Set(streams.HeaderStreamSeq, fmt.Sprint(seq))
	if errText != "" {
		out.Header.Set(streams.HeaderError, text.HeaderSafe(errText, 512))
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
				evicted := g.breakers.EvictIdle(now)
				for _, tenant := range evicted {
					w.metrics.BreakerState.DeleteLabelValues(string(g.mode), w.metrics.TenantLabel(tenant))
				}
				total += len(evicted)
				w.metrics.Breakers.WithLabelValues(string(g.mode)).Set(float64(g.breakers.Len()))
			}
			if total >= massEviction {
				// A wave of tenants went idle: hand their memory back to the
				// OS now rather than whenever the next GC cycle happens.
				debug.FreeOSMemory()
			}
		}
	}
}

// noteForeignMsgID counts and reports a write whose Nats-Msg-Id claims
// another tenant. Dead-lettering it is not the whole story: the tenant it
// claims may have had a write with that id refused as a duplicate, which
// only this signal brings to light.
func (g *group) noteForeignMsgID(d delivery) {
	var bad *intake.BadInputError
	if !errors.As(d.err, &bad) || !bad.ForeignMsgID {
		return
	}
	g.metrics.ForeignMsgIDs.WithLabelValues(string(g.mode), g.metrics.TenantLabel(d.w.Addr.Tenant)).Inc()
	g.log.Warn().Str("group", string(g.mode)).Str("tenant", d.w.Addr.Tenant).Uint64("seq", d.meta.Sequence.Stream).
		Str("reason", g.loggable(bad.Reason)).Msg("write claims another tenant's message id: that tenant's write with the same id may have been refused as a duplicate")
}
