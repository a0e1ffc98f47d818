// Package producer is the Go API services use to write memories.
//
// A write (Store, Delete, Link) becomes one message on
// memory.<tenant>.<mode>.<op> in the outbox stream, with the headers and body
// of the wire contract. The write mode decides when the call returns:
//
//   - sync: when the memory API has applied the write (its answer is in the
//     Result), or with a *RejectedError when it refused it, or with a
//     *QueuedError when no outcome came within the sync timeout (the write is
//     durable and will be applied later);
//   - fast_ack: when the outbox has stored the write;
//   - background: at once; the write waits in a bounded buffer and is
//     published asynchronously. Failures go to Config.OnBackgroundError and
//     the metrics; Flush and Close wait for the buffer to drain.
//
// Every retry of a write reuses its Nats-Msg-Id (tenant token and idempotency
// key), so the outbox stores it once. The package never logs.
package producer

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/jetbox-dev/jetbox/internal/text"
	"github.com/jetbox-dev/jetbox/streams"
	"github.com/jetbox-dev/jetbox/tenancy"
)

// Config configures a Producer. The zero value is usable: sync writes to the
// "public" tenant with the defaults below.
type Config struct {
	Mode           streams.Mode  // default write mode; "" = sync
	DefaultTenant  string        // tenant of writes that name none; "" = tenancy.DefaultTenant
	Universe       string        // coordinate universe of keys; "" = "real"
	SyncTimeout    time.Duration // how long a sync write waits for its outcome, publish included; 0 = 10s
	PublishTimeout time.Duration // how long a write may take to be stored, retries included; 0 = 5s
	BufferSize     int           // background buffer capacity in writes; 0 = 10000
	// BufferFullError makes a background write return ErrBufferFull at once
	// when the buffer is full; otherwise it blocks until there is room or
	// its context ends.
	BufferFullError bool
	MaxInFlight     int // background publishes awaiting their ack; 0 = 4096
	// OnBackgroundError is called once for every background write that could
	// not be stored. It runs on the producer's own goroutines (and, when Close
	// gives up, on nats.go's): it must return quickly, and must not call Flush
	// or Close or make background writes.
	OnBackgroundError func(BackgroundFailure)
	Registerer        prometheus.Registerer // nil = no metrics
	// SubjectPrefix is put before every subject the producer publishes
	// to. "" publishes straight into the outbox (memory.<tenant>.<mode>.<op>);
	// "ingest." (ingest.SubjectPrefix) publishes through the workers' ingest
	// gateway, as a tenant confined to ingest.memory.<its token>.> must.
	// Through the gateway, background writes to one memory may be stored
	// out of order (docs/CONTRACT.md, "Publishing through the ingest
	// gateway"); sync and fast_ack calls made one after another keep theirs.
	SubjectPrefix string
	// TracerProvider makes a span of every write, whose context the write
	// carries to the workers (traceparent); nil makes none
	// (internal/tracing.Setup gives jetbox's commands theirs).
	TracerProvider trace.TracerProvider
}

// BackgroundFailure is a background write that was finally given up.
type BackgroundFailure struct {
	Subject        string
	MsgID          string
	IdempotencyKey string
	Err            error // wraps ErrPublishTimeout, ErrClosed, ErrOutboxFull, ErrTenantBacklogFull, ErrPayloadTooLarge, ...
}

// Result describes a write.
type Result struct {
	Mode           streams.Mode
	Subject        string // the subject published to: Config.SubjectPrefix and the outbox subject
	Sequence       uint64 // outbox stream sequence; 0 for background writes
	Duplicate      bool   // the outbox already held a write with this Nats-Msg-Id
	MsgID          string // Nats-Msg-Id: "<tenant token>:<idempotency key>"
	IdempotencyKey string
	Coord          string // the memory's coord; for a link, the from coord
	Status         int    // sync: the memory API's HTTP status
	Body           []byte // sync: the memory API's answer
}

