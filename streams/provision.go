package streams

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Config says how the outbox is laid out. It is persisted in JetStream, so it
// is a plain struct.
type Config struct {
	Stream          string // outbox stream name
	DLQStream       string // dead-letter stream name
	AttemptsBucket  string // KV bucket that counts delivery attempts
	MembersBucket   string // KV bucket where live workers heartbeat
	ParkingStream   string // stream where parked tenants' writes wait
	ParkingBucket   string // KV bucket listing the parked tenants
	Replicas        int    // 1, or 3 on a cluster
	Storage         jetstream.StorageType
	DuplicateWindow time.Duration // Nats-Msg-Id dedupe window
	MaxBytes        int64         // outbox size limit; -1 unlimited
	MaxMsgs         int64         // outbox message limit; -1 unlimited
	MaxMsgSize      int32         // largest write; -1 = the server's max payload less DLQHeadroom
	DLQMaxAge       time.Duration // how long dead letters are kept; 0 forever
	AckWait         time.Duration // how long a worker may hold a write before it is redelivered
	MaxAckPending   int           // writes in flight per partition consumer (not per mode: a mode holds Partitions times as many)
	Partitions      int           // partitions per mode, 1 to MaxPartitions; each is one consumer owned by one worker
	MemberTTL       time.Duration // a worker that has not heartbeated for this long is gone, and its partitions move

	// TenantMaxPending is the tenant quota: how many writes one tenant may
	// have waiting in the outbox per mode and op (one stored subject).
	// The server refuses the next one. -1 unlimited.
	TenantMaxPending int64
}

// DefaultConfig is what an embedded single-node jetbox uses.
func DefaultConfig() Config {
	return Config{
		Stream:          "MEMORY",
		DLQStream:       "MEMORY_DLQ",
		AttemptsBucket:  "MEMORY_ATTEMPTS",
		MembersBucket:   "MEMORY_WORKERS",
		ParkingStream:   "MEMORY_PARKED",
		ParkingBucket:   "MEMORY_PARKING",
		Replicas:        1,
		Storage:         jetstream.FileStorage,
		DuplicateWindow: 2 * time.Minute,
		MaxBytes:        -1,
		MaxMsgs:         -1,
		MaxMsgSize:      -1,
		DLQMaxAge:       30 * 24 * time.Hour,
		AckWait:         30 * time.Second,
		MaxAckPending:   128,
		Partitions:      24,
		MemberTTL:       10 * time.Second,

		TenantMaxPending: DefaultTenantMaxPending,
	}
}

// DefaultPullMaxBytes is the default bound on the bytes of the writes a
// worker holds per partition it owns: four of the largest messages a
// default nats-server takes. A worker owning all 72 default partitions
// holds at most 288 MiB of writes, whatever their count.
const DefaultPullMaxBytes = 4 << 20

// DefaultQueuedPerPartition is how many writes per owned partition a
// worker takes from the stream to wait for a memory API slot. Beyond a
// few per partition, writes waiting for a slot only wait in the worker's
// memory instead of in the stream: the slots are busy either way.
const DefaultQueuedPerPartition = 16

// DefaultTenantMaxPending is the default tenant quota, the backlog
// SomaBrain's own database outbox allowed a tenant.
const DefaultTenantMaxPending = 10000

// ErrInvalidConfig says Provision was given a layout it cannot make.
var ErrInvalidConfig = errors.New("invalid outbox config")

func (c Config) validate() error {
	if c.Partitions < 1 || c.Partitions > MaxPartitions {
		return fmt.Errorf("%w: Partitions = %d, allowed 1 to %d", ErrInvalidConfig, c.Partitions, MaxPartitions)
	}
	if c.TenantMaxPending == 0 || c.TenantMaxPending < -1 {
		return fmt.Errorf("%w: TenantMaxPending = %d, allowed at least 1, or -1 for unlimited", ErrInvalidConfig, c.TenantMaxPending)
	}
	if c.MemberTTL <= 0 {
		return fmt.Errorf("%w: MemberTTL = %v, must be above 0 or a dead worker would keep its partitions", ErrInvalidConfig, c.MemberTTL)
	}
	return nil
}

