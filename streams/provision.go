package streams

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Config says how the outbox is laid out. It is persisted in JetStream, so it
// is a plain struct.
type Config struct {
	Stream          string // outbox stream name
	DLQStream       string // dead-letter stream name
	AttemptsBucket  string // KV bucket that counts delivery attempts
	Replicas        int    // 1, or 3 on a cluster
	Storage         jetstream.StorageType
	DuplicateWindow time.Duration // Nats-Msg-Id dedupe window
	MaxBytes        int64         // outbox size limit; -1 unlimited
	MaxMsgs         int64         // outbox message limit; -1 unlimited
	MaxMsgSize      int32         // largest write; -1 = the server's max payload less DLQHeadroom
	DLQMaxAge       time.Duration // how long dead letters are kept; 0 forever
	AckWait         time.Duration // how long a worker may hold a write before it is redelivered
	MaxAckPending   int           // writes in flight per group
}

// DefaultConfig is what an embedded single-node jetbox uses.
func DefaultConfig() Config {
	return Config{
		Stream:          "MEMORY",
		DLQStream:       "MEMORY_DLQ",
		AttemptsBucket:  "MEMORY_ATTEMPTS",
		Replicas:        1,
		Storage:         jetstream.FileStorage,
		DuplicateWindow: 2 * time.Minute,
		MaxBytes:        -1,
		MaxMsgs:         -1,
		MaxMsgSize:      -1,
		DLQMaxAge:       30 * 24 * time.Hour,
		AckWait:         30 * time.Second,
		MaxAckPending:   1000,
	}
}

// DLQHeadroom is what a dead letter adds to a write: the reason, the answer
// excerpt and the bookkeeping headers. The outbox refuses writes that would
// not fit the server's max payload once these are added, so every stored
// write can always be dead-lettered.
const DLQHeadroom = 4096

// ConsumerName is the durable name of a mode's consumer group.
func ConsumerName(mode Mode) string { return string(mode) }

// OutboxConfig is the outbox stream. Work-queue retention removes a write
// only when a worker acks it, which the worker does only after the memory API
// applied it or the write was dead-lettered. Discard-new makes a full outbox
// refuse new writes instead of dropping old undelivered ones.
func (c Config) OutboxConfig() jetstream.StreamConfig {
	subjects := make([]string, 0, len(Modes))
	for _, m := range Modes {
		subjects = append(subjects, ModeFilter(m))
	}
	return jetstream.StreamConfig{
		Name:        c.Stream,
		Description: "jetbox outbox: memory writes waiting to be applied",
		Subjects:    subjects,
		Retention:   jetstream.WorkQueuePolicy,
		Discard:     jetstream.DiscardNew,
		Storage:     c.Storage,
		Replicas:    c.Replicas,
		Duplicates:  c.DuplicateWindow,
		MaxBytes:    c.MaxBytes,
		MaxMsgs:     c.MaxMsgs,
		MaxMsgSize:  c.MaxMsgSize,
		AllowDirect: true,
	}
}

// DLQConfig is the dead-letter stream. It also discards new: a dead letter
// that cannot be stored leaves the write in the outbox.
func (c Config) DLQConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        c.DLQStream,
		Description: "jetbox dead letters: writes the memory API could not apply",
		Subjects:    []string{DLQSubjectPrefix + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew,
		Storage:     c.Storage,
		Replicas:    c.Replicas,
		Duplicates:  2 * time.Minute,
		MaxAge:      c.DLQMaxAge,
		AllowDirect: true,
	}
}

// ConsumerConfig is the durable pull consumer of a mode's group. MaxDeliver
// is unlimited: the workers count attempts themselves, so that deferrals while
// a breaker is open never use up the retry budget.
func (c Config) ConsumerConfig(mode Mode) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       ConsumerName(mode),
		Description:   "jetbox " + string(mode) + " workers",
		FilterSubject: ModeFilter(mode),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: c.MaxAckPending,
		Replicas:      c.Replicas,
	}
}

// AttemptsConfig is the KV bucket where workers count failed attempts per
// stream sequence. Entries expire so a crash never leaves them behind for long.
func (c Config) AttemptsConfig() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      c.AttemptsBucket,
		Description: "jetbox: failed delivery attempts per outbox sequence",
		History:     1,
		TTL:         7 * 24 * time.Hour,
		Storage:     c.Storage,
		Replicas:    c.Replicas,
	}
}

// Topology is the provisioned outbox.
type Topology struct {
	Outbox    jetstream.Stream
	DLQ       jetstream.Stream
	Attempts  jetstream.KeyValue
	Consumers map[Mode]jetstream.Consumer
}

// Provision creates or updates the streams, the attempts bucket and the three
// consumer groups. Running it again with the same config changes nothing.
func Provision(ctx context.Context, js jetstream.JetStream, cfg Config) (*Topology, error) {
	if max := js.Conn().MaxPayload(); cfg.MaxMsgSize < 0 && max > 2*DLQHeadroom {
		cfg.MaxMsgSize = int32(max - DLQHeadroom)
	}
	outbox, err := createOrUpdateStream(ctx, js, cfg.OutboxConfig())
	if err != nil {
		return nil, fmt.Errorf("provision stream %s: %w", cfg.Stream, err)
	}
	dlq, err := createOrUpdateStream(ctx, js, cfg.DLQConfig())
	if err != nil {
		return nil, fmt.Errorf("provision stream %s: %w", cfg.DLQStream, err)
	}
	attempts, err := js.CreateKeyValue(ctx, cfg.AttemptsConfig())
	if errors.Is(err, jetstream.ErrBucketExists) {
		attempts, err = js.UpdateKeyValue(ctx, cfg.AttemptsConfig())
	}
	if err != nil {
		return nil, fmt.Errorf("provision bucket %s: %w", cfg.AttemptsBucket, err)
	}
	top := &Topology{Outbox: outbox, DLQ: dlq, Attempts: attempts, Consumers: map[Mode]jetstream.Consumer{}}
	for _, m := range Modes {
		c, err := outbox.CreateOrUpdateConsumer(ctx, cfg.ConsumerConfig(m))
		if err != nil {
			return nil, fmt.Errorf("provision consumer %s: %w", ConsumerName(m), err)
		}
		top.Consumers[m] = c
	}
	return top, nil
}

// createOrUpdateStream creates first and updates only a stream that exists
// with another configuration. jetstream's CreateOrUpdateStream does it the
// other way round, and on a 3-replica cluster an update racing another
// worker's create is never answered (nats-server 2.15.2): two workers
// starting together would both time out.
func createOrUpdateStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	s, err := js.CreateStream(ctx, cfg)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return js.UpdateStream(ctx, cfg)
	}
	return s, err
}

// ErrNotProvisioned says a stream, bucket or consumer is missing.
var ErrNotProvisioned = errors.New("outbox not provisioned")

// Check reports whether everything Provision makes exists, without creating
// anything.
func Check(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	for _, name := range []string{cfg.Stream, cfg.DLQStream} {
		if _, err := js.Stream(ctx, name); err != nil {
			return fmt.Errorf("%w: stream %s: %v", ErrNotProvisioned, name, err)
		}
	}
	if _, err := js.KeyValue(ctx, cfg.AttemptsBucket); err != nil {
		return fmt.Errorf("%w: bucket %s: %v", ErrNotProvisioned, cfg.AttemptsBucket, err)
	}
	for _, m := range Modes {
		if _, err := js.Consumer(ctx, cfg.Stream, ConsumerName(m)); err != nil {
			return fmt.Errorf("%w: consumer %s: %v", ErrNotProvisioned, ConsumerName(m), err)
		}
	}
	return nil
}