// Producer writes memories. It is safe for concurrent use.
type Producer struct {
	nc             *nats.Conn
	js             jetstream.JetStream // background publisher, with its ack handlers
	ackJS          jetstream.JetStream // fast_ack and sync publishes, each waiting on its own future
	ackClosed      atomic.Bool         // Close has cleaned ackJS up
	cfg            Config
	attemptTimeout time.Duration
	metrics        *metrics
	replies        *replyMux
	bg             *background
	tracer         trace.Tracer // nil: tracing off
}

// New makes a Producer on nc. The outbox must already be provisioned
// (streams.Provision). Close the Producer before closing nc.
func New(nc *nats.Conn, cfg Config) (*Producer, error) {
	if nc == nil {
		return nil, errors.New("producer: nil NATS connection")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("producer: metrics: %w", err)
	}
	p := &Producer{
		nc:             nc,
		cfg:            cfg,
		attemptTimeout: publishAttempt(cfg.PublishTimeout),
		metrics:        m,
		replies:        newReplyMux(nc),
		tracer:         newTracer(cfg.TracerProvider),
	}
	p.bg = newBackground(&p.cfg, m)
	// The JetStream context is the producer's own: its async ack handlers
	// belong to the background publisher, and Close cleans it up.
	p.js, err = jetstream.New(nc,
		jetstream.WithPublishAsyncAckHandler(p.bg.onAck),
		jetstream.WithPublishAsyncErrHandler(p.bg.onError),
		jetstream.WithPublishAsyncMaxPending(cfg.MaxInFlight),
		jetstream.WithPublishAsyncTimeout(p.attemptTimeout),
	)
	if err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	// Every fast_ack or sync caller has at most one publish awaiting its
	// ack (plus, briefly, attempts it gave up on), so the window only
	// bounds what would otherwise be unbounded; the ack timeout is the
	// attempt timeout.
	p.ackJS, err = jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(ackMaxPending),
		jetstream.WithPublishAsyncTimeout(p.attemptTimeout),
	)
	if err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	p.bg.start(p.js)
	return p, nil
}

// DefaultConfig holds the defaults the zero values of Config stand for;
// the settings without one are left zero.
func DefaultConfig() Config {
	return Config{
		Mode:           streams.ModeSync,
		DefaultTenant:  tenancy.DefaultTenant,
		Universe:       DefaultUniverse,
		SyncTimeout:    10 * time.Second,
		PublishTimeout: 5 * time.Second,
		BufferSize:     10000,
		MaxInFlight:    4096,
	}
}

// ackMaxPending bounds the fast_ack and sync publishes awaiting their ack; a
// publish beyond it waits up to nats.go's stall wait, then is retried.
const ackMaxPending = 1 << 16

// withDefaults fills in the zero values and checks the rest.
func (cfg Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	if cfg.Mode == "" {
		cfg.Mode = d.Mode
	}
	if _, err := streams.ParseMode(string(cfg.Mode)); err != nil {
		return cfg, fmt.Errorf("producer: Mode: %w", err)
	}
	if cfg.DefaultTenant == "" {
		cfg.DefaultTenant = d.DefaultTenant
	}
	if err := tenancy.Validate(cfg.DefaultTenant); err != nil {
		return cfg, fmt.Errorf("producer: DefaultTenant: %w", err)
	}
	if cfg.Universe == "" {
		cfg.Universe = d.Universe
	}
	if p := cfg.SubjectPrefix; p != "" && (!strings.HasSuffix(p, ".") || strings.HasPrefix(p, ".") || strings.Contains(p, "..") || strings.ContainsAny(p, " \t\r\n*>")) {
		return cfg, fmt.Errorf("producer: SubjectPrefix %q: want literal subject tokens ending with \".\", such as \"ingest.\"", p)
	}
	if err := defaultTo(&cfg.SyncTimeout, d.SyncTimeout, "SyncTimeout"); err != nil {
		return cfg, err
	}
	if err := defaultTo(&cfg.PublishTimeout, d.PublishTimeout, "PublishTimeout"); err != nil {
		return cfg, err
	}
	if err := defaultTo(&cfg.BufferSize, d.BufferSize, "BufferSize"); err != nil {
		return cfg, err
	}
	return cfg, defaultTo(&cfg.MaxInFlight, d.MaxInFlight, "MaxInFlight")
}