// PinnedTTL is how long a partition consumer stays pinned to an owner that
// has stopped pulling. A live owner renews its pin with every pull request,
// at least every PullExpiry, so three of those leave it a wide margin; a dead
// owner's partitions are free to be taken that long after its last request.
//
// The pin is not what keeps order across a crash: the new owner starts no
// write until every write pending on the consumer, the dead owner's
// included, has been delivered to it (they come back when their ack wait
// runs out), and then starts them in stream order. A dead worker's share is
// therefore taken over within the ack wait of its last sign of life.
func (c Config) PinnedTTL() time.Duration { return 3 * PullExpiry }

// DLQHeadroom is what a dead letter adds to a write: the reason, the answer
// excerpt and the bookkeeping headers. The outbox refuses writes that would
// not fit the server's max payload once these are added, so every stored
// write can always be dead-lettered.
const DLQHeadroom = 4096

// OutboxConfig is the outbox stream. Work-queue retention removes a write
// only when a worker acks it, which the worker does only after the memory API
// applied it or the write was dead-lettered. Discard-new makes a full outbox
// refuse new writes instead of dropping old undelivered ones.
//
// Producers publish memory.<token>.<mode>.<op>; the subject transform
// stores each write as memory.<mode>.<partition>.<token>.<op>, the
// partition hashed from the tenant token alone (PartitionOf), so a tenant's
// writes all land in one partition. The stream takes four-token subjects
// only, so a producer cannot publish to a partition of its choosing, and
// only the contract's ops, so a subject ending in a wildcard is refused.
//
// The per-subject limit, with discard-new per subject, is the tenant
// quota: a stored subject holds one tenant's writes of one mode and op, so
// once TenantMaxPending of them wait, the server refuses that tenant's
// next one there while everybody else's are stored as before.
func (c Config) OutboxConfig() jetstream.StreamConfig {
	subjects := make([]string, 0, len(Modes)*len(Ops))
	for _, m := range Modes {
		for _, op := range Ops {
			subjects = append(subjects, OpSubject(m, op))
		}
	}
	return jetstream.StreamConfig{
		Name:        c.Stream,
		Description: "jetbox outbox: memory writes waiting to be applied",
		Subjects:    subjects,
		SubjectTransform: &jetstream.SubjectTransformConfig{
			Source:      SubjectPrefix + ".*.*.*",
			Destination: storedLayout(c.Partitions),
		},
		Retention:            jetstream.WorkQueuePolicy,
		Discard:              jetstream.DiscardNew,
		Storage:              c.Storage,
		Replicas:             c.Replicas,
		Duplicates:           c.DuplicateWindow,
		MaxBytes:             c.MaxBytes,
		MaxMsgs:              c.MaxMsgs,
		MaxMsgSize:           c.MaxMsgSize,
		MaxMsgsPerSubject:    c.TenantMaxPending,
		DiscardNewPerSubject: c.TenantMaxPending > 0,
		// The server allows 1000 consumers per stream unless told
		// otherwise; the partitions may need up to 3000, and the stray
		// consumer is one more. No other consumer can share a work-queue
		// stream whose every subject is filtered.
		MaxConsumers: len(Modes)*c.Partitions + 1,
		AllowDirect:  true,
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

// ConsumerConfig is the durable pull consumer of one partition of a mode.
// MaxDeliver is unlimited: the workers count attempts themselves, so that
// deferrals while a breaker is open never use up the retry budget. The
// pinned priority group lets one worker at a time pull from it; see
// PinnedTTL for how long a silent owner keeps it.
func (c Config) ConsumerConfig(mode Mode, p int) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        PartitionConsumerName(mode, p),
		Description:    fmt.Sprintf("jetbox %s workers, partition %d", mode, p),
		FilterSubject:  PartitionFilter(mode, p),
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        c.AckWait,
		MaxDeliver:     -1,
		MaxAckPending:  c.MaxAckPending,
		Replicas:       c.Replicas,
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PriorityGroups: []string{OwnerGroup},
		PinnedTTL:      c.PinnedTTL(),
	}
}

