package streams

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"
)

// The outbox is partitioned at ingest: its subject transform stores a write
// published to memory.<token>.<mode>.<op> as
// memory.<mode>.<partition>.<token>.<op>, the partition hashed from the
// tenant token, so all writes of a tenant (hence of a memory) land in one
// partition. Each (mode, partition) has its own durable consumer, which one
// worker at a time owns through the consumer's pinned priority group.
//
// The mode and the partition lead the stored subject so that a partition
// consumer's filter, memory.<mode>.<partition>.*.*, has a literal prefix: the
// server finds a partition's next write by walking that prefix of its
// subject index, and matches each ack against the other consumers' filters
// by their first tokens. With the partition last (memory.*.<mode>.*.<p>)
// both walked every tenant's subjects, which cost the server and the
// acking worker markedly more CPU per write (docs/BENCHMARKS.md, "Stored
// subjects lead with the mode and the partition").

// MaxPartitions bounds Config.Partitions: with three modes, 1000 partitions
// already make 3000 consumers.
const MaxPartitions = 1000

// OwnerGroup is the priority group of every partition consumer. Its policy
// is pinned-client: the server delivers to one pull subscription at a time,
// the partition's owner, so two workers never hold writes of one partition
// at once.
const OwnerGroup = "owner"

// PullExpiry is how long a worker's pull request lives. An owner keeps a
// pull request waiting at all times, so its pin is renewed at least this
// often; Config.PinnedTTL depends on it.
const PullExpiry = 2 * time.Second

// PartitionOf is the partition the outbox stores a tenant's writes in, as
// nats-server's partition(P,1) subject transform computes it: FNV-1a (32
// bits) of the tenant token, modulo the number of partitions. Like the
// server, it gives 0 when there are no partitions.
func PartitionOf(token string, partitions int) int {
	if partitions < 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(token))
	return int(h.Sum32() % uint32(partitions))
}

// PartitionConsumerName is the durable name of a partition's consumer: the
// mode and the partition zero-padded to three digits ("sync-007").
func PartitionConsumerName(mode Mode, p int) string {
	return fmt.Sprintf("%s-%03d", mode, p)
}

// ParsePartitionConsumerName reads a name PartitionConsumerName made. ok is
// false for any other consumer name.
func ParsePartitionConsumerName(name string) (mode Mode, p int, ok bool) {
	i := strings.LastIndexByte(name, '-')
	if i < 0 || len(name)-i-1 != 3 {
		return "", 0, false
	}
	m, err := ParseMode(name[:i])
	if err != nil {
		return "", 0, false
	}
	p, err = strconv.Atoi(name[i+1:])
	if err != nil || p < 0 || PartitionConsumerName(m, p) != name {
		return "", 0, false
	}
	return m, p, true
}

// PartitionFilter selects the stored writes of one mode in one partition:
// memory.<mode>.<p>.*.*, the filter of that partition's consumer. Its
// five tokens keep it apart from the unpartitioned consumer's four
// (memory.*.*.*): a work-queue stream refuses overlapping filters.
func PartitionFilter(mode Mode, p int) string {
	return SubjectPrefix + "." + string(mode) + "." + strconv.Itoa(p) + ".*.*"
}

// StoredSubject is the subject the outbox stores a write published to
// a.Subject() under, in partition p.
func StoredSubject(a Address, p int) string {
	return SubjectPrefix + "." + string(a.Mode) + "." + strconv.Itoa(p) + "." + a.Token + "." + string(a.Op)
}

// StoredTenantFilter selects every write of one tenant (its encoded token)
// stored in the outbox, in any mode and partition:
// memory.*.*.<token>.*. A stream info with it counts a tenant's backlog.
func StoredTenantFilter(token string) string {
	return SubjectPrefix + ".*.*." + token + ".*"
}

// storedLayout is the subject transform's destination: the stored subject
// of a publish to memory.<token>.<mode>.<op>.
func storedLayout(partitions int) string {
	return fmt.Sprintf("%s.{{wildcard(2)}}.{{partition(%d,1)}}.{{wildcard(1)}}.{{wildcard(3)}}", SubjectPrefix, partitions)
}

// storedPartitions reads the partition count of an outbox whose subject
// transform has destination dest. ok is false unless dest is storedLayout's.
func storedPartitions(dest string) (p int, ok bool) {
	const mark = "{{partition("
	i := strings.Index(dest, mark)
	if i < 0 {
		return 0, false
	}
	rest := dest[i+len(mark):]
	j := strings.IndexByte(rest, ',')
	if j < 0 {
		return 0, false
	}
	p, err := strconv.Atoi(rest[:j])
	if err != nil || p < 1 || storedLayout(p) != dest {
		return 0, false
	}
	return p, true
}

// rehashes reports whether going from was to now partitions moves a tenant
// that stays below now to another partition. Shrinking to a divisor moves
// none: h mod now = (h mod was) mod now, which is h mod was for every tenant
// whose partition was below now. Every other change moves some.
func rehashes(was, now int) bool {
	return was != now && (now > was || was%now != 0)
}

// parsePartition reads the partition token the outbox's subject transform
// writes: a decimal number below MaxPartitions, written as the server
// writes it (no sign, no leading zeros).
func parsePartition(token string) (int, bool) {
	p, err := strconv.Atoi(token)
	if err != nil || p < 0 || p >= MaxPartitions || strconv.Itoa(p) != token {
		return 0, false
	}
	return p, true
}