// defaultTo sets a zero setting to def and refuses a negative one.
func defaultTo[T int | time.Duration](setting *T, def T, name string) error {
	switch {
	case *setting < 0:
		return fmt.Errorf("producer: %s %v is negative", name, *setting)
	case *setting == 0:
		*setting = def
	}
	return nil
}

// Store writes a memory (POST /memories).
func (p *Producer) Store(ctx context.Context, r StoreRequest, opts ...WriteOption) (Result, error) {
	w := getOutgoing()
	err := w.setBody(r.encode(p.cfg.Universe, w.body))
	return p.write(ctx, streams.OpStore, r.Tenant, r.Namespace, w, err, opts)
}

// Delete deletes a memory (DELETE /memories/{coord}).
func (p *Producer) Delete(ctx context.Context, r DeleteRequest, opts ...WriteOption) (Result, error) {
	w := getOutgoing()
	err := w.setBody(r.encode(p.cfg.Universe, w.body))
	return p.write(ctx, streams.OpDelete, r.Tenant, r.Namespace, w, err, opts)
}

// Link links two memories (POST /graph/link).
func (p *Producer) Link(ctx context.Context, r LinkRequest, opts ...WriteOption) (Result, error) {
	w := getOutgoing()
	err := w.setBody(r.encode(p.cfg.Universe, w.body))
	return p.write(ctx, streams.OpLink, r.Tenant, r.Namespace, w, err, opts)
}

// Flush waits until every background write accepted so far is stored or
// finally failed (and reported), or until ctx ends.
func (p *Producer) Flush(ctx context.Context) error { return p.bg.flush(ctx) }

// Close refuses new writes (ErrClosed), waits for the background writes like
// Flush, then stops the producer's goroutines and subscriptions. It does not
// close the NATS connection. When ctx ends first, the background writes not
// yet stored are given up, each reported to OnBackgroundError with an error
// wrapping ErrClosed, and Close returns the context's error. Fast_ack and sync
// writes still awaiting the outbox's ack then return an error wrapping
// ErrClosed (they may be stored); sync writes still waiting for their outcome
// return a *QueuedError. Calling Close again does nothing.
func (p *Producer) Close(ctx context.Context) error {
	err := p.bg.close(ctx)
	if err == errAlreadyClosed {
		return nil
	}
	p.js.CleanupPublisher()
	p.ackClosed.Store(true)
	p.ackJS.CleanupPublisher()
	p.replies.close()
	return err
}

// write is the one path every write takes: resolve the tenant and the
// subject, add the headers, check the size, then hand the message to its mode.
// w holds the encoded body, or encodeErr says why there is none.
func (p *Producer) write(ctx context.Context, op streams.Op, tenant, namespace string, w *outgoing, encodeErr error, opts []WriteOption) (Result, error) {
	// The options live in w, which is pooled: options passed to func values
	// would escape to the heap on every write otherwise.
	o := &w.opts
	*o = writeOptions{mode: p.cfg.Mode}
	for _, opt := range opts {
		opt(o)
	}
	mode := o.mode
	span := p.startPublish(ctx, o)
	res := Result{Mode: mode, Coord: w.coord}
	err := encodeErr
	if err == nil {
		err = p.prepare(op, tenant, namespace, o, w, &res)
	}
	describePublish(span, w, p.cfg.SubjectPrefix)
	if err == nil {
		switch mode {
		case streams.ModeFastAck:
			err = p.fastAck(ctx, w, &res)
		case streams.ModeSync:
			err = p.syncWrite(ctx, w, &res)
		default:
			// The background owns w from here, and counts it when it is
			// finally stored or failed.
			if err = p.bg.enqueue(ctx, w); err == nil {
				endPublish(span, &res, nil)
				return res, nil
			}
			w = nil
		}
	}
	if w != nil {
		putOutgoing(w)
	}
	switch {
	case err == nil, errors.Is(err, ErrQueued):
		if res.Duplicate {
			p.metrics.write(mode, resultDuplicate)
		} else {
			p.metrics.write(mode, resultStored)
		}
	default:
		p.metrics.write(mode, errorResult(err))
	}
	endPublish(span, &res, err)
	return res, err
}