// StrayConsumer is the outbox consumer of the writes stored without a
// partition token.
const StrayConsumer = "unpartitioned"

// StrayConsumerConfig is the durable pull consumer of the writes the
// subject transform could not partition. The server stores a publish whose
// subject carries a wildcard token (memory.*.sync.store,
// memory.acme.sync.>) under that literal subject: it matches the stream's
// subjects, but a transform refuses a subject that is not literal. Such a
// write has four tokens, no partition consumer's filter matches it, and
// without this consumer it would sit in the outbox forever. Every worker
// pulls from it and dead-letters what it delivers.
func (c Config) StrayConsumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       StrayConsumer,
		Description:   "jetbox: writes stored without a partition (wildcard subjects), to dead-letter",
		FilterSubject: SubjectPrefix + ".*.*.*",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: 64,
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

// MembersConfig is the KV bucket where each worker keeps a key alive while
// it runs. The TTL drops a worker that stopped heartbeating.
func (c Config) MembersConfig() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      c.MembersBucket,
		Description: "jetbox: live workers (heartbeats)",
		History:     1,
		TTL:         c.MemberTTL,
		Storage:     c.Storage,
		Replicas:    c.Replicas,
	}
}

// Topology is the provisioned outbox.
type Topology struct {
	Outbox    jetstream.Stream
	DLQ       jetstream.Stream
	Attempts  jetstream.KeyValue
	Members   jetstream.KeyValue
	Parking   jetstream.Stream
	Parked    jetstream.KeyValue
	Consumers map[Mode][]jetstream.Consumer // by mode, then partition
	Stray     jetstream.Consumer            // writes stored without a partition
}

// Provision creates or updates the streams, the buckets and a consumer per
// mode and partition. Running it again with the same config changes nothing.
//
// An existing outbox's tenant quota is changed in place. Setting or
// lowering it is refused with ErrNotDrained while a tenant has more writes
// waiting than it leaves room for (checkQuotaKeepsWrites).
//
// It also retires the consumers the layout no longer has: those of the
// unpartitioned layout (named after the modes) and, when Partitions
// shrinks, those of the partitions beyond it. It refuses with ErrNotDrained,
// before changing anything where it can, while one of them still holds
// writes, which no consumer of the new layout would ever deliver, and while
// the outbox holds any write at all if the new partition count moves
// tenants between the partitions that remain (anything but shrinking to a
// divisor of the old count), which would break a tenant's order.
func Provision(ctx context.Context, js jetstream.JetStream, cfg Config) (*Topology, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	// A connection learns its account's max payload (accounts { X {
	// limits { max_payload } } }) only after its first round trip; before
	// it, MaxPayload is the server-wide one, and writes the workers could
	// not dead-letter would be let in.
	flushCtx, cancel := context.WithTimeout(ctx, 10*time.Second) // FlushWithContext wants a deadline
	err := js.Conn().FlushWithContext(flushCtx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("provision: reach the NATS server: %w", err)
	}
	if max := js.Conn().MaxPayload(); cfg.MaxMsgSize < 0 && max > 2*DLQHeadroom {
		cfg.MaxMsgSize = int32(max - DLQHeadroom)
	}
	if existing, err := lookUpStream(ctx, js, cfg.Stream); err == nil {
		if _, err := retiredConsumers(ctx, existing, cfg); err != nil {
			return nil, err
		}
		if err := checkQuotaKeepsWrites(ctx, existing, cfg); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("provision stream %s: look up: %w", cfg.Stream, err)
	}
	outbox, err := createOrUpdateStream(ctx, js, cfg.OutboxConfig())
	if err != nil {
		return nil, fmt.Errorf("provision stream %s: %w", cfg.Stream, err)
	}
	dlq, err := createOrUpdateStream(ctx, js, cfg.DLQConfig())
	if err != nil {
		return nil, fmt.Errorf("provision stream %s: %w", cfg.DLQStream, err)
	}
	attempts, err := createOrUpdateBucket(ctx, js, cfg.AttemptsConfig())
	if err != nil {
		return nil, err
	}
	members, err := createOrUpdateBucket(ctx, js, cfg.MembersConfig())
	if err != nil {
		return nil, err
	}
	parking, err := createOrUpdateStream(ctx, js, cfg.ParkingConfig())
	if err != nil {
		return nil, fmt.Errorf("provision stream %s: %w", cfg.ParkingStream, err)
	}
	parked, err := createOrUpdateBucket(ctx, js, cfg.ParkingBucketConfig())
	if err != nil {
		return nil, err
	}
	// Checked again now that the stream stores nothing new for them: a write
	// may have come in since the first check.
	retired, err := retiredConsumers(ctx, outbox, cfg)
	if err != nil {
		return nil, err
	}
	for _, name := range retired {
		if err := outbox.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, fmt.Errorf("delete retired consumer %s: %w", name, err)
		}
	}
	top := &Topology{Outbox: outbox, DLQ: dlq, Attempts: attempts, Members: members, Parking: parking, Parked: parked, Consumers: map[Mode][]jetstream.Consumer{}}
	for _, m := range Modes {
		for p := range cfg.Partitions {
			c, err := outbox.CreateOrUpdateConsumer(ctx, cfg.ConsumerConfig(m, p))
			if err != nil {
				return nil, fmt.Errorf("provision consumer %s: %w", PartitionConsumerName(m, p), err)
			}
			top.Consumers[m] = append(top.Consumers[m], c)
		}
	}
	if top.Stray, err = outbox.CreateOrUpdateConsumer(ctx, cfg.StrayConsumerConfig()); err != nil {
		return nil, fmt.Errorf("provision consumer %s: %w", StrayConsumer, err)
	}
	return top, nil
}

