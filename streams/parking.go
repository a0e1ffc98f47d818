package streams

import (
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ParkedSubjectPrefix is the first token of parked writes:
// memory_parked.<tenant token>.<mode>.<op>.
const ParkedSubjectPrefix = "memory_parked"

// Headers a worker adds to a parked write. The original headers stay, and
// Soma-Idempotency-Key is always set, so the parked copy is applied under
// the original write's key.
const (
	HeaderParkedSubject  = "Soma-Parked-Subject"  // the outbox subject as stored, partition included
	HeaderParkedSeq      = "Soma-Parked-Seq"      // the outbox stream sequence
	HeaderParkedTime     = "Soma-Parked-Time"     // when the outbox stored the write (RFC 3339)
	HeaderParkedAttempts = "Soma-Parked-Attempts" // failed attempts before it was parked
	// HeaderParkedNotBefore is when the write may be attempted again, when
	// its last attempt got no answer (RFC 3339 with nanoseconds, UTC).
	HeaderParkedNotBefore = "Soma-Parked-Not-Before"
)

// ParkedSubject is where a parked tenant's write waits.
func ParkedSubject(a Address) string {
	return ParkedSubjectPrefix + "." + a.Token + "." + string(a.Mode) + "." + string(a.Op)
}

// ParkedFilter selects one tenant's parked writes of one mode.
func ParkedFilter(mode Mode, token string) string {
	return ParkedSubjectPrefix + "." + token + "." + string(mode) + ".*"
}

// ParkingConfig is the stream where parked tenants' writes wait, in order,
// until their memory API recovers. Like the outbox it is a work queue that
// refuses new writes when full rather than dropping any. Its full blocks
// are compressed (S2): a parked backlog can be large and wait long, so it
// is kept small on disk, and the page cache has less of it to write out.
func (c Config) ParkingConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        c.ParkingStream,
		Description: "jetbox parked writes: tenants whose memory API is failing",
		Subjects:    []string{ParkedSubjectPrefix + ".>"},
		Retention:   jetstream.WorkQueuePolicy,
		Discard:     jetstream.DiscardNew,
		Storage:     c.Storage,
		Replicas:    c.Replicas,
		Duplicates:  c.DuplicateWindow,
		AllowDirect: true,
		Compression: jetstream.S2Compression,
	}
}

// ParkingBucketConfig is the KV bucket that lists the parked tenants, by
// key <mode>.<tenant token> (ParkingKey), each value a ParkedRecord in
// JSON.
func (c Config) ParkingBucketConfig() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      c.ParkingBucket,
		Description: "jetbox: parked tenants per mode",
		History:     1,
		Storage:     c.Storage,
		Replicas:    c.Replicas,
	}
}

// ParkedRecord is the value of a parking bucket entry: when the tenant was
// parked, why, and by which worker.
type ParkedRecord struct {
	Since  time.Time `json:"since"`
	Reason string    `json:"reason"`
	Worker string    `json:"worker"`
}

// ParkingKey is the parking bucket's key of a tenant (its encoded token)
// parked in one mode: <mode>.<tenant token>.
func ParkingKey(mode Mode, token string) string { return string(mode) + "." + token }

// ParseParkingKey reads a key ParkingKey made. ok is false when key has no
// dot; mode is not checked.
func ParseParkingKey(key string) (mode Mode, token string, ok bool) {
	m, token, ok := strings.Cut(key, ".")
	return Mode(m), token, ok
}

// ParkedMaxAckPending is how many of a parked tenant's writes its parked
// consumer lets out at once: a replayer applies writes to different
// memories together, each memory's one at a time.
const ParkedMaxAckPending = 128

// ParkedConsumerConfig is the durable consumer a replayer reads one parked
// tenant's writes through. It lets ParkedMaxAckPending writes out at once;
// a replayer taking over from another gathers every pending write before
// it starts any (consumer/replayer.go), so two replayers never reorder a
// memory's writes. A replayer sets it when it starts, and Provision leaves
// existing parked consumers alone: an older worker's replayer, which
// gathers nothing, reads with the one-at-a-time setting it gave the
// consumer itself (docs/TOPOLOGY.md, rolling upgrades). A tenant token can
// be longer than a consumer name may be, so the name carries a hash of it.
func (c Config) ParkedConsumerConfig(mode Mode, token string) jetstream.ConsumerConfig {
	h := fnv.New64a()
	h.Write([]byte(token))
	return jetstream.ConsumerConfig{
		Durable:           fmt.Sprintf("parked-%s-%016x", mode, h.Sum64()),
		Description:       "jetbox replayer of a parked tenant",
		FilterSubject:     ParkedFilter(mode, token),
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		AckPolicy:         jetstream.AckExplicitPolicy,
		AckWait:           c.AckWait,
		MaxDeliver:        -1,
		MaxAckPending:     ParkedMaxAckPending,
		Replicas:          c.Replicas,
		InactiveThreshold: 24 * time.Hour,
	}
}

// parkedReleasedKey is the metadata key a replayer sets on its parked
// consumer when it ends by handing everything back: it reads nothing more.
// Any other configuration of the consumer, the one a replayer starts with
// among them, leaves it out.
const parkedReleasedKey = "jetbox.released"

// ReleasedParkedConsumerConfig is ParkedConsumerConfig marked as let go
// by its last replayer (ParkedReleased).
func (c Config) ReleasedParkedConsumerConfig(mode Mode, token string) jetstream.ConsumerConfig {
	cfg := c.ParkedConsumerConfig(mode, token)
	cfg.Metadata = map[string]string{parkedReleasedKey: "true"}
	return cfg
}

// ParkedReleased says whether a parked consumer's last replayer let go of
// it, handing back all it held (ReleasedParkedConsumerConfig), and no
// replayer has read it since: a replayer taking over then need not wait
// for the previous one to stop.
func ParkedReleased(cfg jetstream.ConsumerConfig) bool {
	return cfg.Metadata[parkedReleasedKey] == "true"
}