// prepare addresses w and sets its headers.
func (p *Producer) prepare(op streams.Op, tenant, namespace string, o *writeOptions, w *outgoing, res *Result) error {
	if p.bg.isClosed() {
		return ErrClosed
	}
	tenant, err := tenancy.Resolve(tenant, namespace, p.cfg.DefaultTenant)
	if err != nil {
		return err
	}
	addr, err := streams.NewAddress(tenant, o.mode, op)
	if err != nil {
		return err
	}
	// Workers refuse a namespace that names another tenant: the memory API
	// would scope the write by it.
	if nt := tenancy.FromNamespace(namespace); namespace != "" && nt != tenant {
		return invalid("namespace", fmt.Sprintf("names tenant %q, not the write's tenant %q", text.Clip(nt, 64), text.Clip(tenant, 64)))
	}
	for _, h := range [...]struct{ field, value string }{
		{"namespace", namespace}, {"idempotency key", o.idempotencyKey}, {"request id", o.requestID},
		{"traceparent", o.traceparent}, {"tracestate", o.tracestate},
	} {
		if err := checkHeaderValue(h.field, h.value); err != nil {
			return err
		}
	}
	base := o.idempotencyKey
	if base == "" {
		base = o.requestID
	}
	if base == "" {
		if base, err = newIdempotencyKey(); err != nil {
			return err
		}
	}
	// The outbox id is always derived from the whole write, so nobody can
	// compute it in advance; the key the memory API sees is the caller's
	// own when it gave one.
	derived := DeriveIdempotencyKey(op, tenant, base, w.body)
	w.key = o.idempotencyKey
	if w.key == "" {
		w.key = derived
	}
	w.msgID = addr.Token + ":" + derived
	if o.mode == streams.ModeSync {
		if w.reply, err = p.replies.newSubject(); err != nil {
			return err
		}
	}
	w.msg.Subject = p.cfg.SubjectPrefix + addr.Subject()
	w.msg.Data = w.body
	w.setHeader(streams.HeaderMsgID, w.msgID)
	w.setHeader(streams.HeaderIdempotencyKey, w.key)
	w.setHeader(streams.HeaderTenant, tenant)
	w.setHeader(streams.HeaderNamespace, namespace)
	w.setHeader(streams.HeaderRequestID, o.requestID)
	w.setHeader(streams.HeaderTraceparent, o.traceparent)
	w.setHeader(streams.HeaderTracestate, o.tracestate)
	w.setHeader(streams.HeaderReplyTo, w.reply)
	w.addr = addr
	res.Subject, res.MsgID, res.IdempotencyKey = w.msg.Subject, w.msgID, w.key
	if limit := p.nc.MaxPayload(); w.size() > limit {
		return &PayloadTooLargeError{Size: w.size(), Max: limit}
	}
	return nil
}

// keyRandom buffers crypto/rand for the default idempotency keys: one
// getrandom call per 256 keys instead of one per key.
var keyRandom = struct {
	sync.Mutex
	r *bufio.Reader
}{r: bufio.NewReaderSize(rand.Reader, 4096)}

// newIdempotencyKey returns a new UUID v7: unique, and ordered by time so
// that keys of one producer sort in the order of their writes.
func newIdempotencyKey() (string, error) {
	keyRandom.Lock()
	id, err := uuid.NewV7FromReader(keyRandom.r)
	keyRandom.Unlock()
	if err != nil {
		return "", fmt.Errorf("idempotency key: %w", err)
	}
	return id.String(), nil
}

// fastAck returns once the outbox has stored the write.
func (p *Producer) fastAck(ctx context.Context, w *outgoing, res *Result) error {
	start := time.Now()
	ack, err := p.publishDurable(ctx, w)
	if err != nil {
		return err
	}
	p.metrics.published(streams.ModeFastAck, start)
	res.Sequence, res.Duplicate = ack.Sequence, ack.Duplicate
	return nil
}