// CountStored counts the messages a stream holds on subjects matching
// filter. The stream's leader answers, so the count includes everything it
// has acknowledged.
func CountStored(ctx context.Context, s jetstream.Stream, filter string) (uint64, error) {
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, count := range info.State.Subjects {
		n += count
	}
	return n, nil
}

// ErrNotDrained says the outbox still holds writes that a change of layout
// would leave without a consumer, or that the server would delete.
var ErrNotDrained = errors.New("outbox not drained")

// retiredConsumers lists the outbox's consumers that cfg's layout no
// longer has, and fails with ErrNotDrained if any of them still holds
// writes: writes stored unpartitioned (four tokens), writes pending or in
// flight on a partition at or beyond cfg.Partitions, or any partitioned
// write when the new partition count moves tenants between partitions
// (rehashes).
func retiredConsumers(ctx context.Context, outbox jetstream.Stream, cfg Config) ([]string, error) {
	var legacy, surplus []string
	names := outbox.ConsumerNames(ctx)
	for name := range names.Name() {
		if legacyConsumer(name) {
			legacy = append(legacy, name)
		} else if _, p, ok := ParsePartitionConsumerName(name); ok && p >= cfg.Partitions {
			surplus = append(surplus, name)
		}
	}
	if err := names.Err(); err != nil {
		return nil, fmt.Errorf("list consumers of %s: %w", cfg.Stream, err)
	}
	if err := checkPartitionLastDrained(ctx, outbox, cfg); err != nil {
		return nil, err
	}
	// A new partition count that moves tenants between the partitions
	// that remain would let a tenant's later writes, in its new partition,
	// be applied before its earlier ones, still in the old.
	if tr := outbox.CachedInfo().Config.SubjectTransform; tr != nil {
		if was, ok := storedPartitions(tr.Destination); ok && rehashes(was, cfg.Partitions) {
			n, err := CountStored(ctx, outbox, SubjectPrefix+".*.*.*.*")
			if err != nil {
				return nil, fmt.Errorf("count partitioned writes in %s: %w", cfg.Stream, err)
			}
			if n > 0 {
				return nil, fmt.Errorf("%w: stream %s holds %d writes partitioned over %d; going to %d partitions moves tenants between partitions, and their writes could be applied out of order; stop the producers and let the workers apply them first",
					ErrNotDrained, cfg.Stream, n, was, cfg.Partitions)
			}
		}
	}
	if err := checkUnpartitionedDrained(ctx, outbox, cfg, legacy); err != nil {
		return nil, err
	}
	for _, name := range surplus {
		c, err := outbox.Consumer(ctx, name)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("consumer %s: %w", name, err)
		}
		if info := c.CachedInfo(); info.NumPending > 0 || info.NumAckPending > 0 {
			return nil, fmt.Errorf("%w: consumer %s holds %d writes not yet delivered and %d in flight, in a partition beyond the %d configured; drain the outbox before reducing partitions",
				ErrNotDrained, name, info.NumPending, info.NumAckPending, cfg.Partitions)
		}
	}
	return append(legacy, surplus...), nil
}

// checkQuotaKeepsWrites fails with ErrNotDrained when setting cfg's tenant
// quota on the existing outbox could delete writes. A per-subject limit
// set on a stream, or lowered, makes the server delete at once the oldest
// messages of every subject above it, discard-new and work queue
// notwithstanding (nats-server 2.15.2, the stores' UpdateConfig). So the
// quota goes in only while every stored subject holds at most half of it:
// the other half is room for the writes that arrive between this count
// and the server applying the change, when no quota or a higher one still
// holds. Raising or removing the quota deletes nothing and is not checked.
func checkQuotaKeepsWrites(ctx context.Context, outbox jetstream.Stream, cfg Config) error {
	have, want := limit(outbox.CachedInfo().Config.MaxMsgsPerSubject), limit(cfg.TenantMaxPending)
	if want < 0 || (have > 0 && want >= have) {
		return nil
	}
	info, err := outbox.Info(ctx, jetstream.WithSubjectFilter(SubjectPrefix+".>"))
	if err != nil {
		return fmt.Errorf("count writes per subject in %s: %w", cfg.Stream, err)
	}
	var fullest string
	var most uint64
	for subject, n := range info.State.Subjects {
		if n > most {
			fullest, most = subject, n
		}
	}
	if 2*most > uint64(want) {
		return fmt.Errorf("%w: stream %s holds %d writes on %s; the server makes room for a new per-subject limit by deleting the oldest writes above it, so a tenant quota of %d goes in only while every subject holds at most half of it; start with a quota of at least %d (or unlimited), let the workers apply the backlog, then lower it",
			ErrNotDrained, cfg.Stream, most, fullest, want, 2*most)
	}
	return nil
}

// createOrUpdateStream creates first and updates only a stream that exists
// with another configuration. jetstream's CreateOrUpdateStream does it the
// other way round, and on a 3-replica cluster an update racing another
// worker's create is never answered (nats-server 2.15.2): two workers
// starting together would both time out.
//
// A stream that already exists as wanted (the other worker's create won) is
// not updated at all: even create-first leaves a window in which the second
// worker's create is refused while the first one's is still being proposed,
// and the update that followed then hung the same way under load.
func createOrUpdateStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	s, err := js.CreateStream(ctx, cfg)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		if have, err := lookUpStream(ctx, js, cfg.Name); err == nil && sameStream(cfg, have.CachedInfo().Config) {
			return have, nil
		}
		s, err = js.UpdateStream(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("update: %w", err)
		}
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	return s, nil
}

// lookUpStream asks for a stream's info, again and again for as long as
// ctx allows: on a new cluster, a request about a stream another worker is
// creating at that moment can go unanswered (nats-server 2.15.2), and a
// fresh request once the stream's group is formed is answered at once.
func lookUpStream(ctx context.Context, js jetstream.JetStream, name string) (jetstream.Stream, error) {
	for {
		attempt, cancel := context.WithTimeout(ctx, 2*time.Second)
		s, err := js.Stream(attempt, name)
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return s, err
		}
	}
}

// sameStream reports whether have is the stream want describes, on every
// setting Provision chooses.
func sameStream(want, have jetstream.StreamConfig) bool {
	sameTransform := (want.SubjectTransform == nil) == (have.SubjectTransform == nil) &&
		(want.SubjectTransform == nil || *want.SubjectTransform == *have.SubjectTransform)
	return sameTransform && slices.Equal(want.Subjects, have.Subjects) &&
		want.Description == have.Description && want.Retention == have.Retention &&
		want.Discard == have.Discard && want.Storage == have.Storage &&
		max(want.Replicas, 1) == max(have.Replicas, 1) && want.Duplicates == have.Duplicates &&
		want.MaxAge == have.MaxAge && want.AllowDirect == have.AllowDirect &&
		limit(int64(want.MaxConsumers)) == limit(int64(have.MaxConsumers)) &&
		limit(want.MaxBytes) == limit(have.MaxBytes) && limit(want.MaxMsgs) == limit(have.MaxMsgs) &&
		limit(int64(want.MaxMsgSize)) == limit(int64(have.MaxMsgSize)) && want.Compression == have.Compression &&
		limit(want.MaxMsgsPerSubject) == limit(have.MaxMsgsPerSubject) && want.DiscardNewPerSubject == have.DiscardNewPerSubject
}

// limit folds the two ways of saying "no limit" (0 and -1) into one.
func limit(v int64) int64 {
	if v <= 0 {
		return -1
	}
	return v
}

// createOrUpdateBucket does the same for a KV bucket.
func createOrUpdateBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.CreateKeyValue(ctx, cfg)
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = existingOrUpdatedBucket(ctx, js, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("provision bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// existingOrUpdatedBucket returns a bucket that exists as wanted, and
// updates it otherwise.
func existingOrUpdatedBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if err == nil {
		if st, err := kv.Status(ctx); err == nil {
			if s, ok := st.(*jetstream.KeyValueBucketStatus); ok {
				info := s.StreamInfo().Config
				if st.TTL() == cfg.TTL && st.History() == int64(max(cfg.History, 1)) && max(info.Replicas, 1) == max(cfg.Replicas, 1) &&
					info.Storage == cfg.Storage && info.Description == cfg.Description {
					return kv, nil
				}
			}
		}
	}
	return js.UpdateKeyValue(ctx, cfg)
}

// ErrNotProvisioned says a stream, bucket or consumer is missing.
var ErrNotProvisioned = errors.New("outbox not provisioned")

// Check reports whether everything Provision makes exists, without creating
// anything.
func Check(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	var outbox jetstream.Stream
	for _, name := range []string{cfg.Stream, cfg.DLQStream, cfg.ParkingStream} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			return fmt.Errorf("%w: stream %s: %v", ErrNotProvisioned, name, err)
		}
		if name == cfg.Stream {
			outbox = s
		}
	}
	for _, bucket := range []string{cfg.AttemptsBucket, cfg.MembersBucket, cfg.ParkingBucket} {
		if _, err := js.KeyValue(ctx, bucket); err != nil {
			return fmt.Errorf("%w: bucket %s: %v", ErrNotProvisioned, bucket, err)
		}
	}
	// One listing rather than a request per consumer: /readyz runs this.
	have := map[string]bool{}
	names := outbox.ConsumerNames(ctx)
	for name := range names.Name() {
		have[name] = true
	}
	if err := names.Err(); err != nil {
		return fmt.Errorf("list consumers of %s: %w", cfg.Stream, err)
	}
	for _, m := range Modes {
		for p := range cfg.Partitions {
			if name := PartitionConsumerName(m, p); !have[name] {
				return fmt.Errorf("%w: consumer %s", ErrNotProvisioned, name)
			}
		}
	}
	return nil
}
